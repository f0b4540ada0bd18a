# shellcheck shell=bash
# What the official image_gen scripts share (sourced after run_scripts/common.sh): data, VQGAN and CLIP paths
# (reference §9.3 text-to-image), and the toy mode's data and overrides.
#
# Environment (all optional, besides common.sh's):
#   VQGAN_DIR   folder with the VQGAN tokenizer's model.yaml and last.ckpt (taming format; default
#               checkpoints/vqgan, the official layout; toy: DATA/vqgan).
#   CLIP_MODEL  CLIP checkpoint (default checkpoints/clip/ViT-B-16.pt, OpenAI's file; toy: DATA/clip/ViT-B-16.pt).
# Toy mode: DATA gets (once) 32 px images of one coloured shape with their captions (make_toy_data.py: 64 train,
# 4 valid, 4 test rows), our toy VQGAN fitted to toy scenes (16 codes; 16 codes per image), the coco_vqgan TSVs
# encoded with it and a tiny random CLIP (python -m ofa_plugin.clip --write-random-checkpoint, as a JIT archive
# like OpenAI's file), in one Python process (each command line would cost ~5 s of start-up). TOY_FLAGS:
# that image size and code block, and the task's code range in the toy vocabulary.

set_paths image_gen coco_image_gen_data
if is_toy; then
  VQGAN_DIR="${VQGAN_DIR:-$DATA/vqgan}"
  CLIP_MODEL="${CLIP_MODEL:-$DATA/clip/ViT-B-16.pt}"
else
  VQGAN_DIR="${VQGAN_DIR:-$REPO/checkpoints/vqgan}"
  CLIP_MODEL="${CLIP_MODEL:-$REPO/checkpoints/clip/ViT-B-16.pt}"
fi
TOY_IMAGE_SIZE=32
TOY_CODES=16

# image_gen_toy_data: (toy mode) write the toy data into DATA unless it is there; set TOY_FLAGS.
image_gen_toy_data() {
  is_toy || return 0
  if [[ ! -f "$DATA/coco_vqgan_test.tsv" ]]; then
    python - "$DATA" "$TOY_IMAGE_SIZE" "$TOY_CODES" "$REPO/run_scripts/image_gen" <<'PY'
import sys
from pathlib import Path

from ofa_plugin.clip import write_random_checkpoint
from ofa_plugin.vqgan.encode_tsv import encode_tsv
from ofa_plugin.vqgan.train_toy import fit_toy_tokenizer, save_tokenizer, toy_config

data, size, codes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, sys.argv[4])
from make_toy_data import write_toy_images  # noqa: E402

images = write_toy_images(data, {"train": 64, "valid": 4, "test": 4}, size)
config = toy_config(n_embed=codes, image_size=size)
vqgan, _ = fit_toy_tokenizer(config, fit_images=64, eval_images=8)
save_tokenizer(vqgan, config, data / "vqgan")
for split, name in (("train", "train"), ("valid", "dev"), ("test", "test")):
    encode_tsv(vqgan, images[split], data / f"coco_vqgan_{name}.tsv", code_image_size=size)
write_random_checkpoint(data / "clip" / "ViT-B-16.pt", jit=True)
print(f"toy image_gen data in {data}")
PY
  fi
  # the code block follows the 4 specials, the dict.txt entries and <mask> (reference §3.1)
  local first=$(($(wc -l <"$DATA/vocab/dict.txt") + 5))
  TOY_FLAGS=(--code-image-size "$TOY_IMAGE_SIZE" --code-dict-size "$TOY_CODES"
    --constraint-range "$first,$((first + TOY_CODES))")
}

# require_image_models: (real mode) the BPE files, the VQGAN tokenizer and the CLIP checkpoint must exist.
require_image_models() {
  require_bpe
  require_files "set VQGAN_DIR to the folder of the official VQGAN (model.yaml, last.ckpt) and CLIP_MODEL to \
OpenAI's ViT-B-16.pt" "$VQGAN_DIR/model.yaml" "$VQGAN_DIR/last.ckpt" "$CLIP_MODEL"
}

# training_inputs: (toy mode: write the toy data) TRAIN_FILES (default DATA/coco_vqgan_train.tsv) and
# DATA/coco_vqgan_dev.tsv, the BPE files, the VQGAN and CLIP must exist.
training_inputs() {
  image_gen_toy_data
  TRAIN_FILES="${TRAIN_FILES:-$DATA/coco_vqgan_train.tsv}"
  local train_list
  IFS=, read -ra train_list <<< "$TRAIN_FILES"
  require_files "encode COCO images with python -m ofa_plugin.vqgan.encode_tsv (or set DATA / TRAIN_FILES)" \
    "${train_list[@]}" "$DATA/coco_vqgan_dev.tsv"
  require_image_models
}

# The task's image models: VQGAN decoding and CLIP scoring (text-image similarity, official).
IMAGE_MODEL_FLAGS=(
  --vqgan-config-path "$VQGAN_DIR/model.yaml" --vqgan-model-path "$VQGAN_DIR/last.ckpt"
  --clip-model-path "$CLIP_MODEL" --eval-clip-method ti_sim
)

# The validation generation of both stages (reference §7.3): 24 samples of top-k 256 per caption.
EVAL_ARGS='{"beam":24,"min_len":1024,"max_len_a":0,"max_len_b":1024,"sampling_topk":256,"temperature":1.0}'
