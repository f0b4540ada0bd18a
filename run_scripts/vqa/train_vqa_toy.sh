#!/usr/bin/env bash
# Train OFA VQA (vqa_gen) from scratch on the toy world with the stock `fairseq-train` (CPU).
#
# What: an `ofa_nano` model (the shared toy recipe, run_scripts/demo/toy_recipe.sh: 2+2 layers, dim 128,
# resnet18 trunk, NormFormer flags, batches of 32, Adam 1e-3 with 50 warmup updates and linear decay to 0
# at MAX_UPDATE, no dropout, no label smoothing), 32x32 px images, on vqa_train.tsv of a toy world
# (python -m ofa_plugin.data.toyworld --tasks vqa), with the official VQA flags: the question (plus
# " object: ..." with the scene's shapes) as decoder prompt (--prompt-type prev_output), answers
# constrained to the candidates of vqa_ans2label.pkl.
# Hardware: sized for 2 CPU cores, no GPU (--cpu): about 0.3 s per update, so the default 300 updates
# take about 1.5 minutes.
# Expected (measured, seed 1, 200 test questions, evaluate_vqa_toy.sh): VQA accuracy 0.48 after 100
# updates, 0.66-0.68 after 200, 0.70-0.73 after 500 on a 4000-row world (tests/test_task_learning.py);
# 0.73 after the default 300 on a 10000-row world (run_demo.sh). The most-frequent-answer baseline
# scores 0.10-0.11.
#
# Usage: train_vqa_toy.sh DATA_DIR SAVE_DIR [extra fairseq-train flags]
#   DATA_DIR  holds vqa_{train,valid}.tsv, vqa_ans2label.pkl and vocab/{spm.model,dict.txt}
#   SAVE_DIR  gets checkpoint_last.pt
# Environment: MAX_UPDATE (default 300; also the length of the LR schedule), LR (default 1e-3).
# The fairseq CLIs are taken from PATH, else from the repository's .venv (make install).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: train_vqa_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
SAVE="${2:?usage: train_vqa_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
shift 2
MAX_UPDATE="${MAX_UPDATE:-300}"
LR="${LR:-1e-3}"
source "$REPO/run_scripts/demo/toy_recipe.sh"

fairseq-train "$DATA/vqa_train.tsv,$DATA/vqa_valid.tsv" \
  --user-dir "$REPO/ofa_plugin" --task vqa_gen \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --selected-cols 0,5,2,3,4 \
  --prompt-type prev_output --add-object --ans2label-file "$DATA/vqa_ans2label.pkl" --patch-image-size 32 \
  "${TOY_RECIPE[@]}" "$@"
