#!/usr/bin/env bash
# Evaluate an OFA GLUE checkpoint on the task's dev set with the stock fairseq-generate (reference §5.10, §8.2).
#
# What: the official last-token prediction (the answer with the highest trie-masked logit after the
# instruction; task options, columns included, from the checkpoint); the ofa_accuracy scorer prints "Generate dev with beam=5:
# accuracy ..." (plus MCC for cola, F1 for mrpc / qqp: the official validation metrics) and writes
# dev_predict.json. The official code has no GLUE evaluation script (its eval_glue crashes, §8.2): its numbers
# are the training-time validation, which this reproduces on the saved checkpoint.
# Hardware: one GPU, fp16, batch 16.
# Expected time: not measured here (no GPU); a few minutes for the largest dev sets (mnli, qqp).
# Expected metric: the best validation metric in train_glue.sh's log (no GLUE numbers in reference §11).
# Data (DATA, default dataset/glue_data): <task>_dev.tsv.
# Checkpoint: CHECKPOINT (default OUT/checkpoints/checkpoint_best.pt from train_glue.sh TASK).
# Outputs: OUT/eval_dev/{dev_predict.json, generate-dev.txt} (OUT default outputs/glue_<task>_large).
# Usage: [TOY=1] evaluate_glue.sh TASK [extra fairseq-generate flags]
#   TOY=1: the toy run's checkpoint (TOY=1 train_glue.sh TASK) on the toy world's dev split, on CPU.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

TASK="${1:?usage: evaluate_glue.sh TASK (cola mnli mrpc qnli qqp rte sst2) [fairseq-generate flags]}"
shift
check_model_size large
case "$TASK" in
  cola | mnli | mrpc | qnli | qqp | rte | sst2) ;;
  *) die "unknown GLUE task $TASK (cola mnli mrpc qnli qqp rte sst2)" ;;
esac
set_paths "glue_$TASK" glue_data
TEST="$DATA/${TASK}_dev.tsv"
toy_world "$TASK" "${TASK}_dev.tsv=${TASK}_valid.tsv"
require_files "put the official GLUE TSVs in DATA" "$TEST"
require_bpe
evaluated_checkpoint "$OUT/checkpoints/checkpoint_best.pt"

ofa_generate "$OUT/eval_dev" dev "$TEST" \
  --path "$CHECKPOINT" "${OFA_EVAL_FLAGS[@]}" --task "$TASK" \
  --model-overrides "{'data': '$TEST', 'bpe_dir': '$BPE_DIR'}" \
  --batch-size 16 "$@"
