#!/usr/bin/env bash
# Fine-tune OFA for referring expression grounding on RefCOCO, RefCOCO+ or RefCOCOg (task refcoco), the
# official recipe (reference §9.3).
#
# What: from the pretrained ofa_<size>.pt, the 4 location tokens of the box described by the expression, with
# label-smoothed cross-entropy (0.1); images resized to 512x512; lr with 6 % warm-up then linear decay to 0;
# Acc@0.5 validation (beam 5, exactly 4 tokens) every 500 updates and each epoch, keeping the best checkpoint.
#   large (all three): lr 3e-5, 10 epochs, drop path 0.2
#   base refcoco / refcoco+: lr 5e-5, 10 epochs, drop path 0.1; base refcocog: lr 5e-5, 12 epochs
# Hardware (official): 4 GPUs, batch 4 x update-freq 8 per GPU = 128 expressions per update, fp16.
# Expected time: not measured here (no GPU); 10-12 passes over <dataset>_train.tsv (RefCOCO: ~120k
# expressions, ~940 updates per epoch on 4 GPUs).
# Expected metric (reference §11), Acc@0.5 val / testA / testB (refcocog: val-u / test-u):
#   large: refcoco 90.05 / 92.93 / 85.26, refcoco+ 85.80 / 89.87 / 79.22, refcocog 85.89 / 86.55
#   base:  refcoco 88.48 / 90.67 / 83.30, refcoco+ 81.39 / 87.15 / 74.29, refcocog 82.29 / 82.31
# Data (DATA, default dataset/refcoco_data; python -m ofa_plugin.convert.refcoco): <dataset>_train.tsv,
#   <dataset>_val.tsv, with DATASET=refcoco (default) | refcoco+ | refcocog.
# Restore: RESTORE (default checkpoints/ofa_<size>.pt, the official pretrained checkpoint).
# Outputs: OUT/checkpoints/checkpoint_best.pt (best validation Acc@0.5), checkpoint_last.pt, train.log
#   (OUT default outputs/<dataset>_<size>).
# Usage: [MODEL_SIZE=large|base] [DATASET=refcoco|refcoco+|refcocog] [TOY=1] train_refcoco.sh
#   [extra fairseq-train flags]
#   TOY=1: the same command line on a toy world (64 px images), ofa_nano, CPU, 3 updates (run_scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
DATASET="${DATASET:-refcoco}"
case "$MODEL_SIZE/$DATASET" in
  large/refcoco | large/refcoco+ | large/refcocog) LR=3e-5 MAX_EPOCH=10 DROP_PATH=0.2 ;;
  base/refcoco | base/refcoco+) LR=5e-5 MAX_EPOCH=10 DROP_PATH=0.1 ;;
  base/refcocog) LR=5e-5 MAX_EPOCH=12 DROP_PATH=0.1 ;;
  *) die "DATASET must be refcoco, refcoco+ or refcocog, got $DATASET" ;;
esac
set_paths "$DATASET" refcoco_data
SAVE_DIR="$OUT/checkpoints"
TOY_PATCH_IMAGE_SIZE=64
TOY_FLAGS=(--max-image-size 64)  # boxes are quantised relative to the image size, as officially (512 / 512)
toy_world refcoco "${DATASET}_train.tsv=refcoco_train.tsv" "${DATASET}_val.tsv=refcoco_valid.tsv"
require_files "convert $DATASET with python -m ofa_plugin.convert.refcoco (or set DATA)" \
  "$DATA/${DATASET}_train.tsv" "$DATA/${DATASET}_val.tsv"
require_bpe
restore_pretrained
validate_every 500 score

ofa_train "$SAVE_DIR/train.log" "$DATA/${DATASET}_train.tsv,$DATA/${DATASET}_val.tsv" \
  --user-dir "$REPO/ofa_plugin" --task refcoco --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,4,2,3 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.1 \
  --batch-size 4 --update-freq 8 \
  --encoder-drop-path-rate "$DROP_PATH" --decoder-drop-path-rate "$DROP_PATH" --dropout 0.1 \
  --lr "$LR" --lr-scheduler ofa_polynomial_decay --warmup-ratio 0.06 --max-epoch "$MAX_EPOCH" \
  --max-src-length 80 --max-tgt-length 20 --patch-image-size 512 --max-image-size 512 \
  --eval-acc --eval-args '{"beam":5,"min_len":4,"max_len_a":0,"max_len_b":4}' \
  "${VALIDATE_FLAGS[@]}" \
  --fp16 --fp16-scale-window 512 \
  "$@"
