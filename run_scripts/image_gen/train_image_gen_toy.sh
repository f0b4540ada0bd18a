#!/usr/bin/env bash
# Toy text-to-image from scratch on the CPU: toy data, a toy VQGAN, code TSVs, then `fairseq-train --task image_gen`.
#
# What: DATA/toy_images_{train,valid,test}.tsv (make_toy_data.py: one coloured shape per 64x64 image, captions
# "a red circle on a blue background") and the toy world's SentencePiece vocabulary; the toy VQGAN
# (python -m ofa_plugin.vqgan.train_toy, its defaults: 256 codes, f8) in DATA/vqgan unless VQGAN_DIR names one;
# the images encoded to coco_vqgan TSVs (uniq-id, 64 codes, caption); then an `ofa_nano` model (the toy recipe
# of run_scripts/demo/toy_recipe.sh) learns caption -> codes (--selected-cols 0,2,1, --code-image-size 64, the
# loss restricted to the code tokens by the task's default --constraint-range).
# Hardware: 2 CPU cores; data + toy VQGAN + code files about 1 minute, each 100 updates about 0.5-1 minute.
# Usage: train_image_gen_toy.sh DATA_DIR SAVE_DIR [extra fairseq-train flags]
# Environment: MAX_UPDATE (default 600), LR (default 1e-3), NUM_TRAIN (default 4000), VQGAN_DIR (default DATA/vqgan).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: train_image_gen_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
SAVE="${2:?usage: train_image_gen_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
shift 2
MAX_UPDATE="${MAX_UPDATE:-600}"
LR="${LR:-1e-3}"
VQGAN_DIR="${VQGAN_DIR:-$DATA/vqgan}"
source "$REPO/run_scripts/demo/toy_recipe.sh"

[[ -f "$DATA/toy_images_train.tsv" ]] || python "$REPO/run_scripts/image_gen/make_toy_data.py" --out "$DATA" \
  --num-train "${NUM_TRAIN:-4000}" --image-size 64
[[ -f "$VQGAN_DIR/last.ckpt" ]] || python -m ofa_plugin.vqgan.train_toy --out "$VQGAN_DIR"
CODE_DICT_SIZE="$(python -c "import sys; from ofa_plugin.vqgan import read_config; print(read_config(sys.argv[1]).n_embed)" "$VQGAN_DIR/model.yaml")"
for split in train valid test; do
  [[ -f "$DATA/coco_vqgan_$split.tsv" ]] || python -m ofa_plugin.vqgan.encode_tsv \
    --vqgan-config-path "$VQGAN_DIR/model.yaml" --vqgan-model-path "$VQGAN_DIR/last.ckpt" \
    --input "$DATA/toy_images_$split.tsv" --output "$DATA/coco_vqgan_$split.tsv" --code-image-size 64
done

fairseq-train "$DATA/coco_vqgan_train.tsv,$DATA/coco_vqgan_valid.tsv" \
  --user-dir "$REPO/ofa_plugin" --task image_gen --selected-cols 0,2,1 \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --code-image-size 64 --code-dict-size "$CODE_DICT_SIZE" \
  --max-src-length 64 \
  "${TOY_RECIPE[@]}" "$@"
