"""The toy world's tasks: how each task's rows are built and laid out, and the rows of a (task, split).

Each (task, split) has its own random stream, so writing fewer tasks gives the same bytes for those written.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator

from .scene import Scene, encode_image_base64, render_scene
from .text import cola_row, gigaword_row, mnli_row, mrpc_row, qnli_row, qqp_row, rte_row, sst2_row
from .vision import SPLIT_CODES, caption_row, classify_row, refcoco_row, snli_ve_row, vqa_row

RowBuilder = Callable[[random.Random, str, int, tuple[int, int]], tuple[Scene, list[str]]]


@dataclass(frozen=True)
class TaskLayout:
    """How a task's rows are built and laid out."""

    build: RowBuilder  # (rng, split, index, size range) -> (scene, every column but the image)
    image_col: int | None  # where the base64 image goes, None for text-only tasks
    text_cols: tuple[int, ...]  # columns (of the full row) whose text the model reads
    selected_cols: str  # the official --selected-cols for this file


LAYOUTS = {
    "caption": TaskLayout(caption_row, 4, (2,), "0,4,2"),
    "vqa": TaskLayout(vqa_row, 5, (2, 3, 4), "0,5,2,3,4"),
    "refcoco": TaskLayout(refcoco_row, 4, (2,), "0,4,2,3"),
    "snli_ve": TaskLayout(snli_ve_row, 2, (3, 4), "0,2,3,4,5"),
    "classify": TaskLayout(classify_row, 0, (2,), "0,2"),
    "gigaword": TaskLayout(gigaword_row, None, (0, 1), "0,1"),
    "cola": TaskLayout(cola_row, None, (1,), "1,2"),
    "mnli": TaskLayout(mnli_row, None, (0, 1), "0,1,2"),
    "mrpc": TaskLayout(mrpc_row, None, (0, 1), "0,1,2"),
    "qnli": TaskLayout(qnli_row, None, (1, 2), "1,2,3"),
    "qqp": TaskLayout(qqp_row, None, (3, 4), "3,4,5"),
    "rte": TaskLayout(rte_row, None, (1, 2), "1,2,3"),
    "sst2": TaskLayout(sst2_row, None, (0,), "0,1"),
}
TASKS = tuple(LAYOUTS)
# The official --selected-cols of each file (reference §5, §9.3); caption evaluation uses "1,4,2".
OFFICIAL_SELECTED_COLS = {task: layout.selected_cols for task, layout in LAYOUTS.items()}


def task_layout(task: str, split: str) -> TaskLayout:
    """The layout of `task`; a clear error for an unknown task or split."""
    if task not in LAYOUTS:
        raise ValueError(f"unknown toy world task {task!r}, expected one of {TASKS}")
    if split not in SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}, expected one of {sorted(SPLIT_CODES)}")
    return LAYOUTS[task]


def task_rows(task: str, split: str, num_rows: int, seed: int,
              size_range: tuple[int, int] = (48, 160)) -> Iterator[tuple[Scene, list[str]]]:
    """The scenes and TSV columns (official layout of `task`, images as base64 JPEG) of a split."""
    layout = task_layout(task, split)
    rng = random.Random(f"toyworld:{seed}:{task}:{split}")
    for index in range(num_rows):
        scene, columns = layout.build(rng, split, index, size_range)
        if layout.image_col is not None:
            columns.insert(layout.image_col, encode_image_base64(render_scene(scene)))
        yield scene, columns


def caption_rows(split: str, num_rows: int, seed: int,
                 size_range: tuple[int, int] = (48, 160)) -> Iterator[tuple[Scene, list[str]]]:
    """The scenes and TSV columns of a caption split ("train": one caption per row, else 3-5 references)."""
    return task_rows("caption", split, num_rows, seed, size_range)
