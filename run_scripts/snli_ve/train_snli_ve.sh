#!/usr/bin/env bash
# Fine-tune OFA for visual entailment on SNLI-VE (task snli_ve), the official recipe (reference §9.3).
#
# What: from the pretrained ofa_<size>.pt, yes / no / maybe for "can image and text1 " <premise> " imply
# text2 " <hypothesis> "?" (--add-caption; the instruction is also the decoder prompt, --prompt-type
# prev_output), cross-entropy without label smoothing, restricted to the three answers; lr with 6 % warm-up
# then linear decay to 0; accuracy validation (all-candidate scoring) every 500 updates and each epoch,
# keeping the best checkpoint.
#   large: lr 2e-5, 6 epochs, drop path 0.2; base: lr 5e-5, 5 epochs, drop path 0.1
# Hardware (official): 8 GPUs, batch 4 x update-freq 8 per GPU = 256 pairs per update, fp16.
# Expected time: not measured here (no GPU); 6 (large) / 5 (base) passes over snli_ve_train.tsv (~530k
# pairs, ~2.1k updates per epoch on 8 GPUs).
# Expected metric (reference §11): accuracy dev 90.3 / test 90.2 (large), 89.3 / 89.2 (base)
# (evaluate_snli_ve.sh).
# Data (DATA, default dataset/snli_ve_data; python -m ofa_plugin.convert.snli_ve): snli_ve_train.tsv,
#   snli_ve_dev.tsv.
# Restore: RESTORE (default checkpoints/ofa_<size>.pt, the official pretrained checkpoint).
# Outputs: OUT/checkpoints/checkpoint_best.pt (best validation accuracy), checkpoint_last.pt, train.log
#   (OUT default outputs/snli_ve_<size>).
# Usage: [MODEL_SIZE=large|base] [TOY=1] train_snli_ve.sh [extra fairseq-train flags]
#   TOY=1: the same command line on a toy world, ofa_nano, CPU, 3 updates (see run_scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
case "$MODEL_SIZE" in
  large) LR=2e-5 MAX_EPOCH=6 DROP_PATH=0.2 ;;
  base) LR=5e-5 MAX_EPOCH=5 DROP_PATH=0.1 ;;
esac
set_paths snli_ve snli_ve_data
SAVE_DIR="$OUT/checkpoints"
toy_world snli_ve snli_ve_dev.tsv=snli_ve_valid.tsv
require_files "convert SNLI-VE with python -m ofa_plugin.convert.snli_ve (or set DATA)" \
  "$DATA/snli_ve_train.tsv" "$DATA/snli_ve_dev.tsv"
require_bpe
restore_pretrained
validate_every 500 snli_score

ofa_train "$SAVE_DIR/train.log" "$DATA/snli_ve_train.tsv,$DATA/snli_ve_dev.tsv" \
  --user-dir "$REPO/ofa_plugin" --task snli_ve --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,2,3,4,5 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.0 \
  --batch-size 4 --update-freq 8 \
  --encoder-drop-path-rate "$DROP_PATH" --decoder-drop-path-rate "$DROP_PATH" --dropout 0.1 \
  --lr "$LR" --lr-scheduler ofa_polynomial_decay --warmup-ratio 0.06 --max-epoch "$MAX_EPOCH" \
  --max-src-length 80 --max-tgt-length 20 --patch-image-size 480 \
  --prompt-type prev_output --add-caption \
  "${VALIDATE_FLAGS[@]}" \
  --fp16 --fp16-scale-window 512 \
  "$@"
