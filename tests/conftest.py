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
