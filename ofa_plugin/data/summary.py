"""Gigaword summarisation samples from TSV rows (reference §5.9): text-only, article in, summary out.

Article and summary are normalised with `pre_caption` (first `max_src_length` / `max_tgt_length` words)
and `<unk>` becomes `unk`; the whole prompt is then cut to `max_src_length` tokens (so the closing `"?`
can be lost, as in the official dataset). The target has no leading space. With `noise_ratio` > 0 each
decoder-input token is replaced, with that probability, by a uniform random text token id (the official
range [4, first code id) includes `<mask>`), a regulariser against exposure bias. The official dataset
noises every split; here only training rows are noised, so the validation loss is not randomised (the
metrics and generation never read the noisy decoder input). The raw lower-cased target travels with the
sample as the ROUGE reference.
"""
from dataclasses import dataclass
from typing import Any, Dict, List

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import NUM_SPECIAL_TOKENS, TextTokenizer, encode_text

from .collate import BATCH_EXTRAS
from .text import pre_caption

SUMMARY_PROMPT = ' what is the summary of article " {} "?'
# Batch key of the ROUGE references (the official collater's `target_strs`).
REFERENCE_SUMMARIES = "target_strs"


def add_noise(tokens: torch.Tensor, ratio: float, num_text_tokens: int) -> torch.Tensor:
    """A copy of `tokens` with each one replaced, with probability `ratio`, by a uniform id in
    [4, num_text_tokens) (torch's global RNG, as official)."""
    noisy = tokens.clone()
    replaced = torch.rand(len(tokens)) < ratio
    noisy[replaced] = torch.randint(NUM_SPECIAL_TOKENS, num_text_tokens, (int(replaced.sum()),))
    return noisy


@dataclass
class SummarySampleBuilder:
    """Turns (source article, target summary) columns into a summarisation sample."""

    dictionary: Dictionary
    tokenizer: TextTokenizer
    tsv_path: str
    max_src_length: int
    max_tgt_length: int
    noise_ratio: float
    num_text_tokens: int  # len(dictionary) - code_dict_size - num_bins: text tokens and <mask>

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        if len(columns) != 2:
            raise ValueError(f"{self.tsv_path}: row {row}: gigaword rows need 2 selected columns (source, target), "
                             f"got {len(columns)}")
        source_text, target_text = columns
        reference = target_text.lower()
        article = pre_caption(source_text, self.max_src_length).replace("<unk>", "unk")
        summary = pre_caption(target_text, self.max_tgt_length).replace("<unk>", "unk")
        if not article or not summary:
            raise ValueError(f"{self.tsv_path}: row {row}: empty {'article' if not article else 'summary'}")
        prompt = encode_text(self.dictionary, self.tokenizer, SUMMARY_PROMPT.format(article),
                             length=self.max_src_length)
        target = encode_text(self.dictionary, self.tokenizer, summary)
        decoder_input = add_noise(target, self.noise_ratio, self.num_text_tokens) if self.noise_ratio > 0 else target
        bos, eos = torch.LongTensor([self.dictionary.bos()]), torch.LongTensor([self.dictionary.eos()])
        return {
            "source": torch.cat([bos, prompt, eos]),
            "target": torch.cat([target, eos]),
            "prev_output_tokens": torch.cat([bos, decoder_input]),
            BATCH_EXTRAS: {REFERENCE_SUMMARIES: reference},
        }
