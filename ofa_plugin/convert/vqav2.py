"""VQA v2 questions + annotations -> vqa_gen TSV and answer -> label pickle (reference §5.3, §9.3).

Columns: question-id, image-id, question, answers, predicted object labels, image
(`--selected-cols 0,5,2,3,4`). The answers column holds `conf|!+answer` items joined by "&&", most
confident first (the training answer is the most confident one). Answers are normalised as the official
VQA evaluation does (`normalize_vqa_answer`: punctuation, number words -> digits, articles, contractions),
and each distinct normalised answer `a` of the question's human answers gets the official VQA accuracy
as its confidence:

    conf(a) = mean over the n leave-one-out subsets of min(1, #answers equal to a in the subset / 3)

which for VQA v2's n = 10 answers is min(1, 0.3 * count): 1 -> 0.3, 2 -> 0.6, 3 -> 0.9, 4+ -> 1.0
(the soft scores of the bottom-up-attention preprocessing that OFA's data follow).

Object labels (used with `--add-object`) come from `--objects`, a JSON file {image id: [label, ...]};
without it the column is empty. The answer -> label pickle (`--ans2label-out`) holds the normalised
`multiple_choice_answer`s given as the answer to at least `--min-answer-count` questions of the counted
annotation files (9 over train + val gives the usual 3129 answers), most frequent first.
`--candidates-only` keeps only candidate answers in the answers column and drops questions left without
any: candidate-constrained training cannot learn an answer outside the trie.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ofa_plugin.data.answers import load_ans2label
from ofa_plugin.data.vqa import ANSWER_SEPARATOR, CONFIDENCE_SEPARATOR, OBJECT_SEPARATOR
from ofa_plugin.metrics.vqa import normalize_vqa_answer, vqa_accuracy_from_human_answers

from .common import (ConversionError, ImageColumn, clean_text, converter_parser, input_dir, input_file,
                     join_items, load_json, require, run, write_pickle, write_rows)

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_PATTERN = "COCO_{subtype}_{image_id:012d}.jpg"
DEFAULT_MIN_ANSWER_COUNT = 9
_CONFIDENCE_DECIMALS = 4


@dataclass
class Question:
    """One question with its answer confidences; `where` names its record."""

    question_id: int
    image_id: int
    question: str
    answers: dict[str, float]  # normalised answer -> confidence, most confident first
    where: str


def answer_confidences(human_answers: Sequence[str], where: str) -> dict[str, float]:
    """Normalised answer -> official VQA accuracy of it against `human_answers`, most confident first
    (equal confidences in order of first appearance). Answers that normalise to nothing ("the", "?")
    can match no prediction: they count among the humans but get no entry."""
    if not human_answers:
        raise ConversionError(f"{where}: no human answers")
    first_raw: dict[str, str] = {}
    for raw in human_answers:
        normalised = normalize_vqa_answer(raw)
        if normalised:
            first_raw.setdefault(normalised, raw)
    confidences = {answer: round(vqa_accuracy_from_human_answers(raw, human_answers), _CONFIDENCE_DECIMALS)
                   for answer, raw in first_raw.items()}
    return dict(sorted(confidences.items(), key=lambda item: -item[1]))


def answers_field(answers: dict[str, float], where: str) -> str:
    """`conf|!+answer` items joined by "&&" (normalised answers cannot hold "|!+": "!" and "+" are removed)."""
    items = [f"{confidence}{CONFIDENCE_SEPARATOR}{answer}" for answer, confidence in answers.items()]
    return join_items(items, ANSWER_SEPARATOR, where)


def annotations_by_question(path: Path) -> dict[int, dict]:
    """question id -> annotation record of a v2_mscoco_*_annotations.json file."""
    records = {}
    for index, record in enumerate(require(load_json(path), "annotations", str(path), list)):
        records[require(record, "question_id", f"{path}: annotations[{index}]", int)] = record
    return records


def read_questions(questions_path: Path, annotations_path: Path) -> tuple[list[Question], str]:
    """The questions with their answer confidences, and the file's data_subtype (e.g. train2014)."""
    data = load_json(questions_path)
    subtype = str(data.get("data_subtype", "")) if isinstance(data, dict) else ""
    annotations = annotations_by_question(annotations_path)
    questions = []
    for index, record in enumerate(require(data, "questions", str(questions_path), list)):
        where = f"{questions_path}: questions[{index}]"
        question_id = require(record, "question_id", where, int)
        where = f"{where} (question id {question_id})"
        if question_id not in annotations:
            raise ConversionError(f"{where}: no annotation in {annotations_path}")
        answer_where = f"{annotations_path}: annotation of question id {question_id}"
        human = [require(a, "answer", answer_where, str) for a in require(annotations[question_id], "answers",
                                                                          answer_where, list)]
        questions.append(Question(question_id, require(record, "image_id", where, int),
                                  clean_text(require(record, "question", where), where),
                                  answer_confidences(human, answer_where), where))
    return answered(questions), subtype


def answered(questions: list[Question]) -> list[Question]:
    """The questions with at least one answer; the others (all answers empty once normalised) are counted."""
    kept = [question for question in questions if question.answers]
    if len(kept) < len(questions):
        logger.warning("%d questions dropped: none of their answers is left after VQA normalisation",
                       len(questions) - len(kept))
    return kept


def count_answers(annotation_files: Sequence[Path]) -> Counter:
    """How many questions have each normalised multiple_choice_answer."""
    counts: Counter = Counter()
    for path in annotation_files:
        for question_id, record in annotations_by_question(path).items():
            where = f"{path}: annotation of question id {question_id}"
            counts[normalize_vqa_answer(require(record, "multiple_choice_answer", where, str))] += 1
    return counts


def build_ans2label(annotation_files: Sequence[Path], min_count: int) -> dict[str, int]:
    """Answers given to at least `min_count` questions -> labels, most frequent first."""
    counts = count_answers(annotation_files)
    kept = sorted((answer for answer, n in counts.items() if n >= min_count and answer),
                  key=lambda answer: (-counts[answer], answer))
    if not kept:
        raise ConversionError(f"no answer is given to {min_count} or more questions in "
                              f"{', '.join(map(str, annotation_files))}")
    return {answer: label for label, answer in enumerate(kept)}


def keep_candidates(questions: list[Question], candidates: dict[str, int]) -> list[Question]:
    """Questions with only their candidate answers; those left with none are dropped (and counted)."""
    kept = []
    for question in questions:
        question.answers = {a: c for a, c in question.answers.items() if a in candidates}
        if question.answers:
            kept.append(question)
    logger.info("--candidates-only: kept %d of %d questions", len(kept), len(questions))
    return kept


def load_objects(path: Path) -> dict[str, list[str]]:
    """image id (as text) -> object labels, from a JSON {image id: [label, ...]} file."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object {{image id: [label, ...]}}")
    for image_id, labels in data.items():
        if not (isinstance(labels, list) and all(isinstance(label, str) for label in labels)):
            raise ConversionError(f"{path}: image id {image_id}: expected a list of labels, got {labels!r}")
    return data


def vqa_rows(questions: Sequence[Question], objects: dict[str, list[str]], images_root: Path, pattern: str,
             subtype: str, column: ImageColumn) -> Iterator[tuple[list[str], str]]:
    """question-id, image-id, question, answers, objects, image."""
    for question in questions:
        labels = [clean_text(label, question.where) for label in objects.get(str(question.image_id), [])]
        path = images_root / pattern.format(subtype=subtype, image_id=question.image_id)
        yield [str(question.question_id), str(question.image_id), question.question,
               answers_field(question.answers, question.where), join_items(labels, OBJECT_SEPARATOR, question.where),
               column(path, question.where)], question.where


def candidate_answers(args, annotations: Path) -> dict[str, int] | None:
    """The answer -> label dict in effect: written with --ans2label-out, or read from --candidates."""
    if args.ans2label_out:
        counted = [input_file(p, "annotation file") for p in args.count_annotations] or [annotations]
        ans2label = build_ans2label(counted, args.min_answer_count)
        write_pickle(ans2label, args.ans2label_out)
        logger.info("%d candidate answers (given to >= %d questions)", len(ans2label), args.min_answer_count)
        return ans2label
    if args.candidates:
        try:
            return load_ans2label(str(input_file(args.candidates, "candidate file")), "{}")
        except ValueError as err:
            raise ConversionError(str(err)) from err
    return None


def check_pattern(pattern: str) -> str:
    """`pattern` if it formats with {subtype} and {image_id}, else an error naming it."""
    try:
        pattern.format(subtype="train2014", image_id=1)
    except (KeyError, IndexError, ValueError) as err:
        raise ConversionError(f"--image-pattern {pattern!r} must use only {{subtype}} and {{image_id}} "
                              f"({err!r})") from err
    return pattern


def main(argv: Sequence[str] | None = None) -> Path:
    """Convert; returns the TSV path."""
    parser = converter_parser(
        "vqav2", "VQA v2 questions + annotations + COCO images -> vqa_gen TSV (+ answer->label pickle).",
        "example (train with --selected-cols 0,5,2,3,4 --ans2label-file trainval_ans2label.pkl):\n"
        "  python -m ofa_plugin.convert.vqav2 --questions v2_OpenEnded_mscoco_train2014_questions.json \\\n"
        "      --annotations v2_mscoco_train2014_annotations.json --images coco/train2014 --out vqa_train.tsv \\\n"
        "      --ans2label-out trainval_ans2label.pkl \\\n"
        "      --count-annotations v2_mscoco_train2014_annotations.json v2_mscoco_val2014_annotations.json \\\n"
        "      --candidates-only")
    parser.add_argument("--questions", required=True, help="v2_OpenEnded_mscoco_<split>_questions.json")
    parser.add_argument("--annotations", required=True, help="v2_mscoco_<split>_annotations.json")
    parser.add_argument("--images", required=True, help="folder of the split's COCO images")
    parser.add_argument("--image-pattern", default=DEFAULT_IMAGE_PATTERN,
                        help="image file name from {subtype} (the questions file's data_subtype) and {image_id} "
                             f"(default {DEFAULT_IMAGE_PATTERN})")
    parser.add_argument("--out", required=True, type=Path, help="the TSV to write")
    parser.add_argument("--objects", help="JSON {image id: [object label, ...]} for the objects column "
                                          "(default: empty column)")
    label_source = parser.add_mutually_exclusive_group()
    label_source.add_argument("--ans2label-out", type=Path, help="write the answer->label pickle here")
    parser.add_argument("--count-annotations", nargs="+", default=[], metavar="FILE",
                        help="annotation files whose answers --ans2label-out counts (default: --annotations)")
    parser.add_argument("--min-answer-count", type=int, default=DEFAULT_MIN_ANSWER_COUNT,
                        help=f"keep answers given to at least this many questions (default {DEFAULT_MIN_ANSWER_COUNT})")
    label_source.add_argument("--candidates", help="an existing answer->label pickle (or .json) for --candidates-only")
    parser.add_argument("--candidates-only", action="store_true",
                        help="keep only candidate answers (of --ans2label-out or --candidates); drop questions "
                             "without any (for candidate-constrained training)")
    args = parser.parse_args(argv)
    pattern = check_pattern(args.image_pattern)
    annotations = input_file(args.annotations, "annotation file")
    questions, subtype = read_questions(input_file(args.questions, "question file"), annotations)
    logger.info("%s: %d questions", args.questions, len(questions))
    images_root = input_dir(args.images, "image folder")
    objects = load_objects(input_file(args.objects, "objects file")) if args.objects else {}
    candidates = candidate_answers(args, annotations)
    if args.candidates_only:
        if candidates is None:
            raise ConversionError("--candidates-only needs --ans2label-out or --candidates")
        questions = keep_candidates(questions, candidates)
    column = ImageColumn(args.image_column, args.out.parent)
    write_rows(args.out, vqa_rows(questions, objects, images_root, pattern, subtype, column),
               len(questions), args.log_every)
    return args.out


if __name__ == "__main__":
    run(main)
