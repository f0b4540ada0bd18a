"""Pre-LN transformer layers with OFA's NormFormer extras, drop path and adapters (reference §1.8, §1.9.4)."""
from typing import Optional

import torch
from fairseq import utils
from fairseq.modules import LayerNorm
from torch import Tensor, nn

from .attention import OFAAttention
from .drop_path import DropPath


class Adapter(nn.Module):
    """Bottleneck adapter with its own residual: x + up(relu(down(x)))."""

    def __init__(self, embed_dim: int, hidden_dim: int):
        super().__init__()
        self.down_proj = nn.Linear(embed_dim, hidden_dim)
        self.up_proj = nn.Linear(hidden_dim, embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.up_proj(torch.relu(self.down_proj(x)))


def _activation_dropout(args) -> float:
    """Official rule: activation_dropout, falling back to relu_dropout when it is 0."""
    return getattr(args, "activation_dropout", 0) or getattr(args, "relu_dropout", 0) or 0.0


class OFAEncoderLayer(nn.Module):
    def __init__(self, args, drop_path_rate: float = 0.0):
        super().__init__()
        dim, ffn = args.encoder_embed_dim, args.encoder_ffn_embed_dim
        self.w_resid = nn.Parameter(torch.ones(dim)) if getattr(args, "scale_resids", False) else None
        self.self_attn = OFAAttention(
            dim, args.encoder_attention_heads, dropout=args.attention_dropout,
            scale_factor=args.attn_scale_factor, scale_heads=getattr(args, "scale_heads", False),
            impl=args.attention_impl,
        )
        self.self_attn_layer_norm = LayerNorm(dim)
        self.dropout = nn.Dropout(args.dropout)
        self.activation_fn = utils.get_activation_fn(args.activation_fn)
        self.activation_dropout = nn.Dropout(_activation_dropout(args))
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.attn_ln = LayerNorm(dim) if getattr(args, "scale_attn", False) else None
        self.ffn_layernorm = LayerNorm(ffn) if getattr(args, "scale_fc", False) else None
        self.final_layer_norm = LayerNorm(dim)
        self.adapter = Adapter(dim, args.adapter_dim) if getattr(args, "adapter", False) else None
        self.drop_path = DropPath(drop_path_rate, batch_dim=1)

    def forward(self, x: Tensor, padding_mask: Optional[Tensor], attn_bias: Tensor,
                prompt_kv: Optional[Tensor] = None) -> Tensor:
        residual = x
        x = self.self_attn_layer_norm(x)
        x = self.self_attn(x, x, x, key_padding_mask=padding_mask, attn_bias=attn_bias, prompt_kv=prompt_kv)
        if self.attn_ln is not None:
            x = self.attn_ln(x)
        x = residual + self.drop_path(self.dropout(x))
        return _feed_forward(self, x)


class OFADecoderLayer(nn.Module):
    def __init__(self, args, drop_path_rate: float = 0.0):
        super().__init__()
        dim, ffn = args.decoder_embed_dim, args.decoder_ffn_embed_dim
        heads, scale_heads = args.decoder_attention_heads, getattr(args, "scale_heads", False)
        self.w_resid = nn.Parameter(torch.ones(dim)) if getattr(args, "scale_resids", False) else None
        self.dropout = nn.Dropout(args.dropout)
        self.self_attn = OFAAttention(
            dim, heads, dropout=args.attention_dropout, scale_factor=args.attn_scale_factor,
            scale_heads=scale_heads, impl=args.attention_impl,
        )
        scale_attn = getattr(args, "scale_attn", False)
        self.self_attn_ln = LayerNorm(dim) if scale_attn else None
        self.cross_attn_ln = LayerNorm(dim) if scale_attn else None
        self.activation_fn = utils.get_activation_fn(args.activation_fn)
        self.activation_dropout = nn.Dropout(_activation_dropout(args))
        self.self_attn_layer_norm = LayerNorm(dim)
        self.encoder_attn = OFAAttention(
            dim, heads, kdim=args.encoder_embed_dim, vdim=args.encoder_embed_dim,
            dropout=args.attention_dropout, encoder_decoder_attention=True,
            scale_factor=args.attn_scale_factor, scale_heads=scale_heads, impl=args.attention_impl,
        )
        self.encoder_attn_layer_norm = LayerNorm(dim)
        self.ffn_layernorm = LayerNorm(ffn) if getattr(args, "scale_fc", False) else None
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)
        self.final_layer_norm = LayerNorm(dim)
        self.adapter = Adapter(dim, args.adapter_dim) if getattr(args, "adapter", False) else None
        self.drop_path = DropPath(drop_path_rate, batch_dim=1)

    def forward(self, x: Tensor, encoder_out: Tensor, encoder_padding_mask: Optional[Tensor],
                incremental_state, self_attn_mask: Optional[Tensor], self_attn_padding_mask: Optional[Tensor],
                self_attn_bias: Tensor, cross_attn_bias: Tensor, prompt_kv: Optional[Tensor] = None) -> Tensor:
        residual = x
        x = self.self_attn_layer_norm(x)
        x = self.self_attn(x, x, x, key_padding_mask=self_attn_padding_mask, incremental_state=incremental_state,
                           attn_bias=self_attn_bias, attn_mask=self_attn_mask, prompt_kv=prompt_kv)
        if self.self_attn_ln is not None:
            x = self.self_attn_ln(x)
        x = residual + self.drop_path(self.dropout(x))
        residual = x
        x = self.encoder_attn_layer_norm(x)
        x = self.encoder_attn(x, encoder_out, encoder_out, key_padding_mask=encoder_padding_mask,
                              incremental_state=incremental_state, static_kv=True, attn_bias=cross_attn_bias)
        if self.cross_attn_ln is not None:
            x = self.cross_attn_ln(x)
        x = residual + self.drop_path(self.dropout(x))
        return _feed_forward(self, x)


def _feed_forward(layer: nn.Module, x: Tensor) -> Tensor:
    """Pre-LN FFN block shared by both layer types: LN -> fc1 -> act -> [LN] -> fc2 -> [adapter] -> residual."""
    residual = x
    x = layer.activation_dropout(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
    if layer.ffn_layernorm is not None:
        x = layer.ffn_layernorm(x)
    x = layer.dropout(layer.fc2(x))
    if layer.adapter is not None:
        x = layer.adapter(x)
    if layer.w_resid is not None:
        residual = layer.w_resid * residual
    return residual + layer.drop_path(x)
