"""Shared embedding helpers: token embeddings, position tables and the TUPE-style absolute bias."""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .positions import image_bucket_table, num_image_buckets, num_token_buckets, token_bucket_table


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


def register_bucket_buffers(module: nn.Module, token_bucket_size: int, image_bucket_size: int, max_positions: int) -> None:
    """The `version` marker and the (persistent, official) relative-position bucket tables."""
    module.register_buffer("version", torch.Tensor([3]))
    module.register_buffer("token_rp_bucket", token_bucket_table(token_bucket_size, max_positions))
    module.register_buffer("image_rp_bucket", image_bucket_table(image_bucket_size))


def relative_position_tables(args, num_layers: int, num_heads: int) -> Tuple[nn.ModuleList, nn.ModuleList]:
    """Per-layer learned 1-D text and 2-D image relative-position bias tables (rows x heads)."""
    text = nn.ModuleList([build_embedding(num_token_buckets(args.token_bucket_size), num_heads) for _ in range(num_layers)])
    image = nn.ModuleList([build_embedding(num_image_buckets(args.image_bucket_size), num_heads) for _ in range(num_layers)])
    return text, image
