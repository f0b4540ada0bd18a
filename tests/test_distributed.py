"""Multi-process training with torchrun through fairseq's own distributed training, on CPUs (gloo).

`ofa_plugin.distributed_compat` makes `torchrun --nproc_per_node N fairseq-train ...` work without GPUs
(fairseq 0.12 assumes one GPU per process). Each rank reads a disjoint share of the data: fairseq
shards the epoch's batches round-robin over the ranks (rank r gets batches r, r + N, ...), padding the
last round with an empty batch, so N processes with batch size B see exactly the batches that one
process with `--update-freq N` groups into an update. The acceptance test trains both ways and demands
the same logged losses and parameters. BatchNorm running statistics are per rank in DDP (rank 0's are
saved), so they are the one thing that differs. (1 x batch 8 vs 2 x batch 4 is no fair comparison:
batch size 8 forms different batches from the shuffled rows, and the ResNet's BatchNorm normalises
over a different set of images.)
"""
import re
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import torch
import torch.distributed as dist
from fairseq.dataclass.configs import DistributedTrainingConfig
from fairseq.distributed import utils as distributed_utils
from fairseq.models import DistributedFairseqModel

import ofa_plugin.distributed_compat  # noqa: F401  (installs the fixes in this process)
from conftest import BPE_DIR, OFFICIAL_MINI, cli_env, run_cli
from ofa_plugin.compat import load_checkpoint_file
from ofa_plugin.data.toyworld.writer import write_toy_world
from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask

REPO = Path(__file__).resolve().parents[1]
FAIRSEQ_TRAIN = Path(sys.executable).parent / "fairseq-train"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
TRAIN_INNER = re.compile(r"train_inner.*epoch (\d+):\s+(\d+) / (\d+) (.*)$", re.MULTILINE)
# per-rank BatchNorm statistics (see the module docstring)
RANK_LOCAL_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
TORCHRUN_ENV = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}


def write_caption_world(folder: Path, num_train: int) -> Path:
    """A toy world with `num_train` training captions of small (32-48 px) images."""
    write_toy_world(folder, seed=1, num_train=num_train, num_valid=4, num_test=4, image_size_range=(32, 48),
                    tasks=["caption"])
    return folder


def toy_train_args(world: Path, save_dir: Path, *extra: str) -> List[str]:
    """fairseq-train arguments for a tiny captioner (ofa_nano with small position tables, 32 px images, no
    dropout), batches of 4, logging every update. Deterministic: a rerun gives the same numbers."""
    return [
        f"{world}/caption_train.tsv,{world}/caption_valid.tsv", "--user-dir", str(REPO / "ofa_plugin"),
        "--task", "caption", "--arch", "ofa_nano", "--resnet-type", "resnet18", "--image-bucket-size", "4",
        "--code-image-size", "32", "--max-source-positions", "64", "--max-target-positions", "64",
        "--bpe", "sentencepiece", "--bpe-dir", str(world / "vocab"), "--selected-cols", "0,4,2",
        "--patch-image-size", "32", "--max-tgt-length", "20", "--dropout", "0.0", "--attention-dropout", "0.0",
        "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.0",
        "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "2",
        "--total-num-update", "100", "--batch-size", "4", "--num-workers", "0", "--cpu", "--seed", "1",
        "--log-format", "simple", "--log-interval", "1", "--save-dir", str(save_dir), "--no-epoch-checkpoints",
        "--disable-validation", *extra,
    ]


def train_records(log: str) -> Dict[int, Dict[str, str]]:
    """update number -> the fields of its `train_inner` line (epoch, position in the epoch, loss, ...)."""
    records = {}
    for epoch, position, epoch_len, fields in TRAIN_INNER.findall(log):
        record = dict(re.findall(r"(\w+)=([^,\s]+)", fields), epoch=epoch, position=position, epoch_len=epoch_len)
        records[int(record["num_updates"])] = record
    return records


def max_parameter_difference(checkpoint_a: Path, checkpoint_b: Path, skip=()) -> float:
    """Largest absolute difference between the two checkpoints' model tensors (names ending in `skip` left out)."""
    a, b = load_checkpoint_file(checkpoint_a)["model"], load_checkpoint_file(checkpoint_b)["model"]
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if not k.endswith(skip))


def test_torchrun_environment_sets_rank_world_size_and_gloo(monkeypatch):
    """On a CPU machine fairseq's default world size is 1; under torchrun the job's world size, rank, gloo
    and device 0 are used, with torchrun's processes (no spawning)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)
    cfg = DistributedTrainingConfig(tpu=False)
    assert (cfg.distributed_world_size, cfg.distributed_backend) == (1, "nccl")
    distributed_utils.infer_init_method(cfg)
    assert (cfg.distributed_init_method, cfg.distributed_world_size, cfg.distributed_rank, cfg.device_id,
            cfg.distributed_backend, cfg.distributed_no_spawn) == ("env://", 2, 1, 0, "gloo", True)


def test_without_torchrun_a_cpu_run_stays_single_process(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    cfg = DistributedTrainingConfig(tpu=False)
    distributed_utils.infer_init_method(cfg)
    assert (cfg.distributed_init_method, cfg.distributed_world_size, cfg.distributed_backend) == (None, 1, "nccl")


def test_pytorch_ddp_wraps_a_cpu_model(tmp_path):
    """fairseq passes device_ids=[device_id], which torch's DDP refuses for a CPU module; the wrapped model
    must train (a one-process gloo group stands in for the job)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = torch.nn.Linear(3, 2)
        with pytest.raises(ValueError, match="device_ids"):
            torch.nn.parallel.DistributedDataParallel(model, device_ids=[0], output_device=0)
        cfg = DistributedTrainingConfig(tpu=False, ddp_backend="pytorch_ddp", device_id=0)
        wrapped = DistributedFairseqModel(cfg, model, process_group=dist.group.WORLD, device=torch.device("cpu"))
        wrapped(torch.ones(4, 3)).sum().backward()
        assert torch.equal(model.weight.grad, torch.full((2, 3), 4.0))
    finally:
        dist.destroy_process_group()


def _batch_ids(task: CaptionTask, num_shards: int, shard_id: int, epochs: int) -> List[List[List[int]]]:
    """Row ids of every batch that rank `shard_id` of `num_shards` reads in each epoch ([] = padding)."""
    iterator = task.get_batch_iterator(task.dataset("train"), max_sentences=3, seed=1, num_shards=num_shards,
                                       shard_id=shard_id, disable_iterator_cache=True)
    return [[batch["id"].tolist() if batch else [] for batch in iterator.next_epoch_itr(shuffle=True)]
            for _ in range(epochs)]


def test_each_rank_reads_a_disjoint_share_of_every_epoch():
    """8 rows in batches of 3 = 3 batches per epoch: rank 0 reads batches 0 and 2 of the one-process order,
    rank 1 batch 1 and an empty padding batch; together exactly every row, and reshuffled each epoch."""
    task = CaptionTask.setup_task(CaptionConfig(data=str(OFFICIAL_MINI / "data" / "caption_train.tsv"),
                                                bpe_dir=str(BPE_DIR), selected_cols="0,4,2", patch_image_size=32))
    task.load_dataset("train")
    single = _batch_ids(task, 1, 0, 2)
    rank0, rank1 = _batch_ids(task, 2, 0, 2), _batch_ids(task, 2, 1, 2)
    for epoch in range(2):
        assert rank0[epoch] == single[epoch][0::2]
        assert rank1[epoch] == single[epoch][1::2] + [[]]
        rows = [row for batch in rank0[epoch] + rank1[epoch] for row in batch]
        assert sorted(rows) == list(range(8))
    assert single[0] != single[1]


@pytest.mark.slow
def test_two_torchrun_processes_train_like_one_process_with_update_freq_2(tmp_path, record_property):
    """36 rows = 9 batches of 4 per epoch; 7 updates cross into epoch 2, and every epoch's last update has a
    padding batch on rank 1. Official OFA trains with --ddp-backend no_c10d (= legacy_ddp)."""
    world = write_caption_world(tmp_path / "world", num_train=36)
    env = {**cli_env(), "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one_process", tmp_path / "two_processes"
    common = ["--max-update", "7"]
    log_one = run_cli([str(FAIRSEQ_TRAIN), *toy_train_args(world, one, *common, "--update-freq", "2")],
                      tmp_path / "one.log", env)
    log_two = run_cli([*TORCHRUN, str(FAIRSEQ_TRAIN), *toy_train_args(world, two, *common,
                                                                      "--ddp-backend", "legacy_ddp")],
                      tmp_path / "two.log", env)
    assert "distributed init (rank 1): env://" in log_two and "training on 2 devices" in log_two

    records_one, records_two = train_records(log_one), train_records(log_two)
    assert sorted(records_one) == sorted(records_two) == list(range(1, 8))
    assert records_one[7]["epoch"] == "002"
    for update, record in records_one.items():
        for key in ("epoch", "position", "loss", "nll_loss", "ntokens", "nsentences", "gnorm", "lr"):
            assert records_two[update][key] == record[key], (update, key, records_two[update], record)
    difference = max_parameter_difference(one / "checkpoint_last.pt", two / "checkpoint_last.pt",
                                          skip=RANK_LOCAL_BUFFERS)
    record_property("max_parameter_difference", difference)
    losses = [records_one[update]["loss"] for update in sorted(records_one)]
    print(f"losses per update {losses}; max |parameter difference| {difference:.3g}")
    assert difference <= 1e-6
