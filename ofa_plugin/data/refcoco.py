"""Referring-expression samples from TSV rows (reference §5.4): instruction, S x S image, 4 bin tokens."""
import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import TextTokenizer, encode_text

from .collate import BATCH_EXTRAS
from .images import decode_image
from .text import pre_caption

REFCOCO_PROMPT = ' which region does the text " {} " describe?'



def parse_region(field: str, tsv_path: str, row: int) -> torch.Tensor:
    """"x0,y0,x1,y1" (original pixels) -> float32 tensor of 4 coordinates, as the official dataset reads it."""
    parts = field.split(",")
    try:
        coords = [float(part) for part in parts]
    except ValueError:
        coords = []
    if len(coords) != 4 or not all(math.isfinite(c) for c in coords):
        raise ValueError(f"{tsv_path}: row {row}: region must be 'x0,y0,x1,y1' (4 finite numbers), got {field!r}")
    return torch.tensor(coords, dtype=torch.float32)


@dataclass
class RefcocoSampleBuilder:
    """Turns (uniq_id, image, text, region) columns into a grounding sample.

    The box, scaled to the resized image, is quantised in float32 exactly as the official dataset does
    (divide by `max_image_size`, times num_bins - 1, round) into 4 `<bin_*>` tokens. The resize ratios
    and the original box travel with the sample so predictions can be mapped back to original pixels.
    """

    dictionary: Dictionary
    tokenizer: TextTokenizer
    transform: Callable
    tsv_path: str
    max_src_length: int
    max_image_size: int
    num_bins: int

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        if len(columns) != 4:
            raise ValueError(f"{self.tsv_path}: row {row}: refcoco rows need 4 selected columns "
                             f"(uniq_id, image, text, region), got {len(columns)}")
        uniq_id, image_field, text, region_field = columns
        region = parse_region(region_field, self.tsv_path, row)
        image = decode_image(image_field, self.tsv_path, row)
        patch_image, resized_box, w_ratio, h_ratio = self.transform(image, region)
        bins = self.quantise(resized_box, row)
        expression = pre_caption(text, self.max_src_length)
        if not expression:
            raise ValueError(f"{self.tsv_path}: row {row}: empty referring expression {text!r}")
        prompt = REFCOCO_PROMPT.format(expression)
        source = encode_text(self.dictionary, self.tokenizer, prompt, append_bos=True, append_eos=True)
        target = encode_text(self.dictionary, None, " ".join(f"<bin_{b}>" for b in bins), use_bpe=False)
        eos, bos = torch.LongTensor([self.dictionary.eos()]), torch.LongTensor([self.dictionary.bos()])
        return {
            "uniq_id": uniq_id,
            "source": source,
            "patch_image": patch_image,
            "patch_mask": True,
            "target": torch.cat([target, eos]),
            "prev_output_tokens": torch.cat([bos, target]),
            BATCH_EXTRAS: {"w_resize_ratios": w_ratio, "h_resize_ratios": h_ratio, "region_coords": region},
        }

    def quantise(self, resized_box: torch.Tensor, row: int) -> List[int]:
        """Bins of a resized-image box, in float32 like the official dataset; error if outside the grid."""
        bins = (resized_box / self.max_image_size * (self.num_bins - 1)).round().long().tolist()
        if not all(0 <= b < self.num_bins for b in bins):
            raise ValueError(f"{self.tsv_path}: row {row}: box {resized_box.tolist()} (resized pixels) gives bins "
                             f"{bins}, outside [0, {self.num_bins - 1}] for max_image_size {self.max_image_size}")
        return bins
