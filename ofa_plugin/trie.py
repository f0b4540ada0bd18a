"""Prefix tree of candidate answers, for constrained decoding and scoring (reference §5.3, §7.2).

Closed-set tasks (VQA, SNLI-VE, classification, GLUE) insert `[bos] + answer tokens + [eos]` for every
candidate; at each decoding step only the children of the prefix generated so far are allowed. As in
the official trie, a prefix that is not in the tree allows only eos, so decoding always terminates.
"""
from typing import Dict, Iterable, List, Sequence

import torch

_END = -1  # marks where a sequence ends (a sequence may be the prefix of a longer one)


class AnswerTrie:
    """Token sequences of a candidate set; `next_tokens(prefix)` lists what may follow `prefix`."""

    def __init__(self, sequences: Iterable[Sequence[int]], eos: int):
        self.eos = eos
        self._root: Dict[int, dict] = {}
        self.num_sequences = 0  # distinct sequences (complete paths), e.g. the beam's useful maximum
        for sequence in sequences:
            node = self._root
            for token in sequence:
                node = node.setdefault(int(token), {})
            if _END not in node:
                node[_END] = {}
                self.num_sequences += 1

    def next_tokens(self, prefix: Sequence[int]) -> List[int]:
        """Children of the node reached by `prefix` (in insertion order); [eos] if no such node."""
        node = self._root
        for token in prefix:
            node = node.get(int(token))
            if node is None:
                return [self.eos]
        children = [token for token in node if token != _END]
        return children or [self.eos]

    def allowed_mask(self, prefixes: Sequence[Sequence[int]], vocab_size: int,
                     device: torch.device | str = "cpu") -> torch.Tensor:
        """(len(prefixes), vocab_size) bool mask, row i = the tokens allowed after prefixes[i].

        One scatter for all rows: the Python work is per row and trie level, never per vocabulary entry.
        """
        allowed = [self.next_tokens(prefix) for prefix in prefixes]
        rows = torch.repeat_interleave(torch.arange(len(allowed)), torch.tensor([len(a) for a in allowed],
                                                                                dtype=torch.long))
        columns = torch.tensor([token for tokens in allowed for token in tokens], dtype=torch.long)
        mask = torch.zeros(len(allowed), vocab_size, dtype=torch.bool)
        mask[rows, columns] = True
        return mask.to(device)
