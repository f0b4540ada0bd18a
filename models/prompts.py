"""Prefix prompts for parameter-efficient tuning (reference §1.12): learned per-layer keys/values."""
from typing import List

import torch
from torch import Tensor, nn


class PrefixPrompt(nn.Module):
    """`length` learned key/value vectors per layer, optionally reparametrised through an MLP."""

    def __init__(self, length: int, num_layers: int, embed_dim: int, num_heads: int,
                 projection: bool, hidden_dim: int):
        super().__init__()
        self.length, self.num_layers, self.num_heads = length, num_layers, num_heads
        self.head_dim = embed_dim // num_heads
        out_dim = num_layers * 2 * embed_dim
        if projection:
            self.embedding = nn.Embedding(length, embed_dim)
            self.trans = nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))
        else:
            self.embedding = nn.Embedding(length, out_dim)
            self.trans = None
        self.dropout = nn.Dropout(0.2)

    def forward(self, bsz: int) -> List[Tensor]:
        """One (2, B, H, length, head_dim) key/value prefix per layer."""
        positions = torch.arange(self.length, device=self.embedding.weight.device)
        prefix = self.embedding(positions)
        if self.trans is not None:
            prefix = self.trans(prefix)
        prefix = self.dropout(prefix.view(1, self.length, 2 * self.num_layers, self.num_heads, self.head_dim))
        prefix = prefix.expand(bsz, -1, -1, -1, -1).permute(2, 0, 3, 1, 4)  # (2L, B, H, P, hd)
        return list(prefix.split(2))


def build_prefix_prompt(args, side: str, num_layers: int, embed_dim: int, num_heads: int):
    """The encoder or decoder prompt module, or None when `--{side}-prompt` is off."""
    if not getattr(args, f"{side}_prompt", False):
        return None
    prompt_type = getattr(args, f"{side}_prompt_type", "prefix")
    if prompt_type != "prefix":
        raise ValueError(f"--{side}-prompt-type {prompt_type!r} is not supported (only 'prefix')")
    return PrefixPrompt(
        getattr(args, f"{side}_prompt_length"), num_layers, embed_dim, num_heads,
        getattr(args, f"{side}_prompt_projection", False), getattr(args, f"{side}_prompt_dim"),
    )
