"""Sequence generation for OFA on top of fairseq's SequenceGenerator.

Starting from bos is done by the task (`OFATask.inference_step` passes `bos_token`). This module
adds what stock fairseq lacks or gets wrong for OFA:
- its CPU n-gram blocker compares against the padding at the end of the token buffer instead of the
  tokens generated so far, so `--no-repeat-ngram-size` silently does nothing on CPU;
- the official `--constraint-range start,end` (reference §7.2): at every step, the logits of every
  token outside [start, end) except the specials 0-3 are set to -inf before the log-softmax, so the
  allowed tokens are renormalised (e.g. 58457,59457 = only `<bin_*>` boxes);
- the official answer-trie constraint of closed-set tasks (VQA beam search), applied the same way;
- image-code generation (`gen_code`, image_gen): the decoder gets `code_masks` (image-code positions
  and norms) and bos/unk can never be generated (eos is kept out by `min_len` = number of codes; the
  official generator bans bos/pad/eos/unk after the log-softmax instead, the same for sampling).
"""
import logging
import math
from typing import Dict, List, Optional, Tuple

import torch
from fairseq.ngram_repeat_block import NGramRepeatBlock
from fairseq.sequence_generator import EnsembleModel, SequenceGenerator
from torch import Tensor

from ofa_plugin.trie import AnswerTrie
from ofa_plugin.vocab import NUM_SPECIAL_TOKENS, parse_constraint_range

logger = logging.getLogger(__name__)


class PrefixNGramRepeatBlock(NGramRepeatBlock):
    """NGramRepeatBlock whose Python path only looks at the `step + 1` tokens generated so far."""

    def _no_repeat_ngram(self, tokens: torch.Tensor, lprobs: torch.Tensor, bsz: int, beam_size: int, step: int):
        return super()._no_repeat_ngram(tokens[:, : step + 1], lprobs, bsz, beam_size, step)


class ConstrainedEnsemble(EnsembleModel):
    """fairseq's model ensemble whose next-token logits are restricted before each model's log-softmax
    (then the ensemble averages probabilities, as stock fairseq does), as the official generator does:

    - `token_range` (start, end): only [start, end) and the specials 0-3 (`--constraint-range`);
    - `trie`: once a sentence's forced prefix is complete, only the trie children of the tokens
      generated after the prefix (`[bos] + answer so far`), so beam search produces candidate answers.

    The trie needs each row's prefix length. Rows are (sentence, beam) pairs that the generator
    reorders and prunes through `reorder_encoder_out`, so the lengths are reordered there too.
    """

    def __init__(self, models, token_range: Optional[Tuple[int, int]] = None, trie: Optional[AnswerTrie] = None,
                 gen_code: bool = False):
        super().__init__(models)
        self.token_range, self.trie, self.gen_code = token_range, trie, gen_code
        self.row_prefix_lengths: Optional[Tensor] = None

    def start_sentences(self, batch_size: int, prefix_tokens: Optional[Tensor], pad: int) -> None:
        """Per-sentence forced-prefix lengths for the next generation (0 without a prefix)."""
        if prefix_tokens is None:
            self.row_prefix_lengths = torch.zeros(batch_size, dtype=torch.long)
        else:
            self.row_prefix_lengths = prefix_tokens.ne(pad).sum(1).cpu()

    def reorder_encoder_out(self, encoder_outs, new_order: Tensor):
        if self.row_prefix_lengths is not None:
            self.row_prefix_lengths = self.row_prefix_lengths.index_select(0, new_order.cpu())
        return super().reorder_encoder_out(encoder_outs, new_order)

    def forward_decoder(
        self,
        tokens: Tensor,
        encoder_outs: List[Dict[str, List[Tensor]]],
        incremental_states: List[Dict[str, Dict[str, Optional[Tensor]]]],
        temperature: float = 1.0,
    ):
        allowed = self._trie_allowed(tokens) if self.trie is not None else None
        code_kwargs = {"code_masks": tokens.new_ones(tokens.size(0), dtype=torch.bool)} if self.gen_code else {}
        log_probs, attentions = [], []
        for i, model in enumerate(self.models):
            decoder_out = model.decoder.forward(
                tokens,
                encoder_out=encoder_outs[i] if self.has_encoder() else None,
                incremental_state=incremental_states[i] if self.has_incremental_states() else None,
                **code_kwargs,
            )
            logits = decoder_out[0][:, -1:, :].div(temperature)
            if self.gen_code:
                dictionary = model.decoder.dictionary
                logits[:, :, [dictionary.bos(), dictionary.unk()]] = -math.inf
            if self.token_range is not None:
                logits[:, :, NUM_SPECIAL_TOKENS:self.token_range[0]] = -math.inf
                logits[:, :, self.token_range[1]:] = -math.inf
            if allowed is not None:
                logits = logits.masked_fill(~allowed.unsqueeze(1), -math.inf)
            extra = decoder_out[1] if len(decoder_out) > 1 else None
            log_probs.append(model.get_normalized_probs((logits, extra), log_probs=True, sample=None)[:, -1, :])
            attentions.append(_last_step_attention(extra))
        attn = None if any(a is None for a in attentions) else torch.stack(attentions).mean(0)
        if len(log_probs) == 1:
            return log_probs[0], attn
        return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs)), attn

    def _trie_allowed(self, tokens: Tensor) -> Tensor:
        """(rows, V) mask: trie children for rows past their prefix, everything for rows still in it."""
        if self.row_prefix_lengths is None or len(self.row_prefix_lengths) != tokens.size(0):
            raise RuntimeError("trie-constrained decoding needs start_sentences() before generation")
        vocab_size = len(self.models[0].decoder.dictionary)
        allowed = torch.ones(tokens.size(0), vocab_size, dtype=torch.bool, device=tokens.device)
        step_length = tokens.size(1)  # bos + tokens generated so far
        rows = (self.row_prefix_lengths < step_length).nonzero().squeeze(1).tolist()
        if rows:
            bos = int(tokens[0, 0])
            prefixes = [[bos] + tokens[r, int(self.row_prefix_lengths[r]) + 1:].tolist() for r in rows]
            allowed[rows] = self.trie.allowed_mask(prefixes, vocab_size, tokens.device)
        return allowed


def _last_step_attention(extra) -> Optional[Tensor]:
    """The last step's attention from a decoder's extra output (a tensor or {"attn": [tensor]}), if any."""
    if extra is None:
        return None
    attn = extra if isinstance(extra, Tensor) else extra.get("attn")
    if isinstance(attn, (list, tuple)):
        attn = attn[0] if attn else None
    return None if attn is None else attn[:, -1, :]


class OFASequenceGenerator(SequenceGenerator):
    """fairseq's beam search with a working CPU n-gram blocker, the official `constraint_range`,
    the candidate-answer trie of closed-set tasks and image-code generation (`gen_code`)."""

    def __init__(self, models, tgt_dict, no_repeat_ngram_size: int = 0, constraint_range: Optional[str] = None,
                 constraint_trie: Optional[AnswerTrie] = None, gen_code: bool = False, **kwargs):
        token_range = parse_constraint_range(constraint_range)
        if token_range is not None or constraint_trie is not None or gen_code:
            models = ConstrainedEnsemble(models, token_range, constraint_trie, gen_code)
        super().__init__(models, tgt_dict, no_repeat_ngram_size=no_repeat_ngram_size, **kwargs)
        if constraint_trie is not None and self.beam_size > constraint_trie.num_sequences:
            # a beam wider than the candidate set can never collect `beam` finished hypotheses
            logger.warning("beam %d > %d candidate answers: using beam %d", self.beam_size,
                           constraint_trie.num_sequences, constraint_trie.num_sequences)
            self.beam_size = constraint_trie.num_sequences
        if no_repeat_ngram_size > 0:
            self.repeat_ngram_blocker = PrefixNGramRepeatBlock(no_repeat_ngram_size)

    def _generate(self, sample, prefix_tokens: Optional[Tensor] = None, **kwargs):
        if isinstance(self.model, ConstrainedEnsemble):
            self.model.start_sentences(sample["net_input"]["src_tokens"].size(0), prefix_tokens, self.pad)
        return super()._generate(sample, prefix_tokens=prefix_tokens, **kwargs)
