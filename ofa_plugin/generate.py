"""Sequence generation for OFA on top of fairseq's SequenceGenerator.

Starting from bos is done by the task (`OFATask.inference_step` passes `bos_token`). This module
fixes what stock fairseq gets wrong for OFA: its CPU n-gram blocker compares against the padding at
the end of the token buffer instead of the tokens generated so far, so `--no-repeat-ngram-size`
silently does nothing on CPU.
"""
import torch
from fairseq.ngram_repeat_block import NGramRepeatBlock
from fairseq.sequence_generator import SequenceGenerator


class PrefixNGramRepeatBlock(NGramRepeatBlock):
    """NGramRepeatBlock whose Python path only looks at the `step + 1` tokens generated so far."""

    def _no_repeat_ngram(self, tokens: torch.Tensor, lprobs: torch.Tensor, bsz: int, beam_size: int, step: int):
        return super()._no_repeat_ngram(tokens[:, : step + 1], lprobs, bsz, beam_size, step)


class OFASequenceGenerator(SequenceGenerator):
    """fairseq's beam search with a working CPU n-gram blocker."""

    def __init__(self, models, tgt_dict, no_repeat_ngram_size: int = 0, **kwargs):
        super().__init__(models, tgt_dict, no_repeat_ngram_size=no_repeat_ngram_size, **kwargs)
        if no_repeat_ngram_size > 0:
            self.repeat_ngram_blocker = PrefixNGramRepeatBlock(no_repeat_ngram_size)
