#!/usr/bin/env bash
# Fine-tune OFA for abstractive summarisation on Gigaword (task gigaword), the official recipe (large only,
# reference §9.3).
#
# What: from the pretrained ofa_large.pt, the headline for ' what is the summary of article " <article> "?'
# (text only), label-smoothed cross-entropy (0.1) with 20 % of the decoder-input tokens replaced by random
# text tokens (--noise-ratio 0.2); lr 1e-4 with 6 % warm-up then linear decay to 0 over 6 epochs; ROUGE
# validation (beam 6, length penalty 0.7, at most 32 tokens, no repeated 3-grams) every 2500 updates and each
# epoch, keeping the best ROUGE-L checkpoint.
# Hardware (official): 4 GPUs, batch 64 x update-freq 2 per GPU = 512 articles per update, fp16.
# Expected time: not measured here (no GPU): 6 passes over gigaword_train.tsv (~3.8M pairs, ~7.4k updates per
# epoch on 4 GPUs).
# Expected metric (reference §11): ROUGE-L F1 ~36.43 on the Gigaword test set (evaluate_gigaword.sh).
# Data (DATA, default dataset/gigaword_data): gigaword_train.tsv, gigaword_dev.tsv (columns: article,
#   headline; the official release's files).
# Restore: RESTORE (default checkpoints/ofa_large.pt, the official pretrained checkpoint).
# Outputs: OUT/checkpoints/checkpoint_best.pt (best validation ROUGE-L F1), checkpoint_last.pt, train.log
#   (OUT default outputs/gigaword_large).
# Usage: [TOY=1] train_gigaword.sh [extra fairseq-train flags]
#   TOY=1: the same command line on a toy world, ofa_nano, CPU, 3 updates (see run_scripts/common.sh).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

check_model_size large
set_paths gigaword gigaword_data
SAVE_DIR="$OUT/checkpoints"
toy_world gigaword gigaword_dev.tsv=gigaword_valid.tsv
require_files "put the official Gigaword TSVs in DATA" "$DATA/gigaword_train.tsv" "$DATA/gigaword_dev.tsv"
require_bpe
restore_pretrained
validate_every 2500 rougeL_f1

ofa_train "$SAVE_DIR/train.log" "$DATA/gigaword_train.tsv,$DATA/gigaword_dev.tsv" \
  --user-dir "$REPO/ofa_plugin" --task gigaword --arch "ofa_$MODEL_SIZE" --bpe-dir "$BPE_DIR" \
  --selected-cols 0,1 "${RESTORE_FLAGS[@]}" --save-dir "$SAVE_DIR" "${OFA_TRAIN_FLAGS[@]}" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.1 \
  --batch-size 64 --update-freq 2 \
  --encoder-drop-path-rate 0.1 --decoder-drop-path-rate 0.1 --dropout 0.1 \
  --lr 1e-4 --lr-scheduler ofa_polynomial_decay --warmup-ratio 0.06 --max-epoch 6 \
  --max-src-length 512 --max-tgt-length 64 --noise-ratio 0.2 \
  --eval-rouge --eval-print-samples --eval-args '{"beam":6,"lenpen":0.7,"max_len_b":32,"no_repeat_ngram_size":3}' \
  "${VALIDATE_FLAGS[@]}" \
  --fp16 --fp16-scale-window 512 \
  "$@"
