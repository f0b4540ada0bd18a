"""Random-access reader for the official OFA TSV files.

The official reader walks a file sequentially and ignores the requested index, so fairseq cannot shuffle
it or read it from several DataLoader workers (reference §4.1). `TSVFile` instead keeps a line -> byte
offset index, built once per file and cached on disk, and reads any row with one seek.
"""
from __future__ import annotations

import hashlib
import logging
import operator
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

logger = logging.getLogger(__name__)

# Cache layout: one int64 array = [format version, file size, file mtime_ns, row bounds...].
# Row i spans bytes [bounds[i], bounds[i + 1]) of the file, line terminator included.
_CACHE_VERSION = 1
_HEADER_LEN = 3
_CHUNK_BYTES = 1 << 24
_CACHE_MODE = 0o644


class TSVFormatError(ValueError):
    """A TSV row that cannot be read with the requested columns."""


def parse_selected_cols(selected_cols: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """Turn "0,4,2" or [0, 4, 2] into a tuple of column indices (None = all columns)."""
    if selected_cols is None:
        return None
    if isinstance(selected_cols, str):
        parts = [part.strip() for part in selected_cols.split(",")]
        if not all(part.isdigit() for part in parts):
            raise ValueError(f"selected_cols must be comma-separated column numbers, got {selected_cols!r}")
        return tuple(int(part) for part in parts)
    cols = tuple(operator.index(col) for col in selected_cols)
    if not cols or min(cols) < 0:
        raise ValueError(f"selected_cols must be non-negative column numbers, got {selected_cols!r}")
    return cols


def user_cache_dir() -> Path:
    """Where index caches go ($XDG_CACHE_HOME or ~/.cache): never into the data folders themselves."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ofa_plugin"


def _cache_candidates(path: Path) -> list[Path]:
    """Cache files to try: the user cache, keyed by the absolute path (size and mtime are checked on load)."""
    key = hashlib.sha256(str(path).encode("utf-8")).hexdigest()[:32]
    return [user_cache_dir() / f"{key}.offsets.npy"]


def _file_header(path: Path) -> np.ndarray:
    stat = path.stat()
    return np.array([_CACHE_VERSION, stat.st_size, stat.st_mtime_ns], dtype=np.int64)


def _scan_row_bounds(path: Path) -> np.ndarray:
    """Byte offsets of every row start plus the end of the last row; trailing empty lines are not rows."""
    newline_ends = []
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            positions = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == ord("\n"))
            newline_ends.append(positions.astype(np.int64) + size + 1)
            size += len(chunk)
    bounds = np.concatenate([np.zeros(1, dtype=np.int64), *newline_ends])
    if bounds[-1] != size:  # last line without a terminating newline
        bounds = np.append(bounds, np.int64(size))
    with open(path, "rb") as handle:
        while len(bounds) > 1 and bounds[-1] - bounds[-2] <= 2:
            handle.seek(int(bounds[-2]))
            if handle.read(int(bounds[-1] - bounds[-2])).strip(b"\r\n"):
                break
            bounds = bounds[:-1]
    return bounds


def _load_cached_bounds(cache: Path, header: np.ndarray) -> np.ndarray | None:
    try:
        stored = np.load(cache, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if stored.ndim != 1 or len(stored) <= _HEADER_LEN or not np.array_equal(stored[:_HEADER_LEN], header):
        return None
    return stored[_HEADER_LEN:]


def _save_cached_bounds(cache: Path, header: np.ndarray, bounds: np.ndarray) -> bool:
    """Write atomically (temp file + rename) so concurrent readers never see a partial index."""
    tmp_path = None
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = tempfile.NamedTemporaryFile(dir=cache.parent, prefix=cache.name, suffix=".tmp", delete=False)
        tmp_path = Path(tmp.name)
        with tmp:
            np.save(tmp, np.concatenate([header, bounds]), allow_pickle=False)
        os.chmod(tmp_path, _CACHE_MODE)  # temp files are private; others reading the TSV need the index too
        os.replace(tmp_path, cache)
        return True
    except OSError as err:
        logger.debug("cannot write TSV index cache %s: %s", cache, err)
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        return False


def load_row_bounds(path: Path) -> np.ndarray:
    """Row byte bounds of `path`, from a valid cache if there is one, else scanned and cached."""
    header = _file_header(path)
    candidates = _cache_candidates(path)
    for cache in candidates:
        bounds = _load_cached_bounds(cache, header)
        if bounds is not None:
            return bounds
    bounds = _scan_row_bounds(path)
    if not any(_save_cached_bounds(cache, header, bounds) for cache in candidates):
        logger.warning("could not cache the row index of %s (kept in memory only)", path)
    return bounds


class TSVFile:
    """Random access to the rows of a TSV file: `tsv[row]` is the list of selected columns as strings.

    `selected_cols` is the official `--selected-cols` value ("0,4,2": these columns, in this order) or None
    for all columns. The file handle is opened lazily per process, so an instance can be shared with forked
    (or spawned) DataLoader workers.
    """

    def __init__(
        self, path: str | os.PathLike, selected_cols: str | Sequence[int] | None = None, separator: str = "\t"
    ) -> None:
        self.path = Path(path).resolve()
        if not self.path.is_file():
            raise FileNotFoundError(f"TSV file not found: {path}")
        self.selected_cols = parse_selected_cols(selected_cols)
        self.separator = separator
        self._bounds = load_row_bounds(self.path)
        self._handle: BinaryIO | None = None
        self._handle_pid: int | None = None

    def __len__(self) -> int:
        return len(self._bounds) - 1

    def __getitem__(self, row: int) -> list[str]:
        columns = self.read_line(row).split(self.separator)
        if self.selected_cols is None:
            return columns
        needed = max(self.selected_cols) + 1
        if len(columns) < needed:
            raise TSVFormatError(
                f"{self.path}: row {row} has {len(columns)} columns, expected at least {needed} "
                f"(selected columns {','.join(map(str, self.selected_cols))})"
            )
        return [columns[col] for col in self.selected_cols]

    def read_line(self, row: int) -> str:
        """The raw text of `row` without its line terminator."""
        row = operator.index(row)
        if not 0 <= row < len(self):
            raise IndexError(f"{self.path}: row {row} out of range (file has {len(self)} rows)")
        start, end = int(self._bounds[row]), int(self._bounds[row + 1])
        handle = self._file()
        handle.seek(start)
        raw = handle.read(end - start)
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise TSVFormatError(f"{self.path}: row {row} is not valid UTF-8 ({err})") from err

    def _file(self) -> BinaryIO:
        """This process's handle; a forked worker must not share the parent's file position."""
        if self._handle is None or self._handle_pid != os.getpid():
            self._handle = open(self.path, "rb")
            self._handle_pid = os.getpid()
        return self._handle

    def close(self) -> None:
        """Close this process's file handle (reading again reopens it)."""
        if getattr(self, "_handle", None) is not None and self._handle_pid == os.getpid():
            self._handle.close()
        self._handle = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_handle_pid"] = None
        return state

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TSVFile({str(self.path)!r}, selected_cols={self.selected_cols}, rows={len(self)})"
