"""taming-transformers' `GumbelVQ`: the VQGAN image tokenizer of OFA's image generation (reference §3.5).

Image -> `encoder` -> `quant_conv` -> `quantize.proj` (one logit per codebook entry at every latent
position) -> code = the most likely entry; code -> `quantize.embed` -> `post_quant_conv` -> `decoder` ->
image. The state-dict keys are taming's (`encoder.*`, `decoder.*`, `quantize.proj.*`,
`quantize.embed.weight`, `quant_conv.*`, `post_quant_conv.*`).

Encoding takes the argmax of the logits, so equal images give equal codes. taming's quantizer instead draws
`F.gumbel_softmax(..., hard=True)` even in eval mode, i.e. the argmax of logits plus Gumbel noise, so the
official extraction script's codes vary from run to run; the argmax is their noise-free mode.
"""
from __future__ import annotations

import torch
from torch import nn

from .modules import DDConfig, Decoder, Encoder


class GumbelQuantize(nn.Module):
    """Latents (B, num_hiddens, h, w) -> codes (B, h, w) and codes -> embeddings (B, embedding_dim, h, w)."""

    def __init__(self, num_hiddens: int, embedding_dim: int, n_embed: int) -> None:
        super().__init__()
        self.n_embed = n_embed
        self.proj = nn.Conv2d(num_hiddens, n_embed, 1)
        self.embed = nn.Embedding(n_embed, embedding_dim)

    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """The most likely codebook entry at every position (deterministic encoding)."""
        return self.proj(z).argmax(dim=1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codebook vectors of `codes` (B, h, w) as a (B, embedding_dim, h, w) map."""
        return self.embed(codes).permute(0, 3, 1, 2)


class GumbelVQ(nn.Module):
    """The VQGAN with a Gumbel quantizer; an S x S image in [-1, 1] has (S/f) x (S/f) codes in [0, n_embed)."""

    def __init__(self, ddconfig: DDConfig, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        if embed_dim != ddconfig.z_channels:
            # taming applies quantize.proj (z_channels inputs) to quant_conv's output (embed_dim channels)
            raise ValueError(f"GumbelVQ needs embed_dim == ddconfig.z_channels, got {embed_dim} and "
                             f"{ddconfig.z_channels}")
        self.ddconfig = ddconfig
        self.encoder = Encoder(ddconfig)
        self.decoder = Decoder(ddconfig)
        self.quantize = GumbelQuantize(ddconfig.z_channels, embed_dim, n_embed)
        self.quant_conv = nn.Conv2d(ddconfig.z_channels, embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, ddconfig.z_channels, 1)

    @property
    def n_embed(self) -> int:
        return self.quantize.n_embed

    @property
    def factor(self) -> int:
        """Pixels per code along each side (8 for the official f8 tokenizer)."""
        return self.ddconfig.factor

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> codes (B, H/f, W/f)."""
        return self.quantize.codes(self.quant_conv(self.encoder(images)))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) -> images (B, 3, h*f, w*f), nominally in [-1, 1] (not clamped)."""
        return self.decoder(self.post_quant_conv(self.quantize.lookup(codes)))
