"""Decoder prompts of the closed-set tasks (`--prompt-type`, reference §5.3, §5.10).

The decoder input starts with a prompt and continues with the answer:
- `none`: the prompt is [bos];
- `src`: the whole source ([bos] ... [eos]);
- `prev_output`: the source without its final eos.
`prev_output_tokens` is prompt + answer (without its last token) and `target` the same sequence
shifted by one, with every position before the answer set to pad, so the loss covers the answer
(and eos) only. The optional per-position constraint mask allows, at every answer position, the
continuations of the answer prefix in the candidates' trie, and nothing at prompt positions.
"""
from dataclasses import dataclass
from typing import Optional

import torch

from ofa_plugin.trie import AnswerTrie

PROMPT_TYPES = ("none", "src", "prev_output")


def decoder_prompt(source: torch.Tensor, prompt_type: Optional[str], bos: int) -> torch.Tensor:
    """The tokens the decoder is given before the answer, for `source` = [bos] ... [eos]."""
    if prompt_type == "none":
        return torch.LongTensor([bos])
    if prompt_type == "src":
        return source
    if prompt_type == "prev_output":
        return source[:-1]
    raise ValueError(f"--prompt-type must be one of {', '.join(PROMPT_TYPES)}, got {prompt_type!r}")


@dataclass
class PromptedTarget:
    prev_output_tokens: torch.Tensor
    target: torch.Tensor
    decoder_prompt: torch.Tensor
    constraint_mask: Optional[torch.Tensor] = None


def prompted_target(prompt: torch.Tensor, answer: torch.Tensor, pad: int, eos: Optional[int],
                    trie: Optional[AnswerTrie] = None, vocab_size: Optional[int] = None) -> PromptedTarget:
    """Decoder input/target for `answer` after `prompt`; eos is appended unless `eos` is None (GLUE).

    With a trie, also the (len(target), vocab_size) constraint mask: row i of an answer position allows
    `trie.next_tokens([bos] + answer[:j])` (j = tokens of the answer before position i).
    """
    tail = [answer] if eos is None else [answer, torch.LongTensor([eos])]
    sequence = torch.cat([prompt, *tail])
    target = sequence[1:].clone()
    answer_start = len(prompt) - 1
    target[:answer_start] = pad
    result = PromptedTarget(sequence[:-1], target, prompt)
    if trie is not None:
        if vocab_size is None:
            raise ValueError("prompted_target: a trie constraint mask needs vocab_size")
        bos = [int(prompt[0])]
        answer_rows = [bos + answer[:j].tolist() for j in range(len(target) - answer_start)]
        mask = torch.zeros(len(target), vocab_size, dtype=torch.bool)
        mask[answer_start:] = trie.allowed_mask(answer_rows, vocab_size)
        result.constraint_mask = mask
    return result
