"""Training machinery with stock fairseq (issue 4): the LR schedule with `--warmup-ratio`, `--store-ema`,
freezing, `--restore-file` reports, `--bf16`/`--fp16` on CPU, `--checkpoint-activations`.

The fast tests build schedulers, EMAs and models through fairseq's own option parsing and registries.
The slow ones train a tiny `vqa_gen` model on a 40-row toy world: one real `fairseq-train` run from scratch
(data-derived LR schedule over 2 epochs with `--update-freq 2,1`, fp32 EMA with validation on it,
a checkpoint per update) is shared by the module; the runs that resume or restore it, and the generation
runs, call fairseq's `train.main` / `generate.main` in this process (the same code, without the CLI's
start-up time). Every check compares saved tensors or logged values with hand computations.
"""
import logging
import re
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import pytest
import torch
from fairseq import checkpoint_utils, options, optim, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.distributed import utils as distributed_utils
from fairseq.models.ema import EMA
from fairseq.optim.lr_scheduler import build_lr_scheduler
from fairseq.trainer import Trainer
from fairseq_cli import generate as generate_cli
from fairseq_cli import train as train_cli
from torch import nn

import ofa_plugin
from ofa_plugin import lr_scheduler
from ofa_plugin.compat import load_checkpoint_file
from ofa_plugin.data.toyworld import write_toy_world

from conftest import BPE_DIR, OFFICIAL_MINI
from conftest import cli_env as _cli_env, run_cli as _run

USER_DIR = Path(ofa_plugin.__file__).parent
LR = 1e-3
BATCHES_PER_EPOCH = 5  # 40 training rows, --batch-size 8
TINY = [
    "--arch", "ofa_nano", "--resnet-type", "resnet18", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
    "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-attention-heads", "2",
    "--decoder-attention-heads", "2",
    "--token-bucket-size", "16", "--image-bucket-size", "8", "--code-image-size", "64", "--max-source-positions", "64",
    "--max-target-positions", "64", "--criterion", "adjust_label_smoothed_cross_entropy", "--optimizer", "adam",
    "--lr", str(LR), "--batch-size", "8", "--num-workers", "0", "--cpu", "--seed", "1", "--log-format", "simple",
    "--log-interval", "1", "--no-progress-bar", "--no-epoch-checkpoints",
]
RESET = ["--reset-optimizer", "--reset-lr-scheduler", "--reset-meters", "--reset-dataloader", "--disable-validation"]
# the first run: 2 epochs of 5 batches with --update-freq 2,1 = 3 + 5 updates; warm-up int(8 * 0.3) = 2
FIRST_RUN = [
    "--lr-scheduler", "ofa_polynomial_decay", "--warmup-ratio", "0.3", "--max-epoch", "2", "--update-freq", "2,1",
    "--store-ema", "--ema-fp32", "--ema-decay", "0.75", "--ema-start-update", "7", "--uses-ema",
    "--save-interval-updates", "1", "--validate-after-updates", "6",  # saves (and validates) updates 6, 7, 8
]
LOGGED_LR = re.compile(r"num_updates=(\d+), lr=([0-9.e-]+)")


# ------------------------------------------------------------------------------------------ helpers

def hand_lr(n: int, warmup: int, total: int, lr: float = LR) -> float:
    """Polynomial decay, power 1, end 0, written out."""
    if n <= warmup:
        return lr * n / warmup
    return 0.0 if n >= total else lr * (1 - (n - warmup) / (total - warmup))


def logged_lrs(log: str) -> Dict[int, float]:
    return {int(n): float(lr) for n, lr in LOGGED_LR.findall(log)}


def parse_training_cli(argv: List[str]):
    """fairseq-train's command-line handling: parser, `--user-dir` import, OmegaConf config."""
    args = options.parse_args_and_arch(options.get_training_parser(), input_args=[str(a) for a in argv])
    return convert_namespace_to_omegaconf(args)


def scheduler(*flags: str):
    """An lr scheduler built from fairseq-train flags as the trainer builds it, on a one-parameter Adam,
    in a new run (as an OFA task's setup, forgetting batch counts of earlier ones)."""
    lr_scheduler.forget_train_batches()
    cfg = parse_training_cli(["unused", "--arch", "transformer", "--optimizer", "adam", *flags])
    optimizer = optim.build_optimizer(cfg.optimizer, [nn.Parameter(torch.zeros(1))])
    return build_lr_scheduler(cfg.lr_scheduler, optimizer)


def ema_config(decay: float, fp32: bool) -> SimpleNamespace:
    return SimpleNamespace(ema_decay=decay, ema_fp32=fp32, ema_seed_model=None, ema_update_freq=1,
                           ema_start_update=0)


def load(path: Path) -> dict:
    return load_checkpoint_file(str(path))


def floats(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    return {key: value for key, value in state.items() if torch.is_floating_point(value)}


def changed_keys(after: Dict[str, torch.Tensor], before: Dict[str, torch.Tensor], cast=None) -> set:
    """Float entries of `before` that differ in `after` (`before` first cast to `cast` and back)."""
    def start(value):
        return value.to(cast).float() if cast is not None else value
    return {key for key, value in floats(before).items() if not torch.equal(after[key], start(value))}


# ------------------------------------------------------------------------------- 1. LR schedule

def test_schedule_of_the_official_fixture_run():
    """The official run behind the fixture: 2 batches, --max-epoch 1, --warmup-ratio 0.5, lr 1e-5."""
    log = (OFFICIAL_MINI / "train_log.txt").read_text()
    batches = int(re.search(r"epoch 001: +1 / (\d+)", log).group(1))
    official = {n: lr for n, lr in logged_lrs(log).items() if n <= batches}
    assert re.search(r"Total steps 2, warmup steps 1\b", log) and official == {1: 1e-5, 2: 0.0}
    schedule = scheduler("--lr", "1e-5", "--lr-scheduler", "ofa_polynomial_decay", "--warmup-ratio", "0.5",
                         "--max-epoch", "1")
    lr_scheduler.record_train_batches(batches)
    assert schedule.step_update(0) == 0.0
    assert {n: schedule.step_update(n) for n in official} == pytest.approx(official, abs=1e-12)
    assert (schedule.total_num_update, schedule.warmup_updates) == (2, 1)


def test_stock_polynomial_decay_semantics_without_ratio():
    schedule = scheduler("--lr", "1e-3", "--lr-scheduler", "ofa_polynomial_decay", "--warmup-updates", "2",
                         "--total-num-update", "10", "--power", "2", "--end-learning-rate", "1e-4",
                         "--max-update", "12")
    expected = [0, 5e-4, 1e-3] + [9e-4 * (1 - (n - 2) / 8) ** 2 + 1e-4 for n in range(3, 10)] + [1e-4] * 3
    assert [schedule.step_update(n) for n in range(13)] == pytest.approx(expected, rel=1e-9)


def test_total_defaults_to_max_update_and_ratio_applies_to_it():
    """Stock polynomial_decay crashes without --total-num-update (null for a non-optional field)."""
    schedule = scheduler("--lr-scheduler", "ofa_polynomial_decay", "--warmup-ratio", "0.25", "--max-update", "8",
                         "--lr", "1e-3")
    assert (schedule.total_num_update, schedule.warmup_updates) == (8, 2)
    assert [schedule.step_update(n) for n in (1, 2, 5, 8)] == pytest.approx([hand_lr(n, 2, 8) for n in (1, 2, 5, 8)])


@pytest.mark.parametrize("batches, max_epoch, update_freq, total", [
    (5, 2, [2, 1], 3 + 5), (7, 3, [2, 3], 4 + 3 + 3), (4, 2, [1], 8), (5, 1, [8], 1)])
def test_total_updates_sum_over_epochs_with_their_update_freq(batches, max_epoch, update_freq, total):
    assert lr_scheduler.data_total_updates(batches, max_epoch, update_freq) == total


@pytest.mark.parametrize("flags, message", [
    (["--warmup-ratio", "0.1"], "needs the length of training: --max-update or --total-num-update, or --max-epoch"),
    (["--warmup-ratio", "0.1", "--warmup-updates", "5", "--max-update", "9"],
     "either --warmup-ratio or --warmup-updates"),
    (["--warmup-ratio", "1.5", "--max-update", "9"], r"--warmup-ratio must be in \[0, 1\], got 1.5"),
])
def test_schedule_errors_are_clear(flags, message):
    with pytest.raises(ValueError, match=message):
        scheduler("--lr", "1e-3", "--lr-scheduler", "ofa_polynomial_decay", *flags)


def test_resumed_run_fixes_the_schedule_when_its_training_iterator_exists():
    """fairseq builds the optimizer before the iterator on resume: base lr until then, no stale counts."""
    schedule = scheduler("--lr", "1e-3", "--lr-scheduler", "ofa_polynomial_decay", "--warmup-ratio", "0.2",
                         "--max-epoch", "2")
    assert schedule.step_update(7) == 1e-3 and schedule.total_num_update is None
    with pytest.raises(RuntimeError, match="did not record its training data"):
        schedule.step_begin_epoch(2)
    lr_scheduler.record_train_batches(10)
    schedule.step_begin_epoch(2)
    assert (schedule.total_num_update, schedule.warmup_updates) == (20, 4)
    assert schedule.step_update(7) == pytest.approx(hand_lr(7, 4, 20))


def test_task_setup_forgets_batch_counts_of_an_earlier_run():
    lr_scheduler.record_train_batches(99)
    cfg = parse_training_cli(["unused", "--user-dir", USER_DIR, "--task", "caption", "--arch", "ofa_nano",
                              "--bpe-dir", BPE_DIR])
    tasks.setup_task(cfg.task)
    assert lr_scheduler._train_batches is None


# ------------------------------------------------------------------------------------ 2. EMA (unit)

class TiedModule(nn.Module):
    """A tied weight (two state-dict entries, one tensor), an int buffer and a BatchNorm."""

    def __init__(self):
        super().__init__()
        self.first, self.second = nn.Linear(2, 2, bias=False), nn.Linear(2, 2, bias=False)
        self.second.weight = self.first.weight
        self.norm = nn.BatchNorm1d(2)
        self.register_buffer("index", torch.arange(3))


@pytest.mark.parametrize("fp32", [False, True])
def test_ema_copies_integer_entries_and_decays_a_tied_tensor_once(fp32):
    torch.manual_seed(0)
    model = TiedModule()
    ema = EMA(model, ema_config(0.75, fp32))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with torch.no_grad():
        model.first.weight.add_(1.0)
        model.norm.running_mean.add_(2.0)
        model.norm.num_batches_tracked += 5
        model.index += 7
    ema.step(model, updates=1)
    state = ema.get_model().state_dict()
    # stock fairseq: RuntimeError on the int64 entries; decay 0.75 ** 2 for the tied weight
    torch.testing.assert_close(state["first.weight"], before["first.weight"] + 0.25)
    torch.testing.assert_close(state["norm.running_mean"], before["norm.running_mean"] + 0.5)
    assert state["second.weight"].data_ptr() == state["first.weight"].data_ptr()
    assert torch.equal(state["index"], model.index) and state["norm.num_batches_tracked"] == 5
    if fp32:
        assert torch.equal(ema.fp32_params["index"], model.index) and ema.fp32_params["norm.num_batches_tracked"] == 5
        torch.testing.assert_close(ema.fp32_params["second.weight"], state["first.weight"])


# --------------------------------------------------------------------------- 3-6. model and loading

def test_cli_flags_reach_the_model():
    """--checkpoint-activations wraps every layer; the freezing flags freeze what they name."""
    cfg = parse_training_cli(["unused", "--user-dir", USER_DIR, "--task", "caption", "--bpe-dir", BPE_DIR,
                              "--code-dict-size", "16", "--num-bins", "16", *TINY, "--checkpoint-activations",
                              "--freeze-resnet", "--freeze-encoder-embedding", "--freeze-decoder-embedding"])
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    layers = [*model.encoder.layers, *model.decoder.layers]
    assert layers and all(hasattr(layer, "precheckpoint_forward") for layer in layers)
    frozen = {name for name, param in model.named_parameters() if not param.requires_grad}
    assert frozen == {"encoder.embed_tokens.weight"}  # the one embedding shared by both sides
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _tiny_model():
    cfg = parse_training_cli(["unused", "--user-dir", USER_DIR, "--task", "caption", "--bpe-dir", BPE_DIR,
                              "--code-dict-size", "16", "--num-bins", "16", *TINY, "--scale-attn", "--scale-fc",
                              "--scale-heads", "--disable-entangle"])
    task = tasks.setup_task(cfg.task)
    torch.manual_seed(0)
    return task.build_model(cfg.model).eval(), task


@pytest.mark.parametrize("dtype, tolerance", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_half_precision_forward_matches_fp32(dtype, tolerance):
    """fp32 images go into a halved model (what fairseq-generate does); log-probs come out in fp32.
    Measured largest differences of log-probs around -11: 4.6e-4 (fp16), 4.1e-3 (bf16)."""
    model, task = _tiny_model()
    g = torch.Generator().manual_seed(1)
    vocab = len(task.target_dictionary)
    batch = dict(src_tokens=torch.randint(4, 500, (3, 6), generator=g), src_lengths=torch.full((3,), 6),
                 prev_output_tokens=torch.randint(4, 500, (3, 5), generator=g),
                 patch_images=torch.randn(3, 3, 32, 32, generator=g), patch_masks=torch.tensor([True, False, True]))
    with torch.no_grad():
        reference = model.get_normalized_probs(model(**batch), log_probs=True)
        output = model.to(dtype)(**batch)
        lprobs = model.get_normalized_probs(output, log_probs=True)
    assert output[0].dtype == dtype and lprobs.dtype == torch.float32 and lprobs.shape == (3, 5, vocab)
    torch.testing.assert_close(lprobs, reference, atol=tolerance, rtol=0)


def test_official_checkpoint_restores_with_adapters_and_a_fresh_ema(caplog):
    """fairseq's trainer restores the official checkpoint (no EMA weights) into a model with adapters and
    --store-ema: the official VQA recipe's shape, which stock fairseq fails with KeyError 'model'."""
    cfg = parse_training_cli([
        OFFICIAL_MINI / "data" / "caption_train.tsv", "--user-dir", USER_DIR, "--task", "caption", "--bpe-dir", BPE_DIR,
        "--arch", "ofa_tiny", "--encoder-layers", "2", "--decoder-layers", "2", "--encoder-embed-dim", "128",
        "--decoder-embed-dim", "128", "--encoder-ffn-embed-dim", "512", "--decoder-ffn-embed-dim", "512",
        "--encoder-attention-heads", "4", "--decoder-attention-heads", "4", "--resnet-type", "resnet50",
        "--scale-attn", "--scale-fc", "--scale-heads", "--disable-entangle", "--adapter", "--adapter-dim", "8",
        "--store-ema", "--ema-fp32", "--criterion", "adjust_label_smoothed_cross_entropy", "--optimizer", "adam",
        "--lr", "1e-3", "--batch-size", "4", "--cpu"])
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    with caplog.at_level(logging.INFO):
        trainer.load_checkpoint(str(OFFICIAL_MINI / "checkpoint.pt"), reset_optimizer=True, reset_lr_scheduler=True,
                                reset_meters=True)
    new = [f"{side}.layers.{i}.adapter.{proj}.{kind}" for side in ("encoder", "decoder") for i in (0, 1)
           for proj in ("down_proj", "up_proj") for kind in ("weight", "bias")]
    assert ("model weights: 418 tensors from the checkpoint (float16 cast to float32); 16 not in the checkpoint, "
            f"newly initialised: {', '.join(new[:12])}, ... (4 more); bucket tables and position ids recomputed "
            "from the config") in caplog.text
    assert "the EMA starts from the restored model weights (" in caplog.text and "has no EMA weights)" in caplog.text
    official = load(OFFICIAL_MINI / "checkpoint.pt")["model"]
    state, ema = model.state_dict(), trainer.ema.get_model().state_dict()
    assert torch.equal(state["encoder.embed_tokens.weight"], official["encoder.embed_tokens.weight"].float())
    assert set(ema) == set(state) and all(torch.equal(ema[key], state[key]) for key in state)
    assert torch.equal(trainer.ema.fp32_params["encoder.layers.1.adapter.up_proj.weight"],
                       state["encoder.layers.1.adapter.up_proj.weight"])


# ------------------------------------------------------------------------------ slow: training runs

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("machinery_world")
    write_toy_world(out, seed=1, num_train=8 * BATCHES_PER_EPOCH, num_valid=8, num_test=8, tasks=["vqa"])
    return out


def _data_flags(world: Path) -> List[str]:
    return [f"{world}/vqa_train.tsv,{world}/vqa_valid.tsv", "--user-dir", USER_DIR, "--task", "vqa_gen",
            "--selected-cols", "0,5,2,3,4", "--prompt-type", "prev_output", "--ans2label-file",
            f"{world}/vqa_ans2label.pkl", "--patch-image-size", "32", "--bpe", "sentencepiece",
            "--bpe-dir", f"{world}/vocab"]


@pytest.fixture(scope="module")
def first_run(world, tmp_path_factory) -> SimpleNamespace:
    """The real `fairseq-train` CLI, from scratch (checkpoints of updates 6, 7; 8 is checkpoint_last)."""
    save = tmp_path_factory.mktemp("first_run")
    log = _run([Path(sys.executable).with_name("fairseq-train"), *_data_flags(world), *TINY, *FIRST_RUN,
                "--save-dir", save], save / "train.log", _cli_env())
    return SimpleNamespace(save=save, log=log)


def _train(world: Path, caplog, *flags) -> str:
    """fairseq-train's main in this process; returns the log."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        cfg = parse_training_cli([*_data_flags(world), *TINY, *flags])
        distributed_utils.call_main(cfg, train_cli.main)
    return caplog.text


def _check_ema_step(after: dict, before_ema: Dict[str, torch.Tensor], decay: float) -> None:
    """`after`'s EMA is decay * previous EMA + (1 - decay) * its model (floats), its model's (integers)."""
    model, ema, fp32 = after["model"], after["extra_state"]["ema"], after["extra_state"]["ema_fp32_params"]
    for key, value in model.items():
        if torch.is_floating_point(value) and not key.endswith("version"):
            expected = before_ema[key].clone().mul_(decay).add_(value, alpha=1 - decay)
            torch.testing.assert_close(ema[key], expected, rtol=1e-6, atol=1e-9, msg=key)
            assert torch.equal(fp32[key], ema[key]), key
        elif not torch.is_floating_point(value):
            assert torch.equal(ema[key], value) and torch.equal(fp32[key], value), key


@pytest.mark.slow
def test_cli_run_follows_the_data_derived_schedule_and_validates_the_ema(first_run):
    assert "ofa_polynomial_decay: total_num_update 8 (2 epochs of 5 batches on this rank, update_freq [2, 1]), " \
           "warmup_updates 2 (warmup_ratio 0.3)" in first_run.log
    assert logged_lrs(first_run.log) == pytest.approx({n: hand_lr(n, 2, 8) for n in range(1, 9)}, rel=1e-5)
    # --uses-ema: vqa_gen's validation refuses to run without the EMA model the trainer passes in
    validations = re.findall(r"\| valid on 'valid' subset \|.* vqa_score [0-9.]+ \|.*\| num_updates (\d+)\b",
                             first_run.log)
    assert validations == ["6", "7", "8"]


@pytest.mark.slow
def test_cli_run_saves_the_hand_ema_of_its_trajectory(first_run):
    """--ema-start-update 7: the EMA is the model up to update 6, then decays by 0.75 per update."""
    states = {n: load(first_run.save / f"checkpoint_2_{n}.pt") for n in (6, 7)}
    states[8] = load(first_run.save / "checkpoint_last.pt")
    _check_ema_step(states[6], states[6]["model"], decay=0.0)
    _check_ema_step(states[7], states[6]["extra_state"]["ema_fp32_params"], decay=0.75)
    _check_ema_step(states[8], states[7]["extra_state"]["ema_fp32_params"], decay=0.75)
    bn = "encoder.embed_images.bn1.num_batches_tracked"
    # BatchNorm counters: the EMA's equal the model's, the number of batches seen in training mode
    assert states[8]["extra_state"]["ema"][bn] == states[8]["model"][bn] == 2 * BATCHES_PER_EPOCH


@pytest.mark.slow
def test_resume_recomputes_the_schedule_and_continues_the_ema(world, first_run, tmp_path, caplog):
    shutil.copy(first_run.save / "checkpoint_last.pt", tmp_path / "checkpoint_last.pt")
    before = load(tmp_path / "checkpoint_last.pt")["extra_state"]["ema_fp32_params"]
    flags = list(FIRST_RUN)
    flags[flags.index("--max-epoch") + 1] = "3"  # one more epoch of 5 updates: total 13, warm-up 3
    log = _train(world, caplog, *flags, "--disable-validation", "--save-dir", tmp_path)
    assert re.search(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch 3 @ 8 updates\)", log)
    assert "the EMA continues from the EMA weights of" in log
    assert "total_num_update 13 (3 epochs of 5 batches on this rank, update_freq [2, 1]), warmup_updates 3" in log
    assert logged_lrs(log) == pytest.approx({n: hand_lr(n, 3, 13) for n in range(9, 14)}, rel=1e-5)
    _check_ema_step(load(tmp_path / "checkpoint_3_9.pt"), before, decay=0.75)


@pytest.mark.slow
def test_restore_ema_export_with_frozen_resnet_and_embeddings(world, first_run, tmp_path, caplog):
    """The EMA weights become a checkpoint (fairseq's save_ema_as_checkpoint) that initialises a new run;
    BatchNorm and the embedding stay bit-identical although --weight-decay acts on every trained tensor."""
    export = tmp_path / "ema.pt"
    checkpoint_utils.save_ema_as_checkpoint(str(first_run.save / "checkpoint_last.pt"), str(export))
    start = load(export)["model"]
    assert torch.equal(start["encoder.layers.0.fc1.weight"],
                       load(first_run.save / "checkpoint_last.pt")["extra_state"]["ema"]["encoder.layers.0.fc1.weight"])
    log = _train(world, caplog, "--restore-file", export, *RESET, "--save-dir", tmp_path / "run",
                 "--freeze-resnet", "--freeze-encoder-embedding", "--freeze-decoder-embedding", "--weight-decay", "0.1",
                 "--checkpoint-activations", "--lr-scheduler", "ofa_polynomial_decay", "--warmup-ratio", "0.5",
                 "--max-epoch", "1", "--max-update", "3")
    assert "model weights: 198 tensors from the checkpoint; none missing; 22 BatchNorm counters dropped " \
           "(frozen BatchNorm, --freeze-resnet)" in log
    assert "total_num_update 3 (--max-update; the data would give 5 = 1 epochs of 5 batches" in log
    assert logged_lrs(log) == pytest.approx({1: LR, 2: LR / 2, 3: 0.0})
    saved = load(tmp_path / "run" / "checkpoint_last.pt")["model"]
    frozen = {key for key in floats(saved) if re.match(r"encoder\.embed_images\..*(bn\d|downsample\.1)\.", key)}
    assert len(frozen) == 22 * 4  # weight, bias, running mean and variance of every BatchNorm
    frozen |= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "decoder.output_projection.weight"}
    unused = {key for key in floats(saved) if key.startswith(("decoder.code_layernorm_embedding.",
              "decoder.image_pos_ln.", "decoder.embed_image_positions.", "decoder.image_rel_pos_table_list."))}
    unchanged = set(floats(saved)) - changed_keys(saved, start)
    assert unchanged == frozen | unused | {"encoder.version", "decoder.version"}


@pytest.mark.slow
def test_prompt_and_adapter_tuning_in_fp16_changes_only_the_new_tensors(world, first_run, tmp_path, caplog):
    """Also --use-latest-weights-to-init-ema (official option): the EMA starts from the restored model, not
    from the checkpoint's EMA, so for the frozen tensors EMA = model (in fp16, decay 0.5: exact up to the
    subnormal 2**-24, which 0.5 * x flushes to 0)."""
    start = load(first_run.save / "checkpoint_last.pt")["model"]
    log = _train(world, caplog, "--restore-file", first_run.save / "checkpoint_last.pt", *RESET, "--save-dir",
                 tmp_path, "--encoder-prompt", "--decoder-prompt", "--encoder-prompt-length", "3",
                 "--decoder-prompt-length", "2", "--adapter", "--adapter-dim", "8", "--fp16", "--max-update", "2",
                 "--save-interval-updates", "1", "--store-ema", "--ema-decay", "0.5",
                 "--use-latest-weights-to-init-ema")
    assert "--fp16 without CUDA: fp32 master weights per parameter (--fp16-no-flatten-grads)" in log
    assert "the EMA starts from the restored model weights (--use-latest-weights-to-init-ema)" in log
    assert "model weights: 220 tensors from the checkpoint (float32 cast to float16); 10 not in the checkpoint, " \
           "newly initialised: encoder.encoder_prompt_encoder.embedding.weight, encoder.layers.0.adapter." in log
    assert re.search(r"num_updates=2, lr=0\.001, .*loss_scale=128", log)
    saved, first = load(tmp_path / "checkpoint_last.pt")["model"], load(tmp_path / "checkpoint_1_1.pt")["model"]
    statistics = {key for key in start if key.endswith(("running_mean", "running_var"))}
    assert changed_keys(saved, start, cast=torch.float16) == statistics  # BatchNorm statistics still move
    new = set(saved) - set(start)
    assert len(new) == 10 and changed_keys(saved, {key: first[key] for key in new}) == new
    ema = load(tmp_path / "checkpoint_last.pt")["extra_state"]["ema"]
    apart = {key for key in floats(start) if not torch.allclose(ema[key], saved[key], rtol=0, atol=2 ** -24)}
    assert apart == statistics


@pytest.mark.slow
def test_bitfit_in_bf16_from_the_ema_weights(world, first_run, tmp_path, caplog):
    """--use-ema-weights-to-init-param (official option): the run starts from the EMA; --bitfit trains only
    LayerNorm and fc biases; --bf16 runs on CPU (stock fairseq: --bf16 implies --tpu)."""
    restored = load(first_run.save / "checkpoint_last.pt")
    log = _train(world, caplog, "--restore-file", first_run.save / "checkpoint_last.pt", *RESET, "--save-dir",
                 tmp_path, "--use-ema-weights-to-init-param", "--bitfit", "--bf16", "--max-update", "2")
    assert "--bf16 without torch_xla: bfloat16 on CPU, not on a TPU" in log
    assert "--use-ema-weights-to-init-param: the model starts from the EMA weights of" in log
    saved = load(tmp_path / "checkpoint_last.pt")["model"]
    start = {key: value for key, value in restored["extra_state"]["ema_fp32_params"].items() if key in saved}
    biases = {key for key in saved if key.endswith("bias") and ("layer_norm" in key or "fc" in key)}
    statistics = {key for key in saved if key.endswith(("running_mean", "running_var"))}
    assert len(biases) == 11 and changed_keys(saved, start, cast=torch.bfloat16) == biases | statistics


def _generate(world: Path, checkpoint: Path, capsys, *flags) -> Dict[int, tuple]:
    """fairseq-generate's main in this process: {sample: (score, answer)} of the H- lines."""
    argv = [f"{world}/vqa_valid.tsv", "--path", checkpoint, "--user-dir", USER_DIR, "--task", "vqa_gen",
            "--selected-cols", "0,5,2,3,4", "--prompt-type", "prev_output", "--bpe", "sentencepiece", "--bpe-dir",
            f"{world}/vocab", "--gen-subset", "valid", "--batch-size", "8", "--cpu", "--num-workers", "0",
            "--val-inference-type", "beamsearch", "--beam", "3", "--unnormalized", *flags]
    capsys.readouterr()
    generate_cli.main(options.parse_args_and_arch(options.get_generation_parser(), [str(a) for a in argv]))
    lines = re.findall(r"^H-(\d+)\t(\S+)\t(.*)$", capsys.readouterr().out, re.M)
    return {int(i): (float(score), answer) for i, score, answer in lines}


@pytest.mark.slow
def test_generation_in_half_precision_matches_fp32(world, first_run, capsys):
    """Beam search over the candidate trie; scores are sums of ~70-100 bits, compared relatively."""
    checkpoint = first_run.save / "checkpoint_last.pt"
    reference = _generate(world, checkpoint, capsys)
    assert len(reference) == 8
    for flag, tolerance in (("--fp16", 1e-4), ("--bf16", 1e-3)):
        half = _generate(world, checkpoint, capsys, flag)
        assert [a for _, a in half.values()] == [a for _, a in reference.values()], flag
        scores, reference_scores = [s for s, _ in half.values()], [s for s, _ in reference.values()]
        assert scores == pytest.approx(reference_scores, rel=tolerance) and scores != reference_scores, flag
