"""Writing the toy world: every task's TSV splits, the label files and the vocabulary into one folder."""
from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Iterable, Sequence

from .tasks import TASKS, task_layout, task_rows
from .vision import CLASS_NAMES, VQA_ANSWERS
from .vocabulary import train_vocabulary

logger = logging.getLogger(__name__)


def write_split(path: Path, task: str, split: str, num_rows: int, seed: int,
                size_range: tuple[int, int]) -> Path:
    """Write `num_rows` rows of `task`'s `split` to `path`."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for _, columns in task_rows(task, split, num_rows, seed, size_range):
            handle.write("\t".join(columns) + "\n")
    logger.info("wrote %d %s rows (%s) to %s", num_rows, task, split, path)
    return path


def _write_label_files(out: Path, tasks: Sequence[str]) -> dict[str, Path]:
    """vqa_ans2label.{pkl,json} (answer -> label, as the official --ans2label-file) and
    classify_class2label.pkl (class name -> label, as the official class2label_new.pkl)."""
    written = {}
    if "vqa" in tasks:
        ans2label = {answer: label for label, answer in enumerate(VQA_ANSWERS)}
        written["vqa_ans2label"] = out / "vqa_ans2label.pkl"
        written["vqa_ans2label"].write_bytes(pickle.dumps(ans2label, protocol=4))
        written["vqa_ans2label_json"] = out / "vqa_ans2label.json"
        written["vqa_ans2label_json"].write_text(json.dumps(ans2label, indent=1) + "\n", encoding="utf-8")
    if "classify" in tasks:
        class2label = {name: label for label, name in enumerate(CLASS_NAMES)}
        written["classify_class2label"] = out / "classify_class2label.pkl"
        written["classify_class2label"].write_bytes(pickle.dumps(class2label, protocol=4))
    return written


def write_toy_world(out_dir: str | Path, seed: int = 1, num_train: int = 2000, num_valid: int = 100,
                    num_test: int = 100, image_size_range: tuple[int, int] = (48, 160),
                    tasks: Iterable[str] | None = None, num_caption_stage2: int = 0) -> dict[str, Path]:
    """Write the toy world's TSVs (`tasks`, default all of `TASKS`), label files and vocabulary into
    `out_dir`; returns {name: path} with names like "caption_train", "vqa_test", "vqa_ans2label",
    "classify_class2label", "spm_model", "dict".

    `num_*` are rows per task and split; `num_caption_stage2` > 0 also writes caption_stage2_train.tsv (the
    official stage-2 layout: one row per image with all its references, for SCST). Image widths and heights are drawn from `image_size_range`
    (at least 32 px, room for three shapes).
    """
    low, high = image_size_range
    if not 32 <= low <= high:
        raise ValueError(f"image_size_range must satisfy 32 <= min <= max, got {image_size_range}")
    chosen = TASKS if tasks is None else tuple(tasks)
    for task in chosen:
        task_layout(task, "train")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        f"{task}_{split}": write_split(out / f"{task}_{split}.tsv", task, split, rows, seed, (low, high))
        for task in chosen for split, rows in (("train", num_train), ("valid", num_valid), ("test", num_test))
    }
    if num_caption_stage2 > 0 and "caption" in chosen:
        written["caption_stage2_train"] = write_split(out / "caption_stage2_train.tsv", "caption", "stage2",
                                                      num_caption_stage2, seed, (low, high))
    written.update(_write_label_files(out, chosen))
    written["spm_model"], written["dict"] = train_vocabulary(out / "vocab")
    return written
