"""Images <-> VQGAN codes as OFA uses them (reference §3.5), and the code column of code TSVs.

- `square_image` / `image_to_tensor`: the extraction preprocessing (RGB -> shorter side to `size` with LANCZOS -> ToTensor
  -> 2x - 1), plus a centre square crop so that every image gives (size/f)^2 codes (a no-op for square
  images, which the official data hold).
- `encode_images(model, images)` -> LongTensor (B, h*w) of codes in raster order.
- `decode_codes(model, codes, size)` -> PIL images (outputs clamped to [-1, 1], mapped to [0, 255] and
  truncated to uint8, as the official `custom_to_pil`).
- `parse_codes` / `read_code_rows`: the space-separated code column, checked for count and range; a
  generated OFA hypothesis (`<code_N>` tokens, or token ids with `token_offset` 50265) reads as well.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import functional as TF

from ..data.tsv import TSVFile
from .gumbel_vq import GumbelVQ

OFA_CODE_TOKEN_OFFSET = 50265  # token id of <code_0> in the official vocabulary (reference §3.5)
_CODE_TOKEN = re.compile(r"<code_(\d+)>")


class CodeFormatError(ValueError):
    """A code field (or a code TSV row) with the wrong number of codes or codes out of range."""


def square_image(image: Image.Image, size: int) -> Image.Image:
    """The RGB image with its shorter side resized to `size` (LANCZOS) and centre-cropped to a square."""
    resize = transforms.Resize(size, interpolation=transforms.InterpolationMode.LANCZOS)
    return transforms.CenterCrop(size)(resize(image.convert("RGB")))


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """A PIL image as the (3, size, size) tensor in [-1, 1] that the VQGAN encodes."""
    return 2.0 * TF.to_tensor(square_image(image, size)) - 1.0


def central_region(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central `size` x `size` pixels (the pretraining image-infilling target: 128 of 256)."""
    return TF.center_crop(images, [size, size])


def grid_side(size: int, factor: int) -> int:
    """Codes per side of a `size` x `size` image; an error unless `size` is a positive multiple of `factor`."""
    if size <= 0 or size % factor:
        raise ValueError(f"image size {size} is not a positive multiple of the tokenizer's factor {factor}")
    return size // factor


@torch.no_grad()
def encode_images(model: GumbelVQ, images: torch.Tensor) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] -> codes (B, H/f * W/f), raster order, on the images' device."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    for side in images.shape[2:]:
        grid_side(side, model.factor)
    weight = model.quant_conv.weight
    codes = model.encode(images.to(weight.device, weight.dtype))
    return codes.flatten(1).to(images.device)


@torch.no_grad()
def codes_to_pixels(model: GumbelVQ, codes: torch.Tensor, size: int) -> torch.Tensor:
    """Codes (B, (size/f)^2) in raster order -> decoded images (B, 3, size, size), not clamped."""
    side = grid_side(size, model.factor)
    codes = torch.as_tensor(codes, dtype=torch.long)
    if codes.dim() != 2 or codes.shape[1] != side * side:
        raise CodeFormatError(f"expected codes of shape (B, {side * side}) for {size} x {size} images "
                              f"({side} x {side} codes), got {tuple(codes.shape)}")
    check_code_range(codes, model.n_embed)
    device = model.quant_conv.weight.device
    return model.decode(codes.view(-1, side, side).to(device))


def check_code_range(codes: torch.Tensor, n_embed: int) -> None:
    """An error naming the first code outside [0, n_embed)."""
    bad = (codes < 0) | (codes >= n_embed)
    if bad.any():
        value = int(codes[bad][0])
        raise CodeFormatError(f"code {value} is out of range: the tokenizer has {n_embed} codes (0..{n_embed - 1})")


def pixels_to_images(pixels: torch.Tensor) -> list[Image.Image]:
    """Decoder outputs (B, 3, H, W), nominally in [-1, 1], as RGB PIL images."""
    scaled = (pixels.detach().float().clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0
    arrays = scaled.permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)
    return [Image.fromarray(array) for array in arrays]


def decode_codes(model: GumbelVQ, codes: torch.Tensor, size: int) -> list[Image.Image]:
    """Codes (B, (size/f)^2) in raster order -> B RGB images of `size` x `size` pixels."""
    return pixels_to_images(codes_to_pixels(model, codes, size))


def format_codes(codes: Sequence[int]) -> str:
    """The TSV code column: space-separated integers."""
    return " ".join(str(int(code)) for code in codes)


def parse_codes(field: str, n_embed: int, num_codes: int | None = None, token_offset: int = 0) -> list[int]:
    """Codes of a code column: integers (minus `token_offset`, e.g. 50265 for OFA token ids) or `<code_N>`
    tokens; an error if there are not `num_codes` of them (when given) or one is out of range."""
    codes = []
    for token in field.split():
        match = _CODE_TOKEN.fullmatch(token)
        if match:
            codes.append(int(match.group(1)))
        elif re.fullmatch(r"-?\d+", token):
            codes.append(int(token) - token_offset)
        else:
            raise CodeFormatError(f"{token!r} is neither an integer code nor a <code_N> token")
    if not codes:
        raise CodeFormatError("the code column is empty")
    if num_codes is not None and len(codes) != num_codes:
        raise CodeFormatError(f"has {len(codes)} codes, expected {num_codes}")
    check_code_range(torch.tensor(codes), n_embed)
    return codes


def square_size(num_codes: int, factor: int) -> int:
    """The image size whose code grid holds `num_codes` codes; an error unless it is a square number."""
    side = math.isqrt(num_codes)
    if side * side != num_codes:
        raise CodeFormatError(f"{num_codes} codes do not form a square grid; give the code image size")
    return side * factor


def read_code_rows(path: str | Path, selected_cols: str, n_embed: int, num_codes: int | None = None,
                   token_offset: int = 0) -> Iterator[tuple[int, str, list[int]]]:
    """(row, uniq-id, codes) of each row of a code TSV; `selected_cols` names the id and code columns
    ("0,1" for coco_vqgan files, "0,2" for image_examples). Errors name the file and row."""
    tsv = TSVFile(path, selected_cols)
    if len(tsv.selected_cols) != 2:
        raise ValueError(f"selected_cols must name 2 columns (uniq-id, codes), got {selected_cols!r}")
    for row in range(len(tsv)):
        uniq_id, field = tsv[row]
        try:
            yield row, uniq_id, parse_codes(field, n_embed, num_codes, token_offset)
        except CodeFormatError as err:
            raise CodeFormatError(f"{tsv.path}: row {row}: {err}") from err
