#!/usr/bin/env bash
# Fine-tune OFA-large for text-to-image generation on COCO, stage 2: CLIP-reward SCST (official recipe,
# reference §9.3 text-to-image, §6.4).
#
# What: from the stage-1 checkpoint_last.pt, self-critical training (criterion clip_scst_reward_criterion):
# 5 sampled images (top-k 256, all 1024 codes) per caption, decoded by the VQGAN, reward 2.5 x the CLIP
# ViT-B/16 text-image cosine with a leave-one-out baseline; no dropout or drop path, frozen ResNet BatchNorm,
# lr 1e-6 constant then linear decay to 0 at update 5000 (no warm-up); validation (CLIP score of the best of
# 24 images per caption) and a checkpoint every 200 updates, keeping the best.
# Hardware (official): 4 nodes x 8 GPUs (TORCHRUN_ARGS for the nodes), batch 1 caption x update-freq 1 per GPU
# = 32 captions (x 5 images) per update, fp16.
# Expected time: not measured here (no GPU): 5000 updates, each sampling 5 x 1024 codes per caption.
# Expected metric (reference §11): validation CLIP score about 34.0 on the official (x 100) scale, 0.34 as our
# `score`.
# Data (DATA, default dataset/coco_image_gen_data): coco_vqgan_train.tsv (or TRAIN_FILES), coco_vqgan_dev.tsv;
#   the VQGAN tokenizer (VQGAN_DIR) and CLIP (CLIP_MODEL), see run_scripts/image_gen/image_gen_common.sh.
# Restore: RESTORE (default OUT/stage1/checkpoint_last.pt from train_image_gen_large_stage1.sh).
# Outputs: OUT/stage2/checkpoint_best.pt (best validation CLIP score), checkpoint_last.pt, train.log, the
#   validation images under OUT/stage2/valid_images (OUT default outputs/image_gen_large).
# Usage: [TOY=1] train_image_gen_large_stage2.sh [extra fairseq-train flags]
#   TOY=1: the same command line on the toy data of TOY=1 train_image_gen_large_stage1.sh, from its checkpoint.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/image_gen_common.sh"

check_model_size large
SAVE_DIR="$OUT/stage2"
training_inputs
restore_from "$OUT/stage1/checkpoint_last.pt" "run train_image_gen_large_stage1.sh first, or set RESTORE"
validate_every 200 score

ofa_train "$SAVE_DIR/train.log" "$TRAIN_FILES,$DATA/coco_vqgan_dev.tsv" \
  --user-dir "$REPO/ofa_plugin" --task image_gen --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,2,1 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion clip_scst_reward_criterion \
  --scst --scst-args '{"beam":5,"min_len":1024,"max_len_a":0,"max_len_b":1024,"sampling_topk":256,"temperature":1.0}' \
  --batch-size 1 --update-freq 1 --batch-size-valid 1 --freeze-resnet \
  --encoder-drop-path-rate 0.0 --decoder-drop-path-rate 0.0 --dropout 0.0 \
  --lr 1e-6 --lr-scheduler polynomial_decay --warmup-updates 0 --total-num-update 5000 --max-update 5000 \
  --max-src-length 64 --max-tgt-length 1024 --code-image-size 256 --constraint-range 50265,58457 \
  "${IMAGE_MODEL_FLAGS[@]}" --gen-images-path "$SAVE_DIR/valid_images" --eval-args "$EVAL_ARGS" \
  "${VALIDATE_FLAGS[@]}" \
  --fp16 --fp16-scale-window 256 \
  "$@"
