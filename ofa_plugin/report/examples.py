"""Test rows next to the model's predictions: what the report shows for a few test images per task.

The predictions are fairseq-generate's official predict JSON (`--results-path DIR` writes
`DIR/test_predict.json`): caption `[{"image_id", "caption"}]`, VQA `[{"question_id", "answer"}]`, refcoco
`[{"uniq_id", "box"}]`. They are matched to the first `count` rows of the test TSV by the id column the
evaluation read (the `--selected-cols` of run_scripts/*/evaluate_*_toy.sh, official layouts of
reference §5). Text-to-image generation writes PNGs instead, indexed by `images.tsv` in its images folder
(uniq_id, j, file relative to the folder, caption; see tasks/image_gen.py); each PNG is checked against its
caption again (ofa_plugin.metrics.toy_image_check; PNG is lossless, so the check sees what the scorer saw).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from PIL import Image

from ofa_plugin.data.images import decode_image
from ofa_plugin.data.refcoco import parse_region
from ofa_plugin.data.text import caption_references
from ofa_plugin.data.tsv import TSVFile
from ofa_plugin.data.vqa import parse_answers
from ofa_plugin.metrics.grounding import box_iou, grounding_hit
from ofa_plugin.metrics.toy_image_check import ToyCheck, check_image

CAPTION_COLUMNS = (1, 4, 2)  # image-id, image, "&&"-joined references
VQA_COLUMNS = (0, 5, 2, 3)  # question-id, image, question, "conf|!+answer" items
REFCOCO_COLUMNS = (0, 4, 2, 3)  # uniq-id, image, expression, "x0,y0,x1,y1"
IMAGE_GEN_ID_COLUMN = 0  # of the coco_vqgan test TSV, which gives the order of the examples
IMAGE_INDEX = "images.tsv"  # written by fairseq-generate --task image_gen --gen-images-path DIR
NUM_EXAMPLES = 8


@dataclass
class CaptionExample:
    image: Image.Image
    caption: str
    references: list[str]


@dataclass
class VqaExample:
    image: Image.Image
    question: str
    answer: str
    answers: dict[str, float]  # reference answer -> confidence

    @property
    def score(self) -> float:
        """The official VQA score of the answer: its confidence, 0 if it is no reference answer."""
        return float(self.answers.get(self.answer, 0.0))


@dataclass
class GroundingExample:
    image: Image.Image
    expression: str
    box: list[float]  # predicted, original pixels (x0, y0, x1, y1)
    gold_box: list[float]

    @property
    def iou(self) -> float:
        return float(box_iou(self.box, self.gold_box))

    @property
    def hit(self) -> bool:
        """Counted as correct by Acc@0.5."""
        return bool(grounding_hit(self.box, self.gold_box))


@dataclass
class GeneratedImagesExample:
    caption: str
    images: list[Image.Image]
    checks: list[ToyCheck]  # one per image, in order

    @property
    def colour_passes(self) -> int:
        return sum(check.colour_ok for check in self.checks)


def read_predictions(predict_json: str | os.PathLike, id_key: str, value_key: str) -> dict[str, Any]:
    """id (as a string) -> predicted value of a predict JSON; ValueError naming the file for a bad record."""
    records = json.loads(Path(predict_json).read_text())
    if not isinstance(records, list):
        raise ValueError(f"{predict_json}: expected a JSON list of predictions")
    predictions = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict) or id_key not in record or value_key not in record:
            raise ValueError(f"{predict_json}: record {index} lacks {id_key!r} or {value_key!r}: {record!r}")
        predictions[str(record[id_key])] = record[value_key]
    return predictions


def _rows(test_tsv: str | os.PathLike, columns: Sequence[int], count: int, predictions: dict[str, Any],
          predict_json: str | os.PathLike) -> Iterator[tuple[Image.Image, Any, list[str], str, int]]:
    """(image, prediction, other columns, file, row) of the first `count` rows; `columns` = id, image, others."""
    tsv = TSVFile(test_tsv, list(columns))
    for row in range(min(count, len(tsv))):
        uniq_id, image, *fields = tsv[row]
        if uniq_id not in predictions:
            raise ValueError(f"{predict_json}: no prediction for id {uniq_id!r} ({tsv.path}: row {row})")
        yield decode_image(image, str(tsv.path), row), predictions[uniq_id], fields, str(tsv.path), row


def caption_examples(test_tsv: str | os.PathLike, predict_json: str | os.PathLike,
                     count: int = NUM_EXAMPLES) -> list[CaptionExample]:
    """The first `count` caption test images with the predicted caption and the references."""
    predictions = read_predictions(predict_json, "image_id", "caption")
    return [CaptionExample(image, caption, caption_references(references))
            for image, caption, (references,), _, _
            in _rows(test_tsv, CAPTION_COLUMNS, count, predictions, predict_json)]


def vqa_examples(test_tsv: str | os.PathLike, predict_json: str | os.PathLike,
                 count: int = NUM_EXAMPLES) -> list[VqaExample]:
    """The first `count` VQA test questions with the predicted answer and the reference answers."""
    predictions = read_predictions(predict_json, "question_id", "answer")
    return [VqaExample(image, question, answer, parse_answers(answers, path, row))
            for image, answer, (question, answers), path, row
            in _rows(test_tsv, VQA_COLUMNS, count, predictions, predict_json)]


def grounding_examples(test_tsv: str | os.PathLike, predict_json: str | os.PathLike,
                       count: int = NUM_EXAMPLES) -> list[GroundingExample]:
    """The first `count` refcoco test expressions with the predicted and the gold box."""
    predictions = read_predictions(predict_json, "uniq_id", "box")
    return [GroundingExample(image, expression, [float(c) for c in box], parse_region(region, path, row).tolist())
            for image, box, (expression, region), path, row
            in _rows(test_tsv, REFCOCO_COLUMNS, count, predictions, predict_json)]


def generated_images(images_dir: str | os.PathLike) -> dict[str, list[tuple[int, Path, str]]]:
    """uniq-id -> its (j, PNG path, caption) rows of `images_dir`/images.tsv, ordered by j; ValueError
    naming the index and row for a malformed row or a missing PNG."""
    root = Path(images_dir)
    index = root / IMAGE_INDEX
    images: dict[str, list[tuple[int, Path, str]]] = {}
    for row, line in enumerate(index.read_text(encoding="utf-8").splitlines()):
        fields = line.split("\t")
        if len(fields) != 4 or not fields[1].isdigit():
            raise ValueError(f"{index}: row {row}: expected uniq_id, j, file, caption; got {line!r}")
        uniq_id, j, file, caption = fields
        if not (root / file).is_file():
            raise ValueError(f"{index}: row {row}: no image file {root / file}")
        images.setdefault(uniq_id, []).append((int(j), root / file, caption))
    return {uniq_id: sorted(rows) for uniq_id, rows in images.items()}


def image_gen_examples(test_tsv: str | os.PathLike, images_dir: str | os.PathLike,
                       count: int = NUM_EXAMPLES) -> list[GeneratedImagesExample]:
    """The first `count` test captions (coco_vqgan TSV order) with their generated images and toy checks;
    the caption is the one the model was given (images.tsv)."""
    images = generated_images(images_dir)
    tsv = TSVFile(test_tsv, [IMAGE_GEN_ID_COLUMN])
    examples = []
    for row in range(min(count, len(tsv))):
        uniq_id, = tsv[row]
        if uniq_id not in images:
            raise ValueError(f"{Path(images_dir) / IMAGE_INDEX}: no images for id {uniq_id!r} "
                             f"({tsv.path}: row {row})")
        pictures, caption = [], images[uniq_id][0][2]
        for _, path, _ in images[uniq_id]:
            with Image.open(path) as picture:
                pictures.append(picture.convert("RGB"))
        examples.append(GeneratedImagesExample(caption, pictures, [check_image(p, caption) for p in pictures]))
    return examples
