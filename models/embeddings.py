"""Shared embedding helpers: token embeddings, position tables and the TUPE-style absolute bias."""
from typing import Optional

import torch
from torch import Tensor, nn


def build_embedding(num_embeddings: int, dim: int, padding_idx: Optional[int] = None) -> nn.Embedding:
    """nn.Embedding with N(0, dim**-0.5) init (padding row zero), as the official helper."""
    embedding = nn.Embedding(num_embeddings, dim, padding_idx=padding_idx)
    nn.init.normal_(embedding.weight, mean=0, std=dim ** -0.5)
    if padding_idx is not None:
        nn.init.zeros_(embedding.weight[padding_idx])
    return embedding


def absolute_position_bias(q_linear: nn.Linear, k_linear: nn.Linear, query_pos: Tensor, key_pos: Tensor,
                           num_heads: int, scaling: float) -> Tensor:
    """(B, H, Tq, Tk) bias (q_pos * scaling) @ k_pos^T from layer-normed position embeddings (B, T, D)."""
    bsz = query_pos.size(0)
    q = q_linear(query_pos).view(bsz, query_pos.size(1), num_heads, -1).transpose(1, 2) * scaling
    k = k_linear(key_pos).view(bsz, key_pos.size(1), num_heads, -1).transpose(1, 2)
    return torch.matmul(q, k.transpose(2, 3))


def gather_bucket_bias(table: nn.Embedding, buckets: Tensor) -> Tensor:
    """Look up relative-position buckets (..., Tq, Tk) -> bias (..., H, Tq, Tk)."""
    values = torch.nn.functional.embedding(buckets, table.weight)
    return values.movedim(-1, -3)
