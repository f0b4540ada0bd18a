"""Sequence generation for OFA on top of fairseq's SequenceGenerator.

Starting from bos is done by the task (`OFATask.inference_step` passes `bos_token`). This module
adds what stock fairseq lacks or gets wrong for OFA:
- its CPU n-gram blocker compares against the padding at the end of the token buffer instead of the
  tokens generated so far, so `--no-repeat-ngram-size` silently does nothing on CPU;
- the official `--constraint-range start,end` (reference §7.2): at every step, the logits of every
  token outside [start, end) except the specials 0-3 are set to -inf before the log-softmax, so the
  allowed tokens are renormalised (e.g. 58457,59457 = only `<bin_*>` boxes).
"""
import math
from typing import Dict, List, Optional

import torch
from fairseq.ngram_repeat_block import NGramRepeatBlock
from fairseq.sequence_generator import EnsembleModel, SequenceGenerator
from torch import Tensor

from ofa_plugin.vocab import NUM_SPECIAL_TOKENS, parse_constraint_range


class PrefixNGramRepeatBlock(NGramRepeatBlock):
    """NGramRepeatBlock whose Python path only looks at the `step + 1` tokens generated so far."""

    def _no_repeat_ngram(self, tokens: torch.Tensor, lprobs: torch.Tensor, bsz: int, beam_size: int, step: int):
        return super()._no_repeat_ngram(tokens[:, : step + 1], lprobs, bsz, beam_size, step)


class RangeConstrainedEnsemble(EnsembleModel):
    """fairseq's model ensemble whose next-token log-probs only cover [start, end) and the specials.

    Each model's logits are masked before its own log-softmax (then the ensemble averages
    probabilities, as stock fairseq does), which is what the official generator computes.
    """

    def __init__(self, models, start: int, end: int):
        super().__init__(models)
        self.start, self.end = start, end

    def forward_decoder(
        self,
        tokens: Tensor,
        encoder_outs: List[Dict[str, List[Tensor]]],
        incremental_states: List[Dict[str, Dict[str, Optional[Tensor]]]],
        temperature: float = 1.0,
    ):
        log_probs, attentions = [], []
        for i, model in enumerate(self.models):
            decoder_out = model.decoder.forward(
                tokens,
                encoder_out=encoder_outs[i] if self.has_encoder() else None,
                incremental_state=incremental_states[i] if self.has_incremental_states() else None,
            )
            logits = decoder_out[0][:, -1:, :].div(temperature)
            logits[:, :, NUM_SPECIAL_TOKENS:self.start] = -math.inf
            logits[:, :, self.end:] = -math.inf
            extra = decoder_out[1] if len(decoder_out) > 1 else None
            log_probs.append(model.get_normalized_probs((logits, extra), log_probs=True, sample=None)[:, -1, :])
            attentions.append(_last_step_attention(extra))
        attn = None if any(a is None for a in attentions) else torch.stack(attentions).mean(0)
        if len(log_probs) == 1:
            return log_probs[0], attn
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs)), attn


def _last_step_attention(extra) -> Optional[Tensor]:
    """The last step's attention from a decoder's extra output (a tensor or {"attn": [tensor]}), if any."""
    if extra is None:
        return None
    attn = extra if isinstance(extra, Tensor) else extra.get("attn")
    if isinstance(attn, (list, tuple)):
        attn = attn[0] if attn else None
    return None if attn is None else attn[:, -1, :]


class OFASequenceGenerator(SequenceGenerator):
    """fairseq's beam search with a working CPU n-gram blocker and the official `constraint_range`."""

    def __init__(self, models, tgt_dict, no_repeat_ngram_size: int = 0, constraint_range: Optional[str] = None,
                 **kwargs):
        if constraint_range:
            models = RangeConstrainedEnsemble(models, *parse_constraint_range(constraint_range))
        super().__init__(models, tgt_dict, no_repeat_ngram_size=no_repeat_ngram_size, **kwargs)
        if no_repeat_ngram_size > 0:
            self.repeat_ngram_blocker = PrefixNGramRepeatBlock(no_repeat_ngram_size)
