#!/usr/bin/env bash
# Train OFA visual grounding (refcoco) from scratch on the toy world with the stock `fairseq-train` (CPU).
#
# What: an `ofa_nano` model (the shared toy recipe, run_scripts/demo/toy_recipe.sh: 2+2 layers, dim 128,
# resnet18 trunk, NormFormer flags, batches of 32, Adam 1e-3 with 50 warmup updates and linear decay to 0
# at MAX_UPDATE, no dropout, no label smoothing) on refcoco_train.tsv of a toy world (python -m
# ofa_plugin.data.toyworld --tasks refcoco): referring expression in, box out as 4 location tokens.
# Grounding needs more pixels and learns slower than the other tasks, so images are 64x64 px and boxes are
# quantised to 16 bins per side (--num-bins 16) instead of the official 1000.
# Hardware: sized for 2 CPU cores, no GPU (--cpu): about 0.5 s per update, so the default 400 updates
# take about 3.5 minutes.
# Expected (measured, seed 1, 200 test expressions, evaluate_refcoco_toy.sh): Acc@0.5 0.06 after 250
# updates, 0.12-0.18 after 400 (0.18 in run_demo.sh, on a 10000-row world); the centred-box baseline
# scores 0.03-0.035. Training loss about 8.1 at update 25, 1.5-1.6 at 400.
#
# Usage: train_refcoco_toy.sh DATA_DIR SAVE_DIR [extra fairseq-train flags]
#   DATA_DIR  holds refcoco_{train,valid}.tsv and vocab/{spm.model,dict.txt}
#   SAVE_DIR  gets checkpoint_last.pt
# Environment: MAX_UPDATE (default 400; also the length of the LR schedule), LR (default 1e-3).
# The fairseq CLIs are taken from PATH, else from the repository's .venv (make install).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: train_refcoco_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
SAVE="${2:?usage: train_refcoco_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
shift 2
MAX_UPDATE="${MAX_UPDATE:-400}"
LR="${LR:-1e-3}"
source "$REPO/run_scripts/demo/toy_recipe.sh"

fairseq-train "$DATA/refcoco_train.tsv,$DATA/refcoco_valid.tsv" \
  --user-dir "$REPO/ofa_plugin" --task refcoco \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --selected-cols 0,4,2,3 \
  --patch-image-size 64 --max-image-size 64 --num-bins 16 \
  "${TOY_RECIPE[@]}" "$@"
