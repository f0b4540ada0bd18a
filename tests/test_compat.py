"""ofa_plugin.compat: fairseq checkpoints load with weights_only=True, refusals are clear, opt-in works."""
import argparse
import fractions
import io
import os
import pickle
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils

REPO = Path(__file__).resolve().parents[1]
COMPAT_FILE = REPO / "ofa_plugin" / "compat.py"
FIXTURE = REPO.parent / "shared" / "fixtures" / "official_mini" / "checkpoint.pt"
FAIRSEQ_TRAIN = Path(sys.executable).with_name("fairseq-train")

# compat.py is loaded from its file under its package name, so that a later `import ofa_plugin` reuses it:
# these tests must not depend on the models/tasks of the package. Subprocesses run the same lines.
COMPAT_LOADER = f"""
import importlib.util, sys
if "ofa_plugin.compat" not in sys.modules:
    spec = importlib.util.spec_from_file_location("ofa_plugin.compat", {str(COMPAT_FILE)!r})
    module = importlib.util.module_from_spec(spec)
    sys.modules["ofa_plugin.compat"] = module
    spec.loader.exec_module(module)
"""
exec(COMPAT_LOADER)
compat = sys.modules["ofa_plugin.compat"]


def _refused_checkpoint(path: Path) -> Path:
    """The official fixture's layout with a tiny model and a global outside the allow-list."""
    state = torch.load(FIXTURE, weights_only=True)
    state["model"] = {"w": torch.ones(2)}
    state["extra_state"]["unexpected"] = fractions.Fraction(1, 3)
    torch.save(state, path)
    return path


def test_official_fixture_loads_through_fairseq():
    state = checkpoint_utils.load_checkpoint_to_cpu(str(FIXTURE))
    assert isinstance(state["cfg"].model, argparse.Namespace)
    assert state["cfg"].model.arch == "ofa_tiny"
    assert state["cfg"].task._name == "caption"
    assert len(state["model"]) == 421
    assert state["optimizer_history"][-1]["num_updates"] == 2


def test_refused_class_is_named_and_torch_default_stays_safe(tmp_path, monkeypatch):
    monkeypatch.delenv(compat.TRUST_ENV_VAR, raising=False)
    path = _refused_checkpoint(tmp_path / "refused.pt")
    with pytest.raises(compat.UnsafeCheckpointError) as info:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: checkpoint contains the class fractions.Fraction,")
    assert "OFA_TRUST_CHECKPOINT=1" in message and "weights_only=False" in message
    # torch.load itself still defaults to weights_only=True for everyone else in the process
    with pytest.raises(pickle.UnpicklingError, match="fractions.Fraction"):
        torch.load(path)


def test_trust_env_var_loads_refused_checkpoint(tmp_path, monkeypatch, caplog):
    path = _refused_checkpoint(tmp_path / "refused.pt")
    monkeypatch.setenv(compat.TRUST_ENV_VAR, "1")
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert state["extra_state"]["unexpected"] == fractions.Fraction(1, 3)
    assert "weights_only=False" in caplog.text


@pytest.mark.parametrize("value", [np.float64(0.25), np.float32(1.5), np.int64(7)])
@pytest.mark.parametrize("module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_numpy_scalars_from_numpy_1_and_2_load(value, module, tmp_path):
    buffer = io.BytesIO()
    torch.save({"best": value}, buffer, _use_new_zipfile_serialization=False)
    data = buffer.getvalue().replace(b"numpy._core.multiarray\nscalar", module.encode() + b"\nscalar")
    path = tmp_path / "scalar.pt"
    path.write_bytes(data)
    loaded = compat.load_checkpoint_file(str(path))["best"]
    assert loaded == value and loaded.dtype == value.dtype


def test_install_is_idempotent():
    from fairseq.distributed import utils as distributed_utils
    from fairseq.models.ema import EMA
    from fairseq.trainer import Trainer

    view = checkpoint_utils.torch
    wrapped = (EMA._step_internal, Trainer.load_checkpoint, distributed_utils.call_main)
    compat.install()
    assert checkpoint_utils.torch is view and view.load is compat.load_checkpoint_file
    assert view.save is torch.save
    assert set(compat.SAFE_GLOBALS) <= set(torch.serialization.get_safe_globals())
    # the training fixes (tested in test_training_machinery.py) wrap each fairseq function once
    assert (EMA._step_internal, Trainer.load_checkpoint, distributed_utils.call_main) == wrapped
    assert all(getattr(function, "_ofa_wrapped", False) for function in wrapped)


def _run(args: list, cwd: Path) -> str:
    """Run a CLI and return its output; fail the test with that output if it fails."""
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _write_raw_translation_data(folder: Path) -> None:
    """A few reversed-word pairs in fairseq's raw text layout, with its two dictionaries."""
    rng = np.random.default_rng(0)
    words = list("abcdefghijkl")
    folder.mkdir()
    for split, rows in (("train", 32), ("valid", 8)):
        src = [list(rng.choice(words, size=rng.integers(3, 8))) for _ in range(rows)]
        (folder / f"{split}.src-tgt.src").write_text("".join(" ".join(s) + "\n" for s in src))
        (folder / f"{split}.src-tgt.tgt").write_text("".join(" ".join(s[::-1]) + "\n" for s in src))
    for lang in ("src", "tgt"):
        (folder / f"dict.{lang}.txt").write_text("".join(f"{w} 1\n" for w in words))


@pytest.mark.slow
def test_stock_fairseq_train_checkpoint_resumes_and_loads(tmp_path):
    _write_raw_translation_data(tmp_path / "data")
    user_dir = tmp_path / "compat_user_dir"
    user_dir.mkdir()
    (user_dir / "__init__.py").write_text(COMPAT_LOADER)
    train = [str(FAIRSEQ_TRAIN), "data", "--dataset-impl", "raw", "--task", "translation",
             "--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1",
             "--encoder-embed-dim", "16", "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32",
             "--decoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2",
             "--decoder-attention-heads", "2", "--optimizer", "adam", "--lr", "1e-3",
             "--batch-size", "16", "--save-interval-updates", "1", "--store-ema", "--ema-fp32",
             "--save-dir", "ckpt", "--cpu", "--num-workers", "0", "--no-progress-bar", "--seed", "1"]
    _run(train + ["--max-update", "2"], tmp_path)
    # resuming makes fairseq's trainer load checkpoint_last.pt: optimizer, meters, iterator, EMA
    log = _run(train + ["--max-update", "3", "--user-dir", str(user_dir)], tmp_path)
    assert re.search(r"Loaded checkpoint ckpt/checkpoint_last\.pt \(epoch \d+ @ 2 updates\)", log), log
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "ckpt" / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == 3
    assert state["last_optimizer_state"]["state"], "adam state is missing"
    assert {"train_iterator", "metrics", "ema", "ema_fp32_params"} <= set(state["extra_state"])


RANK_SCRIPT = COMPAT_LOADER + """
import torch, torch.distributed as dist
from fairseq import checkpoint_utils
from fairseq.distributed import utils
rank = int(sys.argv[1])
dist.init_process_group("gloo", init_method=sys.argv[2], rank=rank, world_size=2)
state = checkpoint_utils.load_checkpoint_to_cpu(sys.argv[3]) if rank == 0 else None
state = utils.broadcast_object(state, src_rank=0, group=dist.group.WORLD, dist_device=torch.device("cpu"))
print("received", state["cfg"].model.arch, len(state["model"]))
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_rank0_broadcasts_loaded_checkpoint(tmp_path):
    """Multi-GPU resume: rank 0 loads the checkpoint and fairseq broadcasts it to the others."""
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    init = f"tcp://127.0.0.1:{_free_port()}"
    ranks = [subprocess.Popen([sys.executable, str(script), str(rank), init, str(FIXTURE)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
             for rank in (0, 1)]
    outputs = [rank.communicate(timeout=300) for rank in ranks]
    for rank, (out, err) in zip(ranks, outputs):
        assert rank.returncode == 0, err[-3000:]
        assert "received ofa_tiny 421" in out
