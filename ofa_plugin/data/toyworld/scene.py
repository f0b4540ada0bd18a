"""Toy scenes: the scene model (coloured shapes with pixel boxes on a plain background), random drawing,
rendering to a PIL image and JPEG/base64 encoding.

A `Scene` is the single source of truth of the toy world: every task row is a view of one.
"""
from __future__ import annotations

import base64
import io
import math
import random
from dataclasses import dataclass
from typing import Iterable, Sequence

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "rectangle", "triangle", "diamond")
_RGB = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 180),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
    "pink": (250, 170, 200),
    "brown": (130, 80, 40),
}
OBJECT_COLOURS = {name: _RGB[name] for name in ("red", "green", "blue", "yellow", "orange", "purple", "white",
                                                 "black")}
BACKGROUND_COLOURS = {name: _RGB[name] for name in ("white", "black", "gray", "yellow", "blue", "green", "pink",
                                                     "brown")}
ANSWER_COLOURS = tuple(dict.fromkeys([*OBJECT_COLOURS, *BACKGROUND_COLOURS]))
GRAYSCALE_FRACTION = 0.1  # share of scenes saved as single-channel (mode L) JPEGs
MIN_GRAY_CONTRAST = 50  # luma gap between a shape and the background in grayscale scenes
JPEG_QUALITY = 90
_FILL = {"circle": math.pi / 4, "square": 1.0, "rectangle": 1.0, "triangle": 0.5, "diamond": 0.5}


@dataclass(frozen=True)
class ToyObject:
    """One shape; `box` = (x0, y0, x1, y1) pixel edges, the shape covers x0 <= x < x1, y0 <= y < y1."""

    shape: str
    colour: str
    box: tuple[int, int, int, int]

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def area(self) -> float:
        """Drawn area in pixels (the box area times the shape's fill share)."""
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0) * _FILL[self.shape]


@dataclass(frozen=True)
class Scene:
    """A toy image: background colour, shapes ordered left to right, and whether it is stored as grayscale."""

    width: int
    height: int
    background: str
    objects: tuple[ToyObject, ...]
    grayscale: bool = False

    def size_word(self, obj: ToyObject) -> str:
        """'small', 'big' or '' from the shape's size relative to the image's shorter side."""
        x0, y0, x1, y1 = obj.box
        relative = math.sqrt((x1 - x0) * (y1 - y0)) / min(self.width, self.height)
        return "small" if relative < 0.28 else "big" if relative > 0.4 else ""


def luma(rgb: tuple[int, int, int]) -> float:
    """Brightness of an RGB colour as PIL's RGB -> L conversion computes it."""
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _object_size(rng: random.Random, shape: str, width: int, height: int) -> tuple[int, int]:
    side = rng.uniform(0.22, 0.45) * min(width, height)
    if shape != "rectangle":
        return round(side), round(side)
    horizontal = rng.random() < 0.5
    long_side = min(round(side * 1.6), (width if horizontal else height) - 2)
    short_side = round(side * 0.75)
    return (long_side, short_side) if horizontal else (short_side, long_side)


def _overlaps(box: tuple[int, int, int, int], others: Iterable[ToyObject], gap: int = 2) -> bool:
    """Whether `box` comes closer than `gap` pixels to any of the other shapes' boxes."""
    x0, y0, x1, y1 = box
    return any(x0 < ox1 + gap and ox0 < x1 + gap and y0 < oy1 + gap and oy0 < y1 + gap
               for ox0, oy0, ox1, oy1 in (o.box for o in others))


def _place_shape(rng: random.Random, scene_size: tuple[int, int], shape: str, colour: str,
                 placed: Sequence[ToyObject]) -> ToyObject | None:
    """The shape at a random spot clear of the others; None if 30 tries find no room."""
    width, height = scene_size
    w, h = _object_size(rng, shape, width, height)
    for _ in range(30):
        x0, y0 = rng.randint(1, width - w - 1), rng.randint(1, height - h - 1)
        box = (x0, y0, x0 + w, y0 + h)
        if not _overlaps(box, placed):
            return ToyObject(shape, colour, box)
    return None


def _place_object(rng: random.Random, scene_size: tuple[int, int], colours: Sequence[str],
                  placed: list[ToyObject]) -> ToyObject | None:
    """A shape with a new (shape, colour) pair that does not overlap the others; None if it finds no room."""
    taken = {(o.shape, o.colour) for o in placed}
    shape, colour = rng.choice([(s, c) for s in SHAPES for c in colours if (s, c) not in taken])
    return _place_shape(rng, scene_size, shape, colour, placed)


def draw_scene(rng: random.Random, size_range: tuple[int, int] = (48, 160)) -> Scene:
    """A random scene of 1-3 distinct shapes (at least one) on a plain background of random size."""
    width, height = rng.randint(*size_range), rng.randint(*size_range)
    background = rng.choice(sorted(BACKGROUND_COLOURS))
    grayscale = rng.random() < GRAYSCALE_FRACTION
    bg_luma = luma(BACKGROUND_COLOURS[background])
    colours = [c for c, rgb in OBJECT_COLOURS.items() if c != background
               and (not grayscale or abs(luma(rgb) - bg_luma) >= MIN_GRAY_CONTRAST)]
    placed: list[ToyObject] = []
    for _ in range(rng.randint(1, 3)):
        obj = _place_object(rng, (width, height), colours, placed)
        if obj is not None:
            placed.append(obj)
    objects = tuple(sorted(placed, key=lambda o: o.centre))
    return Scene(width, height, background, objects, grayscale)


def draw_single_object_scene(rng: random.Random, shape: str, colour: str,
                             size_range: tuple[int, int] = (48, 160)) -> Scene:
    """A colour scene holding exactly one given shape, on a background of another colour."""
    width, height = rng.randint(*size_range), rng.randint(*size_range)
    background = rng.choice([b for b in sorted(BACKGROUND_COLOURS) if b != colour])
    obj = _place_shape(rng, (width, height), shape, colour, ())
    assert obj is not None, "an empty scene always has room"
    return Scene(width, height, background, (obj,))


def render_scene(scene: Scene) -> Image.Image:
    """The scene as a PIL image (mode RGB, or L for grayscale scenes)."""
    image = Image.new("RGB", (scene.width, scene.height), BACKGROUND_COLOURS[scene.background])
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        x1, y1 = x1 - 1, y1 - 1  # PIL's shape coordinates are inclusive
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        fill = OBJECT_COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif obj.shape in ("square", "rectangle"):
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif obj.shape == "triangle":
            draw.polygon([(x0, y1), (x1, y1), (cx, y0)], fill=fill)
        else:
            draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    return image.convert("L") if scene.grayscale else image


def encode_image_base64(image: Image.Image) -> str:
    """JPEG bytes as standard base64, the encoding of the official datasets ("/9j/...")."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
