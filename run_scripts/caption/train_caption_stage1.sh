#!/usr/bin/env bash
# Fine-tune OFA for COCO captioning, stage 1: cross-entropy (official recipe, reference §9.3).
#
# What: from the pretrained ofa_<size>.pt, label-smoothed cross-entropy (0.1; the worst 20 % of tokens are
# dropped after 2500 (large) / 6000 (base) updates), frozen token embeddings, lr 1e-5 with 6 % warm-up then
# linear decay to 0 over 2 (large) / 5 (base) epochs; CIDEr validation (beam 5) every 500 updates and each
# epoch, keeping the best checkpoint. Stage 2 (train_caption_stage2.sh) continues from it with SCST.
# Hardware (official): 4 GPUs, batch 8 x update-freq 4 per GPU = 128 captions per update (fp16).
# Expected time: not measured here (no GPU): 2 (large) / 5 (base) passes over caption_stage1_train.tsv
# (one caption per row, ~566k rows: ~4.4k updates per epoch on 4 GPUs).
# Expected metric (reference §11): COCO Karpathy test CIDEr 142.2 (large) / 138.2 (base) after this stage
# (evaluate_caption.sh with CHECKPOINT=OUT/stage1/checkpoint_best.pt); ~139.5 validation CIDEr (large).
# Data (DATA, default dataset/caption_data; python -m ofa_plugin.convert.coco_captions):
#   caption_stage1_train.tsv, caption_val.tsv; optional cider_cached_tokens/coco-valid-words.p.
# Restore: RESTORE (default checkpoints/ofa_<size>.pt, the official pretrained checkpoint).
# Outputs: OUT/stage1/checkpoint_best.pt (best validation CIDEr), checkpoint_last.pt, train.log
#   (OUT default outputs/caption_<size>).
# Usage: [MODEL_SIZE=large|base] [TOY=1] train_caption_stage1.sh [extra fairseq-train flags]
#   TOY=1: the same command line on a toy world, ofa_nano, CPU, 3 updates (see run_scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
case "$MODEL_SIZE" in
  large) MAX_EPOCH=2 DROP_WORST_AFTER=2500 ;;
  base) MAX_EPOCH=5 DROP_WORST_AFTER=6000 ;;
esac
set_paths caption caption_data
SAVE_DIR="$OUT/stage1"
toy_world caption caption_stage1_train.tsv=caption_train.tsv caption_val.tsv=caption_valid.tsv
require_files "convert COCO with python -m ofa_plugin.convert.coco_captions (or set DATA)" \
  "$DATA/caption_stage1_train.tsv" "$DATA/caption_val.tsv"
require_bpe
restore_pretrained
CIDER_DF="$DATA/cider_cached_tokens/coco-valid-words.p"
CIDER_FLAGS=()
[[ -f "$CIDER_DF" ]] && CIDER_FLAGS=(--eval-cider-cached-tokens "$CIDER_DF")
validate_every 500 cider

ofa_train "$SAVE_DIR/train.log" "$DATA/caption_stage1_train.tsv,$DATA/caption_val.tsv" \
  --user-dir "$REPO/ofa_plugin" --task caption --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,4,2 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.1 \
  --drop-worst-ratio 0.2 --drop-worst-after "$DROP_WORST_AFTER" \
  --batch-size 8 --update-freq 4 \
  --encoder-drop-path-rate 0.1 --decoder-drop-path-rate 0.1 --dropout 0.1 \
  --lr 1e-5 --lr-scheduler ofa_polynomial_decay --warmup-ratio 0.06 --max-epoch "$MAX_EPOCH" \
  --max-src-length 80 --max-tgt-length 20 --patch-image-size 480 \
  --freeze-encoder-embedding --freeze-decoder-embedding \
  --eval-cider "${CIDER_FLAGS[@]}" --eval-args '{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}' \
  "${VALIDATE_FLAGS[@]}" \
  --fp16 --fp16-scale-window 512 \
  "$@"
