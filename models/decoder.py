"""The OFA decoder: bos-started text or image-code sequences with position biases (reference §1.9).

`code_masks` (B,) marks samples that are image-code sequences: they use the image position table
(`image_position_idx`), `image_pos_ln`, `code_layernorm_embedding` and the 2-D relative tables.
In incremental decoding only the newest row of every bias is computed.
"""
import math
from typing import Any, Dict, Optional, Tuple

import torch
from fairseq.models import FairseqIncrementalDecoder
from fairseq.modules import LayerNorm
from torch import Tensor, nn

from .embeddings import (absolute_position_bias, build_embedding, gather_bucket_bias, register_bucket_buffers,
                         relative_position_tables)
from .drop_path import drop_path_rates
from .encoder import EncoderOut, _maybe_checkpoint
from .layers import OFADecoderLayer
from .positions import code_position_ids
from .prompts import build_prefix_prompt


class OFADecoder(FairseqIncrementalDecoder):
    def __init__(self, args, dictionary, embed_tokens: nn.Embedding):
        super().__init__(dictionary)
        register_bucket_buffers(self, args.token_bucket_size, args.image_bucket_size, args.max_target_positions)
        self.register_buffer("image_position_idx", code_position_ids(args.code_image_size, args.image_bucket_size))
        dim = args.decoder_embed_dim
        self.args = args
        self.padding_idx = embed_tokens.padding_idx
        self.max_target_positions = args.max_target_positions
        self.num_heads = args.decoder_attention_heads
        self.embed_scale = 1.0 if args.no_scale_embedding else math.sqrt(dim)
        self.pos_scaling = float(dim / self.num_heads * args.attn_scale_factor) ** -0.5
        self.dropout = nn.Dropout(args.dropout)
        # Official quirk (reference §1.9.2): raw positions are added to the decoder inputs unless
        # --disable-entangle; every released model sets it, so read it from the checkpoint's args.
        self.add_positions_to_inputs = not getattr(args, "disable_entangle", False)

        self.embed_tokens = embed_tokens
        self.layernorm_embedding = LayerNorm(dim) if args.layernorm_embedding else None
        self.embed_positions = build_embedding(args.max_target_positions + 2, dim)
        self.embed_image_positions = build_embedding(args.image_bucket_size ** 2 + 1, dim)
        self.pos_ln = LayerNorm(dim)
        self.image_pos_ln = LayerNorm(dim)
        self.self_pos_q_linear = nn.Linear(dim, dim)
        self.self_pos_k_linear = nn.Linear(dim, dim)
        self.cross_pos_q_linear = nn.Linear(dim, dim)
        self.cross_pos_k_linear = nn.Linear(dim, dim)
        self.code_layernorm_embedding = LayerNorm(dim) if args.code_layernorm_embedding else None
        self.decoder_prompt_encoder = build_prefix_prompt(args, "decoder", args.decoder_layers, dim, self.num_heads)
        rates = drop_path_rates(args.decoder_drop_path_rate, args.decoder_layers)
        self.layers = nn.ModuleList([_maybe_checkpoint(OFADecoderLayer(args, rate), args) for rate in rates])
        self.layer_norm = LayerNorm(dim) if args.decoder_normalize_before else None
        self.output_projection = nn.Linear(dim, len(dictionary), bias=False)
        if args.share_decoder_input_output_embed:
            self.output_projection.weight = embed_tokens.weight
        else:
            nn.init.normal_(self.output_projection.weight, mean=0, std=dim ** -0.5)
        self.token_rel_pos_table_list, self.image_rel_pos_table_list = relative_position_tables(
            args, len(rates), self.num_heads)

    def forward(
        self,
        prev_output_tokens: Tensor,
        code_masks: Optional[Tensor] = None,
        encoder_out: Optional[EncoderOut] = None,
        incremental_state: Optional[Dict[str, Dict[str, Optional[Tensor]]]] = None,
        features_only: bool = False,
        alignment_layer: Optional[int] = None,
        alignment_heads: Optional[int] = None,
        src_lengths: Optional[Any] = None,
        return_all_hiddens: bool = False,
    ) -> Tuple[Tensor, Dict[str, Any]]:
        x, extra = self.extract_features(prev_output_tokens, code_masks, encoder_out, incremental_state)
        if not features_only:
            x = self.output_projection(x)
        return x, extra

    def extract_features(self, prev_output_tokens: Tensor, code_masks: Optional[Tensor],
                         encoder_out: EncoderOut, incremental_state=None) -> Tuple[Tensor, Dict[str, Any]]:
        bsz, tgt_len = prev_output_tokens.shape
        codes = _normalise_code_masks(code_masks, bsz, prev_output_tokens.device)
        queries = slice(tgt_len - 1, tgt_len) if incremental_state is not None else slice(0, tgt_len)
        tgt_pos = self._target_positions(tgt_len, bsz, codes, prev_output_tokens.device)
        self_abs = self._abs_bias(self.self_pos_q_linear, self.self_pos_k_linear, tgt_pos[:, queries], tgt_pos, codes)
        src_pos = encoder_out["position_embeddings"][0]
        cross_bias = self._abs_bias(self.cross_pos_q_linear, self.cross_pos_k_linear, tgt_pos[:, queries], src_pos,
                                    codes, keys_are_encoder=True)

        tokens = prev_output_tokens[:, queries]
        x = self.embed_scale * self.embed_tokens(tokens)
        if self.add_positions_to_inputs:
            x = x + tgt_pos[:, queries]
        x = self._embedding_layer_norm(x, codes)
        x = self.dropout(x).transpose(0, 1)

        self_padding = tokens.eq(self.padding_idx) if bool(tokens.eq(self.padding_idx).any()) else None
        causal = None if incremental_state is not None else self._causal_mask(x)
        enc = encoder_out["encoder_out"][0]
        enc_padding = encoder_out["encoder_padding_mask"][0] if encoder_out["encoder_padding_mask"] else None
        if enc_padding is not None and not bool(enc_padding.any()):
            enc_padding = None
        prompts = self.decoder_prompt_encoder(bsz) if self.decoder_prompt_encoder is not None else None
        for idx, layer in enumerate(self.layers):
            self_bias = self_abs + self._rel_bias(idx, tgt_len, queries, codes)
            x = layer(x, enc, enc_padding, incremental_state, causal, self_padding, self_bias, cross_bias,
                      prompts[idx] if prompts is not None else None)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return x.transpose(0, 1), {"attn": [None], "inner_states": [x]}

    def _target_positions(self, tgt_len: int, bsz: int, codes: Optional[Tensor], device) -> Tensor:
        """Raw position embeddings (B, T, D): text positions 0..T-1, image-code positions for code samples."""
        text = self.embed_positions(torch.arange(tgt_len, device=device)).unsqueeze(0).expand(bsz, -1, -1)
        if codes is None:
            return text
        image = self.embed_image_positions(self.image_position_idx[:tgt_len]).unsqueeze(0).expand(bsz, -1, -1)
        return torch.where(codes[:, None, None], image, text)

    def _abs_bias(self, q_linear: nn.Linear, k_linear: nn.Linear, query_pos: Tensor, key_pos: Tensor,
                  codes: Optional[Tensor], keys_are_encoder: bool = False) -> Tensor:
        """Absolute position bias (B, H, Tq, Tk); LayerNorm of the decoder positions per sample type."""
        def bias(norm: nn.Module) -> Tensor:
            keys = key_pos if keys_are_encoder else norm(key_pos)
            return absolute_position_bias(q_linear, k_linear, norm(query_pos), keys, self.num_heads, self.pos_scaling)

        text = bias(self.pos_ln)
        if codes is None:
            return text
        return torch.where(codes[:, None, None, None], bias(self.image_pos_ln), text)

    def _rel_bias(self, idx: int, tgt_len: int, queries: slice, codes: Optional[Tensor]) -> Tensor:
        """This layer's relative bias (1|B, H, Tq, T): 1-D for text samples, 2-D for code samples.

        A batch of code samples only skips the text table: image generation decodes 1 + 1024 steps, one
        more than the text bucket table (max_target_positions) holds.
        """
        if codes is None:
            return self._text_rel_bias(idx, tgt_len, queries).unsqueeze(0)
        ids = self.image_position_idx[:tgt_len]
        image = gather_bucket_bias(self.image_rel_pos_table_list[idx], self.image_rp_bucket[ids[queries]][:, ids])
        if bool(codes.all()):
            return image.unsqueeze(0)
        text = self._text_rel_bias(idx, tgt_len, queries)
        return torch.where(codes[:, None, None, None], image.unsqueeze(0), text.unsqueeze(0))

    def _text_rel_bias(self, idx: int, tgt_len: int, queries: slice) -> Tensor:
        return gather_bucket_bias(self.token_rel_pos_table_list[idx], self.token_rp_bucket[queries, :tgt_len])

    def _embedding_layer_norm(self, x: Tensor, codes: Optional[Tensor]) -> Tensor:
        if self.layernorm_embedding is None:
            return x
        if codes is None or self.code_layernorm_embedding is None:
            return self.layernorm_embedding(x)
        return torch.where(codes[:, None, None], self.code_layernorm_embedding(x), self.layernorm_embedding(x))

    def _causal_mask(self, x: Tensor) -> Tensor:
        length = x.size(0)
        return torch.triu(torch.full((length, length), float("-inf"), device=x.device, dtype=x.dtype), 1)

    def max_positions(self) -> int:
        return self.max_target_positions


def _normalise_code_masks(code_masks, bsz: int, device) -> Optional[Tensor]:
    """(B,) bool tensor when any sample is an image-code sequence, else None (the text fast path)."""
    if code_masks is None:
        return None
    if not torch.is_tensor(code_masks):
        code_masks = torch.tensor(list(code_masks), dtype=torch.bool, device=device)
    code_masks = code_masks.to(device=device, dtype=torch.bool).expand(bsz) if code_masks.numel() == 1 else code_masks.bool()
    return code_masks if bool(code_masks.any()) else None
