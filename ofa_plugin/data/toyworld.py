"""The toy world: random scenes of coloured shapes, written as official-layout OFA TSVs plus a vocabulary.

A `Scene` (background, 1-3 shapes with colours and pixel boxes) is the single source of truth; every task
split is a view of scenes: captions, VQA questions with answer sets, referring expressions with boxes,
entailment hypotheses, class labels, and text-only pairs (Gigaword-style summaries, GLUE-style
classification) generated from scene descriptions, so that every label follows from the scene (or, for the
text tasks, from the text) and can be learnt. Everything is deterministic given the seed, each (task, split)
file has its own random stream (writing fewer tasks gives the same bytes for those written), and the whole
world (thousands of rows per task) is written in seconds.

    python -m ofa_plugin.data.toyworld --out DIR [--seed 1] [--num-train 2000] [--tasks caption vqa ...]

writes DIR/{task}_{train,valid,test}.tsv for every task in `TASKS`, DIR/vqa_ans2label.{pkl,json},
DIR/classify_class2label.pkl and DIR/vocab/{spm.model,dict.txt}. Column layouts and the official
`--selected-cols` of each file are listed in `OFFICIAL_SELECTED_COLS` (reference §5).
"""
from __future__ import annotations

import argparse
import base64
import collections
import io
import itertools
import json
import logging
import math
import pickle
import random
import re
import string
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import sentencepiece as spm
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

SHAPES = ("circle", "square", "rectangle", "triangle", "diamond")
OBJECT_COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 180),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
BACKGROUND_COLOURS = {
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
    "yellow": (240, 220, 40),
    "blue": (40, 80, 220),
    "green": (40, 170, 60),
    "pink": (250, 170, 200),
    "brown": (130, 80, 40),
}
GRAYSCALE_FRACTION = 0.1  # share of scenes saved as single-channel (mode L) JPEGs
MIN_GRAY_CONTRAST = 50  # luma gap between a shape and the background in grayscale scenes
JPEG_QUALITY = 90
VOCAB_SIZE = 600
_VOCAB_SEED = 1  # the vocabulary is the same for every world seed and size (see _vocabulary_corpus)
_VOCAB_SCENES = 3000
_VOCAB_ROWS_PER_TASK = 300
_SPLIT_CODES = {"train": 1, "valid": 2, "test": 3}  # digit of image ids, unique across splits
_CLEAR = 0.1  # a position or relation is stated only if centres differ by this share of the image side
_CLEARLY_BIGGER = 1.5  # size words need this ratio of drawn areas
_FILL = {"circle": math.pi / 4, "square": 1.0, "rectangle": 1.0, "triangle": 0.5, "diamond": 0.5}

NUMBER_WORDS = ("zero", "one", "two", "three")
ANSWER_COLOURS = tuple(dict.fromkeys([*OBJECT_COLOURS, *BACKGROUND_COLOURS]))
# The VQA candidate answers in label order (written as vqa_ans2label.pkl): every answer any row can carry.
VQA_ANSWERS = ("yes", "no", *ANSWER_COLOURS, *SHAPES, "0", "1", "2", "3", *NUMBER_WORDS, "left", "right")
# Image classes (written as classify_class2label.pkl, label = position; the TSV holds label + 1).
CLASS_NAMES = tuple(f"{colour} {shape}" for shape in SHAPES for colour in OBJECT_COLOURS)
ENTAILMENT_LABELS = ("entailment", "contradiction", "neutral")

# Fixed instruction prompts of the OFA tasks (reference §5.1); only used to train the vocabulary.
_PROMPTS = (
    " what does the image describe?",
    ' which region does the text " {0} " describe?',
    ' does the image describe " {0} "?',
    ' can image and text1 " {0} " imply text2 " {1} "?',
    " what is the complete image? caption: {0}",
    " what are the texts on the image?",
    ' what is the summary of article " {0} "?',
    ' is the text " {0} " grammatically correct?',
    ' can text1 " {0} " imply text2 " {1} "?',
    ' does text1 " {0} " and text2 " {1} " have the same semantics?',
    ' does " {0} " contain the answer to question " {1} "?',
    ' is question " {0} " and question " {1} " equivalent?',
    ' is the sentiment of text " {0} " positive or negative?',
    " {0} object: {1}",
)
# Decoder targets of the closed-set tasks (snli_ve, GLUE) besides the VQA answers and class names.
_LABEL_WORDS = "yes no maybe positive negative"


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


# ----------------------------------------------------------------------------------------------------------
# Scenes and images


def _luma(rgb: tuple[int, int, int]) -> float:
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
    bg_luma = _luma(BACKGROUND_COLOURS[background])
    colours = [c for c, rgb in OBJECT_COLOURS.items() if c != background
               and (not grayscale or abs(_luma(rgb) - bg_luma) >= MIN_GRAY_CONTRAST)]
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


# ----------------------------------------------------------------------------------------------------------
# Phrases: what can truthfully be said about a scene


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _with_article(phrase: str) -> str:
    return f"{_article(phrase)} {phrase}"


def _noun(scene: Scene, obj: ToyObject, colour: bool = True, size: bool = False) -> str:
    """'a small red circle' style noun phrase; colours are left out of grayscale scenes."""
    words = [scene.size_word(obj) if size else "", obj.colour if colour and not scene.grayscale else "",
             obj.shape]
    return _with_article(" ".join(w for w in words if w))


def _definite(scene: Scene, obj: ToyObject) -> str | None:
    """'the red circle' (or 'the circle' in grayscale scenes), None if that names several shapes."""
    if not scene.grayscale:
        return f"the {obj.colour} {obj.shape}"
    return f"the {obj.shape}" if _shape_count(scene, obj.shape) == 1 else None


def _shape_count(scene: Scene, shape: str) -> int:
    return sum(o.shape == shape for o in scene.objects)


def _colour_count(scene: Scene, colour: str) -> int:
    return sum(o.colour == colour for o in scene.objects)


def _background(scene: Scene) -> str:
    """Background colour name, or its brightness in a grayscale scene."""
    if not scene.grayscale:
        return scene.background
    luma = _luma(BACKGROUND_COLOURS[scene.background])
    return "dark" if luma < 90 else "light" if luma > 170 else "gray"


def _position(scene: Scene, obj: ToyObject) -> str:
    cx, cy = obj.centre
    col = ("left", "", "right")[min(int(3 * cx / scene.width), 2)]
    row = ("top", "", "bottom")[min(int(3 * cy / scene.height), 2)]
    if not col and not row:
        return "in the middle of the image"
    if not row:
        return f"on the {col}"
    return f"at the {row}" if not col else f"in the {row} {col} corner"


def _relation(a: ToyObject, b: ToyObject, scene: Scene) -> tuple[str, str]:
    """How `a` sits relative to `b`, and the converse."""
    dx = (b.centre[0] - a.centre[0]) / scene.width
    dy = (b.centre[1] - a.centre[1]) / scene.height
    if abs(dy) > abs(dx):
        return ("above", "below") if dy > 0 else ("below", "above")
    return ("to the left of", "to the right of") if dx > 0 else ("to the right of", "to the left of")


def _clear_relation(scene: Scene, a: ToyObject, b: ToyObject) -> tuple[str, str] | None:
    """`_relation` when one axis clearly dominates (far enough apart, 1.5 times the other axis)."""
    dx = abs(b.centre[0] - a.centre[0]) / scene.width
    dy = abs(b.centre[1] - a.centre[1]) / scene.height
    big, small = max(dx, dy), min(dx, dy)
    return _relation(a, b, scene) if big >= _CLEAR and big >= _CLEARLY_BIGGER * small else None


def _extreme_places(scene: Scene, target: ToyObject, group: Sequence[ToyObject]) -> list[str]:
    """'on the left', 'at the top', ... where `target` is clearly beyond every other member of `group`."""
    places = []
    for axis, (low, high) in enumerate((("on the left", "on the right"), ("at the top", "at the bottom"))):
        side = (scene.width, scene.height)[axis]
        gaps = [(o.centre[axis] - target.centre[axis]) / side for o in group if o is not target]
        if gaps and min(gaps) >= _CLEAR:
            places.append(low)
        if gaps and max(gaps) <= -_CLEAR:
            places.append(high)
    return places


def _size_extremes(target: ToyObject, group: Sequence[ToyObject]) -> list[str]:
    """'larger'/'smaller' (two shapes) or 'largest'/'smallest' (three) when `target` clearly is."""
    areas = [o.area for o in group if o is not target]
    words = ("larger", "smaller") if len(group) == 2 else ("largest", "smallest")
    return ([words[0]] if target.area >= _CLEARLY_BIGGER * max(areas) else []) + \
           ([words[1]] if _CLEARLY_BIGGER * target.area <= min(areas) else [])


def _listing(nouns: Sequence[str]) -> str:
    return nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]


def _absent_pair(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """A (shape, colour) not in the scene (nor of the background's colour), preferably sharing the
    shape or the colour of a shape that is there (a hard negative)."""
    present = {(o.shape, o.colour) for o in scene.objects}
    absent = [(s, c) for s in SHAPES for c in OBJECT_COLOURS if (s, c) not in present and c != scene.background]
    near = [(s, c) for s, c in absent if any(s == o.shape or c == o.colour for o in scene.objects)]
    return rng.choice(near or absent)


def _absent_shape(scene: Scene, rng: random.Random) -> str:
    return rng.choice([s for s in SHAPES if _shape_count(scene, s) == 0])


def _capitalised(text: str) -> str:
    return text[0].upper() + text[1:]


# ----------------------------------------------------------------------------------------------------------
# Captions (reference §5.2)


def caption_candidates(scene: Scene) -> list[str]:
    """All distinct true captions of the scene (at least 5), lowercase, in a fixed order."""
    objs = scene.objects
    on_bg = f"on {_with_article(_background(scene))} background"
    coloured = _listing([_noun(scene, o) for o in objs])
    plain = _listing([_noun(scene, o, colour=False) for o in objs])
    sized = _listing([_noun(scene, o, size=True) for o in objs])
    count = ("", "one shape", "two shapes", "three shapes")[len(objs)]
    captions = [f"{sized} {on_bg}", coloured, f"{plain} {on_bg}", f"{count} {on_bg}",
                f"{_with_article(_background(scene))} background with {coloured}"]
    if len(objs) == 1:
        captions += [f"there is {coloured} in the image", f"{coloured} {_position(scene, objs[0])}"]
    elif len(objs) == 2:
        relation, converse = _relation(objs[0], objs[1], scene)
        captions += [f"there is {coloured} in the image",
                     f"{_noun(scene, objs[0])} {relation} {_noun(scene, objs[1])}",
                     f"{_noun(scene, objs[1])} {converse} {_noun(scene, objs[0])}"]
    else:
        captions += ["there are three shapes in the image", f"{sized}"]
    if scene.grayscale:
        captions.append(f"a black and white picture of {plain}")
    return list(dict.fromkeys(captions))


_IMAGE_ID_TASKS = ("vqa", "refcoco", "snli_ve")  # tasks with image ids beside the caption task


def _image_id(task: str, split: str, index: int) -> str:
    """Numeric image ids, unique across splits and tasks: 8 digits for captions, 9 for the others."""
    if task == "caption":
        return f"{_SPLIT_CODES[split]}{index + 1:07d}"
    return f"{1 + _IMAGE_ID_TASKS.index(task)}{_SPLIT_CODES[split]}{index + 1:07d}"


def _caption_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """uniq-id, image-id, caption(s), objects (image goes at 4): one caption in training, else 3-5."""
    scene = draw_scene(rng, size_range)
    candidates = caption_candidates(scene)
    if split == "train":
        caption = rng.choice(candidates)
    else:
        caption = "&&".join(rng.sample(candidates, rng.randint(3, min(5, len(candidates)))))
    objects = "&&".join(o.shape for o in scene.objects)
    return scene, [str(index + 1), _image_id("caption", split, index), caption, objects]


# ----------------------------------------------------------------------------------------------------------
# VQA (reference §5.3): one question per image, answers with confidences


# A second answer some annotators would give (VQA answer fields hold several answers with confidences).
_ALTERNATIVE_ANSWERS = {
    "red": "orange", "orange": "yellow", "yellow": "orange", "blue": "purple", "purple": "blue",
    "white": "gray", "black": "gray", "gray": "white", "pink": "purple", "brown": "orange", "green": "blue",
    "square": "rectangle", "rectangle": "square", "diamond": "square", "yes": "no", "no": "yes",
    "0": "zero", "1": "one", "2": "two", "3": "three",
}
_ALTERNATIVE_SHARE = 0.3
_Question = tuple[str, str]  # (question, main answer)


def _ask_colour(scene: Scene, rng: random.Random) -> _Question | None:
    unique = [o for o in scene.objects if _shape_count(scene, o.shape) == 1]
    if scene.grayscale or not unique:
        return None
    obj = rng.choice(unique)
    return f"What color is the {obj.shape}?", obj.colour


def _ask_background(scene: Scene, rng: random.Random) -> _Question | None:
    return None if scene.grayscale else ("What color is the background?", scene.background)


def _ask_shape_of_colour(scene: Scene, rng: random.Random) -> _Question | None:
    unique = [o for o in scene.objects if _colour_count(scene, o.colour) == 1]
    if scene.grayscale or not unique:
        return None
    obj = rng.choice(unique)
    return f"Which shape is {obj.colour}?", obj.shape


def _ask_shape_at_side(scene: Scene, rng: random.Random) -> _Question | None:
    if len(scene.objects) == 1:
        return "What shape is in the picture?", scene.objects[0].shape
    sides = [(place, o) for o in scene.objects for place in _extreme_places(scene, o, scene.objects)
             if place in ("on the left", "on the right")]
    if not sides:
        return None
    place, obj = rng.choice(sides)
    return f"What shape is {place}?", obj.shape


def _ask_count(scene: Scene, rng: random.Random) -> _Question | None:
    kind = rng.choice(("all", "shape", "colour"))
    if kind == "all":
        return "How many shapes are there?", str(len(scene.objects))
    if kind == "shape":
        shape = rng.choice(scene.objects).shape if rng.random() < 0.5 else rng.choice(SHAPES)
        return f"How many {shape}s are there?", str(_shape_count(scene, shape))
    if scene.grayscale:
        return None
    colours = [c for c in OBJECT_COLOURS if c != scene.background]
    colour = rng.choice(scene.objects).colour if rng.random() < 0.5 else rng.choice(colours)
    return f"How many {colour} shapes are there?", str(_colour_count(scene, colour))


def _ask_existence(scene: Scene, rng: random.Random) -> _Question:
    if rng.random() < 0.5:
        obj = rng.choice(scene.objects)
        return f"Is there {_noun(scene, obj)}?", "yes"
    if scene.grayscale:
        return f"Is there {_with_article(_absent_shape(scene, rng))}?", "no"
    shape, colour = _absent_pair(scene, rng)
    return f"Is there {_with_article(f'{colour} {shape}')}?", "no"


def _ask_side(scene: Scene, rng: random.Random) -> _Question | None:
    sided = [(o, name) for o in scene.objects if (name := _definite(scene, o))
             and abs(o.centre[0] / scene.width - 0.5) >= _CLEAR]
    if not sided:
        return None
    obj, name = rng.choice(sided)
    return f"Is {name} on the left or on the right?", "left" if obj.centre[0] < scene.width / 2 else "right"


_QUESTION_KINDS = (_ask_colour, _ask_background, _ask_shape_of_colour, _ask_shape_at_side, _ask_count,
                   _ask_existence, _ask_side)


def vqa_question(scene: Scene, rng: random.Random) -> tuple[str, dict[str, float]]:
    """A question about the scene (kind drawn uniformly among those that apply) and its answers with
    confidences: the true answer at 1.0, sometimes an annotator's alternative at 0.3 or 0.6."""
    questions = [q for ask in _QUESTION_KINDS if (q := ask(scene, rng)) is not None]
    question, answer = rng.choice(questions)
    answers = {answer: 1.0}
    if answer in _ALTERNATIVE_ANSWERS and rng.random() < _ALTERNATIVE_SHARE:
        answers[_ALTERNATIVE_ANSWERS[answer]] = rng.choice((0.3, 0.6))
    return question, answers


def _vqa_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """question-id, image-id, question, answers ("conf|!+answer" joined by &&), objects (image goes at 5)."""
    scene = draw_scene(rng, size_range)
    question, answers = vqa_question(scene, rng)
    items = [f"{conf:.1f}|!+{answer}" for answer, conf in answers.items()]
    rng.shuffle(items)
    image_id = _image_id("vqa", split, index)
    objects = "&&".join(o.shape for o in scene.objects)
    return scene, [f"{image_id}1", image_id, question, "&&".join(items), objects]


# ----------------------------------------------------------------------------------------------------------
# Referring expressions (reference §5.4)


def referring_expressions(scene: Scene, target: ToyObject) -> list[str]:
    """Every expression that names `target` and no other shape of the scene ('the red circle',
    'the square on the left', 'the larger triangle', ...); empty if none does."""
    others = [o for o in scene.objects if o is not target]
    same_shape = [o for o in scene.objects if o.shape == target.shape]
    expressions = []
    if not scene.grayscale:
        expressions.append(f"the {target.colour} {target.shape}")
        if all(o.colour != target.colour for o in others):
            expressions.append(f"the {target.colour} shape")
    if len(same_shape) == 1:
        expressions.append(f"the {target.shape}")
    for group, noun in ((same_shape, target.shape), (scene.objects, "shape")):
        if len(group) >= 2:
            expressions += [f"the {noun} {place}" for place in _extreme_places(scene, target, group)]
            expressions += [f"the {size} {noun}" for size in _size_extremes(target, group)]
    return list(dict.fromkeys(expressions))


def _refcoco_row(rng: random.Random, split: str, index: int,
                 size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """uniq-id, image-id, expression, "x0,y0,x1,y1" (image goes at 4); redraws scenes that name nothing."""
    while True:
        scene = draw_scene(rng, size_range)
        named = [(i, e) for i, obj in enumerate(scene.objects) if (e := referring_expressions(scene, obj))]
        if named:
            break
    number, expressions = rng.choice(named)
    box = ",".join(str(float(v)) for v in scene.objects[number].box)
    image_id = _image_id("refcoco", split, index)
    return scene, [f"{image_id}_{number + 1}", image_id, rng.choice(expressions), box]


# ----------------------------------------------------------------------------------------------------------
# Entailment hypotheses (reference §5.5; also the MNLI/RTE-style text pairs)

_CONVERSE = {"above": "below", "below": "above", "to the left of": "to the right of",
             "to the right of": "to the left of"}
_NEUTRAL_CLAIMS = ("{0} was drawn by a child", "{0} is made of paper", "someone painted {0} by hand",
                   "the artist likes {0} best", "{0} is moving slowly", "the picture was made last year")
_Claim = Callable[[Scene, random.Random, bool], str | None]


def _count_statement(count: int) -> str:
    return "there is one shape" if count == 1 else f"there are {NUMBER_WORDS[count]} shapes"


def _claim_count(scene: Scene, rng: random.Random, true: bool) -> str:
    count = len(scene.objects)
    return _count_statement(count if true else rng.choice([n for n in (1, 2, 3) if n != count]))


def _claim_existence(scene: Scene, rng: random.Random, true: bool) -> str:
    if true:
        return f"there is {_noun(scene, rng.choice(scene.objects))}"
    if scene.grayscale:
        return f"there is {_with_article(_absent_shape(scene, rng))}"
    shape, colour = _absent_pair(scene, rng)
    return f"there is {_with_article(f'{colour} {shape}')}"


def _claim_background(scene: Scene, rng: random.Random, true: bool) -> str:
    actual = _background(scene)
    words = ("dark", "gray", "light") if scene.grayscale else sorted(BACKGROUND_COLOURS)
    return f"the background is {actual if true else rng.choice([w for w in words if w != actual])}"


def _claim_colour(scene: Scene, rng: random.Random, true: bool) -> str | None:
    unique = [o for o in scene.objects if _shape_count(scene, o.shape) == 1]
    if scene.grayscale or not unique:
        return None
    obj = rng.choice(unique)
    colour = obj.colour if true else rng.choice([c for c in OBJECT_COLOURS if c != obj.colour])
    return f"the {obj.shape} is {colour}"


def _claim_relation(scene: Scene, rng: random.Random, true: bool) -> str | None:
    pairs = [(a, b) for a, b in itertools.permutations(scene.objects, 2)
             if _clear_relation(scene, a, b) and _definite(scene, a) and _definite(scene, b)]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    relation, converse = _clear_relation(scene, a, b)
    return f"{_definite(scene, a)} is {relation if true else converse} {_definite(scene, b)}"


def _claim_neutral(scene: Scene, rng: random.Random) -> str:
    obj = rng.choice(scene.objects)
    name = f"the {obj.shape}" if scene.grayscale else f"the {obj.colour} {obj.shape}"
    return rng.choice(_NEUTRAL_CLAIMS).format(name)


_VISUAL_CLAIMS: tuple[_Claim, ...] = (_claim_count, _claim_existence, _claim_background, _claim_colour,
                                      _claim_relation)
# What a listing of the shapes and the background decides (no positions).
_TEXT_CLAIMS: tuple[_Claim, ...] = (_claim_count, _claim_existence, _claim_background, _claim_colour)


def hypothesis(scene: Scene, label: str, rng: random.Random,
               claims: Sequence[_Claim] = _VISUAL_CLAIMS) -> str:
    """A statement that the scene makes true ('entailment'), false ('contradiction') or leaves open
    ('neutral': about things a picture cannot show)."""
    if label == "neutral":
        return _claim_neutral(scene, rng)
    if label not in ENTAILMENT_LABELS:
        raise ValueError(f"unknown entailment label {label!r}, expected one of {ENTAILMENT_LABELS}")
    statements = [s for claim in claims if (s := claim(scene, rng, label == "entailment")) is not None]
    return rng.choice(statements)


def _snli_ve_row(rng: random.Random, split: str, index: int,
                 size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """uniq-id, image-id, hypothesis, premise caption, label (image goes at 2)."""
    scene = draw_scene(rng, size_range)
    label = rng.choice(ENTAILMENT_LABELS)
    image_id = _image_id("snli_ve", split, index)
    premise = rng.choice(caption_candidates(scene))
    return scene, [f"{image_id}.jpg#0r1{label[0]}", image_id, hypothesis(scene, label, rng) + ".",
                   premise + ".", label]


# ----------------------------------------------------------------------------------------------------------
# Image classification (reference §5.7)


def _classify_row(rng: random.Random, split: str, index: int,
                  size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """label index (1-based), class name (image goes at 0): one shape, class = 'colour shape'."""
    label = rng.randrange(len(CLASS_NAMES))
    colour, shape = CLASS_NAMES[label].split()
    return draw_single_object_scene(rng, shape, colour, size_range), [str(label + 1), CLASS_NAMES[label]]


# ----------------------------------------------------------------------------------------------------------
# Text-only pairs from scene descriptions (reference §5.9, §5.10)


def _text_scene(rng: random.Random, size_range: tuple[int, int]) -> Scene:
    """A scene for text tasks: described in colour whatever its rendering would be."""
    return replace(draw_scene(rng, size_range), grayscale=False)


_DESCRIPTIONS = ("the picture shows {shapes} on {bg} background", "{shapes} on {bg} background",
                 "there {be} {shapes} on {bg} background", "on {bg} background there {be} {shapes}",
                 "{bg} background with {shapes}")


def _description(scene: Scene, rng: random.Random) -> str:
    """A sentence naming every shape (colour and kind, in random order) and the background."""
    nouns = [_noun(scene, o) for o in scene.objects]
    rng.shuffle(nouns)
    text = rng.choice(_DESCRIPTIONS).format(shapes=_listing(nouns), bg=_with_article(scene.background),
                                            be="is" if len(nouns) == 1 else "are")
    return _capitalised(text) + "."


_GIGAWORD_OPENERS = ("in a picture released on monday ,", "according to the artist ,",
                     "as can be seen in the new drawing ,", "in the latest image of the series ,",
                     "officials said on friday that")
_GIGAWORD_VERBS = ("can be seen", "sits", "is drawn", "appears")
_GIGAWORD_LINKS = (" , while ", " , and ", " as well as ")
_GIGAWORD_BACKGROUNDS = ("all on {0} background", "set against {0} background", "on {0} background")
_GIGAWORD_CLOSERS = (" , the artist said .", " , the gallery reported .", " .")


def _gigaword_row(rng: random.Random, split: str, index: int,
                  size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """source (a verbose, news-like description), target (the short summary 'red circle and ...')."""
    scene = _text_scene(rng, size_range)
    order = list(scene.objects)
    rng.shuffle(order)
    clauses = [f"{_noun(scene, o, size=True)} {rng.choice(_GIGAWORD_VERBS)} {_position(scene, o)}"
               for o in order]
    body = clauses[0] + "".join(rng.choice(_GIGAWORD_LINKS) + clause for clause in clauses[1:])
    background = rng.choice(_GIGAWORD_BACKGROUNDS).format(_with_article(scene.background))
    source = f"{rng.choice(_GIGAWORD_OPENERS)} {body} , {background}{rng.choice(_GIGAWORD_CLOSERS)}"
    names = [f"{o.colour} {o.shape}" for o in order]
    shapes = names[0] if len(names) == 1 else " , ".join(names[:-1]) + " and " + names[-1]
    return scene, [source, f"{shapes} on {scene.background} background"]


_POSITIVE = ("beautiful", "lovely", "charming", "delightful", "elegant", "pleasant", "wonderful")
_NEGATIVE = ("ugly", "dull", "boring", "awful", "clumsy", "messy", "terrible")
# (plain, negated) templates; the negation flips the sentiment.
_OPINIONS = (("{np} is {adj} .", "{np} is not {adj} ."), ("i find {np} {adj} .", "i do not find {np} {adj} ."),
             ("{np} looks {adj} .", "{np} does not look {adj} ."), ("what {adj_np} .", None))


def _sst2_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """sentence, label ('1' positive, '0' negative): an opinion about a shape of the scene."""
    scene = _text_scene(rng, size_range)
    obj = rng.choice(scene.objects)
    positive = rng.random() < 0.5
    adjective = rng.choice(_POSITIVE if positive else _NEGATIVE)
    plain, negated = rng.choice(_OPINIONS)
    negate = negated is not None and rng.random() < 0.3
    where = rng.choice(("", f" on the {scene.background} background", f" {_position(scene, obj)}"))
    sentence = (negated if negate else plain).format(
        np=f"the {obj.colour} {obj.shape}{where}", adj=adjective,
        adj_np=_with_article(f"{adjective} {obj.colour} {obj.shape}") + where)
    return scene, [sentence, "1" if positive != negate else "0"]


def _cola_sentences(scene: Scene, obj: ToyObject) -> list[tuple[str, list[str]]]:
    """(grammatical sentence, its broken variants) about the scene: agreement and word-order errors."""
    article = _article(obj.colour)
    noun = f"{article} {obj.colour} {obj.shape}"
    broken_nouns = [f"{article} {obj.shape} {obj.colour}", f"{obj.colour} {article} {obj.shape}",
                    f"{article} {article} {obj.colour} {obj.shape}"]
    place = _position(scene, obj)
    count = len(scene.objects)
    if count == 1:
        wrong_counts = ["there are one shape", "there is one shapes"]
    else:
        wrong_counts = [f"there is {NUMBER_WORDS[count]} shapes", f"there are {NUMBER_WORDS[count]} shape"]
    return [
        (f"there is {noun} {place}", [f"there are {noun} {place}"] + [f"there is {n} {place}" for n in broken_nouns]),
        (f"{noun} is {place}", [f"{noun} are {place}"] + [f"{n} is {place}" for n in broken_nouns]),
        (f"{_count_statement(count)} in the picture", [f"{wrong} in the picture" for wrong in wrong_counts]),
    ]


def _cola_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """index, sentence, label ('1' acceptable, '0' not)."""
    scene = _text_scene(rng, size_range)
    grammatical = rng.random() < 0.5
    good, broken = rng.choice(_cola_sentences(scene, rng.choice(scene.objects)))
    sentence = _capitalised(good if grammatical else rng.choice(broken)) + "."
    return scene, [str(index), sentence, "1" if grammatical else "0"]


def _text_entailment(rng: random.Random, size_range: tuple[int, int]) -> tuple[Scene, str, str, str]:
    """A scene, its description (premise), a hypothesis and the hypothesis' label given the premise."""
    scene = _text_scene(rng, size_range)
    label = rng.choice(ENTAILMENT_LABELS)
    return scene, _description(scene, rng), _capitalised(hypothesis(scene, label, rng, _TEXT_CLAIMS)) + ".", label


_MNLI_LABELS = {"neutral": "0", "entailment": "1", "contradiction": "2"}  # as the official mnli files


def _mnli_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """sentence1 (premise), sentence2 (hypothesis), label ('0' neutral, '1' entailment, '2' contradiction)."""
    scene, premise, claim, label = _text_entailment(rng, size_range)
    return scene, [premise, claim, _MNLI_LABELS[label]]


def _rte_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """index, sentence1, sentence2, label ('entailment' or 'not_entailment')."""
    scene, premise, claim, label = _text_entailment(rng, size_range)
    return scene, [str(index), premise, claim, "entailment" if label == "entailment" else "not_entailment"]


def _changed_scene(scene: Scene, rng: random.Random) -> Scene:
    """The scene with one fact changed: a shape's colour or kind, the background, or a shape removed."""
    change = rng.choice(["colour", "shape", "background"] + (["remove"] if len(scene.objects) > 1 else []))
    if change == "background":
        used = {scene.background, *(o.colour for o in scene.objects)}
        return replace(scene, background=rng.choice([b for b in sorted(BACKGROUND_COLOURS) if b not in used]))
    objects = list(scene.objects)
    number = rng.randrange(len(objects))
    old = objects.pop(number)
    if change != "remove":
        taken = {(o.shape, o.colour) for o in scene.objects}
        if change == "shape":
            options = [replace(old, shape=s) for s in SHAPES]
        else:
            options = [replace(old, colour=c) for c in OBJECT_COLOURS if c != scene.background]
        objects.insert(number, rng.choice([o for o in options if (o.shape, o.colour) not in taken]))
    return replace(scene, objects=tuple(objects))


def _mrpc_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """sentence1, sentence2, label ('1' when both describe the same scene, '0' when one fact differs)."""
    scene = _text_scene(rng, size_range)
    first = _description(scene, rng)
    same = rng.random() < 0.5
    other = scene if same else _changed_scene(scene, rng)
    second = _description(other, rng)
    while same and second == first:
        second = _description(other, rng)
    return scene, [first, second, "1" if same else "0"]


_QUESTION_FORMS = {
    "colour": ("What color is the {shape}?", "Which color does the {shape} have?",
               "What is the color of the {shape}?"),
    "shape": ("Which shape is {colour}?", "What shape is the {colour} object?",
              "What is the shape of the {colour} object?"),
    "count": ("How many shapes are there?", "What is the number of shapes in the picture?",
              "How many shapes can you see?"),
    "background": ("What color is the background?", "Which color does the background have?",
                   "What is the color of the background?"),
}


def _ask(intent: str, obj: ToyObject, rng: random.Random, form: int | None = None) -> str:
    forms = _QUESTION_FORMS[intent]
    return forms[rng.randrange(len(forms)) if form is None else form].format(shape=obj.shape, colour=obj.colour)


def _qqp_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """id, qid1, qid2, question1, question2, is_duplicate ('1' same intent and object, else '0')."""
    scene = _text_scene(rng, size_range)
    obj = rng.choice(scene.objects)
    other = ToyObject(rng.choice([s for s in SHAPES if s != obj.shape]),
                      rng.choice([c for c in OBJECT_COLOURS if c != obj.colour]), obj.box)
    intent = rng.choice(sorted(_QUESTION_FORMS))
    first_form, second_form = rng.sample(range(3), 2)
    first = _ask(intent, obj, rng, first_form)
    duplicate = rng.random() < 0.5
    if duplicate:
        second = _ask(intent, obj, rng, second_form)
    elif intent in ("colour", "shape") and rng.random() < 0.5:
        second = _ask(intent, other, rng)  # same question about another object
    else:
        second = _ask(rng.choice([i for i in sorted(_QUESTION_FORMS) if i != intent]), obj, rng)
    return scene, [str(index), str(2 * index + 1), str(2 * index + 2), first, second, "1" if duplicate else "0"]


def _facts(scene: Scene) -> list[tuple[str, set[tuple[str, str]]]]:
    """Sentences stating one fact each, with the (intent, object key) questions each one answers."""
    facts = [(_count_statement(len(scene.objects)), {("count", "")}),
             (f"the background is {scene.background}", {("background", "")})]
    for obj in scene.objects:
        if _shape_count(scene, obj.shape) == 1:  # else "the circle" would not say which circle
            answers = {("colour", obj.shape)} | ({("shape", obj.colour)} if _colour_count(scene, obj.colour) == 1
                                                 else set())
            facts.append((f"the {obj.shape} is {obj.colour}", answers))
        facts.append((f"there is {_noun(scene, obj, colour=False)}", set()))
    return facts


def _qnli_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """index, question, sentence, label ('entailment' if the sentence answers the question)."""
    scene = _text_scene(rng, size_range)
    facts = _facts(scene)
    askable = sorted({key for _, answers in facts for key in answers})
    intent, key = rng.choice(askable)
    obj = next(o for o in scene.objects if key in ("", o.shape, o.colour))  # the shape the question is about
    answering = [text for text, answers in facts if (intent, key) in answers]
    others = [text for text, answers in facts if (intent, key) not in answers]
    entailed = rng.random() < 0.5
    chosen = rng.sample(others, rng.randint(0, 1) if entailed else 1)
    if entailed:
        chosen.append(rng.choice(answering))
    rng.shuffle(chosen)
    sentence = _capitalised(" , and ".join(chosen)) + "."
    return scene, [str(index), _ask(intent, obj, rng), sentence, "entailment" if entailed else "not_entailment"]


# ----------------------------------------------------------------------------------------------------------
# Tasks, splits and files


_RowBuilder = Callable[[random.Random, str, int, tuple[int, int]], tuple[Scene, list[str]]]


@dataclass(frozen=True)
class _Layout:
    """How a task's rows are built and laid out."""

    build: _RowBuilder  # (rng, split, index, size range) -> (scene, every column but the image)
    image_col: int | None  # where the base64 image goes, None for text-only tasks
    text_cols: tuple[int, ...]  # columns (of the full row) whose text the model reads
    selected_cols: str  # the official --selected-cols for this file


_LAYOUTS = {
    "caption": _Layout(_caption_row, 4, (2,), "0,4,2"),
    "vqa": _Layout(_vqa_row, 5, (2, 3, 4), "0,5,2,3,4"),
    "refcoco": _Layout(_refcoco_row, 4, (2,), "0,4,2,3"),
    "snli_ve": _Layout(_snli_ve_row, 2, (3, 4), "0,2,3,4,5"),
    "classify": _Layout(_classify_row, 0, (2,), "0,2"),
    "gigaword": _Layout(_gigaword_row, None, (0, 1), "0,1"),
    "cola": _Layout(_cola_row, None, (1,), "1,2"),
    "mnli": _Layout(_mnli_row, None, (0, 1), "0,1,2"),
    "mrpc": _Layout(_mrpc_row, None, (0, 1), "0,1,2"),
    "qnli": _Layout(_qnli_row, None, (1, 2), "1,2,3"),
    "qqp": _Layout(_qqp_row, None, (3, 4), "3,4,5"),
    "rte": _Layout(_rte_row, None, (1, 2), "1,2,3"),
    "sst2": _Layout(_sst2_row, None, (0,), "0,1"),
}
TASKS = tuple(_LAYOUTS)
# The official --selected-cols of each file (reference §5, §9.3); caption evaluation uses "1,4,2".
OFFICIAL_SELECTED_COLS = {task: layout.selected_cols for task, layout in _LAYOUTS.items()}


def _check(task: str, split: str) -> _Layout:
    if task not in _LAYOUTS:
        raise ValueError(f"unknown toy world task {task!r}, expected one of {TASKS}")
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}, expected one of {sorted(_SPLIT_CODES)}")
    return _LAYOUTS[task]


def task_rows(task: str, split: str, num_rows: int, seed: int,
              size_range: tuple[int, int] = (48, 160)) -> Iterator[tuple[Scene, list[str]]]:
    """The scenes and TSV columns (official layout of `task`, images as base64 JPEG) of a split."""
    layout = _check(task, split)
    rng = random.Random(f"toyworld:{seed}:{task}:{split}")
    for index in range(num_rows):
        scene, columns = layout.build(rng, split, index, size_range)
        if layout.image_col is not None:
            columns.insert(layout.image_col, encode_image_base64(render_scene(scene)))
        yield scene, columns


def caption_rows(split: str, num_rows: int, seed: int,
                 size_range: tuple[int, int] = (48, 160)) -> Iterator[tuple[Scene, list[str]]]:
    """The scenes and TSV columns of a caption split ("train": one caption per row, else 3-5 references)."""
    return task_rows("caption", split, num_rows, seed, size_range)


def write_split(path: Path, task: str, split: str, num_rows: int, seed: int,
                size_range: tuple[int, int]) -> Path:
    """Write `num_rows` rows of `task`'s `split` to `path`."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for _, columns in task_rows(task, split, num_rows, seed, size_range):
            handle.write("\t".join(columns) + "\n")
    logger.info("wrote %d %s rows (%s) to %s", num_rows, task, split, path)
    return path


def write_caption_split(path: Path, split: str, num_rows: int, seed: int,
                        size_range: tuple[int, int]) -> Path:
    """Write `num_rows` caption rows (one image each) of `split` to `path`."""
    return write_split(path, "caption", split, num_rows, seed, size_range)


def _write_label_files(out: Path, tasks: Sequence[str]) -> dict[str, Path]:
    """vqa_ans2label.{pkl,json} (answer -> label, as the official --ans2label-file) and
    classify_class2label.pkl (class name -> label, as the official class2label_new.pkl)."""
    written = {}
    if "vqa" in tasks:
        ans2label = {answer: label for label, answer in enumerate(VQA_ANSWERS)}
        written["vqa_ans2label"] = out / "vqa_ans2label.pkl"
        written["vqa_ans2label"].write_bytes(pickle.dumps(ans2label, protocol=4))
        written["vqa_ans2label_json"] = out / "vqa_ans2label.json"
        written["vqa_ans2label_json"].write_text(json.dumps(ans2label, indent=1) + "\n", encoding="utf-8")
    if "classify" in tasks:
        class2label = {name: label for label, name in enumerate(CLASS_NAMES)}
        written["classify_class2label"] = out / "classify_class2label.pkl"
        written["classify_class2label"].write_bytes(pickle.dumps(class2label, protocol=4))
    return written


# ----------------------------------------------------------------------------------------------------------
# Vocabulary


_CONFIDENCE = re.compile(r"\d\.\d\|!\+")


def _model_text(field: str) -> str:
    """The words of a text column as the tasks feed them to the model: lowercase, '&&' lists and
    VQA confidences split off."""
    return " ".join(_CONFIDENCE.sub(" ", field).replace("&&", " ").lower().split())


def _vocabulary_corpus() -> Iterator[str]:
    """All text of the world: captions of a fixed sample of scenes, text columns of every task's rows,
    the word lists and the task prompts.

    It does not depend on the world's seed or size, so every toy world shares one vocabulary.
    """
    rng = random.Random(f"toyworld:{_VOCAB_SEED}:vocabulary")
    for _ in range(_VOCAB_SCENES):
        yield from caption_candidates(draw_scene(rng))
    for task, layout in _LAYOUTS.items():
        task_rng = random.Random(f"toyworld:{_VOCAB_SEED}:vocabulary:{task}")
        for index in range(_VOCAB_ROWS_PER_TASK):
            _, columns = layout.build(task_rng, "train", index, (48, 160))
            if layout.image_col is not None:
                columns.insert(layout.image_col, "")
            yield from (_model_text(columns[col]) for col in layout.text_cols)
    yield " ".join([*SHAPES, *ANSWER_COLOURS, *VQA_ANSWERS, *CLASS_NAMES, "small big dark light", _LABEL_WORDS])
    yield " ".join(string.ascii_letters + string.digits + string.punctuation)  # no ASCII text maps to <unk>
    for prompt in _PROMPTS:
        yield prompt.format("a red circle above a blue square", "two shapes on a white background")


def train_vocabulary(vocab_dir: Path, vocab_size: int = VOCAB_SIZE) -> tuple[Path, Path]:
    """Train the SentencePiece model on the world's text; write spm.model and a fairseq dict.txt.

    dict.txt lists every piece except SentencePiece's control and unknown pieces (fairseq's Dictionary
    adds <s>, <pad>, </s>, <unk> itself), in piece-id order, with its count in the corpus (at least 1).
    """
    corpus = list(_vocabulary_corpus())
    model = io.BytesIO()
    spm.set_random_generator_seed(_VOCAB_SEED)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, byte_fallback=False, hard_vocab_limit=False, num_threads=1,
        input_sentence_size=0, shuffle_input_sentence=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2,
    )
    vocab_dir.mkdir(parents=True, exist_ok=True)
    model_path, dict_path = vocab_dir / "spm.model", vocab_dir / "dict.txt"
    model_path.write_bytes(model.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    counts = collections.Counter(piece for text in corpus for piece in processor.encode(text, out_type=str))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not (processor.is_control(i) or processor.is_unknown(i))]
    dict_path.write_text("".join(f"{p} {max(counts[p], 1)}\n" for p in pieces), encoding="utf-8")
    logger.info("wrote SentencePiece model (%d pieces) to %s and %s", len(pieces), model_path, dict_path)
    return model_path, dict_path


# ----------------------------------------------------------------------------------------------------------
# The world


def write_toy_world(out_dir: str | Path, seed: int = 1, num_train: int = 2000, num_valid: int = 100,
                    num_test: int = 100, image_size_range: tuple[int, int] = (48, 160),
                    tasks: Iterable[str] | None = None) -> dict[str, Path]:
    """Write the toy world's TSVs (`tasks`, default all of `TASKS`), label files and vocabulary into
    `out_dir`; returns {name: path} with names like "caption_train", "vqa_test", "vqa_ans2label",
    "classify_class2label", "spm_model", "dict".

    `num_*` are rows per task and split. Image widths and heights are drawn from `image_size_range`
    (at least 32 px, room for three shapes).
    """
    low, high = image_size_range
    if not 32 <= low <= high:
        raise ValueError(f"image_size_range must satisfy 32 <= min <= max, got {image_size_range}")
    chosen = TASKS if tasks is None else tuple(tasks)
    for task in chosen:
        _check(task, "train")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        f"{task}_{split}": write_split(out / f"{task}_{split}.tsv", task, split, rows, seed, (low, high))
        for task in chosen for split, rows in (("train", num_train), ("valid", num_valid), ("test", num_test))
    }
    written.update(_write_label_files(out, chosen))
    written["spm_model"], written["dict"] = train_vocabulary(out / "vocab")
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: `python -m ofa_plugin.data.toyworld --out DIR ...`."""
    parser = argparse.ArgumentParser(description="Write the OFA toy world (every task's TSVs + vocabulary).")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same bytes")
    parser.add_argument("--num-train", type=int, default=2000, help="training rows per task")
    parser.add_argument("--num-valid", type=int, default=100, help="validation rows per task")
    parser.add_argument("--num-test", type=int, default=100, help="test rows per task")
    parser.add_argument("--image-size-range", type=int, nargs=2, default=(48, 160), metavar=("MIN", "MAX"),
                        help="range of image widths and heights in pixels")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS), metavar="TASK",
                        help=f"tasks to write (default all: {' '.join(TASKS)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    write_toy_world(args.out, args.seed, args.num_train, args.num_valid, args.num_test,
                    tuple(args.image_size_range), args.tasks)


if __name__ == "__main__":
    main()
