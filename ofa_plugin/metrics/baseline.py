"""Trivial baselines: the floor a model must beat to show that it looks at the images.

- captioning: the single most frequent training caption for every test image, scored like
  `fairseq-generate --scoring ofa_caption` (references split on "&&", punctuation removed);
- VQA: the most frequent training answer for every question, scored like `ofa_vqa` (its confidence), or
  each question's own most frequent training answer (the language prior; the demo's bar);
- visual entailment: the most frequent training label, scored by accuracy;
- grounding: a box of the mean relative training size at the centre of every image, Acc@0.5.
Each reads the official TSV layouts (reference §5) and is scored on the same scale as the model.

    python -m ofa_plugin.metrics.baseline --train caption_train.tsv --test caption_test.tsv
"""
from __future__ import annotations

import argparse
import collections
import os
from dataclasses import dataclass
from typing import Sequence

from ofa_plugin.data.images import decode_image
from ofa_plugin.data.refcoco import parse_region
from ofa_plugin.data.text import caption_references, caption_train_target
from ofa_plugin.data.tsv import TSVFile
from ofa_plugin.data.vqa import best_answer, parse_answers
from ofa_plugin.metrics.caption import caption_scores
from ofa_plugin.metrics.grounding import grounding_hit

CAPTION_COLUMN = 2  # uniq-id, image-id, caption, objects, image (reference §5.2)
VQA_QUESTION_COLUMN, VQA_ANSWERS_COLUMN = 2, 3  # question-id, image-id, question, answers, objects, image (§5.3)
SNLI_VE_LABEL_COLUMN = 5  # uniq-id, image-id, image, hypothesis, caption, label (§5.5)
REFCOCO_COLUMNS = (3, 4)  # uniq-id, image-id, text, region, image (§5.4): region and image
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
    test_caption_col: int = CAPTION_COLUMN, max_words: int = MAX_CAPTION_WORDS, tokenizer: str = "auto",
) -> BaselineResult:
    """Score the most frequent training caption, predicted for every test row (the `caption_scores`
    metrics; `tokenizer` as there: keep "auto" to compare with fairseq-generate's `ofa_caption` line)."""
    caption, count, num_train = most_frequent_caption(train_tsv, train_caption_col, max_words)
    references = reference_captions(test_tsv, test_caption_col)
    scores = caption_scores({row: caption for row in references}, references, tokenizer=tokenizer)
    return BaselineResult(caption, count, num_train, scores)


def majority_answer_baseline(train_tsv: str | os.PathLike, test_tsv: str | os.PathLike,
                             answers_col: int = VQA_ANSWERS_COLUMN) -> tuple[str, float]:
    """VQA: the most frequent training answer (each row's highest-confidence one) and its mean
    confidence over the test questions (the official score of predicting it everywhere)."""
    train = TSVFile(train_tsv, [answers_col])
    counts = collections.Counter(best_answer(parse_answers(train[row][0], str(train.path), row))
                                 for row in range(len(train)))
    answer = counts.most_common(1)[0][0]
    test = TSVFile(test_tsv, [answers_col])
    scores = [parse_answers(test[row][0], str(test.path), row).get(answer, 0.0) for row in range(len(test))]
    return answer, sum(scores) / len(scores)


def question_majority_answer_baseline(train_tsv: str | os.PathLike, test_tsv: str | os.PathLike,
                                      question_col: int = VQA_QUESTION_COLUMN,
                                      answers_col: int = VQA_ANSWERS_COLUMN) -> float:
    """VQA without the image, question by question: the most frequent training answer of the same question
    text (the overall one for an unseen question), scored like `majority_answer_baseline`. Roughly what a
    model reaches from the questions alone: a fairer bar for "uses the image" than one answer for all."""
    train = TSVFile(train_tsv, [question_col, answers_col])
    by_question: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in range(len(train)):
        question, answers = train[row]
        by_question[question][best_answer(parse_answers(answers, str(train.path), row))] += 1
    overall = sum(by_question.values(), collections.Counter()).most_common(1)[0][0]
    test = TSVFile(test_tsv, [question_col, answers_col])
    scores = []
    for row in range(len(test)):
        question, answers = test[row]
        guess = by_question[question].most_common(1)[0][0] if question in by_question else overall
        scores.append(parse_answers(answers, str(test.path), row).get(guess, 0.0))
    return sum(scores) / len(scores)


def majority_label_baseline(train_tsv: str | os.PathLike, test_tsv: str | os.PathLike,
                            label_col: int = SNLI_VE_LABEL_COLUMN) -> tuple[str, float]:
    """Classification: the most frequent training label and its accuracy on the test rows."""
    train, test = TSVFile(train_tsv, [label_col]), TSVFile(test_tsv, [label_col])
    label = collections.Counter(train[row][0] for row in range(len(train))).most_common(1)[0][0]
    return label, sum(test[row][0] == label for row in range(len(test))) / len(test)


def _regions_and_sizes(tsv_path: str | os.PathLike, columns: Sequence[int]) -> list[tuple[list[float], tuple[int, int]]]:
    tsv = TSVFile(tsv_path, list(columns))
    rows = []
    for row in range(len(tsv)):
        region, image = tsv[row]
        rows.append((parse_region(region, str(tsv.path), row).tolist(), decode_image(image, str(tsv.path), row).size))
    return rows


def centre_box_baseline(train_tsv: str | os.PathLike, test_tsv: str | os.PathLike,
                        columns: Sequence[int] = REFCOCO_COLUMNS) -> float:
    """Grounding: Acc@0.5 of a box of the training boxes' mean relative width and height, centred."""
    train = _regions_and_sizes(train_tsv, columns)
    mean_w = sum((box[2] - box[0]) / width for box, (width, _) in train) / len(train)
    mean_h = sum((box[3] - box[1]) / height for box, (_, height) in train) / len(train)
    hits = [grounding_hit([width * (1 - mean_w) / 2, height * (1 - mean_h) / 2,
                           width * (1 + mean_w) / 2, height * (1 + mean_h) / 2], box)
            for box, (width, height) in _regions_and_sizes(test_tsv, columns)]
    return float(sum(hits)) / len(hits)


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
