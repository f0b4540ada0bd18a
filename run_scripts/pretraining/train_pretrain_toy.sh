#!/usr/bin/env bash
# Pretrain OFA from scratch on the toy world's pretraining files with the stock `fairseq-train` (CPU):
# the unify_task mix (captioning, image-text matching, VQA, grounding, grounded captioning; text infilling,
# image infilling with synthetic codes, detection with every 8th row, loss weight 2) on an `ofa_nano` model
# with the shared toy recipe (run_scripts/demo/toy_recipe.sh), so that the checkpoint fine-tunes with the toy
# task scripts (e.g. train_caption_toy.sh ... --restore-file SAVE_DIR/checkpoint_last.pt --reset-optimizer
# --reset-dataloader --reset-meters --reset-lr-scheduler).
# Images: 32 px pair images (4 patches, 2 sampled in v1, officially 196 of 576), 64 px extra images with the
# 4 x 4 codes of their 32 px centre (--code-image-size 32), boxes quantised relative to 64 px.
# Batches of 16 image-text rows (about 32 pair examples + the extra examples of 2 rows), not the recipe's 32.
# Hardware: 2 CPU cores, no GPU (--cpu): about 1.4 s per update on a busy machine, so the default 400
# updates take about 9 minutes (plus 15 s to write the 2000-row world).
# Expected (measured, seed 1, busy machine): loss_v1 8.5 / loss_v2 17.2 at update 25, 1.7 / 3.4 at update 400
# (loss_v2 counts twice: loss weight 2). From that checkpoint, 200 updates of train_caption_toy.sh on a
# 2000-image caption world reach CIDEr 0.75 on 100 test images (0.57 from scratch, most-frequent caption 0.55);
# zero-shot (no VQA fine-tuning, fairseq-generate --task vqa_gen --prompt-type none, all-candidate scoring)
# it answers 200 toy VQA test questions with VQA accuracy 0.32 (most-frequent answer 0.05).
#
# Usage: train_pretrain_toy.sh DATA_DIR SAVE_DIR [extra fairseq-train flags]
#   DATA_DIR  written on first use by python -m ofa_plugin.data.toyworld.pretrain (NUM_PAIRS image-text rows,
#             default 2000), holds vocab/ (the vocabulary every toy world shares)
#   SAVE_DIR  gets checkpoint_last.pt
# Environment: MAX_UPDATE (default 400; also the length of the LR schedule), LR (default 1e-3), NUM_PAIRS.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"

DATA="${1:?usage: train_pretrain_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
SAVE="${2:?usage: train_pretrain_toy.sh DATA_DIR SAVE_DIR [fairseq-train flags]}"
shift 2
MAX_UPDATE="${MAX_UPDATE:-400}"
LR="${LR:-1e-3}"
source "$REPO/run_scripts/demo/toy_recipe.sh"

DATA="$(mkdir -p "$DATA" && cd "$DATA" && pwd)"
if [[ ! -f "$DATA/vision_language_examples.tsv" ]]; then
  (cd "$REPO" && python -m ofa_plugin.data.toyworld.pretrain --out "$DATA" --seed 1 \
    --num-pairs "${NUM_PAIRS:-2000}" --code-image-size 32 2>&1 | tail -n 1)
fi

fairseq-train "$DATA/vision_language_examples.tsv" \
  --user-dir "$REPO/ofa_plugin" --task unify_task --selected-cols 0,1,2,3,4,5,6,7 \
  --text-data "$DATA/text_examples.tsv" --image-data "$DATA/image_examples.tsv" \
  --detection-data "$DATA/detection_examples.tsv" --neg-sample-dir "$DATA/negative_sample" \
  --bpe sentencepiece --bpe-dir "$DATA/vocab" \
  --patch-image-size 32 --code-image-size 32 --max-image-size 64 --sample-patch-num 2 \
  --max-src-length 80 --max-tgt-length 30 \
  "${TOY_RECIPE[@]}" --batch-size 16 "$@"
