"""Caption samples from TSV rows (reference §5.2): instruction, resized image, caption target."""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import TextTokenizer, encode_text

from .images import decode_image
from .text import caption_references, caption_train_target

CAPTION_PROMPT = " what does the image describe?"


@dataclass
class CaptionSampleBuilder:
    """Turns (uniq_id, image, caption) columns into a sample.

    Training rows hold one caption (punctuation stripped, first `max_tgt_length` words); evaluation
    rows hold all references joined by "&&", which are kept joined in the target for the metrics.
    """

    dictionary: Dictionary
    tokenizer: TextTokenizer
    transform: Callable
    tsv_path: str
    max_tgt_length: int
    is_training: bool

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        if len(columns) != 3:
            raise ValueError(f"{self.tsv_path}: row {row}: caption rows need 3 selected columns "
                             f"(uniq_id, image, caption), got {len(columns)}")
        uniq_id, image_field, caption = columns
        image = decode_image(image_field, self.tsv_path, row)
        if self.is_training:
            caption = caption_train_target(caption, self.max_tgt_length)
        else:
            caption = "&&".join(caption_references(caption))
        source = encode_text(self.dictionary, self.tokenizer, CAPTION_PROMPT, append_bos=True, append_eos=True)
        target = encode_text(self.dictionary, self.tokenizer, " " + caption)
        eos, bos = torch.LongTensor([self.dictionary.eos()]), torch.LongTensor([self.dictionary.bos()])
        return {
            "uniq_id": uniq_id,
            "source": source,
            "patch_image": self.transform(image),
            "patch_mask": True,
            "target": torch.cat([target, eos]),
            "prev_output_tokens": torch.cat([bos, target]),
        }
