"""Text-to-image samples from `coco_vqgan` TSV rows (reference §5.6): caption instruction -> image codes.

Rows (after `--selected-cols 0,2,1` on a coco_vqgan file) are (uniq-id, caption, codes); (uniq-id, caption)
rows get dummy codes (all 0, for generation-only files); the official 4-column layout (uniq-id, image,
caption, codes) also holds the caption's reference image, which only CLIP image-image similarity uses
(`keep_reference_image`: decoded into the batch's `reference_image` list; otherwise ignored).
The decoder reads and predicts code tokens (code + id of `<code_0>`), marked by `code_mask`; there is no
image input, the encoder sees the text only.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import TextTokenizer, code_token_range, encode_text
from ofa_plugin.vqgan import CodeFormatError, parse_codes

from .collate import BATCH_EXTRAS
from .dataset import TSVTaskDataset
from .images import decode_image

IMAGE_GEN_PROMPT = " what is the complete image? caption: "


def num_image_codes(code_image_size: int, factor: int = 8) -> int:
    """Codes of a `code_image_size` x `code_image_size` image with an f8 tokenizer: (size / 8)^2."""
    if code_image_size <= 0 or code_image_size % factor:
        raise ValueError(f"--code-image-size {code_image_size} is not a positive multiple of {factor}")
    return (code_image_size // factor) ** 2


def caption_words(caption: str, max_words: int) -> str:
    """The first `max_words` whitespace-separated words of the caption (official truncation)."""
    return " ".join(caption.split()[:max_words])


@dataclass
class ImageGenSampleBuilder:
    """Turns (uniq_id, caption[, codes]) columns into a sample: source = bos + prompt + caption + eos,
    target = code tokens + eos, prev_output_tokens = bos + code tokens, `code_masks` True.

    A source longer than `max_source_positions` tokens (a long caption in many BPE pieces) is an error:
    the encoder has no positions for it. With `keep_reference_image` (CLIP ii_sim scoring) every row must be
    a 4-column one, and its image is decoded into the sample's `reference_image`.
    """

    dictionary: Dictionary
    tokenizer: TextTokenizer
    tsv_path: str
    max_src_length: int
    max_source_positions: int
    num_codes: int
    code_dict_size: int
    num_bins: int
    keep_reference_image: bool = False

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        location = f"{self.tsv_path}: row {row}"
        image_field = None
        if len(columns) == 2:
            (uniq_id, caption), code_field = columns, None
        elif len(columns) == 3:
            uniq_id, caption, code_field = columns
        elif len(columns) == 4:
            uniq_id, image_field, caption, code_field = columns
        else:
            raise ValueError(f"{location}: image_gen rows need 2-4 selected columns ((uniq_id, caption[, codes]) "
                             f"or (uniq_id, image, caption, codes)), got {len(columns)}")
        caption = caption_words(caption, self.max_src_length)
        if not caption:
            raise ValueError(f"{location}: empty caption")
        source = encode_text(self.dictionary, self.tokenizer, IMAGE_GEN_PROMPT + caption,
                             append_bos=True, append_eos=True)
        if len(source) > self.max_source_positions:
            raise ValueError(f"{location}: the caption gives {len(source)} source tokens, more than "
                             f"--max-source-positions {self.max_source_positions}; lower --max-src-length "
                             f"({self.max_src_length} words)")
        codes = self.codes(code_field, location)
        eos, bos = torch.LongTensor([self.dictionary.eos()]), torch.LongTensor([self.dictionary.bos()])
        extras = {"code_masks": torch.tensor(True), "caption": caption}
        if self.keep_reference_image:
            if image_field is None:
                raise ValueError(f"{location}: CLIP ii_sim needs the caption's reference image: rows of 4 selected "
                                 f"columns (uniq_id, image, caption, codes), got {len(columns)}")
            extras["reference_image"] = decode_image(image_field, self.tsv_path, row)
        return {
            "uniq_id": uniq_id,
            "source": source,
            "target": torch.cat([codes, eos]),
            "prev_output_tokens": torch.cat([bos, codes]),
            BATCH_EXTRAS: extras,
        }

    def codes(self, code_field: Optional[str], location: str) -> torch.LongTensor:
        """The code tokens of a code column (dummy code 0 everywhere without one)."""
        first_code, _ = code_token_range(len(self.dictionary), self.code_dict_size, self.num_bins)
        if code_field is None:
            return torch.full((self.num_codes,), first_code, dtype=torch.long)
        try:
            codes = parse_codes(code_field, self.code_dict_size, self.num_codes)
        except CodeFormatError as err:
            raise CodeFormatError(f"{location}: code column: {err} (--code-image-size gives {self.num_codes} "
                                  f"codes, --code-dict-size {self.code_dict_size})") from err
        return torch.LongTensor(codes) + first_code


class ImageGenDataset(TSVTaskDataset):
    """TSV rows as image_gen samples; batches carry `code_masks` in `net_input`, where the model reads them."""

    def collater(self, samples: List[Optional[Dict[str, Any]]]) -> Dict[str, Any]:
        batch = super().collater(samples)
        if batch:
            batch["net_input"]["code_masks"] = batch.pop("code_masks")
        return batch
