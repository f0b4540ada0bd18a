"""SNLI-VE jsonl + Flickr30k images -> snli_ve TSV (reference §5.5, §9.3).

Input lines (snli_ve_{train,dev,test}.jsonl): Flickr30K_ID (the image), sentence1 (the premise, a
Flickr30k caption), sentence2 (the hypothesis), gold_label (entailment / neutral / contradiction),
pairID. Columns: uniq-id (pairID), image-id, image, hypothesis, premise caption, label
(`--selected-cols 0,2,3,4,5`); the image is `<images>/<Flickr30K_ID>.jpg`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ofa_plugin.data.snli_ve import LABEL_TO_ANSWER

from .common import (ConversionError, ImageColumn, clean_text, converter_parser, input_dir, input_file, require,
                     run, write_rows)

logger = logging.getLogger(__name__)


@dataclass
class Pair:
    """One (image, premise, hypothesis, label) line; `where` names it."""

    pair_id: str
    image_id: str
    hypothesis: str
    premise: str
    label: str
    where: str


def read_pairs(path: Path) -> list[Pair]:
    """One Pair per non-empty line of an SNLI-VE jsonl file."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}: line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConversionError(f"{where}: not a JSON object ({err})") from err
            label = require(record, "gold_label", where, str)
            if label not in LABEL_TO_ANSWER:
                raise ConversionError(f"{where}: gold_label must be one of {', '.join(LABEL_TO_ANSWER)}, got {label!r}")
            pairs.append(Pair(clean_text(str(require(record, "pairID", where)), where),
                              clean_text(str(require(record, "Flickr30K_ID", where)), where),
                              clean_text(require(record, "sentence2", where), where),
                              clean_text(require(record, "sentence1", where), where), label, where))
    return pairs


def snli_ve_rows(pairs: Sequence[Pair], images_root: Path, column: ImageColumn) -> Iterator[tuple[list[str], str]]:
    """uniq-id, image-id, image, hypothesis, premise, label."""
    for p in pairs:
        image = column(images_root / f"{p.image_id}.jpg", p.where)
        yield [p.pair_id, p.image_id, image, p.hypothesis, p.premise, p.label], p.where


def main(argv: Sequence[str] | None = None) -> Path:
    """Convert; returns the TSV path."""
    parser = converter_parser(
        "snli_ve", "SNLI-VE jsonl + Flickr30k images -> snli_ve TSV.",
        "example (train with --selected-cols 0,2,3,4,5):\n"
        "  python -m ofa_plugin.convert.snli_ve --jsonl snli_ve_train.jsonl --images flickr30k_images \\\n"
        "      --out snli_ve_train.tsv")
    parser.add_argument("--jsonl", required=True, help="snli_ve_<split>.jsonl")
    parser.add_argument("--images", required=True, help="folder of the Flickr30k images (<Flickr30K_ID>.jpg)")
    parser.add_argument("--out", required=True, type=Path, help="the TSV to write")
    args = parser.parse_args(argv)
    pairs = read_pairs(input_file(args.jsonl, "jsonl file"))
    if not pairs:
        raise ConversionError(f"{args.jsonl}: no lines")
    logger.info("%s: %d pairs", args.jsonl, len(pairs))
    images_root = input_dir(args.images, "image folder")
    column = ImageColumn(args.image_column, args.out.parent)
    write_rows(args.out, snli_ve_rows(pairs, images_root, column), len(pairs), args.log_every)
    return args.out


if __name__ == "__main__":
    run(main)
