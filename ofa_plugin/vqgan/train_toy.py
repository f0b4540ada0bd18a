"""Fit a small VQGAN tokenizer of ours to toy-world images, so image generation runs without downloads.

    python -m ofa_plugin.vqgan.train_toy --out DIR [--n-embed 256] [--image-size 64] [--fit-images 512]

writes DIR/model.yaml and DIR/last.ckpt in the taming format (the official tokenizer's), which `load_vqgan`
and the encode/decode commands read like the official files.

The tokenizer is the same `GumbelVQ` (f8, 128 channels, no residual blocks in the encoder), with weights
set so that a code stands for one colour of its 8 x 8 patch: the encoder averages each patch, the quantizer
picks the nearest key (`proj` logits 2 k.z - |k|^2), the decoder paints the code's colour (`embed`) over the
patch. Only the codebook is fitted to data: the keys are k-means centres of the mean colours of the patches
of toy scenes, a code's colour is the average over its patches of their per-channel median, i.e. of the
colour covering most of each patch, so an edge patch decodes to its majority colour instead of a blend.
Why not gradient training: taming's GroupNorm (32 groups) normalises away the absolute colour of flat
regions, so on flat toy images a small VQGAN learns colours far too slowly for a CPU recipe (minutes gave
reconstructions worse than the mean colour). Here every signal channel shares its GroupNorm group with a
mirror channel and two constant channels (+K, -K), which makes the normalisation linear (relative error
< 1e-4), and passes `silu` shifted to where it is the identity. Toy scenes are plain shapes on plain
backgrounds, so the mosaic keeps colours and rough shapes; edges are 8 x 8 blocks.

The log reports the held-out reconstruction MSE (pixels in [0, 1]) and PSNR next to the per-image
mean-colour baseline.
"""
from __future__ import annotations

import argparse
import logging
import math
import random
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..data.toyworld import draw_scene, render_scene
from .codes import encode_images, image_to_tensor
from .gumbel_vq import GumbelVQ
from .loading import VQGANConfig, build_model, save_checkpoint, write_config
from .modules import GROUP_NORM_GROUPS, DDConfig

logger = logging.getLogger(__name__)

CONFIG_FILE = "model.yaml"
CHECKPOINT_FILE = "last.ckpt"
GROUP_SIZE = 4  # channels per GroupNorm group: (signal, -signal, +K, -K)
CONSTANT = 100.0  # K: dominates each signal group's variance, so GroupNorm scales by the fixed 1 / (K / sqrt 2)
SILU_SHIFT = 16.0  # silu(16 + s) = 16 + s within 2e-6 for |s| <= 1
KMEANS_ITERATIONS = 25


def toy_config(n_embed: int = 256, ch: int = GROUP_NORM_GROUPS * GROUP_SIZE, image_size: int = 64,
               z_channels: int = 8) -> VQGANConfig:
    """The config of our toy tokenizer: an f8 GumbelVQ with `ch` channels at every level."""
    ddconfig = DDConfig(ch=ch, out_ch=3, ch_mult=(1, 1, 1, 1), num_res_blocks=0, attn_resolutions=(), in_channels=3,
                        resolution=image_size, z_channels=z_channels)
    return VQGANConfig(ddconfig, n_embed, z_channels)


def toy_images(stream: str, count: int, size: int) -> torch.Tensor:
    """`count` toy scenes as (count, 3, size, size) tensors in [-1, 1]; same stream name, same images."""
    rng = random.Random(stream)
    return torch.stack([image_to_tensor(render_scene(draw_scene(rng)), size) for _ in range(count)])


def patch_colours(images: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, per-channel median) colour of every `factor` x `factor` patch, each (N, 3)."""
    batch, channels = images.shape[:2]
    pixels = F.unfold(images, factor, stride=factor).view(batch, channels, factor * factor, -1)
    flat = [values.permute(0, 2, 1).reshape(-1, channels) for values in (pixels.mean(2), pixels.median(2).values)]
    return flat[0], flat[1]


def cluster_means(values: torch.Tensor, cluster: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """The mean of `values` (N, d) per cluster (`cluster`: N ids below len(fallback)); `fallback` for empty ones."""
    sums = torch.zeros_like(fallback).index_add_(0, cluster, values)
    counts = torch.bincount(cluster, minlength=len(fallback)).unsqueeze(1)
    return torch.where(counts > 0, sums / counts.clamp(min=1), fallback)


def kmeans(points: torch.Tensor, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(`k` centres, cluster of each point) of `points` (N, d) by Lloyd's algorithm from `k` distinct points
    (values rounded to 1/255), so that a frequent colour gets one code, not several equal ones (a flat
    region then always has the same code). With fewer distinct points, centres repeat and the first wins."""
    distinct = torch.unique((points * 255).round(), dim=0) / 255
    centres = distinct[torch.randperm(len(distinct), generator=generator)[torch.arange(k) % len(distinct)]]
    for _ in range(KMEANS_ITERATIONS):
        centres = cluster_means(points, torch.cdist(points, centres).argmin(dim=1), centres)
    return centres, torch.cdist(points, centres).argmin(dim=1)


def _signal_channels(colours: int) -> torch.Tensor:
    """Channel index of each colour's signal (the first channel of its GroupNorm group)."""
    return torch.arange(colours) * GROUP_SIZE


@torch.no_grad()
def _write_colour(conv: torch.nn.Conv2d, colours: int, sign_inputs: bool) -> None:
    """`conv` (centre tap) writes colour c as the group (c, -c, +K, -K) of channels 4c..4c+3, reading it from
    input channel c (`sign_inputs`) or from the signal channel 4c."""
    centre = conv.kernel_size[0] // 2
    for colour, channel in enumerate(_signal_channels(colours).tolist()):
        source = colour if sign_inputs else channel
        conv.weight[channel, source, centre, centre] = 1.0
        conv.weight[channel + 1, source, centre, centre] = -1.0
        conv.bias[channel + 2], conv.bias[channel + 3] = CONSTANT, -CONSTANT


@torch.no_grad()
def _read_colour(norm: torch.nn.GroupNorm, conv: torch.nn.Conv2d, colours: int) -> None:
    """norm_out + silu + conv_out: GroupNorm undone on the signal channels (shifted by SILU_SHIFT), the
    centre tap of `conv` reads them back into its first `colours` outputs."""
    signals = _signal_channels(colours)
    norm.weight[signals], norm.bias[signals] = CONSTANT / math.sqrt(2.0), SILU_SHIFT
    centre = conv.kernel_size[0] // 2
    conv.weight[torch.arange(colours), signals, centre, centre] = 1.0
    conv.bias[:colours] = -SILU_SHIFT


@torch.no_grad()
def patch_colour_tokenizer(config: VQGANConfig, keys: torch.Tensor, colours: torch.Tensor) -> GumbelVQ:
    """The GumbelVQ that gives a patch the code of the key (n_embed, 3) nearest to its mean colour and decodes
    code k to a patch of colour `colours[k]` (RGB in [-1, 1]); see the module docstring. All other weights are
    zero, so residual and attention branches add nothing."""
    model = build_model(config)
    if config.ddconfig.ch * min(config.ddconfig.ch_mult) < GROUP_NORM_GROUPS * GROUP_SIZE:
        raise ValueError(f"the patch-colour tokenizer needs >= {GROUP_SIZE} channels per GroupNorm group")
    for parameter in model.parameters():
        parameter.zero_()
    rgb = keys.shape[1]
    encoder, decoder = model.encoder, model.decoder
    _write_colour(encoder.conv_in, rgb, sign_inputs=True)
    for stage in encoder.down:
        if hasattr(stage, "downsample"):  # a 2 x 2 average (taps 0..1 of the stride-2 conv) of every channel
            channels = torch.arange(stage.downsample.conv.out_channels)
            stage.downsample.conv.weight[channels, channels, :2, :2] = 0.25
    _read_colour(encoder.norm_out, encoder.conv_out, rgb)
    identity = torch.eye(config.embed_dim)[:, :, None, None]
    model.quant_conv.weight.copy_(identity)
    model.post_quant_conv.weight.copy_(identity)
    padded_keys = F.pad(keys, (0, config.embed_dim - rgb))
    model.quantize.proj.weight.copy_(2 * padded_keys[:, :, None, None])  # argmax of 2 k.z - |k|^2 = nearest key
    model.quantize.proj.bias.copy_(-(padded_keys ** 2).sum(dim=1))
    model.quantize.embed.weight.copy_(F.pad(colours, (0, config.embed_dim - rgb)))
    _write_colour(decoder.conv_in, rgb, sign_inputs=True)
    for stage in decoder.up:
        if hasattr(stage, "upsample"):  # nearest-neighbour upsampling, then the identity
            conv = stage.upsample.conv
            channels = torch.arange(conv.out_channels)
            conv.weight[channels, channels, 1, 1] = 1.0
    _read_colour(decoder.norm_out, decoder.conv_out, rgb)
    return model.eval()


def mean_colour_mse(images: torch.Tensor) -> float:
    """The baseline: every image replaced by its own mean colour (MSE of pixels in [0, 1])."""
    return F.mse_loss(images.mean(dim=(2, 3), keepdim=True).expand_as(images), images).item() / 4


@torch.no_grad()
def reconstruction_mse(model: GumbelVQ, images: torch.Tensor) -> float:
    """Mean squared error (pixels in [0, 1]) of encode -> decode, outputs clamped as when saved."""
    side = images.shape[-1] // model.factor
    decoded = model.decode(encode_images(model, images).view(-1, side, side)).clamp(-1, 1)
    return F.mse_loss(decoded, images).item() / 4


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of an MSE on [0, 1] pixels."""
    return 10 * math.log10(1 / mse)


def fit_toy_tokenizer(config: VQGANConfig, fit_images: int = 512, eval_images: int = 64,
                      seed: int = 1) -> tuple[GumbelVQ, dict]:
    """The patch-colour tokenizer with a codebook fitted to `fit_images` toy scenes, and its metrics on
    `eval_images` held-out scenes: {mse, psnr, mean_colour_mse, mean_colour_psnr, codes_used, seconds}."""
    start = time.time()
    size, factor = config.ddconfig.resolution, config.ddconfig.factor
    means, medians = patch_colours(toy_images(f"vqgan-toy:{seed}:fit", fit_images, size), factor)
    keys, cluster = kmeans(means, config.n_embed, torch.Generator().manual_seed(seed))
    model = patch_colour_tokenizer(config, keys, cluster_means(medians, cluster, keys))
    held_out = toy_images(f"vqgan-toy:{seed}:valid", eval_images, size)
    metrics = {"mse": reconstruction_mse(model, held_out), "mean_colour_mse": mean_colour_mse(held_out),
               "codes_used": int(encode_images(model, held_out).unique().numel()), "seconds": time.time() - start}
    metrics["psnr"], metrics["mean_colour_psnr"] = psnr(metrics["mse"]), psnr(metrics["mean_colour_mse"])
    return model, metrics


def save_tokenizer(model: GumbelVQ, config: VQGANConfig, out_dir: str | Path) -> tuple[Path, Path]:
    """Write DIR/model.yaml and DIR/last.ckpt (taming format); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return write_config(config, out / CONFIG_FILE), save_checkpoint(model, out / CHECKPOINT_FILE, global_step=0)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: `python -m ofa_plugin.vqgan.train_toy --out DIR ...`."""
    parser = argparse.ArgumentParser(prog="python -m ofa_plugin.vqgan.train_toy", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for model.yaml and last.ckpt")
    parser.add_argument("--n-embed", type=int, default=256,
                        help="codebook size: codes 0..n-1 of OFA's 8192 code tokens")
    parser.add_argument("--image-size", type=int, default=64, help="toy images are resized to this square size")
    parser.add_argument("--fit-images", type=int, default=512, help="toy scenes whose patch colours fit the codebook")
    parser.add_argument("--eval-images", type=int, default=64, help="held-out toy scenes for the reported error")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    config = toy_config(args.n_embed, image_size=args.image_size)
    logger.info("fitting %d codes to the patch colours of %d toy scenes (%d x %d)", args.n_embed, args.fit_images,
                args.image_size, args.image_size)
    model, metrics = fit_toy_tokenizer(config, args.fit_images, args.eval_images, args.seed)
    config_path, checkpoint_path = save_tokenizer(model, config, args.out)
    logger.info("held-out reconstruction MSE %.4f (PSNR %.1f dB), mean-colour baseline %.4f (%.1f dB); %d codes "
                "used; %.0f s", metrics["mse"], metrics["psnr"], metrics["mean_colour_mse"], metrics["mean_colour_psnr"],
                metrics["codes_used"], metrics["seconds"])
    logger.info("wrote %s and %s", config_path, checkpoint_path)


if __name__ == "__main__":
    main()
