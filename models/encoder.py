"""The OFA encoder: [image patches ; text tokens] through pre-LN layers with position biases (§1.4-§1.8)."""
import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from fairseq.models import FairseqEncoder
from fairseq.modules import LayerNorm
from fairseq.modules.checkpoint_activations import checkpoint_wrapper
from torch import Tensor, nn

from .drop_path import drop_path_rates
from .embeddings import (absolute_position_bias, build_embedding, gather_bucket_bias, register_bucket_buffers,
                         relative_position_tables)
from .layers import OFAEncoderLayer
from .positions import image_grid_position_ids
from .prompts import build_prefix_prompt
from .resnet import OUT_CHANNELS, build_resnet

EncoderOut = Dict[str, List[Tensor]]


class OFAEncoder(FairseqEncoder):
    def __init__(self, args, dictionary, embed_tokens: nn.Embedding):
        super().__init__(dictionary)
        register_bucket_buffers(self, args.token_bucket_size, args.image_bucket_size, args.max_source_positions)
        dim = embed_tokens.embedding_dim
        self.args = args
        self.padding_idx = embed_tokens.padding_idx
        self.max_source_positions = args.max_source_positions
        self.num_heads = args.encoder_attention_heads
        self.embed_scale = 1.0 if args.no_scale_embedding else math.sqrt(dim)
        self.pos_scaling = float(dim / self.num_heads * args.attn_scale_factor) ** -0.5
        self.dropout = nn.Dropout(args.dropout)

        self.embed_tokens = embed_tokens
        self.layernorm_embedding = LayerNorm(dim) if args.layernorm_embedding else None
        self.type_embedding = build_embedding(2, dim) if args.add_type_embedding else None
        self.embed_images = build_resnet(
            args.resnet_type, args.resnet_drop_path_rate, getattr(args, "freeze_resnet", False),
            getattr(args, "sync_bn", False),
        )
        self.image_proj = nn.Linear(OUT_CHANNELS, dim)
        self.patch_layernorm_embedding = LayerNorm(dim) if args.patch_layernorm_embedding else None
        self.embed_positions = build_embedding(args.max_source_positions + 2, dim)
        self.embed_image_positions = build_embedding(args.image_bucket_size ** 2 + 1, dim)
        self.pos_ln = LayerNorm(dim)
        self.image_pos_ln = LayerNorm(dim)
        self.pos_q_linear = nn.Linear(dim, dim)
        self.pos_k_linear = nn.Linear(dim, dim)
        self.encoder_prompt_encoder = build_prefix_prompt(args, "encoder", args.encoder_layers, dim, self.num_heads)
        rates = drop_path_rates(args.encoder_drop_path_rate, args.encoder_layers)
        self.layers = nn.ModuleList([_maybe_checkpoint(OFAEncoderLayer(args, rate), args) for rate in rates])
        self.layer_norm = LayerNorm(dim) if args.encoder_normalize_before else None
        self.token_rel_pos_table_list, self.image_rel_pos_table_list = relative_position_tables(
            args, len(rates), self.num_heads)
        if getattr(args, "resnet_model_path", None):
            self.embed_images.load_state_dict(torch.load(args.resnet_model_path, map_location="cpu"))

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Optional[Tensor] = None,
        patch_images: Optional[Tensor] = None,
        patch_images_2: Optional[Tensor] = None,
        patch_masks: Optional[Tensor] = None,
        code_masks: Optional[Tensor] = None,
        sample_patch_num: Optional[int] = None,
        return_all_hiddens: bool = False,
        token_embeddings: Optional[Tensor] = None,
    ) -> EncoderOut:
        """`src_lengths` and `code_masks` are accepted (the generator passes all of net_input) but unused."""
        if patch_images_2 is not None:
            raise ValueError("patch_images_2 is not supported (the official path indexes a missing type id)")
        bsz, text_len = src_tokens.shape
        padding = src_tokens.eq(self.padding_idx)
        text_pos = self.embed_positions(torch.arange(text_len, device=src_tokens.device)).expand(bsz, -1, -1)
        x = self._embed_text(src_tokens, text_pos, token_embeddings)
        pos = self.pos_ln(text_pos)
        image_ids = None
        if patch_images is not None:
            image_x, image_ids, image_padding, image_pos = self._embed_images(patch_images, patch_masks, sample_patch_num)
            x = torch.cat([image_x, x], dim=1)
            padding = torch.cat([image_padding, padding], dim=1)
            pos = torch.cat([self.image_pos_ln(image_pos), pos], dim=1)
        has_pads = bool(padding.any())
        if has_pads:
            x = x * (1 - padding.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)

        abs_bias = absolute_position_bias(self.pos_q_linear, self.pos_k_linear, pos, pos, self.num_heads, self.pos_scaling)
        image_buckets = None
        if image_ids is not None:
            image_buckets = self.image_rp_bucket[image_ids[:, :, None], image_ids[:, None, :]]
        prompts = self.encoder_prompt_encoder(bsz) if self.encoder_prompt_encoder is not None else None
        states = [x] if return_all_hiddens else []
        for idx, layer in enumerate(self.layers):
            bias = self._layer_bias(abs_bias, idx, text_len, image_buckets)
            x = layer(x, padding if has_pads else None, bias, prompts[idx] if prompts is not None else None)
            if return_all_hiddens:
                states.append(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return {
            "encoder_out": [x],
            "encoder_padding_mask": [padding],
            "encoder_embedding": [],
            "encoder_states": states,
            "src_tokens": [],
            "src_lengths": [],
            "position_embeddings": [pos],
        }

    def _embed_text(self, src_tokens: Tensor, text_pos: Tensor, token_embeddings: Optional[Tensor]) -> Tensor:
        x = self.embed_scale * (self.embed_tokens(src_tokens) if token_embeddings is None else token_embeddings)
        if getattr(self.args, "entangle_position_embedding", False):
            x = x + text_pos
        if self.type_embedding is not None:
            x = x + self.type_embedding.weight[0]
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        return self.dropout(x)

    def _embed_images(self, patch_images: Tensor, patch_masks: Optional[Tensor], sample_patch_num: Optional[int]):
        """Patch features (B, P, D), position ids (B, P), padding (B, P) and raw position embeddings.
        The images are cast to the model's dtype: fairseq-generate halves the model, not the batch."""
        feats = self.embed_images(patch_images.to(self.image_proj.weight.dtype))
        bsz, _, height, width = feats.shape
        num_patches = height * width
        ids = image_grid_position_ids(height, width, self.args.image_bucket_size).to(feats.device).expand(bsz, -1)
        feats = feats.flatten(2).transpose(1, 2)
        padding = torch.zeros(bsz, num_patches, dtype=torch.bool, device=feats.device)
        if patch_masks is not None:
            padding[~patch_masks] = True
        pos = self._image_position_embeddings(ids, height, width)
        if sample_patch_num:
            # a random subset in random order per sample (officially Python's unseeded `random.sample`); drawn
            # from torch's generator, which fairseq seeds with --seed + update number, so runs repeat exactly
            order = torch.rand(bsz, num_patches, device=feats.device).argsort(dim=1)[:, :sample_patch_num]
            feats = feats.gather(1, order.unsqueeze(2).expand(-1, -1, feats.size(2)))
            padding, ids = padding.gather(1, order), ids.gather(1, order)
            pos = pos.gather(1, order.unsqueeze(2).expand(-1, -1, pos.size(2)))
        x = self.embed_scale * self.image_proj(feats)
        if getattr(self.args, "entangle_position_embedding", False):
            x = x + pos
        if self.type_embedding is not None:
            x = x + self.type_embedding.weight[1]
        if self.patch_layernorm_embedding is not None:
            x = self.patch_layernorm_embedding(x)
        return self.dropout(x), ids, padding, pos

    def _image_position_embeddings(self, ids: Tensor, height: int, width: int) -> Tensor:
        """Learned embeddings of the grid ids, or (--interpolate-position) the original grid's resized."""
        orig_side = getattr(self.args, "orig_patch_image_size", 256) // 16
        if not getattr(self.args, "interpolate_position", False) or height * width <= orig_side ** 2:
            return self.embed_image_positions(ids)
        orig_ids = image_grid_position_ids(orig_side, orig_side, self.args.image_bucket_size).to(ids.device)
        grid = self.embed_image_positions(orig_ids).reshape(1, orig_side, orig_side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(height, width), mode="bilinear")
        return grid.permute(0, 2, 3, 1).reshape(1, height * width, -1).expand(ids.size(0), -1, -1)

    def _layer_bias(self, abs_bias: Tensor, idx: int, text_len: int, image_buckets: Optional[Tensor]) -> Tensor:
        """Shared absolute bias + this layer's 1-D text and 2-D image relative biases (B, H, S, S)."""
        bias = abs_bias.clone()
        text_buckets = self.token_rp_bucket[:text_len, :text_len]
        bias[:, :, -text_len:, -text_len:] += gather_bucket_bias(self.token_rel_pos_table_list[idx], text_buckets)
        if image_buckets is not None:
            num_patches = image_buckets.size(1)
            bias[:, :, :num_patches, :num_patches] += gather_bucket_bias(self.image_rel_pos_table_list[idx], image_buckets)
        return bias

    def reorder_encoder_out(self, encoder_out: EncoderOut, new_order: Tensor) -> EncoderOut:
        """Select samples (beam expansion / finished sentences) in every entry of the encoder output."""
        batch_dim = {"encoder_out": 1, "encoder_states": 1}
        return {
            name: [t.index_select(batch_dim.get(name, 0), new_order) for t in tensors]
            for name, tensors in encoder_out.items()
        }

    def max_positions(self) -> int:
        return self.max_source_positions


def _maybe_checkpoint(layer: nn.Module, args) -> nn.Module:
    """Activation checkpointing (--checkpoint-activations) without changing state-dict keys."""
    if getattr(args, "checkpoint_activations", False):
        return checkpoint_wrapper(layer, offload_to_cpu=getattr(args, "offload_activations", False))
    return layer
