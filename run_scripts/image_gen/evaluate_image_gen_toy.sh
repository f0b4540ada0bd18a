#!/usr/bin/env bash
# Generate images for the toy test captions with the stock `fairseq-generate` and score them with the toy check.
#
# What: top-k sampling (SAMPLES images per caption, top-k TOPK) of the 64 image codes of every caption of
# DATA/coco_vqgan_test.tsv with a train_image_gen_toy.sh checkpoint; the codes are decoded by the toy VQGAN and
# written to OUT_DIR (all_results/{uniq_id}_{j}.png, top1/{uniq_id}.png, images.tsv = uniq_id, j, file,
# caption); fairseq-generate prints "toy check on N images: colour x, shape y, both z" (the task's scorer
# ofa_clip_image, which without a CLIP model prints the toy check alone: does the decoded image show the
# caption's colour, and shape). Then the trivial baseline, SAMPLES images of
# uniformly random codes per caption decoded by the same VQGAN (seed 1), printed as
# "Random-codes baseline: toy check on N images: colour x, shape y, both z".
# Usage: evaluate_image_gen_toy.sh DATA_DIR CHECKPOINT OUT_DIR [extra fairseq-generate flags]
# Environment: SAMPLES (default 4), TOPK (default 3), VQGAN_DIR (default DATA/vqgan).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-generate >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: evaluate_image_gen_toy.sh DATA_DIR CHECKPOINT OUT_DIR [fairseq-generate flags]}"
CHECKPOINT="${2:?usage: evaluate_image_gen_toy.sh DATA_DIR CHECKPOINT OUT_DIR [fairseq-generate flags]}"
OUT_DIR="${3:?usage: evaluate_image_gen_toy.sh DATA_DIR CHECKPOINT OUT_DIR [fairseq-generate flags]}"
shift 3
SAMPLES="${SAMPLES:-4}"
VQGAN_DIR="${VQGAN_DIR:-$DATA/vqgan}"
# The task sets up its dictionary (and checks the VQGAN against it) before reading the checkpoint's options.
CODE_DICT_SIZE="$(python -c "import sys; from ofa_plugin.vqgan import read_config; print(read_config(sys.argv[1]).n_embed)" "$VQGAN_DIR/model.yaml")"

fairseq-generate "$DATA/coco_vqgan_test.tsv" \
  --user-dir "$REPO/ofa_plugin" --task image_gen --path "$CHECKPOINT" --selected-cols 0,2,1 \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --code-dict-size "$CODE_DICT_SIZE" --model-overrides "{'bpe_dir': '$DATA/vocab'}" \
  --vqgan-config-path "$VQGAN_DIR/model.yaml" --vqgan-model-path "$VQGAN_DIR/last.ckpt" \
  --gen-images-path "$OUT_DIR" \
  --gen-subset test --batch-size 16 --num-workers 0 --cpu --seed 7 \
  --sampling --sampling-topk "${TOPK:-3}" --beam "$SAMPLES" --nbest "$SAMPLES" \
  "$@"

python -m ofa_plugin.metrics.random_codes_baseline --vqgan-config-path "$VQGAN_DIR/model.yaml" \
  --vqgan-model-path "$VQGAN_DIR/last.ckpt" --captions "$DATA/coco_vqgan_test.tsv" --samples "$SAMPLES"
