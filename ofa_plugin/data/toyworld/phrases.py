"""Phrases: what can truthfully be said about a toy scene (noun phrases, positions, relations, counts).

The building blocks of every caption, question, expression and statement of the toy world; each one is
true of the scene it is computed from.
"""
from __future__ import annotations

import random
from typing import Sequence

from .scene import BACKGROUND_COLOURS, OBJECT_COLOURS, SHAPES, Scene, ToyObject, luma

NUMBER_WORDS = ("zero", "one", "two", "three")
CLEAR = 0.1  # a position or relation is stated only if centres differ by this share of the image side
_CLEARLY_BIGGER = 1.5  # size words need this ratio of drawn areas


def indefinite_article(word: str) -> str:
    """'a' or 'an' before `word`."""
    return "an" if word[0] in "aeiou" else "a"


def with_article(phrase: str) -> str:
    """`phrase` with its indefinite article: 'a red circle', 'an orange square'."""
    return f"{indefinite_article(phrase)} {phrase}"


def noun_phrase(scene: Scene, obj: ToyObject, colour: bool = True, size: bool = False) -> str:
    """'a small red circle' style noun phrase; colours are left out of grayscale scenes."""
    words = [scene.size_word(obj) if size else "", obj.colour if colour and not scene.grayscale else "",
             obj.shape]
    return with_article(" ".join(w for w in words if w))


def definite_name(scene: Scene, obj: ToyObject) -> str | None:
    """'the red circle' (or 'the circle' in grayscale scenes), None if that names several shapes."""
    if not scene.grayscale:
        return f"the {obj.colour} {obj.shape}"
    return f"the {obj.shape}" if shape_count(scene, obj.shape) == 1 else None


def shape_count(scene: Scene, shape: str) -> int:
    """How many shapes of kind `shape` the scene holds."""
    return sum(o.shape == shape for o in scene.objects)


def colour_count(scene: Scene, colour: str) -> int:
    """How many shapes of colour `colour` the scene holds."""
    return sum(o.colour == colour for o in scene.objects)


def colour_fact_subject(scene: Scene, rng: random.Random, by: str) -> ToyObject | None:
    """A random shape that no other shape of the scene shares its `by` ('shape' or 'colour') with, the
    subject of a fact about its colour or kind; None for grayscale scenes (no colours) or if no shape is."""
    count = shape_count if by == "shape" else colour_count
    unique = [o for o in scene.objects if count(scene, getattr(o, by)) == 1]
    if scene.grayscale or not unique:
        return None
    return rng.choice(unique)


def background_word(scene: Scene) -> str:
    """Background colour name, or its brightness in a grayscale scene."""
    if not scene.grayscale:
        return scene.background
    brightness = luma(BACKGROUND_COLOURS[scene.background])
    return "dark" if brightness < 90 else "light" if brightness > 170 else "gray"


def position_phrase(scene: Scene, obj: ToyObject) -> str:
    """Where the shape is in a 3x3 grid of the image: 'on the left', 'in the top right corner', ..."""
    cx, cy = obj.centre
    col = ("left", "", "right")[min(int(3 * cx / scene.width), 2)]
    row = ("top", "", "bottom")[min(int(3 * cy / scene.height), 2)]
    if not col and not row:
        return "in the middle of the image"
    if not row:
        return f"on the {col}"
    return f"at the {row}" if not col else f"in the {row} {col} corner"


def relation_words(a: ToyObject, b: ToyObject, scene: Scene) -> tuple[str, str]:
    """How `a` sits relative to `b`, and the converse."""
    dx = (b.centre[0] - a.centre[0]) / scene.width
    dy = (b.centre[1] - a.centre[1]) / scene.height
    if abs(dy) > abs(dx):
        return ("above", "below") if dy > 0 else ("below", "above")
    return ("to the left of", "to the right of") if dx > 0 else ("to the right of", "to the left of")


def clear_relation(scene: Scene, a: ToyObject, b: ToyObject) -> tuple[str, str] | None:
    """`relation_words` when one axis clearly dominates (far enough apart, 1.5 times the other axis)."""
    dx = abs(b.centre[0] - a.centre[0]) / scene.width
    dy = abs(b.centre[1] - a.centre[1]) / scene.height
    big, small = max(dx, dy), min(dx, dy)
    return relation_words(a, b, scene) if big >= CLEAR and big >= _CLEARLY_BIGGER * small else None


def extreme_places(scene: Scene, target: ToyObject, group: Sequence[ToyObject]) -> list[str]:
    """'on the left', 'at the top', ... where `target` is clearly beyond every other member of `group`."""
    places = []
    for axis, (low, high) in enumerate((("on the left", "on the right"), ("at the top", "at the bottom"))):
        side = (scene.width, scene.height)[axis]
        gaps = [(o.centre[axis] - target.centre[axis]) / side for o in group if o is not target]
        if gaps and min(gaps) >= CLEAR:
            places.append(low)
        if gaps and max(gaps) <= -CLEAR:
            places.append(high)
    return places


def size_extremes(target: ToyObject, group: Sequence[ToyObject]) -> list[str]:
    """'larger'/'smaller' (two shapes) or 'largest'/'smallest' (three) when `target` clearly is."""
    areas = [o.area for o in group if o is not target]
    words = ("larger", "smaller") if len(group) == 2 else ("largest", "smallest")
    return ([words[0]] if target.area >= _CLEARLY_BIGGER * max(areas) else []) + \
           ([words[1]] if _CLEARLY_BIGGER * target.area <= min(areas) else [])


def listing(nouns: Sequence[str]) -> str:
    """'a, b and c'."""
    return nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]


def _absent_pair(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """A (shape, colour) not in the scene (nor of the background's colour), preferably sharing the
    shape or the colour of a shape that is there (a hard negative)."""
    present = {(o.shape, o.colour) for o in scene.objects}
    absent = [(s, c) for s in SHAPES for c in OBJECT_COLOURS if (s, c) not in present and c != scene.background]
    near = [(s, c) for s, c in absent if any(s == o.shape or c == o.colour for o in scene.objects)]
    return rng.choice(near or absent)


def absent_noun(scene: Scene, rng: random.Random) -> str:
    """'a triangle' (grayscale scenes) or 'a red triangle' naming a shape the scene does not hold."""
    if scene.grayscale:
        return with_article(rng.choice([s for s in SHAPES if shape_count(scene, s) == 0]))
    shape, colour = _absent_pair(scene, rng)
    return with_article(f"{colour} {shape}")


def capitalised(text: str) -> str:
    """`text` with its first letter in upper case."""
    return text[0].upper() + text[1:]


def count_statement(count: int) -> str:
    """'there is one shape', 'there are two shapes', ..."""
    return "there is one shape" if count == 1 else f"there are {NUMBER_WORDS[count]} shapes"
