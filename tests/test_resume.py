"""Resuming fairseq-train after the process was killed mid-epoch.

fairseq saves with every checkpoint where the data iterator stands in the epoch (`iterations_in_epoch`)
and, on restart, skips the batches already trained on. Our TSV datasets draw the epoch's order from
`--seed` + epoch, so the resumed run sees the same batches as an uninterrupted one: the acceptance test
kills a run (SIGKILL) right after its first mid-epoch checkpoint, restarts the same command and demands
the uninterrupted run's losses for every later update and its final parameters. A checkpoint_last.pt
left empty or truncated (a kill while fairseq copies it) stops the restart with an error naming it.
"""
import re
import subprocess
import time
from pathlib import Path

import pytest
from fairseq import checkpoint_utils

from conftest import cli_env, run_cli
from ofa_plugin.compat import IncompleteCheckpointError
from test_distributed import (FAIRSEQ_TRAIN, max_parameter_difference, toy_train_args, train_records,
                              write_caption_world)

NUM_TRAIN = 24  # 6 batches of 4 per epoch
MAX_UPDATE = 10
SAVE_INTERVAL = 4  # checkpoints after updates 4 and 8 (both mid-epoch) and at the end
SAVED = re.compile(r"Saved checkpoint \S+ \(epoch \d+ @ (\d+) updates")
LOADED = re.compile(r"Loaded checkpoint (\S+) \(epoch \d+ @ (\d+) updates\)")
COMPARED = ("epoch", "position", "loss", "nll_loss", "ntokens", "gnorm", "lr")


def _run_until_saved_then_kill(args: list, log_path: Path, env: dict) -> int:
    """Start fairseq-train, SIGKILL it as soon as it logs a saved checkpoint; the number of updates saved."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**env, "PYTHONUNBUFFERED": "1"})
        try:
            while process.poll() is None and not SAVED.search(log_path.read_text()):
                time.sleep(0.05)
        finally:
            process.kill()
            process.wait()
    output = log_path.read_text()
    saved = SAVED.findall(output)
    assert saved, "fairseq-train ended before saving a checkpoint:\n" + "\n".join(output.splitlines()[-20:])
    return int(saved[-1])


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 a zip archive cut short"], ids=["empty", "truncated"])
def test_incomplete_checkpoint_is_named(tmp_path, content):
    path = tmp_path / "checkpoint_last.pt"
    path.write_bytes(content)
    with pytest.raises(IncompleteCheckpointError, match=re.escape(str(path)) + ": cannot read the checkpoint"):
        checkpoint_utils.load_checkpoint_to_cpu(str(path))


@pytest.mark.slow
def test_killed_run_resumes_mid_epoch_like_an_uninterrupted_run(tmp_path, record_property):
    world = write_caption_world(tmp_path / "world", num_train=NUM_TRAIN)
    env = {**cli_env(), "OMP_NUM_THREADS": "1"}
    flags = ("--max-update", str(MAX_UPDATE), "--save-interval-updates", str(SAVE_INTERVAL))
    full, resumed = tmp_path / "uninterrupted", tmp_path / "resumed"
    full_log = run_cli([str(FAIRSEQ_TRAIN), *toy_train_args(world, full, *flags)], tmp_path / "full.log", env)

    command = [str(FAIRSEQ_TRAIN), *toy_train_args(world, resumed, *flags)]
    killed_at = _run_until_saved_then_kill(command, tmp_path / "killed.log", env)
    assert killed_at in (4, 8)  # mid-epoch: 6 updates per epoch
    resumed_log = run_cli(command, tmp_path / "resumed.log", env)
    loaded = LOADED.search(resumed_log)
    assert loaded and loaded.group(1).endswith("checkpoint_last.pt") and int(loaded.group(2)) == killed_at

    before, after = train_records(full_log), train_records(resumed_log)
    assert sorted(after) == list(range(killed_at + 1, MAX_UPDATE + 1))
    for update, record in after.items():
        assert {key: record[key] for key in COMPARED} == {key: before[update][key] for key in COMPARED}, update
    state = checkpoint_utils.load_checkpoint_to_cpu(str(resumed / "checkpoint_last.pt"))
    reference = checkpoint_utils.load_checkpoint_to_cpu(str(full / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == MAX_UPDATE
    assert state["extra_state"]["train_iterator"] == reference["extra_state"]["train_iterator"]
    difference = max_parameter_difference(full / "checkpoint_last.pt", resumed / "checkpoint_last.pt")
    record_property("killed_at_update", killed_at)
    record_property("max_parameter_difference", difference)
    print(f"killed after update {killed_at}; resumed losses {[after[u]['loss'] for u in sorted(after)]}; "
          f"max |parameter difference| {difference:.3g}")
    assert difference <= 1e-6

    # a checkpoint_last.pt cut short: the restart names it
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    data = (full / "checkpoint_last.pt").read_bytes()
    (truncated / "checkpoint_last.pt").write_bytes(data[: len(data) // 2])
    result = subprocess.run([str(FAIRSEQ_TRAIN), *toy_train_args(world, truncated, *flags)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last_line = result.stdout.strip().splitlines()[-1]
    assert result.returncode != 0
    assert f"{truncated / 'checkpoint_last.pt'}: cannot read the checkpoint" in last_line, last_line
