"""One pretraining example: the sample dict that `collate` batches, plus its loss weight and code flag."""
from typing import Any, Dict

import torch
from fairseq.data import Dictionary

from ..collate import BATCH_EXTRAS

EXTRA_CONF = 2.0  # loss weight of the text infilling, image infilling and detection examples (official)


def make_example(dictionary: Dictionary, uniq_id: str, source: torch.Tensor, target: torch.Tensor,
                 patch_image: torch.Tensor, patch_mask: bool, conf: float = 1.0,
                 code_mask: bool = False) -> Dict[str, Any]:
    """`source` is the full encoder input ([bos] ... [eos]); `target` the decoder text without bos/eos:
    the model is trained on `target + [eos]` from `[bos] + target`. `conf` multiplies the example's
    log-likelihoods in the criterion; `code_mask` marks image-code targets (decoder code positions)."""
    bos, eos = torch.LongTensor([dictionary.bos()]), torch.LongTensor([dictionary.eos()])
    return {
        "uniq_id": uniq_id,
        "source": source,
        "patch_image": patch_image,
        "patch_mask": patch_mask,
        "target": torch.cat([target, eos]),
        "prev_output_tokens": torch.cat([bos, target]),
        BATCH_EXTRAS: {"conf": torch.tensor(conf, dtype=torch.float32),
                       "code_masks": torch.tensor(code_mask, dtype=torch.bool)},
    }


def blank_image(size: int) -> torch.Tensor:
    """The (3, size, size) zero image of the text-only examples (their patch mask is False)."""
    return torch.zeros(3, size, size)
