# The from-scratch training recipe of the toy training scripts (run_scripts/*/train_*_toy.sh), which
# source this file: an `ofa_nano` model (2+2 layers, dim 128, the 3-stage bottleneck "resnet18" trunk)
# with the released models' NormFormer flags (--scale-attn --scale-fc --scale-heads --disable-entangle),
# no dropout, no label smoothing; Adam at $LR with 50 warmup updates and linear decay to 0 at $MAX_UPDATE;
# batches of 32 on the CPU; the loss logged every 25 updates; only checkpoint_last.pt, in $SAVE; no
# validation (fairseq-generate scores each task's outputs). Sized for 2 CPU cores.
# Needs MAX_UPDATE, LR and SAVE; defines the array TOY_RECIPE (fairseq-train flags), made of TOY_MODEL
# (architecture), TOY_CRITERION (cross-entropy) and TOY_RUN (optimiser, schedule, batches, logging, saving),
# so that a script with another criterion (train_caption_scst_toy.sh) can leave TOY_CRITERION out.
TOY_MODEL=(
  --arch ofa_nano --resnet-type resnet18
  --scale-attn --scale-fc --scale-heads --disable-entangle --dropout 0.0 --attention-dropout 0.0
)
TOY_CRITERION=(--criterion adjust_label_smoothed_cross_entropy --label-smoothing 0.0)
TOY_RUN=(
  --optimizer adam --adam-betas "(0.9,0.999)" --adam-eps 1e-08 --lr "$LR"
  --lr-scheduler polynomial_decay --warmup-updates 50 --total-num-update "$MAX_UPDATE" --max-update "$MAX_UPDATE"
  --batch-size 32 --num-workers 0 --cpu --seed 1
  --log-format simple --log-interval 25
  --save-dir "$SAVE" --no-epoch-checkpoints --disable-validation
)
TOY_RECIPE=("${TOY_MODEL[@]}" "${TOY_CRITERION[@]}" "${TOY_RUN[@]}")
