"""Decode the image column of an OFA TSV row: a base64 JPEG/PNG string or an image file path."""
from __future__ import annotations

import base64
import binascii
import io
import re
import struct
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

# Characters of the standard and URL-safe base64 alphabets (plus padding); anything else marks a path.
_BASE64_CHARS = re.compile(r"[A-Za-z0-9+/\-_=]*")
# Longer fields are never file paths (PATH_MAX); shorter base64-only fields are paths if such a file exists.
_MAX_PATH_CHARS = 4096
# How each EXIF Orientation value (2-8; 1 = as stored) turns stored pixels into displayed ones.
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Modes holding one 16-bit grey channel ("I" is what 16-bit PGM/PPM and older PNG decoders give).
_SIXTEEN_BIT_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


class ImageDecodeError(ValueError):
    """The image column of a TSV row is neither a decodable base64 image nor a readable image file."""


def decode_image(field: str, tsv_path: str, row: int) -> Image.Image:
    """The RGB image stored in `field` (base64 image bytes or a path relative to the TSV's folder).

    `tsv_path` and `row` only serve error messages and relative paths. Deliberate choices (on the
    official datasets all of them give the official reader's pixels):
    - EXIF orientation is applied, so the image (and a refcoco box, which is scaled by this image's
      size) is in displayed pixels; the official reader ignores EXIF, its datasets carry none. An
      unreadable EXIF block counts as no orientation, since the pixels themselves are fine.
    - Any mode becomes RGB as PIL converts it (alpha dropped, not composited), except 16-bit grey,
      which PIL clips at 255 (nearly all white): its high byte is kept, as PIL does for 16-bit RGB.
    - Like the official reader, this turns on PIL's process-wide `ImageFile.LOAD_TRUNCATED_IMAGES`:
      a truncated JPEG/PNG loads with its missing part filled (grey/black); one cut inside its
      header is an error.
    - PIL's decompression-bomb limit stays on (the official reader removes it): an image of more
      than 2 * `Image.MAX_IMAGE_PIXELS` pixels (about 179 M) is an error naming file and row.
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
            image.load()
            return _displayed(to_rgb(image), _exif_orientation(image))
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


def _exif_orientation(image: Image.Image) -> int:
    """The EXIF Orientation tag of a loaded image (1 if absent or unreadable)."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except (SyntaxError, ValueError, OSError, struct.error):
        return 1
    return orientation if isinstance(orientation, int) else 1


def _displayed(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned from stored to displayed pixels by its EXIF orientation (unknown values: as stored)."""
    method = _EXIF_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; palette images with transparency go through RGBA to avoid a warning,
    16-bit grey keeps its high byte (values of mode "I" are clipped to the 16-bit range first)."""
    if image.mode in _SIXTEEN_BIT_GREY_MODES:
        grey = np.clip(np.asarray(image, dtype=np.int64), 0, 0xFFFF) >> 8
        image = Image.fromarray(grey.astype(np.uint8))
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")
