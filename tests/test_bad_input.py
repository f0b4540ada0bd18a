"""Bad input gives a clear error naming the file and row (or the mismatch), or a counted skip."""
import base64
import io
from pathlib import Path

import pytest
from fairseq import checkpoint_utils
from PIL import Image

import ofa_plugin  # noqa: F401
from ofa_plugin.data.dataset import TSVTaskDataset
from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask

from conftest import BPE_DIR, OFFICIAL_MINI


def _image_b64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, format="JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


def _write_tsv(path: Path, rows) -> Path:
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    return path


def _task(tsv: Path, **options) -> CaptionTask:
    cfg = CaptionConfig(data=str(tsv), bpe_dir=str(BPE_DIR), selected_cols="0,4,2", patch_image_size=64, **options)
    task = CaptionTask.setup_task(cfg)
    task.load_dataset("train")
    return task


GOOD = ["1", "10", "a red circle", "circle", _image_b64()]


def test_corrupt_base64_image_names_file_and_row(tmp_path):
    tsv = _write_tsv(tmp_path / "bad.tsv", [GOOD, ["2", "11", "a blue square", "square", "bm90IGFuIGltYWdl"]])
    dataset = _task(tsv).dataset("train")
    assert dataset[0]["patch_image"].shape == (3, 64, 64)
    with pytest.raises(ValueError, match=r"bad\.tsv.*row 1"):
        dataset[1]


def test_row_with_missing_column_names_file_and_row(tmp_path):
    tsv = _write_tsv(tmp_path / "short.tsv", [GOOD, GOOD, ["3", "12", "a caption"]])
    with pytest.raises(ValueError, match=r"short\.tsv: row 2 has 3 columns, expected at least 5"):
        _task(tsv).dataset("train")[2]


def test_empty_caption_names_file_and_row(tmp_path):
    tsv = _write_tsv(tmp_path / "empty.tsv", [GOOD, ["2", "11", " ... ", "x", _image_b64()]])
    with pytest.raises(ValueError, match=r"empty\.tsv.*row 1"):
        _task(tsv).dataset("train")[1]


def test_skip_option_counts_and_drops_malformed_rows(tmp_path, caplog):
    tsv = _write_tsv(tmp_path / "mixed.tsv", [GOOD, ["2", "11", "a", "b", "%%%not-base64%%%"], GOOD])
    dataset: TSVTaskDataset = _task(tsv, skip_malformed_rows=True).dataset("train")
    batch = dataset.collater([dataset[i] for i in range(3)])
    assert batch["nsentences"] == 2 and dataset.num_skipped == 1
    assert "skipping malformed row" in caplog.text and "row 1" in caplog.text


def test_missing_data_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.tsv"
    with pytest.raises(FileNotFoundError, match="nowhere.tsv"):
        _task(missing)


def test_missing_bpe_files_are_named(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match=str(tmp_path)):
        CaptionTask.setup_task(CaptionConfig(data="x.tsv", bpe_dir=str(tmp_path)))


def test_checkpoint_with_mismatched_vocabulary_names_the_mismatch(tmp_path):
    """A dictionary with fewer <bin_*> tokens than the checkpoint was trained with."""
    with pytest.raises(ValueError, match=r"vocabulary mismatch.*59457 rows.*59357 entries"):
        checkpoint_utils.load_model_ensemble_and_task(
            [str(OFFICIAL_MINI / "checkpoint.pt")],
            arg_overrides={"bpe_dir": str(BPE_DIR), "num_bins": 900,
                           "data": str(OFFICIAL_MINI / "data" / "caption_test.tsv")},
        )


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(OSError, match="absent.pt"):
        checkpoint_utils.load_model_ensemble_and_task([str(tmp_path / "absent.pt")],
                                                      arg_overrides={"bpe_dir": str(BPE_DIR)})
