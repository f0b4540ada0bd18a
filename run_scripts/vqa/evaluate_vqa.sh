#!/usr/bin/env bash
# Evaluate an OFA VQA v2 checkpoint with the stock fairseq-generate (official evaluation, reference §9.4).
#
# What: the EMA weights of the checkpoint (official --ema-eval; EMA=0 uses the trained weights) answer every
# question, in one of the two official modes (the official --beam-search-vqa-eval is --val-inference-type):
#   MODE=beam (default): beam search 5 (unnormalized scores, temperature 1) after the question, constrained
#     to the candidate answers' trie; batch 16.
#   MODE=allcand: every candidate answer of trainval_ans2label.pkl scored by its trie-renormalised
#     log-likelihood, 20 candidates per pass; batch 8 (slow: ~1k GPU-hours on test-dev officially).
# The ofa_vqa scorer prints "Generate <split> with beam=...: VQA accuracy ..." (the answer's confidence in the
# TSV, i.e. the VQA score) and <split>_predict.json ({"question_id", "answer"}: EvalAI format for test-dev).
# Hardware (official): GPUs with fp16; fairseq-generate runs on one GPU.
# Expected time: not measured here (no GPU).
# Expected metric (reference §11), large: val 80.15 (beam) / 80.82 (allcand); test-dev 79.36 (beam) / 79.87
# (allcand) via EvalAI; base: test-dev 78.0.
# Data (DATA, default dataset/vqa_data; python -m ofa_plugin.convert.vqav2): vqa_val.tsv (SPLIT=val, default;
#   has answers) or vqa_test.tsv (SPLIT=test: test-dev, no answers, score 0), trainval_ans2label.pkl.
# Checkpoint: CHECKPOINT (default OUT/checkpoints/checkpoint_best.pt from train_vqa.sh).
# Outputs: OUT/eval_<split>_<mode>/{<split>_predict.json, generate-<split>.txt, checkpoint_ema.pt}.
# Usage: [MODEL_SIZE=large|base] [TOY=1] [MODE=beam|allcand] [SPLIT=val|test] [EMA=1|0] evaluate_vqa.sh
#   [extra fairseq-generate flags]
#   TOY=1: the toy run's checkpoint (train_vqa.sh with TOY=1) on the toy world's validation split, on CPU.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
MODE="${MODE:-beam}"
case "$MODE" in
  beam) MODE_FLAGS=(--val-inference-type beamsearch --batch-size 16 --beam 5 --unnormalized --temperature 1.0) ;;
  allcand) MODE_FLAGS=(--val-inference-type allcand --batch-size 8 --valid-batch-size 20) ;;
  *) die "MODE must be beam or allcand, got $MODE" ;;
esac
set_paths vqa vqa_data
SPLIT="${SPLIT:-val}"
RESULTS="$OUT/eval_${SPLIT}_$MODE"
TEST="$DATA/vqa_$SPLIT.tsv"
ANS2LABEL="$DATA/trainval_ans2label.pkl"
toy_world vqa vqa_val.tsv=vqa_valid.tsv trainval_ans2label.pkl=vqa_ans2label.pkl
require_files "convert VQA v2 with python -m ofa_plugin.convert.vqav2 (or set DATA)" "$TEST" "$ANS2LABEL"
require_bpe
evaluated_checkpoint "$OUT/checkpoints/checkpoint_best.pt"

if [[ "${EMA:-1}" == 1 ]]; then
  # official --ema-eval: evaluate the weights of extra_state["ema"] (fairseq's own EMA export)
  mkdir -p "$RESULTS"
  python -c 'import sys, ofa_plugin; from fairseq.checkpoint_utils import save_ema_as_checkpoint as save
save(sys.argv[1], sys.argv[2])' "$CHECKPOINT" "$RESULTS/checkpoint_ema.pt"
  CHECKPOINT="$RESULTS/checkpoint_ema.pt"
fi

ofa_generate "$RESULTS" "$SPLIT" "$TEST" \
  --path "$CHECKPOINT" "${OFA_EVAL_FLAGS[@]}" --task vqa_gen \
  --model-overrides "{'data': '$TEST', 'bpe_dir': '$BPE_DIR', 'selected_cols': '0,5,2,3,4', 'ans2label_file': '$ANS2LABEL'}" \
  "${MODE_FLAGS[@]}" "$@"
