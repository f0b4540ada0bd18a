"""COCO captions -> caption TSVs in the official layout (reference §5.2, §9.3).

Columns: uniq-id, image-id, caption, predicted object labels (left empty: the caption task never
reads them), image. Two row kinds:
- stage-1 training rows (`caption_stage1_train.tsv`, `--selected-cols 0,4,2`): one caption per row,
  uniq-id = the caption's id;
- reference rows (`caption_stage2_train.tsv`, `caption_val.tsv`, `caption_test.tsv`,
  `--selected-cols 1,4,2`): one row per image, all its captions joined by "&&", uniq-id = image id.
Captions are lowercased (the caption task strips punctuation but does not lowercase; the official
data are lowercase) and their whitespace collapsed. Our caption scorer reads the references from
these rows, so no COCO-format reference JSON is needed for evaluation.

Inputs: the Karpathy split file (dataset_coco.json: images[] with split, filepath, filename, cocoid,
sentences[].raw/sentid; "restval" images join "train", as in OFA's 113k-image training set) or a COCO
captions file (captions_train2014.json: images[] + annotations[]; name its split with `--split`).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .common import (ConversionError, ImageColumn, clean_text, converter_parser, input_dir, input_file,
                     join_items, load_json, require, run, write_rows)

logger = logging.getLogger(__name__)

REFERENCE_SEPARATOR = "&&"  # what the caption task splits evaluation references on
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}
TRAIN_SPLIT = "train"


@dataclass
class CaptionedImage:
    """One image with its captions as (caption id, caption) pairs; `where` names its record."""

    image_id: str
    path: Path
    where: str
    captions: list[tuple[str, str]] = field(default_factory=list)


def caption_text(raw: object, where: str) -> str:
    """A caption as the TSV holds it: lowercased, whitespace collapsed."""
    return clean_text(raw, where).lower()


def karpathy_images(data: dict, source: Path, images_root: Path) -> dict[str, list[CaptionedImage]]:
    """Split -> images of a Karpathy split file (restval counted as train)."""
    splits: dict[str, list[CaptionedImage]] = {}
    for index, record in enumerate(require(data, "images", str(source), list)):
        where = f"{source}: images[{index}]"
        split = require(record, "split", where, str)
        if split not in KARPATHY_SPLITS:
            raise ConversionError(f"{where}: unknown split {split!r}, expected one of {sorted(KARPATHY_SPLITS)}")
        image_id = record.get("cocoid", record.get("imgid"))
        if image_id is None:
            raise ConversionError(f"{where}: malformed record, missing 'cocoid' (or 'imgid')")
        where = f"{where} (image id {image_id})"
        path = images_root / str(record.get("filepath", "")) / require(record, "filename", where, str)
        image = CaptionedImage(str(image_id), path, where)
        for number, sentence in enumerate(require(record, "sentences", where, list)):
            sentence_where = f"{where} sentences[{number}]"
            sentence_id = str(require(sentence, "sentid", sentence_where, int))
            image.captions.append((sentence_id, caption_text(require(sentence, "raw", sentence_where), sentence_where)))
        if not image.captions:
            raise ConversionError(f"{where}: no sentences")
        splits.setdefault(KARPATHY_SPLITS[split], []).append(image)
    return splits


def coco_images(data: dict, source: Path, images_root: Path) -> list[CaptionedImage]:
    """The images of a COCO captions file that have captions, in images[] order."""
    images: dict[object, CaptionedImage] = {}
    for index, record in enumerate(require(data, "images", str(source), list)):
        where = f"{source}: images[{index}]"
        image_id = require(record, "id", where, int)
        where = f"{where} (image id {image_id})"
        images[image_id] = CaptionedImage(str(image_id), images_root / require(record, "file_name", where, str), where)
    for index, record in enumerate(require(data, "annotations", str(source), list)):
        where = f"{source}: annotations[{index}]"
        caption_id = require(record, "id", where, int)
        where = f"{where} (annotation id {caption_id})"
        image_id = require(record, "image_id", where, int)
        if image_id not in images:
            raise ConversionError(f"{where}: image id {image_id} is not in the file's images[]")
        images[image_id].captions.append((str(caption_id), caption_text(require(record, "caption", where), where)))
    captioned = [image for image in images.values() if image.captions]
    if len(captioned) < len(images):
        logger.warning("%s: %d images without captions skipped", source, len(images) - len(captioned))
    return captioned


def stage1_rows(images: Sequence[CaptionedImage], column: ImageColumn) -> Iterator[tuple[list[str], str]]:
    """One row per caption: caption id, image id, caption, objects (empty), image."""
    for image in images:
        field_value = column(image.path, image.where)
        for caption_id, caption in image.captions:
            yield [caption_id, image.image_id, caption, "", field_value], image.where


def reference_rows(images: Sequence[CaptionedImage], column: ImageColumn) -> Iterator[tuple[list[str], str]]:
    """One row per image: image id (twice), all captions joined by "&&", objects (empty), image."""
    for image in images:
        references = join_items([caption for _, caption in image.captions], REFERENCE_SEPARATOR, image.where)
        yield [image.image_id, image.image_id, references, "", column(image.path, image.where)], image.where


def write_split(out_dir: Path, split: str, images: Sequence[CaptionedImage], column: ImageColumn,
                log_every: int) -> list[Path]:
    """The TSVs of one split: stage-1 and stage-2 files for train, caption_{split}.tsv otherwise."""
    if split == TRAIN_SPLIT:
        stage1, stage2 = out_dir / "caption_stage1_train.tsv", out_dir / "caption_stage2_train.tsv"
        write_rows(stage1, stage1_rows(images, column), sum(len(i.captions) for i in images), log_every)
        write_rows(stage2, reference_rows(images, column), len(images), log_every)
        return [stage1, stage2]
    path = out_dir / f"caption_{split}.tsv"
    write_rows(path, reference_rows(images, column), len(images), log_every)
    return [path]


def read_splits(annotations: Path, images_root: Path, split: str | None) -> dict[str, list[CaptionedImage]]:
    """Split -> images of either input format (detected from the file's structure)."""
    data = load_json(annotations)
    if isinstance(data, dict) and "annotations" in data:
        if split is None:
            raise ConversionError(f"{annotations} is a COCO captions file: name its split with --split "
                                  f"({TRAIN_SPLIT} writes the stage-1 and stage-2 training files)")
        return {split: coco_images(data, annotations, images_root)}
    if isinstance(data, dict) and "images" in data:
        splits = karpathy_images(data, annotations, images_root)
        if split is None:
            return splits
        if split not in splits:
            raise ConversionError(f"{annotations}: no images of split {split!r} (splits: {sorted(splits)})")
        return {split: splits[split]}
    raise ConversionError(f"{annotations}: neither a COCO captions file (images[] + annotations[]) nor a "
                          f"Karpathy split file (images[] with sentences[])")


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Convert; returns the TSV paths written."""
    parser = converter_parser(
        "coco_captions", "COCO captions (Karpathy split or COCO captions JSON) + images -> caption TSVs.",
        "examples:\n"
        "  python -m ofa_plugin.convert.coco_captions --annotations dataset_coco.json --images coco/ \\\n"
        "      --out-dir caption_data\n"
        "  python -m ofa_plugin.convert.coco_captions --annotations annotations/captions_val2014.json \\\n"
        "      --images coco/val2014 --split val --out-dir caption_data\n"
        "train with --selected-cols 0,4,2 (stage 1) or 1,4,2 (stage 2, val, test)")
    parser.add_argument("--annotations", required=True,
                        help="dataset_coco.json (Karpathy split) or captions_<split>.json (COCO)")
    parser.add_argument("--images", required=True,
                        help="image folder: Karpathy: the folder holding <filepath>/<filename> (train2014/, val2014/); "
                             "COCO captions: the folder holding the file names of images[]")
    parser.add_argument("--out-dir", required=True, type=Path, help="where the TSVs go")
    parser.add_argument("--split", help="COCO captions file: its split name (required); Karpathy file: write "
                                        "only this split (train, val or test; default all)")
    args = parser.parse_args(argv)
    annotations = input_file(args.annotations, "annotation file")
    splits = read_splits(annotations, input_dir(args.images, "image folder"), args.split)
    for split, images in splits.items():
        logger.info("%s: %s split, %d images, %d captions", annotations, split, len(images),
                    sum(len(image.captions) for image in images))
    column = ImageColumn(args.image_column, args.out_dir)
    return [path for split, images in splits.items()
            for path in write_split(args.out_dir, split, images, column, args.log_every)]


if __name__ == "__main__":
    run(main)
