"""The toy check of text-to-image generation: does a generated image show the prompt's coloured shape?

Toy prompts describe one shape on a plain background, "a red circle on a blue background" (`toy_caption`,
built from toy-world phrases). An image is read back without any learnt model: every pixel is snapped to
the nearest toy-world colour, the background is the commonest colour of the border pixels, the object is
the commonest other colour (if it covers at least `MIN_OBJECT_SHARE` of the image), and its shape is
guessed from the pixels of that colour (fill of its bounding box, aspect ratio, vertical centre of mass).
The colour check is the metric; the shape guess is cruder (blurry decodings round corners) and is reported
next to it.

`--scoring ofa_toy_image` prints the figures at the end of `fairseq-generate --task image_gen` (the task
publishes every sample's checked images, see `published.py`); the task's default scorer `ofa_clip_image`
(ofa_plugin.clip.scorer) prints them too, after the CLIP score when CLIP ranked the images. Prompts that are
no toy prompts are not checked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np
from fairseq.scoring import register_scorer
from PIL import Image

from ofa_plugin.data.toyworld import BACKGROUND_COLOURS, OBJECT_COLOURS, SHAPES, Scene
from ofa_plugin.data.toyworld.phrases import noun_phrase, with_article
from ofa_plugin.metrics.published import PublishedPredictionScorer, PublishedScorerConfig

PALETTE = {**OBJECT_COLOURS, **BACKGROUND_COLOURS}
_NAMES = list(PALETTE)
_RGB = np.array([PALETTE[name] for name in _NAMES], dtype=np.float32)
MIN_OBJECT_SHARE = 0.02  # an object colour must cover this share of the pixels
_PROMPT = re.compile(rf"\b({'|'.join(OBJECT_COLOURS)}) ({'|'.join(SHAPES)})\b")


def toy_caption(scene: Scene) -> str:
    """'a red circle on a blue background': the first shape of the scene and the background."""
    return f"{noun_phrase(scene, scene.objects[0])} on {with_article(scene.background)} background"


def prompt_object(caption: str) -> Optional[tuple[str, str]]:
    """(colour, shape) of the first "<colour> <shape>" of a caption; None if it has none (not a toy prompt)."""
    match = _PROMPT.search(caption.lower())
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True)
class ImageReading:
    """What the check sees in an image: background colour, object colour and shape (None if no object)."""

    background: str
    colour: Optional[str]
    shape: Optional[str]


def colour_classes(image: Image.Image) -> np.ndarray:
    """(H, W) index into the palette of the nearest toy-world colour of every pixel."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    distances = ((pixels[:, :, None, :] - _RGB[None, None]) ** 2).sum(-1)
    return distances.argmin(-1)


def read_image(image: Image.Image) -> ImageReading:
    """The background, object colour and object shape of a toy image (see the module docstring)."""
    classes = colour_classes(image)
    border = np.concatenate([classes[0], classes[-1], classes[:, 0], classes[:, -1]])
    background = int(np.bincount(border, minlength=len(_NAMES)).argmax())
    counts = np.bincount(classes.ravel(), minlength=len(_NAMES))
    counts[background] = 0
    colour = int(counts.argmax())
    if counts[colour] < MIN_OBJECT_SHARE * classes.size:
        return ImageReading(_NAMES[background], None, None)
    return ImageReading(_NAMES[background], _NAMES[colour], classify_shape(classes == colour))


def classify_shape(mask: np.ndarray) -> str:
    """The toy shape that best explains a boolean pixel mask: a full box is a square or rectangle (by aspect
    ratio), about pi/4 of it a circle, about half a triangle (centre of mass low) or a diamond (centred)."""
    rows, cols = np.nonzero(mask)
    top, height = rows.min(), rows.max() - rows.min() + 1
    width = cols.max() - cols.min() + 1
    fill = len(rows) / (height * width)
    if fill > 0.9:
        return "square" if 0.8 <= width / height <= 1.25 else "rectangle"
    if fill > 0.65:
        return "circle"
    centre = (rows.mean() - top + 0.5) / height
    return "triangle" if centre > 0.58 else "diamond"


@dataclass(frozen=True)
class ToyCheck:
    """The check of one image against its prompt."""

    caption: str
    reading: ImageReading
    colour_ok: bool
    shape_ok: bool


def check_image(image: Image.Image, caption: str) -> ToyCheck:
    """Whether the image's object has the colour (and the shape) the caption asks for; an error if the
    caption is not a toy prompt."""
    wanted = prompt_object(caption)
    if wanted is None:
        raise ValueError(f"not a toy prompt (no '<colour> <shape>' in it): {caption!r}")
    reading = read_image(image)
    return ToyCheck(caption, reading, reading.colour == wanted[0], reading.shape == wanted[1])


@dataclass(frozen=True)
class ToyCheckSummary:
    """Shares of images passing the colour check, the shape check and both."""

    count: int
    colour: float
    shape: float
    both: float

    def __str__(self) -> str:
        return f"toy check on {self.count} images: colour {self.colour:.3f}, shape {self.shape:.3f}, both {self.both:.3f}"


def summarise(checks: Sequence[ToyCheck]) -> ToyCheckSummary:
    """Accuracy figures of a list of checks (0 for an empty list)."""
    def share(values: Iterable[bool]) -> float:
        values = list(values)
        return sum(values) / len(values) if values else 0.0
    return ToyCheckSummary(len(checks), share(c.colour_ok for c in checks), share(c.shape_ok for c in checks),
                           share(c.colour_ok and c.shape_ok for c in checks))


@dataclass
class ImageGenPrediction:
    """The images generated for one sample (files under --gen-images-path, if written) and their checks
    (none if the caption is no toy prompt or no VQGAN decoded them)."""

    uniq_id: str
    caption: str
    target: str
    files: list[str]
    checks: list[ToyCheck]

    def matches_target(self, target: str) -> bool:
        return target == self.target

    def record(self) -> dict:
        return {"uniq_id": self.uniq_id, "caption": self.caption, "images": self.files,
                "colour_ok": [c.colour_ok for c in self.checks], "shape_ok": [c.shape_ok for c in self.checks]}


@register_scorer("ofa_toy_image", dataclass=PublishedScorerConfig)
class ToyImageScorer(PublishedPredictionScorer):
    """The toy check of every generated image of the toy prompts; predict JSON [{uniq_id, caption, images,
    colour_ok, shape_ok}]."""

    task_names = "the image_gen task with --vqgan-model-path and --vqgan-config-path"

    def summary(self) -> ToyCheckSummary:
        return summarise([check for p in self.predictions for check in p.checks])

    def score(self) -> float:
        return self.summary().colour

    def metrics_string(self) -> str:
        checked = sum(bool(p.checks) for p in self.predictions)
        return f"{self.summary()} ({checked} of {len(self.predictions)} prompts checked)"
