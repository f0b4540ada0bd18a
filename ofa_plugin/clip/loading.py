"""CLIP checkpoint files: reading a user's file into open_clip's `CLIP`, and writing tiny random ones.

Accepted files (`--clip-model-path`):
- an OpenAI JIT archive, as OpenAI distributes its models (OFA's scripts use `ViT-B-16.pt`);
- a state dict with OpenAI's key names (`visual.conv1.weight`, `transformer.resblocks.0...`,
  `token_embedding.weight`, `text_projection`, ...), as saved by `torch.save(model.state_dict())` of an
  OpenAI or open_clip ViT/ResNet CLIP;
- an open_clip training checkpoint (`{"state_dict": {"module.visual...": ...}, ...}`).
open_clip's `build_model_from_openai_state_dict` infers the architecture from the tensor shapes (widths,
layers, patch size, image size, context length, vocabulary) with OpenAI's QuickGELU activation; weights
pass through fp16 as in open_clip's OpenAI loader, and the model runs in fp32.

Trust: a JIT archive is TorchScript code (loaded with `torch.jit.load`); state dicts load with the plugin's
weights-only loader (`ofa_plugin.compat`). Load only files you trust.
"""
from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg, build_model_from_openai_state_dict

from ..compat import load_checkpoint_file

TEXT_KEYS = ("token_embedding.weight", "positional_embedding", "text_projection", "ln_final.weight")
VISION_KEYS = ("visual.proj", "visual.attnpool.positional_embedding")  # ViT or ResNet image tower: one of them
# Buffers a traced open_clip model keeps in its state dict but open_clip's CLIP does not load (rebuilt from shapes).
NON_WEIGHT_KEYS = ("attn_mask",)
OPENAI_VOCAB_SIZE = 49408  # the BPE vocabulary of CLIP's tokenizer (ids up to the end-of-text token 49407)


class ClipCheckpointError(ValueError):
    """A file that is not a readable CLIP checkpoint; the message names the file."""


@dataclass(frozen=True)
class TinyClipConfig:
    """Shape of a random CLIP for tests and toy runs (heads: width / 64, as open_clip infers them)."""

    embed_dim: int = 32
    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 64
    vision_layers: int = 2
    text_width: int = 64
    text_layers: int = 2
    context_length: int = 77


def is_jit_archive(path: Path) -> bool:
    """Whether the file is a TorchScript archive (a zip with compiled code), not a pickled state dict."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def read_state_dict(path: str | Path) -> Dict[str, torch.Tensor]:
    """The OpenAI-named CLIP state dict of a JIT archive, state dict or open_clip training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP checkpoint not found: {path}")
    try:
        if is_jit_archive(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, OpenAI's files are JIT
                state = torch.jit.load(str(path), map_location="cpu").state_dict()
        else:
            state = load_checkpoint_file(str(path), map_location="cpu")
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        raise ClipCheckpointError(f"{path}: not a CLIP checkpoint, cannot read it ({err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # open_clip training checkpoint
        state = {key.removeprefix("module."): value for key, value in state["state_dict"].items()}
    if not isinstance(state, dict):
        raise ClipCheckpointError(f"{path}: not a CLIP checkpoint (holds a {type(state).__name__}, not a state dict)")
    missing = [key for key in TEXT_KEYS if key not in state]
    if not any(key in state for key in VISION_KEYS):
        missing.append(" or ".join(VISION_KEYS))
    if missing:
        raise ClipCheckpointError(f"{path}: not a CLIP checkpoint (no {', '.join(missing)} in its state dict)")
    return {key: value for key, value in state.items() if key not in NON_WEIGHT_KEYS}


def load_clip_model(path: str | Path) -> CLIP:
    """The frozen fp32 open_clip `CLIP` (eval mode, CPU) of a checkpoint file (see the module docstring)."""
    state = read_state_dict(path)
    try:
        model = build_model_from_openai_state_dict(state, cast_dtype=None)
    except (KeyError, RuntimeError, ValueError, AssertionError) as err:
        raise ClipCheckpointError(f"{path}: the CLIP weights do not fit the architecture inferred from them "
                                  f"({type(err).__name__}: {str(err)[:300]})") from err
    return model.float().eval().requires_grad_(False)


def build_random_clip(config: TinyClipConfig = TinyClipConfig(), seed: int = 0) -> CLIP:
    """A randomly initialised ViT CLIP of this shape (OpenAI's vocabulary and QuickGELU), in eval mode."""
    torch.manual_seed(seed)
    vision = CLIPVisionCfg(layers=config.vision_layers, width=config.vision_width, patch_size=config.patch_size,
                           image_size=config.image_size)
    text = CLIPTextCfg(context_length=config.context_length, vocab_size=OPENAI_VOCAB_SIZE, width=config.text_width,
                       heads=max(1, config.text_width // 64), layers=config.text_layers)
    return CLIP(config.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True).eval()


def write_random_checkpoint(path: str | Path, config: TinyClipConfig = TinyClipConfig(), seed: int = 0,
                            jit: bool = False) -> Path:
    """Write a random CLIP as an OpenAI-format state dict (or, with `jit`, a JIT archive like OpenAI's files)
    that `load_clip_model` reads back; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build_random_clip(config, seed)
    if not jit:
        torch.save(model.state_dict(), path)
        return path
    images = torch.zeros(1, 3, config.image_size, config.image_size)
    texts = torch.zeros(1, config.context_length, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace_module(model, {"encode_image": (images,), "encode_text": (texts,)})
        torch.jit.save(traced, str(path))
    return path
