"""Decode the image column of an OFA TSV row: a base64 JPEG/PNG string or an image file path."""
from __future__ import annotations

import base64
import binascii
import io
import re
from pathlib import Path

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Characters of the standard and URL-safe base64 alphabets (plus padding); anything else marks a path.
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/\-_=]*")
# Longer fields are never file paths (PATH_MAX); shorter base64-only fields are paths if such a file exists.
_MAX_PATH_CHARS = 4096


class ImageDecodeError(ValueError):
    """The image column of a TSV row is neither a decodable base64 image nor a readable image file."""


def decode_image(field: str, tsv_path: str, row: int) -> Image.Image:
    """The RGB image stored in `field` (base64 image bytes or a path relative to the TSV's folder).

    `tsv_path` and `row` only serve error messages and relative paths. EXIF orientation is applied (the
    official reader ignores it; the official datasets carry none, so their pixels are unchanged).
    Like the official reader, this turns on PIL's process-wide `ImageFile.LOAD_TRUNCATED_IMAGES`, so
    that slightly truncated JPEGs in large crawled datasets still load.
    """
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    field = field.strip()
    image_file = _as_image_file(field, Path(tsv_path))
    if image_file is None:
        source = "base64 image"
        data = _decode_base64(field, tsv_path, row)
    else:
        source = f"image file {image_file}"
        if not _is_file(image_file):
            raise ImageDecodeError(
                f"{tsv_path}: row {row}: the image column is neither base64 data nor an existing file "
                f"({image_file} not found)"
            )
        try:
            data = image_file.read_bytes()
        except OSError as err:
            raise ImageDecodeError(f"{tsv_path}: row {row}: cannot read {source}: {err}") from err
    try:
        with Image.open(io.BytesIO(data)) as image:
            return _to_rgb(ImageOps.exif_transpose(image))
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageDecodeError(f"{tsv_path}: row {row}: cannot decode {source}: {err}") from err


def _as_image_file(field: str, tsv_path: Path) -> Path | None:
    """The file `field` names, or None if it is base64 data (which can look like "/9j/..." paths)."""
    if len(field) > _MAX_PATH_CHARS or not field:
        return None
    path = Path(field)
    if not path.is_absolute():
        path = tsv_path.parent / path
    if _BASE64_CHARS.fullmatch(field) and not _is_file(path):
        return None
    return path


def _is_file(path: Path) -> bool:
    """Path.is_file that also answers False for names the OS rejects (e.g. a component > 255 bytes)."""
    try:
        return path.is_file()
    except OSError:
        return False


def _decode_base64(field: str, tsv_path: str, row: int) -> bytes:
    """Bytes of a standard or URL-safe base64 string; missing '=' padding is tolerated."""
    padded = field + "=" * (-len(field) % 4)
    try:
        data = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError) as err:
        raise ImageDecodeError(f"{tsv_path}: row {row}: invalid base64 image data: {err}") from err
    if not data:
        raise ImageDecodeError(f"{tsv_path}: row {row}: empty image field")
    return data


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; palette images with transparency go through RGBA to avoid a warning."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")
