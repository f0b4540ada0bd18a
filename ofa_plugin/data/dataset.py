"""A fairseq dataset over one TSV file: random access by row, one sample builder per task.

Each row is turned into a sample by the task's builder; the official readers are sequential and ignore
the index, this one is indexable, so fairseq's shuffling, batching and `--num-workers` all work.
"""
import logging
from typing import Any, Callable, Dict, List, Optional

import numpy as np
from fairseq.data import FairseqDataset

from .collate import collate
from .tsv import TSVFile

logger = logging.getLogger(__name__)

SampleBuilder = Callable[[List[str], int], Dict[str, Any]]


class MalformedRowError(ValueError):
    """A row whose content cannot be turned into a sample; the message names file and row."""


class TSVTaskDataset(FairseqDataset):
    """Rows of `tsv` built into samples by `build_sample(columns, row)`.

    With `skip_malformed=True` a row that fails to build is skipped (dropped from its batch), counted
    and logged instead of stopping the run.
    """

    def __init__(self, tsv: TSVFile, build_sample: SampleBuilder, pad_idx: int, shuffle: bool = False,
                 skip_malformed: bool = False):
        self.tsv = tsv
        self.shuffle = shuffle
        self.build_sample = build_sample
        self.pad_idx = pad_idx
        self.skip_malformed = skip_malformed
        self.num_skipped = 0
        self.epoch = 1

    def __len__(self) -> int:
        return len(self.tsv)

    def __getitem__(self, index: int) -> Optional[Dict[str, Any]]:
        try:
            sample = self.build_sample(self.tsv[index], index)
        except (ValueError, OSError) as err:
            error = self._with_location(err, index)
            if not self.skip_malformed:
                if error is err:
                    raise
                raise error from err
            self.num_skipped += 1
            logger.warning("skipping malformed row (%d skipped so far in this process): %s", self.num_skipped, error)
            return None
        sample["id"] = index
        return sample

    def _with_location(self, err: Exception, index: int) -> Exception:
        """The error itself if it already names the file, else one that names file and row."""
        if str(self.tsv.path) in str(err):
            return err
        return MalformedRowError(f"{self.tsv.path}: row {index}: {err}")

    def collater(self, samples: List[Optional[Dict[str, Any]]]) -> Dict[str, Any]:
        return collate([s for s in samples if s is not None], self.pad_idx)

    def num_tokens(self, index: int) -> int:
        return 1  # batches are formed by --batch-size, as the official tasks do (no length scan)

    def size(self, index: int) -> int:
        return 1

    @property
    def sizes(self) -> np.ndarray:
        return np.ones(len(self), dtype=np.int64)

    def ordered_indices(self) -> np.ndarray:
        """A random permutation when shuffling (fairseq seeds numpy with --seed around this call), else
        file order. The official reader cannot shuffle at all."""
        if self.shuffle:
            return np.random.permutation(len(self)).astype(np.int64)
        return np.arange(len(self), dtype=np.int64)

    def batch_by_size(self, indices: np.ndarray, max_tokens=None, max_sentences=None,
                      required_batch_size_multiple: int = 1) -> List[np.ndarray]:
        """Consecutive chunks of --batch-size samples, the last one possibly smaller (as official).

        fairseq's own batching rounds batches to --required-batch-size-multiple and can silently drop
        the final samples of an evaluation set; with equal-size samples there is nothing to gain from it.
        """
        if not max_sentences:
            raise ValueError("OFA tasks batch by number of samples: pass --batch-size (and --batch-size-valid)")
        return [indices[start:start + max_sentences] for start in range(0, len(indices), max_sentences)]

    def filter_indices_by_size(self, indices: np.ndarray, max_sizes) -> tuple:
        return indices, []  # the official tasks do not filter by length either

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def supports_prefetch(self) -> bool:
        return False
