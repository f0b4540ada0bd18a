"""All-candidate scoring of closed-set tasks (VQA all-candidate mode, SNLI-VE, classification, GLUE).

Each candidate answer is scored by its trie-renormalised log-likelihood given the decoder prompt: at
every answer position the logits of tokens the candidates' trie does not allow after the answer prefix
are set to -inf before the log-softmax (reference §5.3). The official code materialises (B x chunk, T, V)
logits and masks; here only the answer positions are projected onto the vocabulary, the encoder runs
once per batch, and the allowed-token masks are built once per candidate chunk and shared by all samples.
"""
from typing import Any, Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ofa_plugin.data.answers import CandidateAnswers

ENCODER_INPUTS = ("src_tokens", "src_lengths", "patch_images", "patch_masks")


def score_candidates(model, sample: Dict[str, Any], candidates: CandidateAnswers,
                     decoder_prompts: Sequence[Tensor], chunk_size: int = 20, append_eos: bool = True) -> Tensor:
    """(B, len(candidates)) float32 sums of trie-renormalised log-probs of every candidate (and its eos,
    unless `append_eos` is False) after each sample's decoder prompt."""
    return score_candidate_tokens(model, sample, candidates, decoder_prompts, chunk_size, append_eos)[0]


def score_candidate_tokens(model, sample: Dict[str, Any], candidates: CandidateAnswers,
                           decoder_prompts: Sequence[Tensor], chunk_size: int = 20,
                           append_eos: bool = True) -> Tuple[Tensor, Tensor]:
    """`score_candidates`' (B, K) sums and the (B, K, L) per-token log-probs they add up, L = longest
    candidate + 1: [b, k, j] is token j of candidate k, j = len(tokens) its eos (0 without `append_eos`),
    0 past its end. A hypothesis's positional scores without a second scoring pass."""
    if chunk_size < 1:
        raise ValueError(f"candidate chunk size must be >= 1, got {chunk_size}")
    net_input = sample["net_input"]
    encoder_out = model.encoder(**{name: net_input[name] for name in ENCODER_INPUTS if name in net_input})
    batch_size = net_input["src_tokens"].size(0)
    if len(decoder_prompts) != batch_size:
        raise ValueError(f"{len(decoder_prompts)} decoder prompts for a batch of {batch_size}")
    width = max(len(tokens) for tokens in candidates.tokens) + 1
    sums, token_scores = [], []
    for start in range(0, len(candidates), chunk_size):
        indices = range(start, min(start + chunk_size, len(candidates)))
        order = torch.arange(batch_size, device=net_input["src_tokens"].device).repeat_interleave(len(indices))
        chunk_encoder_out = model.encoder.reorder_encoder_out(encoder_out, order)
        chunk_sums, chunk_tokens = _score_chunk(model, chunk_encoder_out, candidates, indices, decoder_prompts,
                                                append_eos, width)
        sums.append(chunk_sums)
        token_scores.append(chunk_tokens)
    return torch.cat(sums, dim=1), torch.cat(token_scores, dim=1)


def _score_chunk(model, encoder_out, candidates: CandidateAnswers, indices: range, decoder_prompts: Sequence[Tensor],
                 append_eos: bool, width: int) -> Tuple[Tensor, Tensor]:
    """(B, len(indices)) scores and (B, len(indices), width) per-token log-probs of the candidates `indices`;
    rows of `encoder_out` are (sample, candidate)."""
    dictionary = model.decoder.dictionary
    bos, eos, pad = dictionary.bos(), dictionary.eos(), dictionary.pad()
    device = encoder_out["encoder_out"][0].device
    # Predicted tokens of each candidate and the trie prefix each is predicted from (shared by all samples).
    predicted = [candidates.tokens[k].tolist() + ([eos] if append_eos else []) for k in indices]
    prefixes = [[bos] + tokens[:j] for tokens in predicted for j in range(len(tokens))]
    allowed = candidates.trie.allowed_mask(prefixes, len(dictionary), device)
    mask_offsets = torch.tensor([0] + [len(t) for t in predicted]).cumsum(0).tolist()

    inputs, rows, positions, slots, targets, mask_rows = [], [], [], [], [], []
    for b, prompt in enumerate(decoder_prompts):
        prompt = prompt.tolist()
        for c, tokens in enumerate(predicted):
            row = b * len(indices) + c
            inputs.append(torch.tensor(prompt + tokens[:-1]))
            rows += [row] * len(tokens)
            positions += range(len(prompt) - 1, len(prompt) - 1 + len(tokens))
            slots += range(len(tokens))
            targets += tokens
            mask_rows += range(mask_offsets[c], mask_offsets[c + 1])
    prev_output_tokens = torch.nn.utils.rnn.pad_sequence(inputs, batch_first=True, padding_value=pad).to(device)
    features, _ = model.decoder(prev_output_tokens, encoder_out=encoder_out, features_only=True)
    rows_t = torch.tensor(rows, device=device)
    logits = model.decoder.output_projection(features[rows_t, torch.tensor(positions, device=device)]).float()
    logits = logits.masked_fill(~allowed[torch.tensor(mask_rows, device=device)], float("-inf"))
    lprobs = F.log_softmax(logits, dim=-1).gather(1, torch.tensor(targets, device=device).unsqueeze(1)).squeeze(1)
    scores = lprobs.new_zeros(len(decoder_prompts) * len(indices)).index_add_(0, rows_t, lprobs)
    token_scores = lprobs.new_zeros(len(scores), width).index_put_((rows_t, torch.tensor(slots, device=device)), lprobs)
    return scores.view(len(decoder_prompts), len(indices)), token_scores.view(len(decoder_prompts), len(indices), width)
