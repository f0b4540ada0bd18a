"""The convolutional encoder and decoder of taming-transformers' VQGAN, with taming's parameter names.

The module tree (and so every state-dict key) is the one of `taming.modules.diffusionmodules.model`:
`conv_in`, `down.{level}.block.{i}` / `down.{level}.attn.{i}` / `down.{level}.downsample.conv`, `mid.block_1`,
`mid.attn_1`, `mid.block_2`, `up.{level}.block.{i}` / `up.{level}.attn.{i}` / `up.{level}.upsample.conv`,
`norm_out`, `conv_out`; residual blocks hold `norm1 conv1 norm2 conv2 [nin_shortcut]`, attention blocks
`norm q k v proj_out`. Written from the published architecture, so a taming checkpoint loads strictly.
The VQGAN uses no timestep embedding, so taming's `temb_proj` never exists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

GROUP_NORM_GROUPS = 32  # taming's Normalize: GroupNorm(32 groups, eps 1e-6); channel counts must divide by 32
GROUP_NORM_EPS = 1e-6


@dataclass(frozen=True)
class DDConfig:
    """taming's `ddconfig`: the shape shared by the encoder and the decoder (GumbelVQ configs use
    `double_z: false`, i.e. the encoder outputs `z_channels` channels)."""

    ch: int  # channels of the first level; level i has ch * ch_mult[i]
    out_ch: int  # decoder output channels (3)
    ch_mult: tuple[int, ...]  # one entry per level; len - 1 downsamplings
    num_res_blocks: int  # residual blocks per encoder level (the decoder has one more)
    attn_resolutions: tuple[int, ...]  # nominal resolutions whose levels get attention blocks
    in_channels: int  # encoder input channels (3)
    resolution: int  # nominal input size, only used to place the attention blocks
    z_channels: int  # latent channels
    dropout: float = 0.0
    resamp_with_conv: bool = True  # strided/3x3 convs for down/upsampling (else pooling/plain nearest)

    @property
    def factor(self) -> int:
        """Downsampling factor f: an S x S image gives (S/f) x (S/f) codes."""
        return 2 ** (len(self.ch_mult) - 1)


def group_norm(channels: int) -> nn.GroupNorm:
    """taming's `Normalize`; a clear error for channel counts GroupNorm(32) cannot split."""
    if channels % GROUP_NORM_GROUPS:
        raise ValueError(f"VQGAN channel counts must be multiples of {GROUP_NORM_GROUPS}, got {channels}")
    return nn.GroupNorm(GROUP_NORM_GROUPS, channels, eps=GROUP_NORM_EPS, affine=True)


class ResnetBlock(nn.Module):
    """Pre-norm residual block (GroupNorm, swish, 3x3 conv, twice); a 1x1 `nin_shortcut` when the channel
    count changes (taming's 3x3 `conv_shortcut` option is never used by the VQGAN)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels (1x1 conv projections), added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        h = self.norm(x)
        q, k, v = (conv(h).reshape(b, 1, c, height * width).transpose(2, 3) for conv in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(c)) v, as taming's bmm version
        return x + self.proj_out(out.transpose(2, 3).reshape(b, c, height, width))


class Downsample(nn.Module):
    """Halve the resolution: stride-2 3x3 conv after padding right/bottom by one (taming's asymmetric
    padding), or 2x2 average pooling without a conv."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "conv"):
            return self.conv(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2)


class Upsample(nn.Module):
    """Double the resolution: nearest-neighbour upsampling, then a 3x3 conv if `with_conv`."""

    def __init__(self, channels: int, with_conv: bool) -> None:
        super().__init__()
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if hasattr(self, "conv") else x


def _stage(blocks: Sequence[nn.Module], attns: Sequence[nn.Module]) -> nn.Module:
    """taming's per-resolution container: a bare Module holding `block` and `attn` lists."""
    stage = nn.Module()
    stage.block = nn.ModuleList(blocks)
    stage.attn = nn.ModuleList(attns)
    return stage


def _middle(channels: int, dropout: float) -> nn.Module:
    """The bottleneck: residual block, attention, residual block."""
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels, dropout)
    mid.attn_1 = AttnBlock(channels)
    mid.block_2 = ResnetBlock(channels, channels, dropout)
    return mid


def _run_stage(stage: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """Each residual block, followed by its attention block where the stage has them."""
    for index, block in enumerate(stage.block):
        h = block(h)
        if len(stage.attn):
            h = stage.attn[index](h)
    return h


def _run_middle(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


class Encoder(nn.Module):
    """Image (B, in_channels, H, W) -> latent (B, z_channels, H/f, W/f), f = `config.factor`.

    `attn_resolutions` are compared with the nominal `resolution` halved per level (not with the actual
    input size), as in taming.
    """

    def __init__(self, config: DDConfig) -> None:
        super().__init__()
        ch, ch_mult = config.ch, config.ch_mult
        self.conv_in = nn.Conv2d(config.in_channels, ch, 3, padding=1)
        in_mult = (1, *ch_mult)
        self.down = nn.ModuleList()
        current = config.resolution
        for level, mult in enumerate(ch_mult):
            block_in, block_out = ch * in_mult[level], ch * mult
            blocks = [ResnetBlock(block_in if i == 0 else block_out, block_out, config.dropout)
                      for i in range(config.num_res_blocks)]
            attns = [AttnBlock(block_out) for _ in blocks] if current in config.attn_resolutions else []
            stage = _stage(blocks, attns)
            if level != len(ch_mult) - 1:
                stage.downsample = Downsample(block_out, config.resamp_with_conv)
                current //= 2
            self.down.append(stage)
        channels = ch * ch_mult[-1]
        self.mid = _middle(channels, config.dropout)
        self.norm_out = group_norm(channels)
        self.conv_out = nn.Conv2d(channels, config.z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            h = _run_stage(stage, h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = _run_middle(self.mid, h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """Latent (B, z_channels, h, w) -> image (B, out_ch, h*f, w*f); `num_res_blocks + 1` blocks per level.

    `self.up` is indexed by level like the encoder's `down` (up[0] = full resolution) and run from the
    coarsest level, as taming builds it (`up.insert(0, ...)`).
    """

    def __init__(self, config: DDConfig) -> None:
        super().__init__()
        ch, ch_mult = config.ch, config.ch_mult
        channels = ch * ch_mult[-1]
        current = config.resolution // config.factor
        self.conv_in = nn.Conv2d(config.z_channels, channels, 3, padding=1)
        self.mid = _middle(channels, config.dropout)
        stages = []
        for level in reversed(range(len(ch_mult))):
            block_out = ch * ch_mult[level]
            blocks = [ResnetBlock(channels if i == 0 else block_out, block_out, config.dropout)
                      for i in range(config.num_res_blocks + 1)]
            attns = [AttnBlock(block_out) for _ in blocks] if current in config.attn_resolutions else []
            stage = _stage(blocks, attns)
            if level != 0:
                stage.upsample = Upsample(block_out, config.resamp_with_conv)
                current *= 2
            stages.insert(0, stage)
            channels = block_out
        self.up = nn.ModuleList(stages)
        self.norm_out = group_norm(channels)
        self.conv_out = nn.Conv2d(channels, config.out_ch, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _run_middle(self.mid, self.conv_in(z))
        for stage in reversed(self.up):
            h = _run_stage(stage, h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
