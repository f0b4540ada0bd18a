#!/usr/bin/env bash
# Answer the toy world's test questions with the stock `fairseq-generate` and score them (official VQA
# accuracy), next to two baselines that never look at the image.
#
# What: every candidate answer of vqa_ans2label.pkl is scored after the question prompt and the best one
# is the answer (--val-inference-type allcand, the official default), with a checkpoint from
# train_vqa_toy.sh on vqa_test.tsv; fairseq-generate prints "VQA accuracy x (...)" (scorer ofa_vqa;
# with --results-path DIR that output goes to DIR/generate-test.txt and the answers to
# DIR/test_predict.json, [{"question_id", "answer"}]). Then the most frequent training answer,
# predicted for every question, and the most frequent training answer of each question text (the language
# prior: the toy questions name what they ask about), scored the same way.
# Hardware: 2 CPU cores; 24 s for 200 test questions and the baseline (measured on a busy machine).
# Expected (measured, seed 1, 200 test questions): VQA accuracy 0.73 after the default 300 updates of
# train_vqa_toy.sh on a 10000-row world (run_demo.sh), 0.66-0.68 after 200 on 4000 rows; 0.10-0.11 for
# the most-frequent answer, 0.33 for each question's most frequent answer (10000-row world).
#
# Usage: evaluate_vqa_toy.sh DATA_DIR CHECKPOINT [extra fairseq-generate flags, e.g. --results-path DIR]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-generate >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: evaluate_vqa_toy.sh DATA_DIR CHECKPOINT [fairseq-generate flags]}"
CHECKPOINT="${2:?usage: evaluate_vqa_toy.sh DATA_DIR CHECKPOINT [fairseq-generate flags]}"
shift 2

fairseq-generate "$DATA/vqa_test.tsv" \
  --user-dir "$REPO/ofa_plugin" --task vqa_gen --path "$CHECKPOINT" \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --selected-cols 0,5,2,3,4 \
  --prompt-type prev_output --add-object --ans2label-file "$DATA/vqa_ans2label.pkl" --patch-image-size 32 \
  --model-overrides "{'bpe_dir': '$DATA/vocab'}" \
  --val-inference-type allcand --gen-subset test --batch-size 32 --num-workers 0 --cpu \
  "$@"

python -c 'import sys; from ofa_plugin.metrics import baseline
train, test = sys.argv[1] + "/vqa_train.tsv", sys.argv[1] + "/vqa_test.tsv"
answer, score = baseline.majority_answer_baseline(train, test)
print(f"Most-frequent-answer baseline (\"{answer}\"): VQA accuracy {score:.4f}")
print(f"Most-frequent-answer-per-question baseline (no image): VQA accuracy "
      f"{baseline.question_majority_answer_baseline(train, test):.4f}")' "$DATA"
