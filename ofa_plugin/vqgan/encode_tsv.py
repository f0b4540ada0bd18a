"""Image TSV -> code TSV with a VQGAN tokenizer, in the layouts of the official image-code files.

    python -m ofa_plugin.vqgan.encode_tsv --vqgan-config-path model.yaml --vqgan-model-path last.ckpt \
        --input images.tsv --output codes.tsv [--layout coco_vqgan] [--selected-cols 0,1,2]

Layouts (reference §5.6, §10.2):
- `coco_vqgan` (text-to-image, `image_gen` task with `--selected-cols 0,2,1`): input columns uniq-id, image,
  caption -> output `uniq-id \\t codes \\t caption`; the whole image at `--code-image-size` (default 256:
  1024 codes).
- `image_examples` (pretraining image infilling): input uniq-id, image -> output `uniq-id \\t image \\t codes`,
  where the image is the square 2S x 2S picture (base64 JPEG) and the codes are those of its central S x S
  region (S = `--code-image-size`, default 128: a 256 x 256 image and 256 codes).
Images may be base64 or file paths (as in every TSV of the plugin); `--selected-cols` picks the input
columns (e.g. "0,4,2" for a toy-world or official caption TSV).
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence, TextIO

import torch
from PIL import Image

from ..data.images import decode_image
from ..data.toyworld.scene import encode_image_base64
from ..data.tsv import TSVFile
from .codes import central_region, encode_images, format_codes, image_to_tensor, square_image
from .gumbel_vq import GumbelVQ
from .loading import load_vqgan

logger = logging.getLogger(__name__)


# One encoded row: (output columns before the codes, pixels to encode, output columns after the codes)
RowParts = tuple[list[str], torch.Tensor, list[str]]


def _coco_vqgan_row(columns: list[str], image: Image.Image, size: int) -> RowParts:
    uniq_id, _, caption = columns
    if not caption.strip():
        raise ValueError("empty caption")
    return [uniq_id], image_to_tensor(image, size), [caption]


def _image_examples_row(columns: list[str], image: Image.Image, size: int) -> RowParts:
    picture = square_image(image, 2 * size)
    return [columns[0], encode_image_base64(picture)], central_region(image_to_tensor(picture, 2 * size), size), []


@dataclass(frozen=True)
class Layout:
    """An output layout: its input columns, defaults, and how it turns (columns, image, S) into a row."""

    columns: tuple[str, ...]  # input columns, in `--selected-cols` order (uniq-id and image first)
    default_selected_cols: str
    default_code_image_size: int
    row_parts: Callable[[list[str], Image.Image, int], RowParts]


LAYOUTS = {
    "coco_vqgan": Layout(("uniq-id", "image", "caption"), "0,1,2", 256, _coco_vqgan_row),
    "image_examples": Layout(("uniq-id", "image"), "0,1", 128, _image_examples_row),
}


def _write_batch(model: GumbelVQ, batch: list[RowParts], out: TextIO) -> None:
    """Encode a batch of rows and write them."""
    codes = encode_images(model, torch.stack([pixels for _, pixels, _ in batch])).tolist()
    for (before, _, after), row_codes in zip(batch, codes):
        out.write("\t".join([*before, format_codes(row_codes), *after]) + "\n")


def encode_tsv(model: GumbelVQ, input_path: str | Path, output_path: str | Path, layout: str = "coco_vqgan",
               selected_cols: str | None = None, code_image_size: int | None = None, batch_size: int = 16) -> int:
    """Write the code TSV of `input_path` in `layout`; returns the number of rows written. Errors in a
    row name the input file and the row."""
    spec = LAYOUTS[layout]
    size = code_image_size or spec.default_code_image_size
    if size % model.factor:
        raise ValueError(f"--code-image-size {size} is not a multiple of the tokenizer's factor {model.factor}")
    tsv = TSVFile(input_path, selected_cols or spec.default_selected_cols)
    if len(tsv.selected_cols) != len(spec.columns):
        raise ValueError(f"layout {layout} reads {len(spec.columns)} input columns ({', '.join(spec.columns)}), "
                         f"--selected-cols names {len(tsv.selected_cols)}")
    batch: list[RowParts] = []
    with open(output_path, "w", encoding="utf-8", newline="\n") as out:
        for row in range(len(tsv)):
            columns = tsv[row]
            image = decode_image(columns[1], str(tsv.path), row)
            try:
                batch.append(spec.row_parts(columns, image, size))
            except ValueError as err:
                raise ValueError(f"{tsv.path}: row {row}: {err}") from err
            if len(batch) == batch_size or row == len(tsv) - 1:
                _write_batch(model, batch, out)
                batch.clear()
                logger.info("encoded %d/%d rows", row + 1, len(tsv))
    logger.info("wrote %d rows of %d codes (%s) to %s", len(tsv), (size // model.factor) ** 2, layout, output_path)
    return len(tsv)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: `python -m ofa_plugin.vqgan.encode_tsv ...`."""
    parser = argparse.ArgumentParser(prog="python -m ofa_plugin.vqgan.encode_tsv", description=__doc__.split("\n")[0])
    parser.add_argument("--vqgan-config-path", required=True, help="taming config YAML (model.params)")
    parser.add_argument("--vqgan-model-path", required=True, help="taming checkpoint (state_dict)")
    parser.add_argument("--input", required=True, help="image TSV (uniq-id, image[, caption])")
    parser.add_argument("--output", required=True, help="code TSV to write")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="coco_vqgan", help="output layout")
    parser.add_argument("--selected-cols", help="input columns in the layout's order (default: "
                        + "; ".join(f"{name} {spec.default_selected_cols}" for name, spec in LAYOUTS.items()) + ")")
    parser.add_argument("--code-image-size", type=int, help="pixels per side of the encoded square (default: "
                        + "; ".join(f"{name} {spec.default_code_image_size}" for name, spec in LAYOUTS.items()) + ")")
    parser.add_argument("--batch-size", type=int, default=16, help="images per encoder call")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    model = load_vqgan(args.vqgan_config_path, args.vqgan_model_path, args.device)
    encode_tsv(model, args.input, args.output, args.layout, args.selected_cols, args.code_image_size, args.batch_size)


if __name__ == "__main__":
    main()
