#!/usr/bin/env bash
# Train OFA captioning from scratch on the toy world with the stock `fairseq-train` (CPU).
#
# What: an `ofa_nano` model (2+2 layers, dim 128, the 3-stage bottleneck "resnet18" trunk) with the
# released models' NormFormer flags (--scale-attn --scale-fc --scale-heads --disable-entangle), from
# random weights (the shared toy recipe, run_scripts/demo/toy_recipe.sh), on caption_train.tsv of a toy
# world (python -m ofa_plugin.data.toyworld --tasks caption): one caption per image, images resized to
# 32x32 px, batches of 32, Adam at 1e-3 with 50 warmup updates and linear decay to 0 at MAX_UPDATE, no
# dropout, no label smoothing.
# Hardware: sized for 2 CPU cores, no GPU (--cpu): about 0.3 s per update, so the default 1200 updates
# take about 6 minutes.
# Expected (measured, seed 1): training loss (nats per token) about 8.4 at update 25, 0.92 at update 800,
# 0.85 at 1200. With evaluate_caption_toy.sh on 200 test images: CIDEr 1.17 after 800 updates on a
# 5000-image world, 1.70 after 900 (run_demo.sh) and 1.92 after 1200 updates on a 10000-image world; the
# most-frequent-caption baseline scores 0.52. The model first learns the captions' language alone (CIDEr
# at the baseline's level) and starts to use the image after about 200-300 updates.
#
# Usage: train_caption_toy.sh DATA_DIR SAVE_DIR [extra fairseq-train flags, e.g. --log-format json]
#   DATA_DIR  holds caption_{train,valid}.tsv and vocab/{spm.model,dict.txt}
#   SAVE_DIR  gets checkpoint_last.pt
# Environment: MAX_UPDATE (default 1200; also the length of the LR schedule), LR (default 1e-3).
# The fairseq CLIs are taken from PATH, else from the repository's .venv (make install).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: train_caption_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
SAVE="${2:?usage: train_caption_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
shift 2
MAX_UPDATE="${MAX_UPDATE:-1200}"
LR="${LR:-1e-3}"
source "$REPO/run_scripts/demo/toy_recipe.sh"

# Validation is off (TOY_RECIPE): fairseq-generate scores the captions (evaluate_caption_toy.sh), and a
# loss on "&&"-joined reference lists means nothing.
fairseq-train "$DATA/caption_train.tsv,$DATA/caption_valid.tsv" \
  --user-dir "$REPO/ofa_plugin" --task caption \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --selected-cols 0,4,2 \
  --patch-image-size 32 --max-src-length 80 --max-tgt-length 20 \
  "${TOY_RECIPE[@]}" "$@"
