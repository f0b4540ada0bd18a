#!/usr/bin/env bash
# Caption stage 2 on the toy world: CIDEr optimisation by SCST with the stock `fairseq-train` (CPU).
#
# What: continues a train_caption_toy.sh checkpoint with the official stage-2 criterion
# (scst_reward_criterion: the 5 beam captions of each image, at most 16 tokens, no repeated 3-grams, CIDEr-D
# reward against all references of the image, leave-one-out baseline) on caption_stage2_train.tsv (one row
# per image, all references joined by "&&"; python -m ofa_plugin.data.toyworld --num-caption-stage2 N).
# As the official stage 2 (train_caption_stage2.sh): token embeddings frozen, no dropout, a short warm-up
# then linear decay to 0. Unlike it: Adam at 1e-4 instead of 1e-5 (a few dozen updates instead of three
# epochs) and batches of 32 images on the CPU.
# Hardware: 2 CPU cores, no GPU (--cpu): about 2.5 s per update (5 beam captions per image), so the default
# 40 updates take under 2 minutes.
# Expected (measured, 200 test images, evaluate_caption_toy.sh, one CPU thread): from an 800-update
# train_caption_toy.sh model (CIDEr 1.41; tests/test_caption_e2e.py) the 40 updates (~90 s) raise CIDEr to
# 1.63 (--num-caption-stage2 1500 of the same world), the mean training reward (CIDEr-D of the beam
# captions) rising from 1.05 to 1.3-1.45; on another 1500-image stage-2 file to 1.54 / 1.47 / 1.43 with
# --seed 1 (default) / 2 / 3. From a weak 400-update model (CIDEr 0.86; it counts the shapes
# but misnames colours) they move CIDEr by chance (0.91 / 0.85 / 0.82). More than ~3e-4 for the learning
# rate collapses the captions (0.26 at 5e-4).
#
# Usage: train_caption_scst_toy.sh DATA_DIR STAGE1_CHECKPOINT SAVE_DIR [extra fairseq-train flags]
#   DATA_DIR  holds caption_stage2_train.tsv and vocab/{spm.model,dict.txt}
#   SAVE_DIR  gets checkpoint_last.pt
# Environment: MAX_UPDATE (default 40; also the length of the LR schedule), LR (default 1e-4).
# The fairseq CLIs are taken from PATH, else from the repository's .venv (make install).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"

USAGE="usage: train_caption_scst_toy.sh DATA_DIR STAGE1_CHECKPOINT SAVE_DIR [fairseq-train flags]"
DATA="${1:?$USAGE}"
STAGE1="${2:?$USAGE}"
SAVE="${3:?$USAGE}"
shift 3
MAX_UPDATE="${MAX_UPDATE:-40}"
LR="${LR:-1e-4}"
for required in "$DATA/caption_stage2_train.tsv" "$STAGE1"; do
  [[ -f "$required" ]] || { echo "train_caption_scst_toy.sh: missing $required" >&2; exit 2; }
done
source "$REPO/run_scripts/demo/toy_recipe.sh"

# The toy recipe without its cross-entropy criterion; its warm-up and log interval are overridden (later
# flags win).
fairseq-train "$DATA/caption_stage2_train.tsv" \
  --user-dir "$REPO/ofa_plugin" --task caption \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" --selected-cols 1,4,2 \
  --patch-image-size 32 --max-src-length 80 --max-tgt-length 20 \
  "${TOY_MODEL[@]}" "${TOY_RUN[@]}" \
  --criterion scst_reward_criterion \
  --scst --scst-args '{"beam": 5, "max_len_b": 16, "no_repeat_ngram_size": 3}' \
  --freeze-encoder-embedding --freeze-decoder-embedding \
  --warmup-updates 3 --log-interval 5 \
  --restore-file "$STAGE1" --reset-optimizer --reset-dataloader --reset-meters --reset-lr-scheduler \
  "$@"
