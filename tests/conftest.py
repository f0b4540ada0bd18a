"""Shared test fixtures: paths to ../shared, the official vocabulary, golden checks."""
import sys
from pathlib import Path
from typing import List, Mapping, Optional

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
