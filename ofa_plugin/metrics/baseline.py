"""The most-frequent-caption baseline: the floor a caption model must beat to show it looks at images.

It predicts the single most frequent training caption for every test image and scores it like
`fairseq-generate --scoring ofa_caption` does (references split on "&&", punctuation removed), so its
CIDEr sits next to the model's on the same scale.

    python -m ofa_plugin.metrics.baseline --train caption_train.tsv --test caption_test.tsv
"""
from __future__ import annotations

import argparse
import collections
import os
from dataclasses import dataclass
from typing import Sequence

from ofa_plugin.data.text import caption_references, caption_train_target
from ofa_plugin.data.tsv import TSVFile
from ofa_plugin.metrics.caption import caption_scores

CAPTION_COLUMN = 2  # uniq-id, image-id, caption, objects, image (reference §5.2)
MAX_CAPTION_WORDS = 30  # the caption task's default --max-tgt-length


@dataclass(frozen=True)
class BaselineResult:
    """The predicted caption, how many training rows carry it, and its scores on the test rows."""

    caption: str
    count: int
    num_train: int
    scores: dict[str, float]


def most_frequent_caption(train_tsv: str | os.PathLike, caption_col: int = CAPTION_COLUMN,
                          max_words: int = MAX_CAPTION_WORDS) -> tuple[str, int, int]:
    """The most frequent training target (as the caption task builds it), its count and the row count.

    Ties go to the caption seen first. Raises ValueError (naming file and row) for an empty caption.
    """
    tsv = TSVFile(train_tsv, [caption_col])
    counts: collections.Counter[str] = collections.Counter()
    for row in range(len(tsv)):
        try:
            counts[caption_train_target(tsv[row][0], max_words)] += 1
        except ValueError as err:
            raise ValueError(f"{tsv.path}: row {row}: {err}") from err
    if not counts:
        raise ValueError(f"{tsv.path}: no training captions")
    caption, count = counts.most_common(1)[0]
    return caption, count, len(tsv)


def reference_captions(test_tsv: str | os.PathLike, caption_col: int = CAPTION_COLUMN) -> dict[int, list[str]]:
    """The references of every test row, keyed by row number ("&&"-separated, punctuation removed)."""
    tsv = TSVFile(test_tsv, [caption_col])
    references = {}
    for row in range(len(tsv)):
        try:
            references[row] = caption_references(tsv[row][0])
        except ValueError as err:
            raise ValueError(f"{tsv.path}: row {row}: {err}") from err
    if not references:
        raise ValueError(f"{tsv.path}: no test rows")
    return references


def most_frequent_caption_baseline(
    train_tsv: str | os.PathLike, test_tsv: str | os.PathLike, train_caption_col: int = CAPTION_COLUMN,
    test_caption_col: int = CAPTION_COLUMN, max_words: int = MAX_CAPTION_WORDS,
) -> BaselineResult:
    """Score the most frequent training caption, predicted for every test row (CIDEr, BLEU-1..4)."""
    caption, count, num_train = most_frequent_caption(train_tsv, train_caption_col, max_words)
    references = reference_captions(test_tsv, test_caption_col)
    scores = caption_scores({row: caption for row in references}, references)
    return BaselineResult(caption, count, num_train, scores)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: print the baseline caption and its scores in fairseq-generate's format."""
    parser = argparse.ArgumentParser(description="Score the most-frequent-training-caption baseline.")
    parser.add_argument("--train", required=True, help="training caption TSV (one caption per row)")
    parser.add_argument("--test", required=True, help="test caption TSV (references joined by &&)")
    parser.add_argument("--caption-col", type=int, default=CAPTION_COLUMN, help="caption column of both files")
    args = parser.parse_args(argv)
    result = most_frequent_caption_baseline(args.train, args.test, args.caption_col, args.caption_col)
    metrics = " | ".join(f"{name} {result.scores[name]:.4f}" for name in ("CIDEr", "BLEU-4", "BLEU-1"))
    print(f'Most-frequent-caption baseline ("{result.caption}", {result.count} of {result.num_train} '
          f"training rows): {metrics}")


if __name__ == "__main__":
    main()
