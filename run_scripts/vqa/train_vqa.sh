#!/usr/bin/env bash
# Fine-tune OFA for VQA v2 (task vqa_gen), the official recipe (reference §9.3, §9.5).
#
# What: from the pretrained ofa_<size>.pt, the answer after the question (" object: ..." with the detected
# objects appended; --prompt-type prev_output) with label-smoothed cross-entropy (0.1) restricted to the
# candidate answers of trainval_ans2label.pkl (answer trie) and weighted by the answer's confidence; frozen
# token embeddings, lr 5e-5; large: 1000 warm-up updates then linear decay to 0 at update 40000, drop path
# 0.2; base: 15 epochs with 4 % warm-up, drop path 0.1. An EMA of the weights (decay 0.9999, fp32) is kept
# and validated: VQA score by all-candidate scoring after every epoch.
# Hardware (official): 4 nodes x 8 GPUs (TORCHRUN_ARGS for the nodes), batch 4 x update-freq 4 per GPU =
# 512 questions per update, fp16.
# Expected time: not measured here (no GPU); large: 40000 updates; base: 15 passes over the training TSV.
# Expected metric (reference §11): VQA v2 test-dev 80.4 / test-std 80.7 (large), 78.0 / 78.1 (base); large
# validation 80.82 all-candidate, 80.15 beam search (evaluate_vqa.sh MODE=allcand / beam).
# Data (DATA, default dataset/vqa_data; python -m ofa_plugin.convert.vqav2): vqa_train.tsv (or
#   TRAIN_FILES="a.tsv,b.tsv,...": pre-shuffled copies, one per epoch), vqa_val.tsv, trainval_ans2label.pkl.
# Restore: RESTORE (default checkpoints/ofa_<size>.pt, the official pretrained checkpoint).
# Outputs: OUT/checkpoints/checkpoint_best.pt (best EMA VQA score; the EMA weights are in its extra_state),
#   checkpoint<epoch>.pt (last 15), checkpoint_last.pt, train.log (OUT default outputs/vqa_<size>).
# Usage: [MODEL_SIZE=large|base] [TOY=1] train_vqa.sh [extra fairseq-train flags]
#   TOY=1: the same command line on a toy world, ofa_nano, CPU, 3 updates (see run_scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large base
case "$MODEL_SIZE" in
  large)
    SCHEDULE=(--lr-scheduler polynomial_decay --warmup-updates 1000 --total-num-update 40000 --max-update 40000)
    DROP_PATH=0.2 ;;
  base)
    SCHEDULE=(--lr-scheduler ofa_polynomial_decay --warmup-ratio 0.04 --max-epoch 15)
    DROP_PATH=0.1 ;;
esac
set_paths vqa vqa_data
SAVE_DIR="$OUT/checkpoints"
toy_world vqa vqa_val.tsv=vqa_valid.tsv trainval_ans2label.pkl=vqa_ans2label.pkl
TRAIN_FILES="${TRAIN_FILES:-$DATA/vqa_train.tsv}"
IFS=, read -ra TRAIN_LIST <<< "$TRAIN_FILES"
require_files "convert VQA v2 with python -m ofa_plugin.convert.vqav2 (or set DATA / TRAIN_FILES)" \
  "${TRAIN_LIST[@]}" "$DATA/vqa_val.tsv" "$DATA/trainval_ans2label.pkl"
require_bpe
restore_pretrained

ofa_train "$SAVE_DIR/train.log" "$TRAIN_FILES,$DATA/vqa_val.tsv" \
  --user-dir "$REPO/ofa_plugin" --task vqa_gen --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,5,2,3,4 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.1 \
  --batch-size 4 --update-freq 4 \
  --encoder-drop-path-rate "$DROP_PATH" --decoder-drop-path-rate "$DROP_PATH" --dropout 0.1 \
  --lr 5e-5 "${SCHEDULE[@]}" \
  --max-src-length 80 --max-object-length 30 --max-tgt-length 30 --patch-image-size 480 \
  --add-object --prompt-type prev_output --ans2label-file "$DATA/trainval_ans2label.pkl" \
  --valid-batch-size 20 --val-inference-type allcand \
  --freeze-encoder-embedding --freeze-decoder-embedding \
  --uses-ema --store-ema --ema-fp32 --ema-decay 0.9999 --ema-start-update 0 \
  --best-checkpoint-metric vqa_score --maximize-best-checkpoint-metric \
  --keep-last-epochs 15 --save-interval 1 --validate-interval 1 \
  --fp16 --fp16-scale-window 512 \
  "$@"
