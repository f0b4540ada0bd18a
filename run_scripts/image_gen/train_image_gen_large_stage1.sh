#!/usr/bin/env bash
# Fine-tune OFA-large for text-to-image generation on COCO, stage 1: cross-entropy on VQGAN codes (official
# recipe, reference §9.3 text-to-image).
#
# What: from the pretrained ofa_large.pt, the caption (" what is the complete image? caption: ...", at most
# 64 words) -> the 32 x 32 = 1024 VQGAN codes of its 256 x 256 image (task image_gen, --selected-cols 0,2,1,
# loss restricted to the code tokens 50265-58457), cross-entropy without label smoothing, lr 1e-3 with 2000
# warm-up updates then linear decay to 0 at update 40000; every 3 epochs validation generates 24 images per
# caption (top-k 256 sampling), decodes them with the VQGAN and logs the CLIP score (best ViT-B/16 text-image
# similarity per caption), keeping the best checkpoint. Stage 2 (train_image_gen_large_stage2.sh) continues
# from checkpoint_last.pt with CLIP-SCST.
# Hardware (official): 4 nodes x 8 GPUs (TORCHRUN_ARGS for the nodes), batch 4 x update-freq 4 per GPU = 512
# captions per update, fp16.
# Expected time: not measured here (no GPU): 40000 updates.
# Expected metric (reference §11): validation CLIP score about 32.5 on the official scale (the official README
# reports it x 100; our `score` is the cosine itself, so about 0.325).
# Data (DATA, default dataset/coco_image_gen_data; python -m ofa_plugin.vqgan.encode_tsv): coco_vqgan_train.tsv
#   (or TRAIN_FILES="a.tsv,b.tsv,...": the official coco_vqgan_train_1..10 shards, one per epoch),
#   coco_vqgan_dev.tsv (uniq-id, codes, caption); the VQGAN tokenizer (VQGAN_DIR) and CLIP (CLIP_MODEL), see
#   run_scripts/image_gen/image_gen_common.sh.
# Restore: RESTORE (default checkpoints/ofa_large.pt, the official pretrained checkpoint).
# Outputs: OUT/stage1/checkpoint_best.pt (best validation CLIP score), checkpoint_last.pt, train.log, the
#   validation images under OUT/stage1/valid_images (OUT default outputs/image_gen_large).
# Usage: [TOY=1] train_image_gen_large_stage1.sh [extra fairseq-train flags]
#   TOY=1: the same command line on toy data (32 px images, 16 codes, our toy VQGAN, a random tiny CLIP),
#   ofa_nano, CPU, 3 updates (see run_scripts/common.sh and image_gen_common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/image_gen_common.sh"

check_model_size large
SAVE_DIR="$OUT/stage1"
training_inputs
restore_pretrained

ofa_train "$SAVE_DIR/train.log" "$TRAIN_FILES,$DATA/coco_vqgan_dev.tsv" \
  --user-dir "$REPO/ofa_plugin" --task image_gen --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,2,1 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.0 \
  --batch-size 4 --update-freq 4 --batch-size-valid 1 \
  --encoder-drop-path-rate 0.1 --decoder-drop-path-rate 0.1 --dropout 0.1 \
  --lr 1e-3 --lr-scheduler polynomial_decay --warmup-updates 2000 --total-num-update 40000 --max-update 40000 \
  --max-src-length 64 --max-tgt-length 1024 --code-image-size 256 --constraint-range 50265,58457 \
  "${IMAGE_MODEL_FLAGS[@]}" --gen-images-path "$SAVE_DIR/valid_images" --eval-args "$EVAL_ARGS" \
  --validate-interval 3 --save-interval 1 --best-checkpoint-metric score --maximize-best-checkpoint-metric \
  --no-epoch-checkpoints --keep-best-checkpoints 1 \
  --fp16 --fp16-scale-window 256 \
  "$@"
