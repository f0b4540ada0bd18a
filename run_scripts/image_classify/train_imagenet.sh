#!/usr/bin/env bash
# Fine-tune OFA for ImageNet-1K classification (task image_classify), the official recipe (large only,
# reference §9.3).
#
# What: from the pretrained ofa_large.pt, the class name as the answer to " what does the image describe?",
# label-smoothed cross-entropy (0.1) restricted to the 1000 class names (answer trie); training images get
# the official timm augmentation (random resized crop, flip, RandAugment, random erasing), ImageNet mean/std;
# frozen token embeddings; lr 5e-5 with 1000 warm-up updates then linear decay to 0 at update 160000;
# accuracy validation (all-candidate scoring) on the 20 % validation subset after every epoch.
# Hardware (official): 2 nodes x 8 GPUs (TORCHRUN_ARGS for the nodes), batch 4 x update-freq 4 per GPU =
# 256 images per update, fp16.
# Expected time: not measured here (no GPU): 160000 updates (~32 passes over the 1.28M training images).
# Expected metric (reference §11): top-1 accuracy 85.0 on ImageNet-1K val (evaluate_imagenet.sh); the
# validation subset is within 0.1 of the full set.
# Data (DATA, default dataset/imagenet_1k_data; python -m ofa_plugin.convert.imagenet): imagenet_1k_train.tsv
#   (or TRAIN_FILES="a.tsv,b.tsv,...": pre-shuffled copies, one per epoch), imagenet_1k_val_subset.tsv,
#   class2label_new.pkl (class name -> label).
# Restore: RESTORE (default checkpoints/ofa_large.pt, the official pretrained checkpoint).
# Outputs: OUT/checkpoints/checkpoint_best.pt (best validation accuracy), checkpoint<epoch>.pt (last 15),
#   checkpoint_last.pt, train.log (OUT default outputs/imagenet_large).
# Usage: [TOY=1] train_imagenet.sh [extra fairseq-train flags]
#   TOY=1: the same command line on a toy world of shape classes, ofa_nano, CPU, 3 updates
#   (see run_scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large
set_paths imagenet imagenet_1k_data
SAVE_DIR="$OUT/checkpoints"
toy_world classify imagenet_1k_train.tsv=classify_train.tsv imagenet_1k_val_subset.tsv=classify_valid.tsv \
  class2label_new.pkl=classify_class2label.pkl
TRAIN_FILES="${TRAIN_FILES:-$DATA/imagenet_1k_train.tsv}"
IFS=, read -ra TRAIN_LIST <<< "$TRAIN_FILES"
require_files "convert ImageNet with python -m ofa_plugin.convert.imagenet (or set DATA / TRAIN_FILES)" \
  "${TRAIN_LIST[@]}" "$DATA/imagenet_1k_val_subset.tsv" "$DATA/class2label_new.pkl"
require_bpe
restore_pretrained

ofa_train "$SAVE_DIR/train.log" "$TRAIN_FILES,$DATA/imagenet_1k_val_subset.tsv" \
  --user-dir "$REPO/ofa_plugin" --task image_classify --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,2 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.1 \
  --batch-size 4 --update-freq 4 \
  --encoder-drop-path-rate 0.1 --decoder-drop-path-rate 0.1 --dropout 0.1 \
  --lr 5e-5 --lr-scheduler polynomial_decay --warmup-updates 1000 --total-num-update 160000 --max-update 160000 \
  --max-src-length 128 --max-tgt-length 30 --patch-image-size 480 --imagenet-default-mean-and-std \
  --ans2label-file "$DATA/class2label_new.pkl" --valid-batch-size 20 \
  --freeze-encoder-embedding --freeze-decoder-embedding \
  --best-checkpoint-metric score --maximize-best-checkpoint-metric \
  --keep-last-epochs 15 --save-interval 1 --validate-interval 1 \
  --fp16 --fp16-scale-window 512 \
  "$@"
