"""OFA multi-head attention: one entry point, an eager reference path and a fused SDPA path.

Differences from a textbook attention (reference §1.7): logits are scaled by (head_dim * 2) ** -0.5,
an additive position bias (B, H, T, S) is added to every call, the softmax runs in float32, and
NormFormer's per-head scale `c_attn` multiplies each head's output before `out_proj`.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from fairseq.incremental_decoding_utils import with_incremental_state
from torch import Tensor, nn

ATTENTION_IMPLS = ("eager", "sdpa")
IncrementalState = Dict[str, Dict[str, Optional[Tensor]]]


@with_incremental_state
class OFAAttention(nn.Module):
    """Self- or cross-attention with OFA's scaling, additive bias and optional prefix prompts."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        kdim: Optional[int] = None,
        vdim: Optional[int] = None,
        dropout: float = 0.0,
        encoder_decoder_attention: bool = False,
        scale_factor: float = 2.0,
        scale_heads: bool = False,
        impl: str = "sdpa",
    ):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.scaling = (self.head_dim * scale_factor) ** -0.5
        self.dropout = dropout
        self.encoder_decoder_attention = encoder_decoder_attention
        self.c_attn = nn.Parameter(torch.ones(num_heads)) if scale_heads else None
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.set_impl(impl)
        for proj in (self.k_proj, self.v_proj, self.q_proj):
            nn.init.xavier_uniform_(proj.weight, gain=2 ** -0.5)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def set_impl(self, impl: str) -> None:
        if impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention impl must be one of {ATTENTION_IMPLS}, got {impl!r}")
        self.impl = impl

    def _split_heads(self, x: Tensor, bsz: int) -> Tensor:
        """(T, B, D) -> (B, H, T, hd)."""
        return x.view(x.size(0), bsz, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

    def _keys_values(self, key: Tensor, value: Tensor, bsz: int, static_kv: bool,
                     incremental_state: Optional[IncrementalState]):
        """Project keys/values, reusing (cross) or extending (self) the cached ones when decoding."""
        cache = self.get_incremental_state(incremental_state, "attn_state") if incremental_state is not None else None
        if static_kv and cache is not None:
            return cache["prev_key"], cache["prev_value"]
        k = self._split_heads(self.k_proj(key), bsz)
        v = self._split_heads(self.v_proj(value), bsz)
        if incremental_state is not None:
            if cache is not None:
                k = torch.cat([cache["prev_key"], k], dim=2)
                v = torch.cat([cache["prev_value"], v], dim=2)
            self.set_incremental_state(incremental_state, "attn_state", {"prev_key": k, "prev_value": v})
        return k, v

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Optional[Tensor] = None,
        incremental_state: Optional[IncrementalState] = None,
        static_kv: bool = False,
        attn_bias: Optional[Tensor] = None,
        attn_mask: Optional[Tensor] = None,
        prompt_kv: Optional[Tensor] = None,
    ) -> Tensor:
        """query (T, B, D); key/value (S, B, Dk); attn_bias (B, H, T, S); attn_mask (T, S) additive;
        key_padding_mask (B, S) True at pads; prompt_kv (2, B, H, P, hd) prefix keys/values.
        Returns (T, B, D)."""
        tgt_len, bsz, _ = query.shape
        q = self._split_heads(self.q_proj(query) * self.scaling, bsz)
        k, v = self._keys_values(key, value, bsz, static_kv, incremental_state)
        if prompt_kv is not None:
            k, v = torch.cat([prompt_kv[0], k], dim=2), torch.cat([prompt_kv[1], v], dim=2)
        src_len = k.size(2)
        additive = _additive_mask(attn_bias, attn_mask, key_padding_mask, src_len, q)
        dropout_p = self.dropout if self.training else 0.0
        if self.impl == "sdpa":
            attn = F.scaled_dot_product_attention(q, k, v, attn_mask=additive, dropout_p=dropout_p, scale=1.0)
        else:
            weights = torch.matmul(q, k.transpose(2, 3))
            if additive is not None:
                weights = weights + additive
            probs = F.softmax(weights.float(), dim=-1).type_as(weights)
            attn = torch.matmul(F.dropout(probs, p=dropout_p, training=self.training), v)
        if self.c_attn is not None:
            attn = attn * self.c_attn.view(1, -1, 1, 1).to(attn.dtype)
        attn = attn.permute(2, 0, 1, 3).reshape(tgt_len, bsz, self.embed_dim)
        return self.out_proj(attn)

    def reorder_incremental_state(self, incremental_state: IncrementalState, new_order: Tensor) -> None:
        """Follow the beam reordering. Cached encoder keys are identical within a sentence's beams,
        so they only need reordering when the batch shrinks (finished sentences removed)."""
        cache = self.get_incremental_state(incremental_state, "attn_state")
        if cache is None:
            return
        if self.encoder_decoder_attention and cache["prev_key"].size(0) == new_order.size(0):
            return
        cache = {name: tensor.index_select(0, new_order) for name, tensor in cache.items()}
        self.set_incremental_state(incremental_state, "attn_state", cache)


def _additive_mask(attn_bias, attn_mask, key_padding_mask, src_len: int, q: Tensor) -> Optional[Tensor]:
    """Combine position bias, additive mask and key padding into one (B|1, H|1, T, S) float tensor.

    Prefix-prompt keys (the first S - bias_len keys) get no bias and no mask (official behaviour).
    """
    mask = None
    if attn_bias is not None:
        mask = _pad_left(attn_bias.to(q.dtype), src_len)
    if attn_mask is not None:
        attn_mask = _pad_left(attn_mask.to(q.dtype), src_len)
        mask = attn_mask if mask is None else mask + attn_mask
    if key_padding_mask is not None:
        pad = _pad_left(key_padding_mask, src_len)[:, None, None, :]
        if mask is None:
            mask = torch.zeros(pad.shape, dtype=q.dtype, device=q.device)
        mask = mask.masked_fill(pad, float("-inf"))
    return mask


def _pad_left(x: Tensor, length: int) -> Tensor:
    """Left-pad the last dim with zeros/False up to `length` (room for prefix-prompt keys)."""
    missing = length - x.size(-1)
    if missing <= 0:
        return x
    return F.pad(x, (missing, 0), value=False if x.dtype == torch.bool else 0.0)
