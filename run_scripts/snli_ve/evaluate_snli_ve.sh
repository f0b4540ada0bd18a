#!/usr/bin/env bash
# Evaluate an OFA SNLI-VE checkpoint with the stock fairseq-generate (official evaluation, reference §9.4).
#
# What: all-candidate scoring of yes / no / maybe after the instruction (the task options come from the
# checkpoint: --add-caption, --prompt-type prev_output); the ofa_accuracy scorer prints
# "Generate <split> with beam=5: accuracy ..." and writes <split>_predict.json ({"uniq_id", "answer"}).
# Hardware (official): GPUs with fp16, batch 8; fairseq-generate runs on one GPU.
# Expected time: not measured here (no GPU); ~18k pairs per split.
# Expected metric (reference §11): accuracy dev 90.3 / test 90.2 (large), 89.3 / 89.2 (base).
# Data (DATA, default dataset/snli_ve_data; python -m ofa_plugin.convert.snli_ve): snli_ve_test.tsv
#   (SPLIT=test, default) or snli_ve_dev.tsv (SPLIT=dev).
# Checkpoint: CHECKPOINT (default OUT/checkpoints/checkpoint_best.pt from train_snli_ve.sh).
# Outputs: OUT/eval_<split>/{<split>_predict.json, generate-<split>.txt}.
# Usage: [MODEL_SIZE=large|base] [SPLIT=test|dev] [TOY=1] evaluate_snli_ve.sh [extra fairseq-generate flags]
#   TOY=1: the toy run's checkpoint (train_snli_ve.sh with TOY=1) on the toy world, on CPU.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
set_paths snli_ve snli_ve_data
SPLIT="${SPLIT:-test}"
TEST="$DATA/snli_ve_$SPLIT.tsv"
toy_world snli_ve snli_ve_dev.tsv=snli_ve_valid.tsv
require_files "convert SNLI-VE with python -m ofa_plugin.convert.snli_ve (or set DATA)" "$TEST"
require_bpe
evaluated_checkpoint "$OUT/checkpoints/checkpoint_best.pt"

ofa_generate "$OUT/eval_$SPLIT" "$SPLIT" "$TEST" \
  --path "$CHECKPOINT" "${OFA_EVAL_FLAGS[@]}" --task snli_ve \
  --model-overrides "{'data': '$TEST', 'bpe_dir': '$BPE_DIR', 'selected_cols': '0,2,3,4,5'}" \
  --batch-size 8 "$@"
