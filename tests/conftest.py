"""Shared test fixtures: paths to ../shared and the official vocabulary."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
OFFICIAL_MINI = FIXTURES / "official_mini"
BPE_DIR = SHARED / "ofa_bpe"


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
