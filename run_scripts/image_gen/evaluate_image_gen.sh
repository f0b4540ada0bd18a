#!/usr/bin/env bash
# Evaluate an OFA text-to-image checkpoint on the COCO test captions with the stock fairseq-generate (official
# evaluation settings, reference §9.4, §8.2).
#
# What: for every caption, 24 images sampled (top-k 256, temperature 1.0, all 1024 codes) and decoded by the
# VQGAN, ranked by CLIP ViT-B/16 text-image similarity; the ofa_clip_image scorer prints "Generate test with
# beam=24: CLIP score ... (ti_sim, best image of each of N captions)" (the official evaluate.py's score). The
# images go to OUT/eval_<split>/images: all_results/{uniq_id}_{rank}.png, top1/{uniq_id}.png (CLIP's best),
# images.tsv. The official Inception Score and FID are then computed on top1/ (ofa_plugin.metrics.image_quality;
# run here when INCEPTION_WEIGHTS names the Inception checkpoint, FID too when GT_STATS names the statistics of
# the real images, official gt_stat.npz; FID needs the FID Inception pt_inception-2015-12-05-6726825d.pth, which
# also gives the TF-style Inception Score: torchvision's ImageNet file serves the Inception Score only).
# Hardware (official): 1 GPU (batch 1 caption, fp16).
# Expected time: not measured here (no GPU): 24 x 1024 codes sampled per caption.
# Expected metric (reference §11): CLIP score about 34.0 on the official (x 100) scale after stage 2 (0.34 as our
# score), 32.5 after stage 1.
# Data (DATA, default dataset/coco_image_gen_data): coco_vqgan_test.tsv (SPLIT=test, default; SPLIT=dev: the
#   validation file); the VQGAN tokenizer (VQGAN_DIR) and CLIP (CLIP_MODEL), see image_gen_common.sh.
# Checkpoint: CHECKPOINT (default OUT/stage2/checkpoint_best.pt from train_image_gen_large_stage2.sh).
# Outputs: OUT/eval_<split>/{<split>_predict.json, generate-<split>.txt, images/}.
# Usage: [TOY=1] [SPLIT=test|dev] evaluate_image_gen.sh [extra fairseq-generate flags]
#   TOY=1: the toy run's stage-2 checkpoint on the toy test captions, on CPU (4 images per caption).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/image_gen_common.sh"

check_model_size large
SPLIT="${SPLIT:-test}"
TEST="$DATA/coco_vqgan_$SPLIT.tsv"
RESULTS="$OUT/eval_$SPLIT"
image_gen_toy_data
is_toy && TOY_FLAGS+=(--beam 4)
require_files "encode COCO images with python -m ofa_plugin.vqgan.encode_tsv (or set DATA)" "$TEST"
require_image_models
evaluated_checkpoint "$OUT/stage2/checkpoint_best.pt"

ofa_generate "$RESULTS" "$SPLIT" "$TEST" \
  --path "$CHECKPOINT" "${OFA_EVAL_FLAGS[@]}" --task image_gen --seed 42 \
  --model-overrides "{'data': '$TEST', 'bpe_dir': '$BPE_DIR', 'selected_cols': '0,2,1'}" \
  --batch-size 1 --beam 24 --min-len 1024 --max-len-a 0 --max-len-b 1024 --sampling-topk 256 --temperature 1.0 \
  --code-image-size 256 --constraint-range 50265,58457 \
  "${IMAGE_MODEL_FLAGS[@]}" --gen-images-path "$RESULTS/images" \
  "${TOY_FLAGS[@]}" "$@"

if [[ -n "${INCEPTION_WEIGHTS:-}" ]]; then
  run python -m ofa_plugin.metrics.image_quality is "$RESULTS/images/top1" --weights "$INCEPTION_WEIGHTS"
  [[ -z "${GT_STATS:-}" ]] ||
    run python -m ofa_plugin.metrics.image_quality fid "$RESULTS/images/top1" "$GT_STATS" --weights "$INCEPTION_WEIGHTS"
fi
