"""Code TSV (or generated code tokens) -> PNG images with a VQGAN tokenizer.

    python -m ofa_plugin.vqgan.decode_tsv --vqgan-config-path model.yaml --vqgan-model-path last.ckpt \
        --input codes.tsv --out-dir images/ [--selected-cols 0,1] [--code-image-size 256]

`--selected-cols` names the uniq-id and code columns: "0,1" for coco_vqgan files, "0,2" for image_examples.
The code column holds integers in raster order; `<code_N>` tokens (an OFA hypothesis as printed by
fairseq-generate: `grep ^H- gen.out` then `--selected-cols 0,2`) are read as well, and `--token-offset 50265`
reads OFA token ids. Without `--code-image-size` each row's size follows from its number of codes (a square
grid). Every row becomes `<out-dir>/<uniq-id>.png` (characters other than letters, digits, `.`, `-`, `_`
replaced by `_`).
"""
from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Sequence

import torch

from .codes import OFA_CODE_TOKEN_OFFSET, CodeFormatError, decode_codes, grid_side, read_code_rows, square_size
from .gumbel_vq import GumbelVQ
from .loading import load_vqgan

logger = logging.getLogger(__name__)


def image_file_name(uniq_id: str) -> str:
    """A file name for the image of `uniq_id`."""
    return re.sub(r"[^\w.-]", "_", uniq_id, flags=re.ASCII) + ".png"


def decode_code_tsv(model: GumbelVQ, input_path: str | Path, out_dir: str | Path, selected_cols: str = "0,1",
                    code_image_size: int | None = None, token_offset: int = 0) -> list[Path]:
    """Write one PNG per row of the code TSV; returns the paths. Errors name the file and row."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    num_codes = None if code_image_size is None else grid_side(code_image_size, model.factor) ** 2
    written: dict[str, Path] = {}
    for row, uniq_id, codes in read_code_rows(input_path, selected_cols, model.n_embed, num_codes, token_offset):
        try:
            size = code_image_size or square_size(len(codes), model.factor)
        except CodeFormatError as err:
            raise CodeFormatError(f"{input_path}: row {row}: {err}") from err
        name = image_file_name(uniq_id)
        if name in written:
            raise ValueError(f"{input_path}: row {row}: uniq-id {uniq_id!r} gives the file name {name} of an "
                             "earlier row")
        (image,) = decode_codes(model, torch.tensor([codes]), size)
        written[name] = out / name
        image.save(written[name])
    logger.info("wrote %d images to %s", len(written), out)
    return list(written.values())


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: `python -m ofa_plugin.vqgan.decode_tsv ...`."""
    parser = argparse.ArgumentParser(prog="python -m ofa_plugin.vqgan.decode_tsv",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--vqgan-config-path", required=True, help="taming config YAML (model.params)")
    parser.add_argument("--vqgan-model-path", required=True, help="taming checkpoint (state_dict)")
    parser.add_argument("--input", required=True, help="code TSV (or fairseq-generate H- lines)")
    parser.add_argument("--out-dir", required=True, help="folder for the PNG files")
    parser.add_argument("--selected-cols", default="0,1", help="uniq-id and code columns")
    parser.add_argument("--code-image-size", type=int, help="pixels per side (default: from the number of codes)")
    parser.add_argument("--token-offset", type=int, default=0,
                        help=f"subtracted from integer codes ({OFA_CODE_TOKEN_OFFSET} for OFA token ids)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    model = load_vqgan(args.vqgan_config_path, args.vqgan_model_path, args.device)
    decode_code_tsv(model, args.input, args.out_dir, args.selected_cols, args.code_image_size, args.token_offset)


if __name__ == "__main__":
    main()
