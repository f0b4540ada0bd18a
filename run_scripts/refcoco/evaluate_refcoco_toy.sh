#!/usr/bin/env bash
# Ground the toy world's test expressions with the stock `fairseq-generate` and score the boxes (Acc@0.5),
# next to the centred-box baseline.
#
# What: beam search (beam 5) for exactly 4 location tokens with a checkpoint from train_refcoco_toy.sh on
# refcoco_test.tsv; fairseq-generate prints "Acc@0.5 x (h/n hits)" (scorer ofa_grounding; with
# --results-path DIR that output goes to DIR/generate-test.txt and the boxes, in original-image pixels,
# to DIR/test_predict.json, [{"uniq_id", "box"}]).
# Then the baseline: a box of the training boxes' mean relative size at the centre of every image.
# Hardware: 2 CPU cores; 44 s for 200 test expressions and the baseline, which reads every training
# image for the mean box size (measured on a busy machine; 10000 training rows).
# Expected (measured, seed 1, 200 test expressions): Acc@0.5 0.12-0.18 after the default 400 updates of
# train_refcoco_toy.sh (0.18 in run_demo.sh); 0.03-0.035 for the baseline.
#
# Usage: evaluate_refcoco_toy.sh DATA_DIR CHECKPOINT [extra fairseq-generate flags, e.g. --results-path DIR]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-generate >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: evaluate_refcoco_toy.sh DATA_DIR CHECKPOINT [fairseq-generate flags]}"
CHECKPOINT="${2:?usage: evaluate_refcoco_toy.sh DATA_DIR CHECKPOINT [fairseq-generate flags]}"
shift 2

fairseq-generate "$DATA/refcoco_test.tsv" \
  --user-dir "$REPO/ofa_plugin" --task refcoco --path "$CHECKPOINT" \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --selected-cols 0,4,2,3 \
  --patch-image-size 64 --max-image-size 64 --num-bins 16 \
  --model-overrides "{'bpe_dir': '$DATA/vocab'}" \
  --gen-subset test --batch-size 32 --num-workers 0 --cpu \
  --beam 5 --min-len 4 --max-len-a 0 --max-len-b 4 --no-repeat-ngram-size 3 \
  "$@"

python -c 'import sys; from ofa_plugin.metrics.baseline import centre_box_baseline as b
score = b(sys.argv[1] + "/refcoco_train.tsv", sys.argv[1] + "/refcoco_test.tsv")
print(f"Centred-box baseline: Acc@0.5 {score:.4f}")' "$DATA"
