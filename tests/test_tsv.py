"""TSVFile: random access, column selection, offset-index cache, errors, fork safety; text normalisers."""
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_plugin.data import tsv as tsv_module
from ofa_plugin.data.text import (
    caption_references,
    caption_train_target,
    pre_caption,
    pre_question,
    strip_punctuation,
)
from ofa_plugin.data.tsv import TSVFile, TSVFormatError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE_DATA = SHARED / "fixtures" / "official_mini" / "data"


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    """Keep the index cache inside the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_selected_columns_in_given_order(tmp_path):
    path = write(tmp_path / "a.tsv", "0\t1\t2\t3\t4\na\tb\tc\td\te\n")
    assert TSVFile(path, "0,4,2")[1] == ["a", "e", "c"]
    assert TSVFile(path, [3, 1])[0] == ["3", "1"]
    assert TSVFile(path)[1] == ["a", "b", "c", "d", "e"]
    assert TSVFile(path, "0 , 1")[0] == ["0", "1"]


def test_separator(tmp_path):
    path = write(tmp_path / "a.csv", "x,y\nz,w\n")
    assert TSVFile(path, "1", separator=",")[1] == ["w"]


@pytest.mark.parametrize(
    "text, rows",
    [
        ("a\nb\n", ["a", "b"]),
        ("a\nb", ["a", "b"]),
        ("a\nb\n\n", ["a", "b"]),
        ("a\r\nb\r\n\r\n", ["a", "b"]),
        ("a\n\nb\n", ["a", "", "b"]),  # an empty line inside the file is a row
        ("", []),
    ],
)
def test_rows_and_trailing_empty_lines(tmp_path, text, rows):
    tsv = TSVFile(write(tmp_path / "a.tsv", text))
    assert len(tsv) == len(rows)
    assert [tsv.read_line(i) for i in range(len(tsv))] == rows


def test_only_line_terminator_is_stripped(tmp_path):
    tsv = TSVFile(write(tmp_path / "a.tsv", " x \t y \r\n\tz\t\n"))
    assert tsv[0] == [" x ", " y "]
    assert tsv[1] == ["", "z", ""]


def test_non_ascii_and_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(tsv_module, "_CHUNK_BYTES", 5)
    lines = [f"{i}\tcafé ☕ {'x' * i}" for i in range(40)]
    tsv = TSVFile(write(tmp_path / "a.tsv", "\n".join(lines) + "\n"), "1,0")
    assert len(tsv) == 40
    for i in (0, 7, 39, 13):
        assert tsv[i] == [f"café ☕ {'x' * i}", str(i)]
    assert tsv[np.int64(3)][1] == "3"


def test_too_few_columns_names_file_row_and_counts(tmp_path):
    path = write(tmp_path / "bad.tsv", "a\tb\tc\td\te\nonly\ttwo\n")
    tsv = TSVFile(path, "0,4,2")
    with pytest.raises(TSVFormatError) as err:
        tsv[1]
    message = str(err.value)
    assert str(path) in message and "row 1" in message
    assert "expected at least 5" in message and "has 2 columns" in message
    assert isinstance(err.value, ValueError)


def test_missing_file_and_bad_arguments(tmp_path):
    missing = tmp_path / "nope.tsv"
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        TSVFile(missing)
    path = write(tmp_path / "a.tsv", "a\n")
    with pytest.raises(ValueError, match="0,x"):
        TSVFile(path, "0,x")
    with pytest.raises(ValueError):
        TSVFile(path, [-1])
    with pytest.raises(IndexError, match="row 1"):
        TSVFile(path)[1]
    with pytest.raises(IndexError):
        TSVFile(path)[-1]


def test_invalid_utf8_names_row(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(TSVFormatError, match="row 1"):
        TSVFile(path)[1]


def test_index_is_cached_in_the_user_cache_not_beside_the_data(tmp_path, monkeypatch):
    path = write(tmp_path / "a.tsv", "a\nb\n")
    TSVFile(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tsv", "user_cache"]
    (cache,) = (tmp_path / "user_cache" / "ofa_plugin").glob("*.offsets.npy")
    assert np.load(cache)[3:].tolist() == [0, 2, 4]
    assert cache.stat().st_mode & 0o777 == 0o644  # readable by everyone who can read the TSV

    def no_scan(_):
        raise AssertionError("the cached index should have been used")

    monkeypatch.setattr(tsv_module, "_scan_row_bounds", no_scan)
    assert TSVFile(path)[1] == ["b"]


def test_cache_invalidated_by_size_or_mtime(tmp_path):
    path = write(tmp_path / "a.tsv", "a\nb\n")
    assert len(TSVFile(path)) == 2
    write(path, "a\nb\nc\n")  # size changes
    assert len(TSVFile(path)) == 3
    stat = path.stat()
    write(path, "xx\nc\nd\n")  # same size: only the mtime tells
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    tsv = TSVFile(path)
    assert [tsv.read_line(i) for i in range(len(tsv))] == ["xx", "c", "d"]


def test_unwritable_cache_keeps_the_index_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(write(tmp_path / "not_a_folder", "")))
    path = write(tmp_path / "a.tsv", "a\nb\n")
    assert TSVFile(path)[1] == ["b"]


def test_new_process_opens_its_own_handle(tmp_path, monkeypatch):
    tsv = TSVFile(write(tmp_path / "a.tsv", "a\nb\n"))
    assert tsv[0] == ["a"]
    parent_handle = tsv._file()
    monkeypatch.setattr(os, "getpid", lambda: -12345)  # what a forked worker sees
    assert tsv._file() is not parent_handle
    assert tsv[1] == ["b"]


def test_pickled_copy_reads(tmp_path):
    tsv = TSVFile(write(tmp_path / "a.tsv", "a\tb\nc\td\n"), "1")
    tsv[0]
    copy = pickle.loads(pickle.dumps(tsv))
    assert copy[1] == ["d"] and len(copy) == 2


class _Rows(torch.utils.data.Dataset):
    def __init__(self, tsv):
        self.tsv = tsv

    def __len__(self):
        return len(self.tsv)

    def __getitem__(self, index):
        return self.tsv[index][0]


def test_dataloader_workers_read_every_row(tmp_path):
    path = write(tmp_path / "a.tsv", "".join(f"row{i}\t{i}\n" for i in range(64)))
    tsv = TSVFile(path)
    assert tsv[5][0] == "row5"  # the parent opens its handle before the workers fork
    loader = torch.utils.data.DataLoader(_Rows(tsv), batch_size=None, shuffle=True, num_workers=2)
    assert sorted(loader, key=lambda s: int(s[3:])) == [f"row{i}" for i in range(64)]
    assert tsv[63][0] == "row63"


def test_reads_official_fixture(tmp_path):
    path = Path(shutil.copy(FIXTURE_DATA / "caption_test.tsv", tmp_path / "caption_test.tsv"))
    tsv = TSVFile(path, "1,4,2")
    assert len(tsv) == 8
    image_id, image, captions = tsv[0]
    assert image_id == "100001" and image.startswith("/9j/")
    assert captions.startswith("a red circle and a blue square on a yellow background.&&")


# Text normalisers of TSV text fields (reference §4.5, §5.2).


@pytest.mark.parametrize(
    "text, max_words, expected",
    [
        ("What is the Man-Holding?", None, "what is the man holding?"),
        ("?!,.what  is\tthis/that  ", None, "what is this that"),
        (" ,leading space keeps the comma", None, ",leading space keeps the comma"),
        ("one two three four", 2, "one two"),
        ("#~:;*  hi", 5, "hi"),
        ("a <person> here", None, "a <person> here"),
    ],
)
def test_pre_question(text, max_words, expected):
    assert pre_question(text, max_words) == expected


@pytest.mark.parametrize(
    "text, max_words, expected",
    [
        ("A <PERSON> rides a horse.", None, "a person rides a horse."),
        ("..Two  dogs\n", None, "two dogs"),
        ("a black-and-white photo", 3, "a black and"),
    ],
)
def test_pre_caption(text, max_words, expected):
    assert pre_caption(text, max_words) == expected


def test_strip_punctuation():
    assert strip_punctuation("a, b. c! \"d\" (e) f-g_h's <i>") == "a b c d e fghs i"
    assert strip_punctuation("naïve café") == "naïve café"


def test_caption_train_target():
    assert caption_train_target("A red  circle, next to a Square.", 20) == "A red circle next to a Square"
    assert caption_train_target("one two three four", 3) == "one two three"
    with pytest.raises(ValueError, match="'...'"):
        caption_train_target("...", 20)


def test_caption_references():
    field = " a red  circle.&&two shapes, on  yellow&&a ball "
    assert caption_references(field) == ["a red circle", "two shapes on yellow", "a ball"]
    assert caption_references("single") == ["single"]
    with pytest.raises(ValueError, match="a cat&&&&a dog"):
        caption_references("a cat&&&&a dog")
