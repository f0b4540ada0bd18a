#!/usr/bin/env bash
# The main job: OFA captioning, VQA, visual grounding and text-to-image generation trained and scored end
# to end with the stock fairseq CLIs on built-in toy data, with a metrics table and an HTML report.
#
# What: writes a toy world (random scenes of coloured shapes; per task 10000 training rows and 200 test
# rows: captions with 3-5 references, questions with answer sets, referring expressions with boxes, and a
# SentencePiece vocabulary) into outputs/demo/data; trains three `ofa_nano` models from scratch with
# `fairseq-train` (run_scripts/{caption,vqa,refcoco}/train_*_toy.sh: captioning 900 updates, VQA 300,
# grounding 400, batches of 32); scores the test rows with `fairseq-generate`
# (run_scripts/*/evaluate_*_toy.sh: beam-search captions, all-candidate VQA answers, beam-search boxes),
# next to trivial baselines (the most frequent training caption / answer for every image, a centred box
# of mean size). Then text-to-image: run_scripts/image_gen/train_image_gen_toy.sh writes its own data
# into outputs/demo/data_image_gen (4000 training images of one coloured shape, 64 test captions "a red
# circle on a blue background"), fits the toy VQGAN there (about 20 s), encodes the images to codes and
# trains an `ofa_nano` model caption -> image codes (300 updates); evaluate_image_gen_toy.sh samples 4
# images per test caption (top-k 3), decodes them to PNGs in outputs/demo/image_gen/results and scores
# them with the toy check (does the image show the caption's object colour, and shape) next to random
# codes decoded by the same VQGAN. Prints the table and writes outputs/demo/demo.html: the table, the
# training-loss curves, the first 8 test images of each task with the model's captions, answers and
# boxes, and the images generated for the first 8 test captions (framed by the colour check).
# Hardware: 2 CPU cores, no GPU. Expected time: about 11-12 minutes on an idle machine for the first three
# tasks (estimated: the caption recipe's measured 0.31 s per update, VQA about 0.2 s and grounding 0.5 s
# per update, plus about 2 minutes for the toy world, CLI start-ups and evaluation), plus about 7 minutes
# for image generation on a busy machine (estimated from a run of its recipe under load: 137 s for its
# data, VQGAN and code TSVs, 0.69 s per update, 68 s to sample and check 256 images). Measured on the
# 2-core development machine (the first three tasks) while 4-7 other processes competed for the cores
# (load average 4.5-7), with OMP_NUM_THREADS=1: 26.7 min wall, 17 min of CPU time. Torch's two threads slow down many times when the cores are busy: there, run it
# as `OMP_NUM_THREADS=1 make demo`.
# Expected numbers (measured, seed 1, 1 torch thread, 200 test rows per task): training loss 8.40 ->
# 0.86 (captioning), 1.36 -> 0.37 (VQA), 8.14 -> 1.53 (grounding); CIDEr 1.70 (BLEU-4 0.47) vs 0.52
# (0.30) for the most-frequent-caption baseline; VQA accuracy 0.73 vs 0.11 for the most frequent answer;
# Acc@0.5 0.18 vs 0.035 for the centred box; image generation: random codes pass the colour check on
# 0.117 of the images (colour and shape 0.020); the recipe's 600-update model drew the right background
# but no object (colour 0.074, both 0.023).
# Run it after `make install` (or as `make demo`). Environment: OUT=DIR writes elsewhere than outputs/demo;
# CAPTION_UPDATES, VQA_UPDATES, REFCOCO_UPDATES, IMAGE_GEN_UPDATES set the training lengths; NUM_TRAIN the
# training rows (of every task; image generation keeps its 4000 unless NUM_TRAIN is set).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="$REPO/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python
exec "$PYTHON" "$REPO/run_scripts/demo/demo.py"
