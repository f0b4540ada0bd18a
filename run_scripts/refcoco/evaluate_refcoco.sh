#!/usr/bin/env bash
# Evaluate an OFA visual grounding checkpoint on RefCOCO / RefCOCO+ / RefCOCOg with the stock
# fairseq-generate (official evaluation, reference §9.4, §7.3).
#
# What: beam search 5 for exactly 4 tokens (min/max length 4, no repeated 3-grams, no vocabulary constraint,
# as officially), read as the box's bins and mapped back to original pixels; the ofa_grounding scorer prints
# "Generate <dataset>_<split> with beam=5: Acc@0.5 ..." (IoU >= 0.5 with a positive intersection) and writes
# <dataset>_<split>_predict.json ({"uniq_id", "box"}).
# Hardware (official): GPUs with fp16; fairseq-generate runs on one GPU.
# Expected time: not measured here (no GPU); a few thousand expressions per split.
# Expected metric (reference §11), Acc@0.5 val / testA / testB (refcocog: val-u / test-u):
#   large: refcoco 90.05 / 92.93 / 85.26, refcoco+ 85.80 / 89.87 / 79.22, refcocog 85.89 / 86.55
#   base:  refcoco 88.48 / 90.67 / 83.30, refcoco+ 81.39 / 87.15 / 74.29, refcocog 82.29 / 82.31
# Data (DATA, default dataset/refcoco_data; python -m ofa_plugin.convert.refcoco): <dataset>_<split>.tsv with
#   DATASET=refcoco (default) | refcoco+ | refcocog and SPLIT=val (default) | testA | testB (refcoco, refcoco+)
#   | test (refcocog).
# Checkpoint: CHECKPOINT (default OUT/checkpoints/checkpoint_best.pt from train_refcoco.sh).
# Outputs: OUT/eval_<split>/{<dataset>_<split>_predict.json, generate-<dataset>_<split>.txt}.
# Usage: [MODEL_SIZE=large|base] [DATASET=...] [SPLIT=...] [TOY=1] evaluate_refcoco.sh [extra fairseq-generate flags]
#   TOY=1: the toy run's checkpoint (train_refcoco.sh with TOY=1) on the toy world, on CPU.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
DATASET="${DATASET:-refcoco}"
SPLIT="${SPLIT:-val}"
case "$DATASET/$SPLIT" in
  refcoco/val | refcoco/testA | refcoco/testB | refcoco+/val | refcoco+/testA | refcoco+/testB) ;;
  refcocog/val | refcocog/test) ;;
  *) die "no split $SPLIT of DATASET=$DATASET (refcoco, refcoco+: val testA testB; refcocog: val test)" ;;
esac
set_paths "$DATASET" refcoco_data
SUBSET="${DATASET}_$SPLIT"
TEST="$DATA/$SUBSET.tsv"
if [[ "$SPLIT" == val ]]; then toy_world refcoco "$SUBSET.tsv=refcoco_valid.tsv"
else toy_world refcoco "$SUBSET.tsv=refcoco_test.tsv"; fi
require_files "convert $DATASET with python -m ofa_plugin.convert.refcoco (or set DATA)" "$TEST"
require_bpe
evaluated_checkpoint "$OUT/checkpoints/checkpoint_best.pt"

ofa_generate "$OUT/eval_$SPLIT" "$SUBSET" "$TEST" \
  --path "$CHECKPOINT" "${OFA_EVAL_FLAGS[@]}" --task refcoco \
  --model-overrides "{'data': '$TEST', 'bpe_dir': '$BPE_DIR', 'selected_cols': '0,4,2,3'}" \
  --batch-size 16 --beam 5 --min-len 4 --max-len-a 0 --max-len-b 4 --no-repeat-ngram-size 3 \
  "$@"
