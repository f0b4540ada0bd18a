"""A frozen CLIP as OFA's image generation uses it: L2-normalised text and image features, and the two
cosine similarities of the official CLIP score (reference §5.6, §6.4): text-image (`ti_sim`) and
image-image (`ii_sim`, against the caption's reference image).

Images go through the model's own preprocessing (OpenAI's: resize the shorter side to the model's image
size, bicubic; centre crop; RGB; OpenAI mean/std), texts through CLIP's BPE tokenizer (lower-cased, truncated
to the model's context length; OpenAI's `clip.tokenize` would refuse a longer text instead).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD, image_transform
from open_clip.model import CLIP
from open_clip.tokenizer import SimpleTokenizer
from PIL import Image

from .loading import load_clip_model


@functools.lru_cache(maxsize=None)
def clip_tokenizer(context_length: int) -> SimpleTokenizer:
    """CLIP's BPE tokenizer (reading its merges takes a moment, so one per context length)."""
    return SimpleTokenizer(context_length=context_length)


class ClipModel:
    """Text and image features of a frozen open_clip `CLIP`, and their cosine similarities."""

    def __init__(self, model: CLIP) -> None:
        self.model = model.eval().requires_grad_(False)
        self.preprocess = image_transform(model.visual.image_size, is_train=False, mean=OPENAI_DATASET_MEAN,
                                          std=OPENAI_DATASET_STD)
        self.tokenizer = clip_tokenizer(model.context_length)

    @classmethod
    def load(cls, path: str | Path) -> "ClipModel":
        """The CLIP of a checkpoint file (`ofa_plugin.clip.loading`), on the CPU."""
        return cls(load_clip_model(path))

    @property
    def device(self) -> torch.device:
        return self.model.positional_embedding.device

    def to(self, device: torch.device | str) -> "ClipModel":
        """Move the model (in place) to `device`; returns self."""
        self.model.to(device)
        return self

    @torch.no_grad()
    def image_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, D) float32 unit-length features of PIL images."""
        pixels = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        return F.normalize(self.model.encode_image(pixels).float(), dim=-1)

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, D) float32 unit-length features of texts."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def ti_sim(self, images: Sequence[Image.Image], text: str) -> torch.Tensor:
        """(N,) cosine similarity of each image with the text."""
        return self.image_features(images) @ self.text_features([text])[0]

    def ii_sim(self, images: Sequence[Image.Image], reference: Image.Image) -> torch.Tensor:
        """(N,) cosine similarity of each image with the reference image."""
        return self.image_features(images) @ self.image_features([reference])[0]
