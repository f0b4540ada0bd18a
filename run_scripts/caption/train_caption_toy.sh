#!/usr/bin/env bash
# Train OFA captioning from scratch on the toy world with the stock `fairseq-train` (CPU).
#
# What: an `ofa_nano` model (2+2 layers, dim 128, the bottleneck "resnet18" trunk) with the released
# models' NormFormer flags, trained from random weights on caption_train.tsv of a toy world
# (python -m ofa_plugin.data.toyworld --tasks caption), one caption per image, 32 px images.
# Hardware: sized for 2 CPU cores (no GPU needed; --cpu). About 0.3 s per update (batch 32), so the
# default 1000 updates take about 5-6 minutes; loss (nats/token) falls from ~9 to ~0.9.
# Expected result with evaluate_caption_toy.sh (world: 10000 training rows, seed 1): CIDEr about 1.0-1.2
# on the test images, against about 0.5 for the most-frequent-caption baseline.
#
# Usage: train_caption_toy.sh DATA_DIR SAVE_DIR [extra fairseq-train flags, e.g. --log-format json]
#   DATA_DIR  holds caption_{train,valid}.tsv and vocab/{spm.model,dict.txt}
#   SAVE_DIR  gets checkpoint_last.pt
# Environment: MAX_UPDATE (default 1000; also the length of the LR schedule), LR (default 1e-3).
# The fairseq CLIs are taken from PATH, else from the repository's .venv (make install).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: train_caption_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
SAVE="${2:?usage: train_caption_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
shift 2
MAX_UPDATE="${MAX_UPDATE:-1000}"
LR="${LR:-1e-3}"

# Validation is off: the caption task scores captions with fairseq-generate (evaluate_caption_toy.sh),
# and a loss on "&&"-joined reference lists means nothing. --ignore-unused-valid-subsets: fairseq looks
# for unused valid*.bin files next to the data, which a list of TSV files does not have.
fairseq-train "$DATA/caption_train.tsv,$DATA/caption_valid.tsv" \
  --user-dir "$REPO/ofa_plugin" --task caption --arch ofa_nano --resnet-type resnet18 \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --selected-cols 0,4,2 \
  --patch-image-size 32 --max-src-length 80 --max-tgt-length 20 \
  --scale-attn --scale-fc --scale-heads --disable-entangle --dropout 0.0 --attention-dropout 0.0 \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.0 \
  --optimizer adam --adam-betas "(0.9,0.999)" --adam-eps 1e-08 --lr "$LR" \
  --lr-scheduler polynomial_decay --warmup-updates 50 --total-num-update "$MAX_UPDATE" --max-update "$MAX_UPDATE" \
  --batch-size 32 --num-workers 0 --cpu --seed 1 \
  --log-format simple --log-interval 25 \
  --save-dir "$SAVE" --no-epoch-checkpoints --disable-validation --ignore-unused-valid-subsets \
  "$@"
