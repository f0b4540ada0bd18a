"""Command line of the toy world: `python -m ofa_plugin.data.toyworld --out DIR ...`."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

from .tasks import TASKS
from .writer import write_toy_world


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: `python -m ofa_plugin.data.toyworld --out DIR ...`."""
    parser = argparse.ArgumentParser(prog="python -m ofa_plugin.data.toyworld",
                                     description="Write the OFA toy world (every task's TSVs + vocabulary).")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same bytes")
    parser.add_argument("--num-train", type=int, default=2000, help="training rows per task")
    parser.add_argument("--num-valid", type=int, default=100, help="validation rows per task")
    parser.add_argument("--num-test", type=int, default=100, help="test rows per task")
    parser.add_argument("--num-caption-stage2", type=int, default=0,
                        help="caption stage-2 (SCST) training rows, all references per image, written as "
                             "caption_stage2_train.tsv (default 0: none)")
    parser.add_argument("--image-size-range", type=int, nargs=2, default=(48, 160), metavar=("MIN", "MAX"),
                        help="range of image widths and heights in pixels")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS), metavar="TASK",
                        help=f"tasks to write (default all: {' '.join(TASKS)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    write_toy_world(args.out, args.seed, args.num_train, args.num_valid, args.num_test,
                    tuple(args.image_size_range), args.tasks, args.num_caption_stage2)
