#!/usr/bin/env bash
# Evaluate an OFA Gigaword checkpoint with the stock fairseq-generate (official evaluation, reference §9.4).
#
# What: beam search 6 (length penalty 0.7, at most 32 tokens, no repeated 3-grams); summaries get the official
# post-processing (lower-case, PTB re-tokenisation, "1" -> "#") and the ofa_rouge scorer prints
# "Generate test with beam=6: ROUGE-1 ... ROUGE-2 ... ROUGE-L ..." (F1 x 100) against the lower-cased
# references, and writes test_predict.json ({"hyp", "ref"}).
# Hardware (official): GPUs with fp16, batch 32; fairseq-generate runs on one GPU.
# Expected time: not measured here (no GPU); 1951 test articles.
# Expected metric (reference §11): ROUGE-L F1 ~36.43 (large).
# Data (DATA, default dataset/gigaword_data): gigaword_test.tsv (SPLIT=test, default) or gigaword_dev.tsv
#   (SPLIT=dev).
# Checkpoint: CHECKPOINT (default OUT/checkpoints/checkpoint_best.pt from train_gigaword.sh).
# Outputs: OUT/eval_<split>/{<split>_predict.json, generate-<split>.txt}.
# Usage: [SPLIT=test|dev] [TOY=1] evaluate_gigaword.sh [extra fairseq-generate flags]
#   TOY=1: the toy run's checkpoint (train_gigaword.sh with TOY=1) on the toy world, on CPU.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large
set_paths gigaword gigaword_data
SPLIT="${SPLIT:-test}"
TEST="$DATA/gigaword_$SPLIT.tsv"
toy_world gigaword gigaword_dev.tsv=gigaword_valid.tsv
require_files "put the official Gigaword TSVs in DATA" "$TEST"
require_bpe
evaluated_checkpoint "$OUT/checkpoints/checkpoint_best.pt"

ofa_generate "$OUT/eval_$SPLIT" "$SPLIT" "$TEST" \
  --path "$CHECKPOINT" "${OFA_EVAL_FLAGS[@]}" --task gigaword \
  --model-overrides "{'data': '$TEST', 'bpe_dir': '$BPE_DIR', 'selected_cols': '0,1'}" \
  --batch-size 32 --beam 6 --lenpen 0.7 --max-len-a 0 --max-len-b 32 --no-repeat-ngram-size 3 \
  "$@"
