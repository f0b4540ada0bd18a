#!/usr/bin/env bash
# Pretrain OFA from scratch on the toy world's pretraining files with the stock `fairseq-train --task unify_task`
# (CPU), so that the checkpoint fine-tunes with the toy task scripts (e.g. train_caption_toy.sh ...
# --restore-file SAVE_DIR/checkpoint_last.pt --reset-optimizer --reset-dataloader --reset-meters
# --reset-lr-scheduler).
# What: an `ofa_nano` model with the shared toy recipe (run_scripts/demo/toy_recipe.sh) at LR 2e-3 on the
# image-text rows: captioning + image-text matching, VQA + answer matching, grounding + grounded captioning.
# The rows come in the cycle PAIR_MIX (default "6 1 1": 6 caption, 1 qa, 1 grounding rows), caption-dominated
# as the official sources are (CC12M, CC3M, SBU, COCO captions beside VQAv2/GQA and RefCOCO). 32 px images,
# every one of their 4 patches (--sample-patch-num 4; officially 196 of 576), batches of 16 rows (32 examples).
# SIDE_FILES=1 adds the rest of the official mix with every 8th row, as a second batch with loss weight 2: text
# infilling, image infilling on synthetic codes (64 px images, the 4 x 4 codes of their 32 px centre) and
# detection (boxes quantised relative to 64 px).
# Why image-text rows only by default: at this scale the model learns to use the image only after a few
# thousand captioning examples. With the side files, half of each update's gradient goes to the side tasks,
# and 1000 updates (9 minutes) on 1:1:1 rows left the image unused: the caption loss with the images shuffled
# within the batch stayed within 0.01 nats of the loss with the true images (0.16 after 400 caption updates).
# Hardware: 2 CPU cores, no GPU (--cpu): about 0.35 s per update, so the default 600 updates take about 3.5
# minutes (plus 10 s to write the 2000-row world); about 0.6 s per update with SIDE_FILES=1.
# Expected (measured, seed 1, 1 torch thread; runs repeat exactly on one machine): loss 8.03 at update 25,
# 1.09 at update 600; caption loss with shuffled images 0.064 nats above the true images' (it uses the image).
# Fine-tuned with train_caption_toy.sh (100-update schedule, --warmup-updates 10) on another 2000-image toy
# world, it captions 200 test images with CIDEr 0.83 after 50 updates, where the same run from random weights
# scores 0.25 (0.49 after 100; most-frequent caption 0.55). Zero-shot (no VQA fine-tuning, fairseq-generate
# --task vqa_gen --prompt-type none, all-candidate scoring) it answers 200 toy VQA test questions with accuracy
# 0.32 (most-frequent answer 0.10), which is what each question's most frequent training answer scores (0.32):
# the zero-shot answers come from the question, not the image. tests/test_pretraining_transfer.py checks both.
#
# Usage: train_pretrain_toy.sh DATA_DIR SAVE_DIR [extra fairseq-train flags]
#   DATA_DIR  written on first use by python -m ofa_plugin.data.toyworld.pretrain (NUM_PAIRS image-text rows,
#             default 2000, in the cycle PAIR_MIX, and the side files), holds vocab/ (the vocabulary every toy
#             world shares); an existing DATA_DIR is used as it is
#   SAVE_DIR  gets checkpoint_last.pt
# Environment: MAX_UPDATE (default 600; also the length of the LR schedule), LR (default 2e-3), NUM_PAIRS,
#   PAIR_MIX, SIDE_FILES (default 0).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: train_pretrain_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
SAVE="${2:?usage: train_pretrain_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
shift 2
MAX_UPDATE="${MAX_UPDATE:-600}"
LR="${LR:-2e-3}"
source "$REPO/run_scripts/demo/toy_recipe.sh"

DATA="$(mkdir -p "$DATA" && cd "$DATA" && pwd)"
if [[ ! -f "$DATA/vision_language_examples.tsv" ]]; then
  (cd "$REPO" && python -m ofa_plugin.data.toyworld.pretrain --out "$DATA" --seed 1 \
    --num-pairs "${NUM_PAIRS:-2000}" --pair-mix ${PAIR_MIX:-6 1 1} --code-image-size 32 2>&1 | tail -n 1)
fi
SIDE=()
if [[ "${SIDE_FILES:-0}" == 1 ]]; then
  SIDE=(--text-data "$DATA/text_examples.tsv" --image-data "$DATA/image_examples.tsv"
        --detection-data "$DATA/detection_examples.tsv")
fi

fairseq-train "$DATA/vision_language_examples.tsv" \
  --user-dir "$REPO/ofa_plugin" --task unify_task --selected-cols 0,1,2,3,4,5,6,7 \
  "${SIDE[@]}" --neg-sample-dir "$DATA/negative_sample" \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" \
  --patch-image-size 32 --code-image-size 32 --max-image-size 64 --sample-patch-num 4 \
  --max-src-length 80 --max-tgt-length 30 \
  "${TOY_RECIPE[@]}" --batch-size 16 "$@"
