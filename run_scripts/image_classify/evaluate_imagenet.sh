#!/usr/bin/env bash
# Evaluate an OFA ImageNet-1K checkpoint with the stock fairseq-generate (official evaluation, reference §9.4).
#
# What: all-candidate scoring of the 1000 class names (20 per decoder pass) for every resized validation
# image; the ofa_accuracy scorer prints "Generate val with beam=5: accuracy ..." (top-1) and writes
# val_predict.json.
# Hardware (official): GPUs with fp16, batch 8; fairseq-generate runs on one GPU.
# Expected time: not measured here (no GPU); 50000 images x 1000 candidates.
# Expected metric (reference §11): top-1 accuracy 85.0 (large).
# Data (DATA, default dataset/imagenet_1k_data; python -m ofa_plugin.convert.imagenet): imagenet_1k_val.tsv,
#   class2label_new.pkl.
# Checkpoint: CHECKPOINT (default OUT/checkpoints/checkpoint_best.pt from train_imagenet.sh).
# Outputs: OUT/eval_val/{val_predict.json, generate-val.txt}.
# Usage: [TOY=1] evaluate_imagenet.sh [extra fairseq-generate flags]
#   TOY=1: the toy run's checkpoint (train_imagenet.sh with TOY=1) on the toy world's test split, on CPU.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large
set_paths imagenet imagenet_1k_data
TEST="$DATA/imagenet_1k_val.tsv"
ANS2LABEL="$DATA/class2label_new.pkl"
toy_world classify imagenet_1k_val.tsv=classify_test.tsv class2label_new.pkl=classify_class2label.pkl
require_files "convert ImageNet with python -m ofa_plugin.convert.imagenet (or set DATA)" "$TEST" "$ANS2LABEL"
require_bpe
evaluated_checkpoint "$OUT/checkpoints/checkpoint_best.pt"

ofa_generate "$OUT/eval_val" val "$TEST" \
  --path "$CHECKPOINT" "${OFA_EVAL_FLAGS[@]}" --task image_classify \
  --model-overrides "{'data': '$TEST', 'bpe_dir': '$BPE_DIR', 'selected_cols': '0,2', 'ans2label_file': '$ANS2LABEL'}" \
  --batch-size 8 "$@"
