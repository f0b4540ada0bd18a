"""The official run scripts (run_scripts/<benchmark>/train_*.sh, evaluate_*.sh; reference §9).

Fast: every script parses (`bash -n`), starts with the documented header fields, and, in real mode, stops
with a message naming the missing data file (or checkpoint) before starting anything.
Slow: every script runs in toy mode (TOY=1: the official command line with toy overrides, on CPU), chained
as in real use: caption and image generation stage 1 -> stage 2 -> evaluate, train -> evaluate for the
other benchmarks and for three GLUE tasks (cola: MCC, mrpc: F1, mnli: three classes). Each training run
must write its checkpoints and each evaluation must print its metric line. To keep the number of CLI
processes (~6-10 s of start-up each) down, the chains share one toy world written in-process (only the
caption and image generation chains write their own, through the scripts), and run two at a time. About
3 minutes on 2 idle CPU cores (22 fairseq processes).
"""
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from ofa_plugin.data.toyworld import write_toy_world

from conftest import cli_env as _cli_env

REPO = Path(__file__).resolve().parents[1]
RUN_SCRIPTS = REPO / "run_scripts"
# GLUE toy chains: one per kind of row of the scripts' task table (MCC; F1; three classes) rather than all
# seven tasks, which would add 8 more CLI processes (~1 minute) to the suite for the same command lines.
GLUE_TASKS = ("cola", "mrpc", "mnli")
HEADER_FIELDS = ("What:", "Hardware", "Expected time:", "Expected metric", "Data", "Outputs:", "Usage:")
METRIC_LINE = r"^Generate \S+ with beam=\d+: "


@dataclass
class Step:
    """One script run of a chain: its arguments, the checkpoint folder it writes (training) or the metric
    its output must print (evaluation)."""

    script: str
    args: Tuple[str, ...] = ()
    save_dir: Optional[str] = None  # relative to the chain's OUT
    metric: Optional[str] = None  # regex after the "Generate ... with beam=N: " prefix


@dataclass
class Chain:
    steps: List[Step]
    env: Dict[str, str] = field(default_factory=dict)
    own_world: bool = False  # the script writes its toy world (default DATA) instead of sharing one


def _glue_chain(task: str) -> Chain:
    metric = {"cola": r"accuracy [0-9.]+ .*\| MCC", "mrpc": r"accuracy [0-9.]+ .*\| F1",
              "qqp": r"accuracy [0-9.]+ .*\| F1"}.get(task, r"accuracy [0-9.]+")
    return Chain([Step("glue/train_glue.sh", (task,), save_dir="checkpoints"),
                  Step("glue/evaluate_glue.sh", (task,), metric=metric)])


CHAINS: Dict[str, Chain] = {
    "caption": Chain([Step("caption/train_caption_stage1.sh", save_dir="stage1"),
                      Step("caption/train_caption_stage2.sh", save_dir="stage2"),
                      Step("caption/evaluate_caption.sh", metric=r"CIDEr [0-9.]+ \| BLEU-4")], own_world=True),
    "vqa": Chain([Step("vqa/train_vqa.sh", save_dir="checkpoints"),
                  Step("vqa/evaluate_vqa.sh", metric=r"VQA accuracy [0-9.]+")]),
    # a non-default dataset name (with "+") and the base recipe's branch
    "refcoco": Chain([Step("refcoco/train_refcoco.sh", save_dir="checkpoints"),
                      Step("refcoco/evaluate_refcoco.sh", metric=r"Acc@0\.5 [0-9.]+")],
                     env={"DATASET": "refcoco+", "MODEL_SIZE": "base"}),
    "snli_ve": Chain([Step("snli_ve/train_snli_ve.sh", save_dir="checkpoints"),
                      Step("snli_ve/evaluate_snli_ve.sh", metric=r"accuracy [0-9.]+")]),
    "imagenet": Chain([Step("image_classify/train_imagenet.sh", save_dir="checkpoints"),
                       Step("image_classify/evaluate_imagenet.sh", metric=r"accuracy [0-9.]+")]),
    "gigaword": Chain([Step("gigaword/train_gigaword.sh", save_dir="checkpoints"),
                       Step("gigaword/evaluate_gigaword.sh", metric=r"ROUGE-1 [0-9.]+ \| ROUGE-2 [0-9.]+ \| ROUGE-L")]),
    **{f"glue_{task}": _glue_chain(task) for task in GLUE_TASKS},
    # toy images, toy VQGAN and a random CLIP written by the first script (run_scripts/image_gen/image_gen_common.sh)
    "image_gen": Chain([Step("image_gen/train_image_gen_large_stage1.sh", save_dir="stage1"),
                        Step("image_gen/train_image_gen_large_stage2.sh", save_dir="stage2"),
                        Step("image_gen/evaluate_image_gen.sh", metric=r"CLIP score [0-9.]+ \(ti_sim, best image of "
                                                                       r"each of 4 captions\) \| toy check")],
                       own_world=True),
}
# Scripts whose toy run is a test of their own task's file (it checks more than a chain would).
TOY_RUN_ELSEWHERE = {"pretraining/train_pretrain.sh": "tests/test_unify_task.py"}
SCRIPTS = sorted({step.script for chain in CHAINS.values() for step in chain.steps} | set(TOY_RUN_ELSEWHERE))


def _header(script: str) -> str:
    """The script's leading comment block."""
    lines = (RUN_SCRIPTS / script).read_text().splitlines()
    return "\n".join(line for line in lines[1:next(i for i, line in enumerate(lines) if not line.startswith("#"))])


def test_every_train_and_evaluate_script_is_run_by_a_chain() -> None:
    on_disk = {str(path.relative_to(RUN_SCRIPTS)) for pattern in ("*/train_*.sh", "*/evaluate_*.sh")
               for path in RUN_SCRIPTS.glob(pattern) if not path.name.endswith("_toy.sh")}
    assert on_disk == set(SCRIPTS)


@pytest.mark.parametrize("script", [*SCRIPTS, "common.sh"])
def test_script_parses(script: str) -> None:
    result = subprocess.run(["bash", "-n", RUN_SCRIPTS / script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_header_has_the_documented_fields(script: str) -> None:
    header = _header(script)
    fields = HEADER_FIELDS + (("Restore:",) if "/train_" in script else ("Checkpoint:",))
    missing = [name for name in fields if not re.search(rf"^# {re.escape(name)}", header, re.M)]
    assert not missing, f"{script}: header lacks {missing}"
    assert re.search(r"^# Hardware.*GPU", header, re.M), f"{script}: header names no GPUs"


@pytest.mark.parametrize("script", SCRIPTS)
def test_real_mode_names_the_missing_data_file(script: str, tmp_path: Path) -> None:
    """Without TOY=1 and with an empty DATA folder, the script stops at once, naming a missing file."""
    env = {**_cli_env(), "DATA": str(tmp_path / "data"), "OUT": str(tmp_path / "out"), "TOY": "0"}
    args = ["cola"] if script.startswith("glue/") else []
    start = time.perf_counter()
    result = subprocess.run(["bash", RUN_SCRIPTS / script, *args], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert re.search(rf"missing file\(s\): {re.escape(str(tmp_path / 'data'))}/\S+\.(tsv|pkl)", result.stderr), result.stderr
    assert not (tmp_path / "out").exists(), "nothing may be started or written before the checks"
    assert time.perf_counter() - start < 5


def test_real_mode_names_the_missing_pretrained_checkpoint(tmp_path: Path) -> None:
    data, bpe = tmp_path / "data", tmp_path / "bpe"
    for folder, names in ((data, ("snli_ve_train.tsv", "snli_ve_dev.tsv")), (bpe, ("dict.txt", "encoder.json", "vocab.bpe"))):
        folder.mkdir()
        for name in names:
            (folder / name).write_text("")
    env = {**_cli_env(), "DATA": str(data), "BPE_DIR": str(bpe), "OUT": str(tmp_path / "out"), "TOY": "0",
           "MODEL_SIZE": "base"}
    result = subprocess.run(["bash", RUN_SCRIPTS / "snli_ve/train_snli_ve.sh"], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "missing checkpoint RESTORE=" in result.stderr and "ofa_base.pt" in result.stderr, result.stderr


def test_unknown_model_size_and_glue_task_are_refused() -> None:
    env = {**_cli_env(), "MODEL_SIZE": "base", "TOY": "1"}
    result = subprocess.run(["bash", RUN_SCRIPTS / "gigaword/train_gigaword.sh"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "MODEL_SIZE=base has no official recipe" in result.stderr
    env["MODEL_SIZE"] = "large"
    result = subprocess.run(["bash", RUN_SCRIPTS / "glue/train_glue.sh", "wnli"], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "unknown GLUE task wnli" in result.stderr


@dataclass
class StepResult:
    step: Step
    returncode: int
    output: str
    seconds: float


def _run_chain(name: str, chain: Chain, root: Path, world: Path) -> List[StepResult]:
    """Run the chain's steps in order (stopping at the first failure), each output kept in root/name/."""
    out = root / name
    out.mkdir()
    env = {**_cli_env(), **chain.env, "TOY": "1", "OUT": str(out), "OMP_NUM_THREADS": "1"}
    if not chain.own_world:
        env["DATA"] = str(world)
    results = []
    for index, step in enumerate(chain.steps):
        start = time.perf_counter()
        proc = subprocess.run(["bash", RUN_SCRIPTS / step.script, *step.args], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        (out / f"step{index}.log").write_text(proc.stdout)
        results.append(StepResult(step, proc.returncode, proc.stdout, time.perf_counter() - start))
        if proc.returncode != 0:
            break
    return results


@dataclass
class ChainRuns:
    root: Path  # the chains' OUT folders are root/<chain name>
    results: Dict[str, List[StepResult]]


@pytest.fixture(scope="module")
def chain_runs(tmp_path_factory) -> ChainRuns:
    """Every chain's step results; chains run two at a time, the longest first."""
    root = tmp_path_factory.mktemp("run_scripts")
    start = time.perf_counter()
    world = root / "world"
    write_toy_world(world, seed=1, num_train=64, num_valid=16, num_test=16)
    order = sorted(CHAINS, key=lambda name: -len(CHAINS[name].steps))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_run_chain, name, CHAINS[name], root, world) for name in order}
        results = {name: future.result() for name, future in futures.items()}
    print(f"\nrun_scripts toy chains: {time.perf_counter() - start:.0f} s in all; "
          + ", ".join(f"{name} {sum(r.seconds for r in steps):.0f} s" for name, steps in results.items()))
    return ChainRuns(root, results)


@pytest.mark.slow
@pytest.mark.parametrize("name", CHAINS)
def test_toy_chain_trains_and_evaluates(chain_runs: ChainRuns, name: str) -> None:
    results, out = chain_runs.results[name], chain_runs.root / name
    assert len(results) == len(CHAINS[name].steps), "the chain stopped early"
    for result in results:
        tail = "\n".join(result.output.splitlines()[-25:])
        assert result.returncode == 0, f"{result.step.script} failed ({result.returncode}):\n{tail}"
        if result.step.save_dir:
            for checkpoint in ("checkpoint_best.pt", "checkpoint_last.pt"):
                assert (out / result.step.save_dir / checkpoint).stat().st_size > 0, f"{result.step.script}: no {checkpoint}"
            assert re.search(r"\| valid on 'valid' subset \|", result.output), f"{result.step.script}: no validation"
        if result.step.metric:
            assert re.search(METRIC_LINE + result.step.metric, result.output, re.M), (
                f"{result.step.script}: no metric line /{result.step.metric}/ in:\n{tail}")
