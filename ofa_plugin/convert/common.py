"""Shared pieces of the dataset converters: errors, reading inputs, text fields, the image column,
atomic TSV / pickle writing with progress logs, and the command-line frame.

Every error is a `ConversionError` whose message names the input file and the record (annotation,
line, image) it comes from; the command line prints it without a traceback and exits with status 1.
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import pickle
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

IMAGE_COLUMN_MODES = ("base64", "path")
# Images are often shared by consecutive rows (5 captions, several questions or expressions per image).
_IMAGE_CACHE_SIZE = 16
_FORBIDDEN_IN_FIELDS = ("\t", "\n", "\r")


class ConversionError(ValueError):
    """Input that cannot be converted; the message names the file and the record."""


def input_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path, or an error saying which input (`what`) is missing."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{what} {path} not found")
    return path


def input_dir(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path, or an error saying which input folder (`what`) is missing."""
    path = Path(path)
    if not path.is_dir():
        raise ConversionError(f"{what} {path} is not a folder")
    return path


def load_json(path: Path) -> Any:
    """The parsed JSON file; an error naming the file if it is not JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f"{path}: not a JSON file ({err})") from err


def require(record: Any, key: str, where: str, kind: type | tuple[type, ...] | None = None) -> Any:
    """`record[key]`, or an error naming the record if it is missing (or not of `kind`)."""
    if not isinstance(record, Mapping):
        raise ConversionError(f"{where}: malformed record, expected a JSON object/dict, got {type(record).__name__}")
    if key not in record:
        raise ConversionError(f"{where}: malformed record, missing {key!r}")
    value = record[key]
    if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ConversionError(f"{where}: malformed record, {key!r} has the wrong type ({value!r})")
    return value


def clean_text(text: Any, where: str) -> str:
    """`text` as one TSV field: every whitespace run (tabs, newlines too) becomes one space, ends stripped.
    An empty or non-string text is an error naming the record."""
    if not isinstance(text, str):
        raise ConversionError(f"{where}: malformed record, expected text, got {text!r}")
    cleaned = " ".join(text.split())
    if not cleaned:
        raise ConversionError(f"{where}: empty text")
    return cleaned


def join_items(items: Sequence[str], separator: str, where: str) -> str:
    """Items joined by `separator` ("&&" in the official layouts); an item holding it is an error."""
    for item in items:
        if separator in item:
            raise ConversionError(f"{where}: {item!r} contains the list separator {separator!r}")
    return separator.join(items)


def _check_image(data: bytes | Path, path: Path, where: str) -> None:
    """Error unless PIL recognises `data` (bytes or a file) as an image; reads the header only."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data):
            pass
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise ConversionError(f"{where}: image file {path} is not a readable image ({err})") from err


class ImageColumn:
    """The image column of converted rows (reference §4.1, DESIGN §5).

    `base64`: the file's bytes as standard base64, as in the official TSVs (JPEG stays JPEG, no
    re-encoding). `path`: the file's path relative to the TSV's folder, which our reader also accepts
    (much smaller TSVs; the images must stay where they are). Either way the file must exist and be an
    image PIL recognises.
    """

    def __init__(self, mode: str, tsv_dir: Path) -> None:
        if mode not in IMAGE_COLUMN_MODES:
            raise ConversionError(f"image column mode must be one of {IMAGE_COLUMN_MODES}, got {mode!r}")
        self.mode = mode
        self.tsv_dir = tsv_dir.resolve()
        self._recent: OrderedDict[Path, str] = OrderedDict()

    def __call__(self, path: Path, where: str) -> str:
        """The column value for image `path`, referred to by the record `where`."""
        if not path.is_file():
            raise ConversionError(f"{where}: image file {path} not found")
        field = self._recent.get(path)
        if field is None:
            field = self._field(path, where)
            self._recent[path] = field
            if len(self._recent) > _IMAGE_CACHE_SIZE:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(path)
        return field

    def _field(self, path: Path, where: str) -> str:
        if self.mode == "path":
            _check_image(path, path, where)
            return os.path.relpath(path.resolve(), self.tsv_dir)
        data = path.read_bytes()
        _check_image(data, path, where)
        return base64.b64encode(data).decode("ascii")


class TSVWriter:
    """Writes rows to `path` through `path.partial`, renamed into place only when every row is written,
    so a failed conversion never leaves a TSV that looks complete. Logs progress every `log_every` rows."""

    def __init__(self, path: Path, total: int, log_every: int) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.total = total
        self.log_every = max(1, log_every)
        self.rows = 0
        self._start = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.partial, "w", encoding="utf-8", newline="\n")

    def write(self, columns: Sequence[str], where: str) -> None:
        """One row; a field holding a tab or line break (which would break the layout) is an error."""
        for column in columns:
            if any(char in column for char in _FORBIDDEN_IN_FIELDS):
                raise ConversionError(f"{where}: field {column[:80]!r} contains a tab or line break")
        self._handle.write("\t".join(columns) + "\n")
        self.rows += 1
        if self.rows % self.log_every == 0:
            rate = self.rows / max(time.monotonic() - self._start, 1e-9)
            logger.info("%s: %d/%d rows (%.0f rows/s)", self.path.name, self.rows, self.total, rate)

    def __enter__(self) -> "TSVWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._handle.close()
        if exc_type is not None:
            self.partial.unlink(missing_ok=True)
            return
        os.replace(self.partial, self.path)
        logger.info("wrote %d rows to %s", self.rows, self.path)


def write_rows(path: Path, rows: Iterable[tuple[list[str], str]], total: int, log_every: int) -> int:
    """Write `(columns, where)` pairs to `path` (see TSVWriter); returns the number of rows."""
    with TSVWriter(path, total, log_every) as writer:
        for columns, where in rows:
            writer.write(columns, where)
    return writer.rows


def write_pickle(obj: Any, path: Path) -> None:
    """Pickle `obj` to `path` (protocol 4, as the toy world's label files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=4))
    logger.info("wrote %s", path)


def converter_parser(module: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """The parser of `python -m ofa_plugin.convert.<module>` with the options every converter has."""
    parser = argparse.ArgumentParser(prog=f"python -m ofa_plugin.convert.{module}", description=description,
                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-column", choices=IMAGE_COLUMN_MODES, default="base64",
                        help="base64: image bytes in the TSV, as the official files (default); path: the image "
                             "path relative to the TSV's folder (smaller TSVs, images must stay in place)")
    parser.add_argument("--log-every", type=int, default=10000, metavar="N",
                        help="log progress every N written rows (default 10000)")
    return parser


def run(main: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> None:
    """Run a converter's `main` as a command: progress on stderr, a ConversionError printed as one
    'error: ...' line with exit status 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        force=True)  # importing the plugin (fairseq) has configured logging already
    try:
        main(argv)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
