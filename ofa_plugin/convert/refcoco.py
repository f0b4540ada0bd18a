"""RefCOCO / RefCOCO+ / RefCOCOg (refer API files) -> refcoco TSVs, one per split (reference §5.4, §9.3).

Inputs: refs(unc).p or refs(umd).p (a pickled list of refs: ref_id, ann_id, image_id, split,
sentences[] with sent_id and sent/raw), the dataset's instances.json (COCO images[] and annotations[] with
bbox [x, y, w, h]) and the COCO train2014 images. The pickle is unpickled as is: convert only files from a
source you trust (a pickle can run code).

Columns: uniq-id ("{ref_id}_{sent_id}"), image-id, text (the sentence's `sent`, else `raw`), region
"x0,y0,x1,y1" (the annotation's box in original pixels: x, y, x + w, y + h), image
(`--selected-cols 0,4,2,3`). One row per (ref, sentence); files `{prefix}_{split}.tsv` for every split
in the refs (refcoco/refcoco+: train, val, testA, testB; refcocog umd: train, val, test).
"""
from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .common import (ConversionError, ImageColumn, clean_text, converter_parser, input_dir, input_file, load_json,
                     require, run, write_rows)

logger = logging.getLogger(__name__)

_COORDINATE_DECIMALS = 4  # COCO boxes have 2 decimals; rounding only removes float noise of x + w


@dataclass
class Expression:
    """One (ref, sentence) row; `where` names its record."""

    uniq_id: str
    image_id: int
    text: str
    region: str
    image_path: Path
    where: str


def load_refs(path: Path) -> list:
    """The refs list of a refer-API pickle."""
    try:
        with open(path, "rb") as handle:
            refs = pickle.load(handle, encoding="utf-8")  # the refer API's pickles are Python 2 ones
    except Exception as err:  # unpickling arbitrary bytes can raise almost any exception type
        raise ConversionError(f"{path}: not a refs pickle ({err!r})") from err
    if not isinstance(refs, list):
        raise ConversionError(f"{path}: expected a pickled list of refs, got {type(refs).__name__}")
    return refs


def box_region(bbox: object, where: str) -> str:
    """COCO [x, y, w, h] -> "x0,y0,x1,y1"."""
    if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
        raise ConversionError(f"{where}: malformed bbox {bbox!r}, expected [x, y, w, h]")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise ConversionError(f"{where}: bbox {bbox!r} has no area")
    return ",".join(repr(round(v, _COORDINATE_DECIMALS)) for v in (x, y, x + w, y + h))


def index_instances(path: Path, images_root: Path) -> tuple[dict[int, Path], dict[int, tuple[object, str]]]:
    """image id -> image file and annotation id -> (bbox, where), from instances.json (boxes are checked
    when a ref uses them)."""
    data = load_json(path)
    image_files = {}
    for index, record in enumerate(require(data, "images", str(path), list)):
        where = f"{path}: images[{index}]"
        image_files[require(record, "id", where, int)] = images_root / require(record, "file_name", where, str)
    regions = {}
    for index, record in enumerate(require(data, "annotations", str(path), list)):
        where = f"{path}: annotations[{index}]"
        regions[require(record, "id", where, int)] = (require(record, "bbox", where), where)
    return image_files, regions


def expressions_by_split(refs: Sequence, refs_path: Path, image_files: dict[int, Path],
                         regions: dict[int, tuple[object, str]], instances: Path) -> dict[str, list[Expression]]:
    """Split -> one Expression per (ref, sentence), in refs order."""
    splits: dict[str, list[Expression]] = {}
    for index, ref in enumerate(refs):
        where = f"{refs_path}: refs[{index}]"
        ref_id = require(ref, "ref_id", where, int)
        where = f"{where} (ref id {ref_id})"
        image_id, ann_id = require(ref, "image_id", where, int), require(ref, "ann_id", where, int)
        if image_id not in image_files:
            raise ConversionError(f"{where}: image id {image_id} is not in {instances}")
        if ann_id not in regions:
            raise ConversionError(f"{where}: annotation id {ann_id} is not in {instances}")
        region = box_region(*regions[ann_id])
        rows = splits.setdefault(require(ref, "split", where, str), [])
        for number, sentence in enumerate(require(ref, "sentences", where, list)):
            sentence_where = f"{where} sentences[{number}]"
            text = sentence.get("sent", sentence.get("raw")) if isinstance(sentence, dict) else None
            sent_id = require(sentence, "sent_id", sentence_where, int)
            rows.append(Expression(f"{ref_id}_{sent_id}", image_id, clean_text(text, sentence_where),
                                   region, image_files[image_id], sentence_where))
    return splits


def refcoco_rows(expressions: Sequence[Expression], column: ImageColumn) -> Iterator[tuple[list[str], str]]:
    """uniq-id, image-id, text, region, image."""
    for e in expressions:
        yield [e.uniq_id, str(e.image_id), e.text, e.region, column(e.image_path, e.where)], e.where


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Convert; returns the TSV paths written."""
    parser = converter_parser(
        "refcoco", "RefCOCO/RefCOCO+/RefCOCOg refs pickle + instances.json + COCO images -> refcoco TSVs.",
        "example (train with --selected-cols 0,4,2,3):\n"
        "  python -m ofa_plugin.convert.refcoco --refs refcoco/refs\\(unc\\).p --instances refcoco/instances.json \\\n"
        "      --images coco/train2014 --prefix refcoco --out-dir refcoco_data")
    parser.add_argument("--refs", required=True, help="refs(unc).p / refs(umd).p of the refer API")
    parser.add_argument("--instances", required=True, help="the dataset's instances.json")
    parser.add_argument("--images", required=True, help="folder of the COCO train2014 images")
    parser.add_argument("--out-dir", required=True, type=Path, help="where the TSVs go")
    parser.add_argument("--prefix", default="refcoco", help="file names {prefix}_{split}.tsv (default refcoco)")
    parser.add_argument("--splits", nargs="+", metavar="SPLIT", help="splits to write (default all in the refs)")
    args = parser.parse_args(argv)
    refs_path, instances = input_file(args.refs, "refs file"), input_file(args.instances, "instances file")
    image_files, regions = index_instances(instances, input_dir(args.images, "image folder"))
    splits = expressions_by_split(load_refs(refs_path), refs_path, image_files, regions, instances)
    logger.info("%s: %s", refs_path, ", ".join(f"{len(rows)} {split} expressions" for split, rows in splits.items()))
    missing = sorted(set(args.splits or ()) - set(splits))
    if missing:
        raise ConversionError(f"{refs_path}: no refs of split(s) {missing} (splits: {sorted(splits)})")
    column = ImageColumn(args.image_column, args.out_dir)
    written = []
    for split in args.splits or sorted(splits):
        path = args.out_dir / f"{args.prefix}_{split}.tsv"
        write_rows(path, refcoco_rows(splits[split], column), len(splits[split]), args.log_every)
        written.append(path)
    return written


if __name__ == "__main__":
    run(main)
