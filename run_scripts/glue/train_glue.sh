#!/usr/bin/env bash
# Fine-tune OFA on a GLUE task (cola, mnli, mrpc, qnli, qqp, rte, sst2), the official recipe (large only,
# reference §9.3, §5.10).
#
# What: from the pretrained ofa_large.pt, the label word (yes / no, maybe, positive / negative) after the task's
# instruction, predicted at the last position of the source used as decoder prompt (--prompt-type src);
# cross-entropy without label smoothing, restricted to the task's answers; lr with 6 % warm-up then linear
# decay to 0; validation (acc, plus MCC for cola and F1 for mrpc / qqp) every N updates, best checkpoint kept.
# The official scripts sweep a grid: lr in {1e-4, 7e-5, 6e-5, 5e-5, 3e-5} x max_epoch in {5, 7, 10} x the
# task's update_freq values below. This script runs one point, by default the first of each list (LR=1e-4,
# MAX_EPOCH=5, the first UPDATE_FREQ); set LR / MAX_EPOCH / UPDATE_FREQ for the others.
#   task  columns  batch  update_freq grid  GPUs  validate every  best metric
#   cola  1,2      16     4 2 1             2     10              mcc
#   mnli  0,1,2    8      4 2               8     1000            acc
#   mrpc  0,1,2    16     4 2 1             2     10              acc
#   qnli  1,2,3    8      4 2               8     500             acc
#   qqp   3,4,5    8      4 2               8     1000            acc
#   rte   1,2,3    8      8 4 2             2     10              acc
#   sst2  0,1      16     2 1               4     50              acc
# Hardware (official): the GPUs above, batch x update_freq per GPU, fp16 (initial loss scale 16).
# Expected time: not measured here (no GPU); MAX_EPOCH passes over the task's training set.
# Expected metric: the README results (reference §11) list no GLUE numbers; the official numbers come from
# the training-time validation on the dev set (the log's best acc / mcc), which evaluate_glue.sh reproduces.
# Data (DATA, default dataset/glue_data; the official release's TSVs): <task>_train.tsv, <task>_dev.tsv.
# Restore: RESTORE (default checkpoints/ofa_large.pt, the official pretrained checkpoint).
# Outputs: OUT/checkpoints/checkpoint_best.pt (best validation metric; saved at the end of training, as the
#   official --save-interval 100000), checkpoint_last.pt, train.log (OUT default outputs/glue_<task>_large).
# Usage: [LR=...] [MAX_EPOCH=...] [UPDATE_FREQ=...] [TOY=1] train_glue.sh TASK [extra fairseq-train flags]
#   TOY=1: the same command line on the task's toy world, ofa_nano, CPU, 3 updates (run_scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

TASK="${1:?usage: train_glue.sh TASK (cola mnli mrpc qnli qqp rte sst2) [fairseq-train flags]}"
shift
check_model_size large
case "$TASK" in
  cola) COLS=1,2 BATCH=16 UF_GRID=(4 2 1) VALIDATE_EVERY=10 METRIC=mcc ;;
  mnli) COLS=0,1,2 BATCH=8 UF_GRID=(4 2) VALIDATE_EVERY=1000 METRIC=acc ;;
  mrpc) COLS=0,1,2 BATCH=16 UF_GRID=(4 2 1) VALIDATE_EVERY=10 METRIC=acc ;;
  qnli) COLS=1,2,3 BATCH=8 UF_GRID=(4 2) VALIDATE_EVERY=500 METRIC=acc ;;
  qqp) COLS=3,4,5 BATCH=8 UF_GRID=(4 2) VALIDATE_EVERY=1000 METRIC=acc ;;
  rte) COLS=1,2,3 BATCH=8 UF_GRID=(8 4 2) VALIDATE_EVERY=10 METRIC=acc ;;
  sst2) COLS=0,1 BATCH=16 UF_GRID=(2 1) VALIDATE_EVERY=50 METRIC=acc ;;
  *) die "unknown GLUE task $TASK (cola mnli mrpc qnli qqp rte sst2)" ;;
esac
LR="${LR:-1e-4}"
MAX_EPOCH="${MAX_EPOCH:-5}"
UPDATE_FREQ="${UPDATE_FREQ:-${UF_GRID[0]}}"
set_paths "glue_$TASK" glue_data
SAVE_DIR="$OUT/checkpoints"
toy_world "$TASK" "${TASK}_dev.tsv=${TASK}_valid.tsv"
require_files "put the official GLUE TSVs in DATA" "$DATA/${TASK}_train.tsv" "$DATA/${TASK}_dev.tsv"
require_bpe
restore_pretrained

ofa_train "$SAVE_DIR/train.log" "$DATA/${TASK}_train.tsv,$DATA/${TASK}_dev.tsv" \
  --user-dir "$REPO/ofa_plugin" --task "$TASK" --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols "$COLS" "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.0 \
  --batch-size "$BATCH" --update-freq "$UPDATE_FREQ" \
  --encoder-drop-path-rate 0.1 --decoder-drop-path-rate 0.1 --dropout 0.1 \
  --lr "$LR" --lr-scheduler ofa_polynomial_decay --warmup-ratio 0.06 --max-epoch "$MAX_EPOCH" \
  --max-src-length 512 --max-tgt-length 30 --prompt-type src \
  --best-checkpoint-metric "$METRIC" --maximize-best-checkpoint-metric \
  --validate-interval-updates "$VALIDATE_EVERY" \
  --save-interval 100000 --save-interval-updates 100000 --keep-best-checkpoints 1 \
  --fp16 --fp16-init-scale 16 --fp16-scale-window 512 \
  "$@"
