#!/usr/bin/env bash
# Evaluate an OFA caption checkpoint on COCO (Karpathy test split) with the stock fairseq-generate
# (official evaluation settings, reference §9.4, §7.3).
#
# What: beam search (beam 5, at most 16 tokens, no repeated 3-grams) from the checkpoint; captions are
# decoded and stripped of punctuation as the official evaluate.py does, and the ofa_caption scorer prints
# "Generate test with beam=5: CIDEr ... | BLEU-4 ... (n=...)" against the "&&"-joined references of the TSV
# (the official coco_eval.py scores the same captions against the COCO-format references).
# Hardware (official): 1 GPU suffices (fp16, batch 16); fairseq-generate runs on one GPU.
# Expected time: not measured here (no GPU); 5000 test images.
# Expected metric (reference §11): CIDEr 150.7 (large) / 146.7 (base) after stage 2, 142.2 / 138.2 after
# stage 1 only; the released large stage-2 checkpoint 149.6.
# Data (DATA, default dataset/caption_data; python -m ofa_plugin.convert.coco_captions): caption_test.tsv
#   (SPLIT=test, default) or caption_val.tsv (SPLIT=val).
# Checkpoint: CHECKPOINT (default OUT/stage2/checkpoint_best.pt from train_caption_stage2.sh).
# Outputs: OUT/eval_<split>/{<split>_predict.json (official format), generate-<split>.txt}.
# Usage: [MODEL_SIZE=large|base] [TOY=1] [SPLIT=test|val] evaluate_caption.sh [extra fairseq-generate flags]
#   TOY=1: the toy run's stage-2 checkpoint on the toy world's test split, on CPU.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
set_paths caption caption_data
SPLIT="${SPLIT:-test}"
TEST="$DATA/caption_$SPLIT.tsv"
toy_world caption caption_val.tsv=caption_valid.tsv
require_files "convert COCO with python -m ofa_plugin.convert.coco_captions (or set DATA)" "$TEST"
require_bpe
evaluated_checkpoint "$OUT/stage2/checkpoint_best.pt"

ofa_generate "$OUT/eval_$SPLIT" "$SPLIT" "$TEST" \
  --path "$CHECKPOINT" "${OFA_EVAL_FLAGS[@]}" --task caption \
  --model-overrides "{'data': '$TEST', 'bpe_dir': '$BPE_DIR', 'eval_cider': False, 'selected_cols': '1,4,2'}" \
  --batch-size 16 --beam 5 --max-len-a 0 --max-len-b 16 --no-repeat-ngram-size 3 \
  "$@"
