"""The pretraining dataset: image-text pair rows, with the extra examples of the side files, batched as
the two batches (v1, v2) of the pretraining loss (reference §10.3, §6.1)."""
import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

from fairseq.data import data_utils

from ..collate import collate
from ..dataset import TSVTaskDataset
from ..tsv import TSVFile

EXTRA_EVERY = 8  # extra examples come with every 8th image-text row (rows 7, 15, ... in file order)
TEXT_PER_EXTRA = 2  # text infilling examples per extra set (then 1 image infilling, 1 detection)

SideBuilder = Callable[[List[str], int, random.Random], Dict[str, Any]]


@dataclass
class SideReader:
    """Rows of a side file (text, image or detection examples), read in file order, cycling."""

    tsv: TSVFile
    build: SideBuilder

    def example(self, position: int, rng: random.Random) -> Dict[str, Any]:
        row = position % len(self.tsv)
        return self.build(self.tsv[row], row, rng)


@dataclass
class UnifySampleBuilder:
    """(columns, row) of the image-text file -> {"pairs": [...], "extras": [...]}.

    Randomness comes from a `random.Random` seeded with (pretrain_seed, epoch, row), so a row gives the same
    examples in any order or worker. Extra examples (training only) are built for rows with
    row % 8 == 7: the k-th such row of epoch e reads the side files at position (e - 1) * (rows // 8) + k
    (text: twice that and the next), which is the official sequential order when rows are read in file order.
    """

    pairs: Callable[[List[str], int, random.Random], List[Dict[str, Any]]]
    num_rows: int
    seed: int
    text: Optional[SideReader] = None
    image: Optional[SideReader] = None
    detection: Optional[SideReader] = None
    is_training: bool = True
    epoch: int = 1

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        rng = random.Random(f"unify:{self.seed}:{self.epoch}:{row}")
        pairs = self.pairs(columns, row, rng)
        extras = []
        if self.is_training and row % EXTRA_EVERY == EXTRA_EVERY - 1:
            position = (self.epoch - 1) * (self.num_rows // EXTRA_EVERY) + row // EXTRA_EVERY
            if self.text is not None:
                extras += [self.text.example(TEXT_PER_EXTRA * position + i, rng) for i in range(TEXT_PER_EXTRA)]
            extras += [reader.example(position, rng) for reader in (self.image, self.detection) if reader]
        return {"pairs": pairs, "extras": extras}


def collate_examples(examples: List[Dict[str, Any]], pad_idx: int, with_code_masks: bool) -> Dict[str, Any]:
    """A fairseq batch of examples with `conf` (B,); `net_input["code_masks"]` (B,) only if asked."""
    batch = collate(examples, pad_idx)
    code_masks = batch.pop("code_masks")
    if with_code_masks:
        batch["net_input"]["code_masks"] = code_masks
    return batch


class UnifyDataset(TSVTaskDataset):
    """`TSVTaskDataset` of image-text rows whose samples hold several examples each.

    Items are built under `numpy_seed(pretrain_seed, epoch)`, as official: NumPy's global RNG is reset to the
    same state for every row, so the RandomAugment operations (drawn with NumPy) are the same for all images
    of an epoch. RandomAugment's other draws (apply or not, sign) use Python's `random`, unseeded officially;
    here it is seeded per (pretrain_seed, epoch, row) while an item is built, and restored after, so that a
    pretraining run repeats exactly. The collater returns (v1, v2): v1 = the image-text examples (no code
    masks), v2 = the extra examples (with code masks); v1 alone when the batch has no extra examples, {} when
    it has nothing.
    """

    build_sample: UnifySampleBuilder

    def __getitem__(self, index: int) -> Optional[Dict[str, Any]]:
        outer_state = random.getstate()
        random.seed(f"unify-augment:{self.build_sample.seed}:{self.epoch}:{index}")
        try:
            with data_utils.numpy_seed(self.build_sample.seed, self.epoch):
                return super().__getitem__(index)
        finally:
            random.setstate(outer_state)

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.build_sample.epoch = epoch

    def collater(self, samples: List[Optional[Dict[str, Any]]]) -> Union[Dict[str, Any], tuple]:
        pairs, extras = [], []
        for sample in samples:
            if sample is None:
                continue
            pairs += [{**example, "id": sample["id"]} for example in sample["pairs"]]
            extras += [{**example, "id": sample["id"]} for example in sample["extras"]]
        if not pairs:
            return {}
        v1 = collate_examples(pairs, self.pad_idx, with_code_masks=False)
        if not extras:
            return v1
        return v1, collate_examples(extras, self.pad_idx, with_code_masks=True)
