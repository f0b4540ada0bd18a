"""Shared test fixtures: paths to ../shared, the official vocabulary, golden checks, the toy caption model."""
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
OFFICIAL_MINI = FIXTURES / "official_mini"
BPE_DIR = SHARED / "ofa_bpe"
# evaluate.py's own switches, which fairseq-generate does not know (the goldens' commands also name the
# fairseq options they stand for, e.g. --val-inference-type for --beam-search-vqa-eval)
EVALUATE_PY_SWITCHES = ("--zero-shot", "--beam-search-vqa-eval")


@pytest.fixture(scope="session")
def ofa_dictionary():
    from ofa_plugin.vocab import build_ofa_dictionary

    return build_ofa_dictionary(str(BPE_DIR / "dict.txt"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module of tiny-tensor tests: they gain nothing from threads, and on a loaded
    2-core machine every op otherwise waits for a busy core (many times slower); restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_top_hypotheses_match(output: str, golden: dict, dictionary) -> None:
    """The H- lines of a fairseq-generate output equal the golden's best hypotheses (tokens, score)."""
    import re

    import numpy as np

    lines = re.findall(r"^H-(\d+)\t(\S+)\t(.*)$", output, re.M)
    hypotheses = {int(i): (float(score), text) for i, score, text in lines}
    assert len(hypotheses) == len(golden["samples"])
    for index, sample in enumerate(golden["samples"]):
        best = sample["nbest"][0]
        score, symbols = hypotheses[index]
        tokens = [dictionary.index(symbol) for symbol in symbols.split()]
        assert tokens + [dictionary.eos()] == best["tokens"], sample["id"]
        assert score * np.log(2) == pytest.approx(best["score"], abs=1e-4)


def official_command_as_fairseq_generate(golden: dict, tsv: Path, results: Path,
                                         paths: Optional[Mapping[str, str]] = None) -> List[str]:
    """The golden's evaluate.py command line as a fairseq-generate one on `tsv`, with the fixture checkpoint,
    `--user-dir=ofa_plugin`, our BPE folder, `results` as --results-path and the other `paths` (flag ->
    value), without evaluate.py's own switches."""
    flags = golden["command"].split(" --path=")[1].split()[1:]
    replaced = {"--user-dir": "ofa_plugin", "--bpe-dir": str(BPE_DIR), "--results-path": str(results),
                **(paths or {})}
    command = [str(Path(sys.executable).parent / "fairseq-generate"), str(tsv),
               f"--path={OFFICIAL_MINI / 'checkpoint.pt'}"]
    for flag in flags:
        name = flag.split("=")[0]
        if name not in EVALUATE_PY_SWITCHES:
            command.append(f"{name}={replaced[name]}" if name in replaced else flag)
    return command


def cli_env() -> dict:
    """This interpreter's fairseq CLIs first on PATH; no opt-out of the safe checkpoint loader."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for opt_out in ("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "OFA_TRUST_CHECKPOINT"):
        env.pop(opt_out, None)
    return env


def run_cli(args: list, log: Path, env: dict) -> str:
    """Run a command, keep its output in `log`, fail with the output's tail if it fails."""
    result = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write_text(result.stdout)
    tail = "\n".join(result.stdout.splitlines()[-30:])
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed ({result.returncode}):\n{tail}"
    return result.stdout


CAPTION_GENERATE_LINE = re.compile(r"^Generate test with beam=5: CIDEr ([0-9.]+) \|.*\(n=(\d+),", re.MULTILINE)


def caption_cider(generate_output: str) -> Tuple[float, int]:
    """CIDEr and number of images of the "Generate test with beam=5: CIDEr ..." line of fairseq-generate."""
    match = CAPTION_GENERATE_LINE.search(generate_output)
    assert match, "no 'Generate test with beam=5: CIDEr ...' line in the fairseq-generate output"
    return float(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class CaptionStage1:
    """The toy caption model of run_scripts/caption/train_caption_toy.sh and its test-set evaluation."""

    world: Path  # toy world (caption TSVs, vocab/)
    checkpoint: Path
    train_log: str  # fairseq-train output
    generate_log: str  # evaluate_caption_toy.sh output on the test images
    updates: int
    num_test: int


@pytest.fixture(scope="session")
def caption_stage1(tmp_path_factory) -> CaptionStage1:
    """Stage-1 captioning trained once per session (test_caption_e2e: it must beat the baseline, and SCST
    continues it): a 5000-image toy world (+ 1500 stage-2 rows with all references), train_caption_toy.sh for
    800 updates (~340 s on one thread), evaluate_caption_toy.sh on 200 test images (~30 s). 800 updates, not
    fewer: a 400-update model counts the shapes but misnames colours, and SCST then moves CIDEr by chance."""
    updates, num_test = 800, 200
    root, env = tmp_path_factory.mktemp("caption_stage1"), cli_env()
    world, save = root / "world", root / "checkpoints"
    scripts = REPO / "run_scripts" / "caption"
    run_cli([sys.executable, "-m", "ofa_plugin.data.toyworld", "--out", world, "--seed", "1", "--num-train", "5000",
             "--num-valid", "50", "--num-test", str(num_test), "--num-caption-stage2", "1500", "--tasks", "caption"],
            root / "world.log", env)
    train_log = run_cli(["bash", scripts / "train_caption_toy.sh", world, save], root / "train.log",
                        {**env, "MAX_UPDATE": str(updates)})
    checkpoint = save / "checkpoint_last.pt"
    generate_log = run_cli(["bash", scripts / "evaluate_caption_toy.sh", world, checkpoint], root / "generate.log", env)
    return CaptionStage1(world, checkpoint, train_log, generate_log, updates, num_test)


# The files that take minutes (measured with --durations), longest first.
LONGEST_FILES = ("test_pretraining_transfer.py", "test_caption_e2e.py", "test_run_scripts.py", "test_task_learning.py")


def pytest_collection_modifyitems(config, items) -> None:
    """The longest files first, then the other slow tests (stable otherwise): under pytest-xdist (`make test`:
    whole files per worker) they then start at once instead of leaving one worker busy alone at the end."""
    def rank(item) -> tuple:
        name = item.path.name
        return (LONGEST_FILES.index(name) if name in LONGEST_FILES else len(LONGEST_FILES),
                item.get_closest_marker("slow") is None)

    items.sort(key=rank)
