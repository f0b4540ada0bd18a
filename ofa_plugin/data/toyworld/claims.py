"""Entailment statements about a scene: true ('entailment'), false ('contradiction') or undecidable from a
picture ('neutral'); the hypotheses of SNLI-VE (reference §5.5) and of the MNLI/RTE-style text pairs.
"""
from __future__ import annotations

import itertools
import random
from typing import Callable, Sequence

from .phrases import (absent_noun, background_word, clear_relation, colour_fact_subject, count_statement,
                      definite_name, noun_phrase)
from .scene import BACKGROUND_COLOURS, OBJECT_COLOURS, Scene

ENTAILMENT_LABELS = ("entailment", "contradiction", "neutral")
_NEUTRAL_CLAIMS = ("{0} was drawn by a child", "{0} is made of paper", "someone painted {0} by hand",
                   "the artist likes {0} best", "{0} is moving slowly", "the picture was made last year")
Claim = Callable[[Scene, random.Random, bool], str | None]


def _claim_count(scene: Scene, rng: random.Random, true: bool) -> str:
    count = len(scene.objects)
    return count_statement(count if true else rng.choice([n for n in (1, 2, 3) if n != count]))


def _claim_existence(scene: Scene, rng: random.Random, true: bool) -> str:
    return f"there is {noun_phrase(scene, rng.choice(scene.objects)) if true else absent_noun(scene, rng)}"


def _claim_background(scene: Scene, rng: random.Random, true: bool) -> str:
    actual = background_word(scene)
    words = ("dark", "gray", "light") if scene.grayscale else sorted(BACKGROUND_COLOURS)
    return f"the background is {actual if true else rng.choice([w for w in words if w != actual])}"


def _claim_colour(scene: Scene, rng: random.Random, true: bool) -> str | None:
    obj = colour_fact_subject(scene, rng, by="shape")
    if obj is None:
        return None
    colour = obj.colour if true else rng.choice([c for c in OBJECT_COLOURS if c != obj.colour])
    return f"the {obj.shape} is {colour}"


def _claim_relation(scene: Scene, rng: random.Random, true: bool) -> str | None:
    pairs = [(a, b) for a, b in itertools.permutations(scene.objects, 2)
             if clear_relation(scene, a, b) and definite_name(scene, a) and definite_name(scene, b)]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    relation, converse = clear_relation(scene, a, b)
    return f"{definite_name(scene, a)} is {relation if true else converse} {definite_name(scene, b)}"


def _claim_neutral(scene: Scene, rng: random.Random) -> str:
    obj = rng.choice(scene.objects)
    name = f"the {obj.shape}" if scene.grayscale else f"the {obj.colour} {obj.shape}"
    return rng.choice(_NEUTRAL_CLAIMS).format(name)


_VISUAL_CLAIMS: tuple[Claim, ...] = (_claim_count, _claim_existence, _claim_background, _claim_colour,
                                      _claim_relation)
# What a listing of the shapes and the background decides (no positions).
TEXT_CLAIMS: tuple[Claim, ...] = (_claim_count, _claim_existence, _claim_background, _claim_colour)


def hypothesis(scene: Scene, label: str, rng: random.Random,
               claims: Sequence[Claim] = _VISUAL_CLAIMS) -> str:
    """A statement that the scene makes true ('entailment'), false ('contradiction') or leaves open
    ('neutral': about things a picture cannot show)."""
    if label == "neutral":
        return _claim_neutral(scene, rng)
    if label not in ENTAILMENT_LABELS:
        raise ValueError(f"unknown entailment label {label!r}, expected one of {ENTAILMENT_LABELS}")
    statements = [s for claim in claims if (s := claim(scene, rng, label == "entailment")) is not None]
    return rng.choice(statements)
