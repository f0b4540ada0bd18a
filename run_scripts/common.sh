# shellcheck shell=bash
# What every run_scripts/<benchmark>/{train,evaluate}_*.sh shares: model size, data and checkpoint
# checks, the toy mode, and how the stock fairseq CLIs are launched. Sourced, not run.
#
# Environment (all optional):
#   MODEL_SIZE  large (default) or base: picks the arch, the pretrained checkpoint and the size's
#               hyper-parameters from the script's table (reference §9.3).
#   DATA        folder with the official TSV files (default dataset/<benchmark>_data, the official layout);
#               in toy mode the toy world's folder (default OUT/data, written on first use).
#   BPE_DIR     official GPT-2 BPE files: dict.txt, encoder.json, vocab.bpe (default utils/BPE; toy: the toy
#               world's SentencePiece vocabulary, DATA/vocab).
#   RESTORE     checkpoint a training run starts from (default: checkpoints/ofa_<size>.pt, or the previous
#               stage's best checkpoint).
#   OUT         output folder (default outputs/<benchmark>_<size>, toy: outputs/toy/<benchmark>_<size>).
#   GPUS        training processes on this node (torchrun --nproc_per_node; default: all visible GPUs).
#   TORCHRUN_ARGS  more torchrun options, e.g. for several nodes "--nnodes 4 --node_rank 0 --master_addr H".
#               Evaluation uses one GPU.
#   TOY=1       smoke test on CPU: the official command line with toy overrides only (see ofa_train).
#   TOY_UPDATES updates of a toy training run (default 3).
# Extra script arguments go to the fairseq CLI after the official flags (argparse: the last value wins).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
command -v fairseq-train >/dev/null || PATH="$REPO/.venv/bin:$PATH"
TOY="${TOY:-0}"
MODEL_SIZE="${MODEL_SIZE:-large}"
TOY_UPDATES="${TOY_UPDATES:-3}"
TOY_PATCH_IMAGE_SIZE=32
# Toy world size (rows per split); only a few batches are read, so the rows matter little.
TOY_ROWS=(--num-train 64 --num-valid 16 --num-test 16)
TOY_FLAGS=()  # a script's own toy overrides (e.g. refcoco's 64 px images)

# The settings every official training script shares (reference §9.1); end lr 0 and power 1 are the defaults.
OFA_TRAIN_FLAGS=(
  --encoder-normalize-before --decoder-normalize-before --share-decoder-input-output-embed --share-all-embeddings
  --layernorm-embedding --patch-layernorm-embedding --code-layernorm-embedding --add-type-embedding
  --scale-attn --scale-fc --scale-heads --disable-entangle --num-bins 1000
  --attention-dropout 0.0 --resnet-drop-path-rate 0.0
  --optimizer adam --adam-betas "(0.9,0.999)" --adam-eps 1e-08 --weight-decay 0.01
  --fixed-validation-seed 7 --log-format simple --log-interval 10 --num-workers 0 --find-unused-parameters
)
# The settings every official evaluation command shares (reference §9.4).
OFA_EVAL_FLAGS=(--user-dir "$REPO/ofa_plugin" --seed 7 --num-workers 0 --fp16 --log-format simple --log-interval 10)

is_toy() { [[ "$TOY" == 1 ]]; }

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# check_model_size SIZE...: MODEL_SIZE must be one of the sizes the script has official settings for.
check_model_size() {
  local size
  for size in "$@"; do [[ "$MODEL_SIZE" == "$size" ]] && return 0; done
  die "MODEL_SIZE=$MODEL_SIZE has no official recipe here (choose one of: $*)"
}

# set_paths NAME DATA_SUBDIR: OUT (outputs[/toy]/NAME_SIZE), DATA (dataset/DATA_SUBDIR; toy: OUT/data) and
# BPE_DIR (utils/BPE; toy: DATA/vocab).
set_paths() {
  if is_toy; then
    OUT="${OUT:-$REPO/outputs/toy/$1_$MODEL_SIZE}"
    DATA="${DATA:-$OUT/data}"
    BPE_DIR="$DATA/vocab"
  else
    OUT="${OUT:-$REPO/outputs/$1_$MODEL_SIZE}"
    DATA="${DATA:-$REPO/dataset/$2}"
    BPE_DIR="${BPE_DIR:-$REPO/utils/BPE}"
  fi
}

# require_files HINT FILE...: (real mode) stop with HINT unless every FILE exists.
require_files() {
  is_toy && return 0
  local hint="$1" file missing=()
  shift
  for file in "$@"; do [[ -f "$file" ]] || missing+=("$file"); done
  ((${#missing[@]} == 0)) || die "missing file(s): ${missing[*]}
  $hint"
}

# require_bpe: (real mode) the official GPT-2 BPE files must be in BPE_DIR.
require_bpe() {
  require_files "set BPE_DIR to the folder with the official GPT-2 BPE files" \
    "$BPE_DIR/dict.txt" "$BPE_DIR/encoder.json" "$BPE_DIR/vocab.bpe"
}

# toy_world TOY_TASK OFFICIAL=TOY_FILE...: (toy mode) write the toy world of TOY_TASK into DATA unless it is
# there, then link the official file names to the toy files, so that the official data paths work.
toy_world() {
  is_toy || return 0
  local task="$1" pair
  shift
  if [[ ! -f "$DATA/vocab/dict.txt" ]]; then
    python -m ofa_plugin.data.toyworld --out "$DATA" --seed 1 "${TOY_ROWS[@]}" --tasks "$task" 2>&1 | tail -n 1
  fi
  [[ -f "$DATA/${task}_train.tsv" ]] || die "$DATA holds a toy world without $task: remove it or set another DATA"
  for pair in "$@"; do
    [[ "${pair%%=*}" == "${pair#*=}" ]] || ln -sfn "${pair#*=}" "$DATA/${pair%%=*}"
  done
}

# restore_from CHECKPOINT HINT: RESTORE_FLAGS = --restore-file RESTORE (default CHECKPOINT) and the official
# resets; stops with HINT if the file is missing.
restore_from() {
  RESTORE="${RESTORE:-$1}"
  [[ -f "$RESTORE" ]] || die "missing checkpoint RESTORE=$RESTORE
  $2"
  RESTORE_FLAGS=(--restore-file "$RESTORE" --reset-optimizer --reset-dataloader --reset-meters)
}

# evaluated_checkpoint DEFAULT: CHECKPOINT (default DEFAULT, the training script's best checkpoint) must exist.
evaluated_checkpoint() {
  CHECKPOINT="${CHECKPOINT:-$1}"
  [[ -f "$CHECKPOINT" ]] || die "missing checkpoint CHECKPOINT=$CHECKPOINT: train first, or set CHECKPOINT"
}

# restore_pretrained: restore_from the official pretrained checkpoints/ofa_SIZE.pt; a toy run starts from
# scratch (no restore: the pretrained weights do not fit ofa_nano).
restore_pretrained() {
  RESTORE_FLAGS=()
  is_toy && return 0
  restore_from "$REPO/checkpoints/ofa_$MODEL_SIZE.pt" \
    "set RESTORE to the official pretrained ofa_$MODEL_SIZE.pt (see the OFA checkpoints page)"
}

# validate_every UPDATES METRIC: VALIDATE_FLAGS = validation every UPDATES updates and after each epoch,
# keeping the best checkpoint by METRIC (higher is better) and no epoch checkpoints.
validate_every() {
  VALIDATE_FLAGS=(
    --validate-interval 1 --validate-interval-updates "$1" --save-interval 1 --save-interval-updates "$1"
    --best-checkpoint-metric "$2" --maximize-best-checkpoint-metric --no-epoch-checkpoints --keep-best-checkpoints 1
  )
}

# without_fp16 ARG...: the arguments minus --fp16 / --memory-efficient-fp16 (as array ARGS).
without_fp16() {
  ARGS=()
  local arg
  for arg in "$@"; do
    [[ "$arg" == --fp16 || "$arg" == --memory-efficient-fp16 ]] || ARGS+=("$arg")
  done
}

run() {
  printf '+' >&2
  printf ' %q' "$@" >&2
  printf '\n' >&2
  "$@"
}

# ofa_train LOG ARG...: fairseq-train with the given (official) arguments; its output also goes to LOG.
# Real mode: torchrun --nproc_per_node=GPUS. Toy mode: one CPU process (torchrun costs ~5 s more), the same
# arguments minus fp16, plus the toy overrides: ofa_nano with the resnet18 trunk, the toy world's
# SentencePiece tokenizer, TOY_PATCH_IMAGE_SIZE images, batch 4, TOY_UPDATES updates, and TOY_FLAGS (set by
# the script). Validation runs as configured, at the end of the run, on the toy valid split.
ofa_train() {
  local log="$1"
  shift
  mkdir -p "$(dirname "$log")"
  if is_toy; then
    without_fp16 "$@"
    run fairseq-train "${ARGS[@]}" --arch ofa_nano --resnet-type resnet18 \
      --bpe sentencepiece --patch-image-size "$TOY_PATCH_IMAGE_SIZE" \
      --batch-size 4 --update-freq 1 --max-update "$TOY_UPDATES" --log-interval 1 --cpu "${TOY_FLAGS[@]}" \
      2>&1 | tee "$log"
  else
    GPUS="${GPUS:-$(python -c 'import torch; print(torch.cuda.device_count())')}"
    ((GPUS > 0)) || die "no GPU visible: the official recipes need GPUs (TOY=1 runs the CPU smoke test)"
    # shellcheck disable=SC2086  # TORCHRUN_ARGS: several options in one variable
    run torchrun --nproc_per_node="$GPUS" ${TORCHRUN_ARGS:-} --no-python fairseq-train "$@" 2>&1 | tee "$log"
  fi
}

# ofa_generate RESULTS SPLIT ARG...: fairseq-generate with the given (official) arguments, predictions and
# the log in RESULTS; prints the metric line ("Generate SPLIT with beam=...: ...").
# One process on one GPU (--distributed-world-size 1: fairseq-generate otherwise reads only its shard of
# the data when several GPUs are visible). Toy mode: on CPU, minus fp16, with the toy vocabulary.
ofa_generate() {
  local results="$1" split="$2"
  shift 2
  mkdir -p "$results"
  if is_toy; then
    without_fp16 "$@"
    run fairseq-generate "${ARGS[@]}" --results-path "$results" --gen-subset "$split" \
      --bpe sentencepiece --cpu
  else
    run fairseq-generate "$@" --results-path "$results" --gen-subset "$split" --distributed-world-size 1
  fi
  local metric
  metric="$(awk -v line="Generate $split with beam=" 'index($0, line) == 1' "$results/generate-$split.txt")"
  [[ -n "$metric" ]] || die "no metric line in $results/generate-$split.txt"
  echo "$metric"
}
