#!/usr/bin/env bash
# Fine-tune OFA for COCO captioning, stage 2: CIDEr optimisation by SCST (official recipe, reference §9.3).
#
# What: from the stage-1 checkpoint, self-critical sequence training (criterion scst_reward_criterion): beam 5
# captions per image (max 16 tokens, no repeated 3-grams), CIDEr-D reward against the image's references with
# a leave-one-out baseline; no dropout or drop path, frozen token embeddings, lr 1e-5 with 6 % warm-up then
# linear decay to 2e-7 (large) / 0 (base) over 3 epochs; CIDEr validation every 500 updates and each epoch,
# keeping the best checkpoint.
# Hardware (official): 8 GPUs, batch 2 images x update-freq 4 per GPU = 64 images (x 5 beam captions) per
# update, memory-efficient fp16.
# Expected time: not measured here (no GPU): 3 passes over caption_stage2_train.tsv (one row per image,
# ~113k rows: ~1.8k updates per epoch on 8 GPUs), each update generating 5 beams per image.
# Expected metric (reference §11): COCO Karpathy test CIDEr 150.7 (large) / 146.7 (base) with
# evaluate_caption.sh; the released large checkpoint scores 149.6.
# Data (DATA, default dataset/caption_data; python -m ofa_plugin.convert.coco_captions):
#   caption_stage2_train.tsv (all references of an image joined by "&&"), caption_val.tsv; optional
#   cider_cached_tokens/coco-train-words.p (official document frequencies for the reward; without it they
#   are counted from the training references) and cider_cached_tokens/coco-valid-words.p.
# Restore: RESTORE (default OUT/stage1/checkpoint_best.pt from train_caption_stage1.sh; or the released
#   caption_stage1_best.pt).
# Outputs: OUT/stage2/checkpoint_best.pt (best validation CIDEr), checkpoint_last.pt, train.log
#   (OUT default outputs/caption_<size>).
# Usage: [MODEL_SIZE=large|base] [TOY=1] train_caption_stage2.sh [extra fairseq-train flags]
#   TOY=1: the same command line on the toy world of TOY=1 train_caption_stage1.sh, from its checkpoint.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
case "$MODEL_SIZE" in
  large) END_LR=2e-7 ;;
  base) END_LR=0 ;;
esac
set_paths caption caption_data
SAVE_DIR="$OUT/stage2"
toy_world caption caption_stage2_train.tsv=caption_train.tsv caption_val.tsv=caption_valid.tsv
require_files "convert COCO with python -m ofa_plugin.convert.coco_captions (or set DATA)" \
  "$DATA/caption_stage2_train.tsv" "$DATA/caption_val.tsv"
require_bpe
restore_from "$OUT/stage1/checkpoint_best.pt" "run train_caption_stage1.sh first, or set RESTORE"
CIDER_FLAGS=()
[[ -f "$DATA/cider_cached_tokens/coco-train-words.p" ]] &&
  CIDER_FLAGS+=(--scst-cider-cached-tokens "$DATA/cider_cached_tokens/coco-train-words.p")
[[ -f "$DATA/cider_cached_tokens/coco-valid-words.p" ]] &&
  CIDER_FLAGS+=(--eval-cider-cached-tokens "$DATA/cider_cached_tokens/coco-valid-words.p")
validate_every 500 cider

ofa_train "$SAVE_DIR/train.log" "$DATA/caption_stage2_train.tsv,$DATA/caption_val.tsv" \
  --user-dir "$REPO/ofa_plugin" --task caption --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 1,4,2 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion scst_reward_criterion \
  --scst --scst-args '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}' \
  --batch-size 2 --update-freq 4 \
  --encoder-drop-path-rate 0.0 --decoder-drop-path-rate 0.0 --dropout 0.0 \
  --lr 1e-5 --end-learning-rate "$END_LR" --lr-scheduler ofa_polynomial_decay --warmup-ratio 0.06 --max-epoch 3 \
  --max-src-length 80 --max-tgt-length 20 --patch-image-size 480 \
  --freeze-encoder-embedding --freeze-decoder-embedding \
  --eval-cider "${CIDER_FLAGS[@]}" --eval-args '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}' \
  "${VALIDATE_FLAGS[@]}" \
  --memory-efficient-fp16 --fp16-scale-window 512 \
  "$@"
