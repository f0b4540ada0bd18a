#!/usr/bin/env bash
# Caption the toy world's test images with the stock `fairseq-generate` and score them (CIDEr, BLEU,
# METEOR, ROUGE-L).
#
# What: beam search (beam 5, at most 16 tokens, no repeated 3-grams) with a checkpoint from
# train_caption_toy.sh on caption_test.tsv (3-5 references per image, joined by "&&"); fairseq-generate
# prints "Generate test with beam=5: CIDEr x | BLEU-4 y ..." (scorer ofa_caption). Then the
# most-frequent-caption baseline (the commonest training caption for every test image) on the same
# references, printed as "Most-frequent-caption baseline (...): CIDEr z ...".
# Hardware: 2 CPU cores, about 20 seconds for 200 test images; with Java on PATH (COCO tokenizer and
# METEOR) add 10-15 s to the generation and to the baseline.
# Expected (measured, seed 1, 200 test images): CIDEr 1.92 after the default train_caption_toy.sh run
# (1200 updates) on a 10000-image world, 1.70 after 900 updates (run_demo.sh), 1.17 after 800 updates on
# 5000 images; 0.52 for the baseline.
#
# Usage: evaluate_caption_toy.sh DATA_DIR CHECKPOINT [extra fairseq-generate flags]
# Environment: PATCH_IMAGE_SIZE (default 32, the size the checkpoint was trained with).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-generate >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: evaluate_caption_toy.sh DATA_DIR CHECKPOINT [fairseq-generate flags]}"
CHECKPOINT="${2:?usage: evaluate_caption_toy.sh DATA_DIR CHECKPOINT [fairseq-generate flags]}"
shift 2
PATCH_IMAGE_SIZE="${PATCH_IMAGE_SIZE:-32}"
TEST="$DATA/caption_test.tsv"

# Data files and columns on the command line win; the other task options (image size, ...) come from the
# checkpoint's task config plus --model-overrides, as with the official evaluation scripts.
fairseq-generate "$TEST" \
  --user-dir "$REPO/ofa_plugin" --task caption --path "$CHECKPOINT" \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --selected-cols 1,4,2 --patch-image-size "$PATCH_IMAGE_SIZE" \
  --model-overrides "{'bpe_dir': '$DATA/vocab', 'patch_image_size': $PATCH_IMAGE_SIZE}" \
  --gen-subset test --batch-size 32 --num-workers 0 --cpu \
  --beam 5 --max-len-b 16 --no-repeat-ngram-size 3 \
  "$@"

python -m ofa_plugin.metrics.baseline --train "$DATA/caption_train.tsv" --test "$TEST"
