"""BART text infilling (reference §10.3): whole-word span masking with Poisson span lengths.

The algorithm is fairseq's `DenoisingDataset.add_whole_word_mask` (what OFA's pretraining uses), with an
explicit `torch.Generator` so that a sample is reproducible from its seed alone.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import SPM_SPACE, GPT2Tokenizer, TextTokenizer

MASK_LENGTHS = ("subword", "word", "span-poisson")
REPLACE_LENGTHS = (-1, 0, 1)
POISSON_MAX_K = 128  # the span-length distribution is truncated at k < 128 ...
POISSON_MIN_P = 1e-7  # ... or after the first k whose probability falls below this


def poisson_span_probabilities(poisson_lambda: float) -> torch.Tensor:
    """P(k) = e^-l l^k / k! for k = 0, 1, ... until P(k) < 1e-7 (that k included) or k = 127."""
    probabilities, power, factorial = [], 1.0, 1.0
    for k in range(POISSON_MAX_K):
        probabilities.append(math.exp(-poisson_lambda) * power / factorial)
        power *= poisson_lambda
        factorial *= k + 1
        if probabilities[-1] < POISSON_MIN_P:
            break
    return torch.tensor(probabilities, dtype=torch.float32)


def word_start_mask(dictionary: Dictionary, tokenizer: Optional[TextTokenizer]) -> torch.Tensor:
    """(V,) bool: does symbol i begin a word? Specials, `madeupword*` and non-text symbols (`<mask>`,
    `<code_*>`, `<bin_*>`) count as word starts, as in fairseq's `get_whole_word_mask`; GPT-2 symbols
    start a word when their text starts with a space, SentencePiece pieces when they start with '▁'."""
    starts = torch.ones(len(dictionary), dtype=torch.bool)
    for index in range(dictionary.nspecial, len(dictionary)):
        symbol = dictionary[index]
        if symbol.startswith("madeupword") or symbol.startswith("<"):
            continue
        if isinstance(tokenizer, GPT2Tokenizer):
            starts[index] = not symbol.isdigit() or tokenizer.decode(symbol).startswith(" ")
        else:
            starts[index] = symbol.startswith(SPM_SPACE)
    return starts


@dataclass
class SpanMasker:
    """Masks `ratio` of the words of a [bos ... eos] token sequence (bos and eos are never masked).

    `mask_length`: "span-poisson" (span lengths in words ~ Poisson(`poisson_lambda`); a length-0 span
    becomes an inserted `<mask>`), "word" (one word per span) or "subword" (one token per span).
    `replace_length`: 1 = each span becomes one `<mask>`, 0 = spans are deleted, -1 = every token of a
    span becomes `<mask>`. `random_ratio` of the spans get random tokens instead of `<mask>`.
    """

    word_starts: torch.Tensor  # (V,) bool, `word_start_mask`
    mask_idx: int
    vocab_size: int
    ratio: float = 0.3
    random_ratio: float = 0.0
    mask_length: str = "span-poisson"
    poisson_lambda: float = 3.0
    replace_length: int = 1

    def __post_init__(self) -> None:
        if self.mask_length not in MASK_LENGTHS:
            raise ValueError(f"--mask-length must be one of {MASK_LENGTHS}, got {self.mask_length!r}")
        if self.replace_length not in REPLACE_LENGTHS:
            raise ValueError(f"--replace-length must be one of {REPLACE_LENGTHS}, got {self.replace_length}")
        if self.mask_length == "subword" and self.replace_length == -1:
            raise ValueError("--replace-length -1 needs whole-word masking (--mask-length word or span-poisson)")
        self.span_probabilities = (poisson_span_probabilities(self.poisson_lambda)
                                   if self.mask_length == "span-poisson" else None)

    def is_word_start(self, tokens: torch.Tensor) -> torch.Tensor:
        """(T,) long 0/1; bos and eos (first and last token) are never word starts."""
        if self.mask_length == "subword":
            starts = torch.ones(tokens.size(0), dtype=torch.long)
        else:
            starts = self.word_starts[tokens].long()
        starts[0] = 0
        starts[-1] = 0
        return starts

    def __call__(self, tokens: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The masked copy of `tokens` (1-D, bos first, eos last)."""
        source = tokens.clone()
        is_word_start = self.is_word_start(source)
        num_to_mask = int(math.ceil(float(is_word_start.sum()) * self.ratio))
        if num_to_mask == 0:
            return source
        num_inserts = 0
        if self.span_probabilities is None:
            lengths = torch.ones(num_to_mask, dtype=torch.long)
        else:
            lengths = self._span_lengths(num_to_mask, generator)
            num_to_mask = lengths.size(0)
            lengths = lengths[lengths > 0]
            num_inserts = num_to_mask - lengths.size(0)
            num_to_mask = lengths.size(0)
            if num_to_mask == 0:
                return self._insert_masks(source, num_inserts / source.size(0), generator)
        candidates = is_word_start.nonzero(as_tuple=False).squeeze(1)
        indices = candidates[torch.randperm(candidates.size(0), generator=generator)[:num_to_mask]]
        mask_random = torch.rand(num_to_mask, generator=generator) < self.random_ratio
        to_keep = torch.ones(source.size(0), dtype=torch.bool)
        is_word_start[-1] = 255  # a "very long word": no span runs past the end
        if self.replace_length == 0:
            to_keep[indices] = False
        else:
            self._replace(source, indices, mask_random, generator)
        words_left = lengths - 1
        while indices.size(0) > 0:
            # each unfinished span takes the next token, which costs a word when it starts one
            words_left = words_left - is_word_start[indices + 1]
            unfinished = words_left >= 0
            indices, mask_random, words_left = indices[unfinished] + 1, mask_random[unfinished], words_left[unfinished]
            if self.replace_length != -1:
                to_keep[indices] = False
            else:
                self._replace(source, indices, mask_random, generator)
        source = source[to_keep]
        if num_inserts > 0:
            source = self._insert_masks(source, num_inserts / source.size(0), generator)
        return source

    def _span_lengths(self, budget: int, generator: torch.Generator) -> torch.Tensor:
        """Poisson span lengths (in words) drawn until they cover `budget` words, the last one cut so
        that they sum to exactly `budget`."""
        lengths = torch.multinomial(self.span_probabilities, budget, replacement=True, generator=generator)
        while int(lengths.sum()) < budget:
            more = torch.multinomial(self.span_probabilities, budget, replacement=True, generator=generator)
            lengths = torch.cat([lengths, more])
        cumulative = torch.cumsum(lengths, 0)
        last = int((cumulative < budget).sum())
        lengths[last] = budget - (0 if last == 0 else int(cumulative[last - 1]))
        return lengths[: last + 1]

    def _replace(self, source: torch.Tensor, indices: torch.Tensor, mask_random: torch.Tensor,
                 generator: torch.Generator) -> None:
        source[indices] = self.mask_idx
        num_random = int(mask_random.sum())
        if num_random:
            source[indices[mask_random]] = torch.randint(1, self.vocab_size, (num_random,), generator=generator)

    def _insert_masks(self, tokens: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
        """Insert ceil(len * fraction) `<mask>` (or random) tokens at random places between bos and eos."""
        num_tokens = tokens.size(0)
        count = int(math.ceil(num_tokens * fraction))
        positions = torch.randperm(num_tokens + count - 2, generator=generator)[:count] + 1
        inserted = torch.zeros(num_tokens + count, dtype=torch.bool)
        inserted[positions] = True
        result = torch.full((num_tokens + count,), -1, dtype=torch.long)
        num_random = int(math.ceil(count * self.random_ratio))
        result[positions[num_random:]] = self.mask_idx
        result[positions[:num_random]] = torch.randint(1, self.vocab_size, (num_random,), generator=generator)
        result[~inserted] = tokens
        return result
