#!/usr/bin/env bash
# Continue OFA's multitask pretraining (task unify_task), the official recipe (reference §10.1).
#
# What: from the pretrained ofa_<size>.pt, one loss over two batches per update: v1 = image-text examples
# (captioning, image-text matching, VQA, visual grounding, grounded captioning; 196 of the image patches
# sampled) and v2 = the extra examples read with every 8th image-text row (2 text infilling, 1 image
# infilling, 1 detection; loss weight 2); each normalised by its own token count. No label smoothing, lr 1e-4
# with 1 % warm-up then linear decay to 0, 50 epochs, drop path 0.1, dropout 0.1, clip norm 5, no validation,
# a checkpoint every epoch (last 15 kept) and every 6000 updates.
#   base and large: the same hyper-parameters (ofa_base / ofa_large).
# Hardware (official script): 1 GPU, batch 4 image-text rows, fp16 (scale window 128).
# Expected time: not measured here (no GPU); the official scripts continue pretraining on a small example
#   subset (the released checkpoints came from the authors' full pretraining, reference §10.1).
# Expected metric: none (no validation); the log shows loss_v1 and loss_v2 (nats per target token of each
#   batch; v2 counts twice through its loss weight 2). Toy mode: see train_pretrain_toy.sh.
# Data (DATA, default dataset/pretrain_data, the official layout, reference §10.2):
#   vision_language_examples.tsv (uniq-id, image, caption, question, refs, gt_objects, dataset_name, type),
#   text_examples.tsv (uniq-id, text), image_examples.tsv (uniq-id, 256x256 image, 256 codes of its centre),
#   detection_examples.tsv (uniq-id, image, boxes), negative_sample/{all_captions.txt,object.txt,type2ans.json}.
# Restore: RESTORE (default checkpoints/ofa_<size>.pt, the official pretrained checkpoint).
# Outputs: OUT/checkpoints/checkpoint_last.pt, checkpoint<epoch>.pt, train.log (OUT default outputs/pretrain_<size>).
# Usage: [MODEL_SIZE=large|base] [TOY=1] train_pretrain.sh [extra fairseq-train flags]
#   TOY=1: the same command line on the toy pretraining files (python -m ofa_plugin.data.toyworld.pretrain:
#   32 px pair images, 64 px extra images with 16 synthetic codes each), ofa_nano, CPU, TOY_UPDATES updates
#   from scratch (run_scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
set_paths pretrain pretrain_data
SAVE_DIR="$OUT/checkpoints"
CODE_IMAGE_SIZE=128
if is_toy; then
  CODE_IMAGE_SIZE=32
  # 2 x 2 patches per 32 px image: sample 2 of them (officially 196 of 24 x 24)
  TOY_FLAGS=(--max-image-size 64 --sample-patch-num 2)
  [[ -f "$DATA/vocab/dict.txt" ]] || python -m ofa_plugin.data.toyworld.pretrain --out "$DATA" --seed 1 \
    --num-pairs 64 --code-image-size "$CODE_IMAGE_SIZE" 2>&1 | tail -n 1
fi
require_files "put the official pretraining files into DATA (reference §10.2)" \
  "$DATA/vision_language_examples.tsv" "$DATA/text_examples.tsv" "$DATA/image_examples.tsv" \
  "$DATA/detection_examples.tsv" "$DATA/negative_sample/type2ans.json"
require_bpe
restore_pretrained

ofa_train "$SAVE_DIR/train.log" "$DATA/vision_language_examples.tsv" \
  --user-dir "$REPO/ofa_plugin" --task unify_task --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,1,2,3,4,5,6,7 \
  --text-data "$DATA/text_examples.tsv" --image-data "$DATA/image_examples.tsv" \
  --detection-data "$DATA/detection_examples.tsv" --neg-sample-dir "$DATA/negative_sample" \
  "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.0 \
  --batch-size 4 --update-freq 1 \
  --encoder-drop-path-rate 0.1 --decoder-drop-path-rate 0.1 --dropout 0.1 --clip-norm 5.0 \
  --lr 1e-4 --lr-scheduler ofa_polynomial_decay --warmup-ratio 0.01 --max-epoch 50 \
  --max-src-length 80 --max-tgt-length 30 --patch-image-size 384 --sample-patch-num 196 --max-image-size 512 \
  --code-image-size "$CODE_IMAGE_SIZE" \
  --disable-validation --keep-last-epochs 15 --save-interval 1 --save-interval-updates 6000 \
  --fp16 --fp16-scale-window 128 \
  "$@"
