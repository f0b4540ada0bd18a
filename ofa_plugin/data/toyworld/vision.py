"""Rows of the image tasks, each drawn from a scene: captions (several references), VQA questions with
answer sets, referring expressions with boxes, SNLI-VE hypotheses and image class labels.

Every row builder has the signature of `tasks.RowBuilder`: (rng, split, index, size range) ->
(scene, every column of the official layout but the image).
"""
from __future__ import annotations

import random

from .claims import ENTAILMENT_LABELS, hypothesis
from .phrases import (CLEAR, NUMBER_WORDS, absent_noun, background_word, colour_count, colour_fact_subject,
                      definite_name, extreme_places, listing, noun_phrase, position_phrase, relation_words,
                      shape_count, size_extremes, with_article)
from .scene import ANSWER_COLOURS, OBJECT_COLOURS, SHAPES, Scene, ToyObject, draw_scene, draw_single_object_scene

# Digit of image ids, unique across splits; "stage2" = caption stage-2 (SCST) training rows, all references.
SPLIT_CODES = {"train": 1, "valid": 2, "test": 3, "stage2": 4}
# The VQA candidate answers in label order (written as vqa_ans2label.pkl): every answer any row can carry.
VQA_ANSWERS = ("yes", "no", *ANSWER_COLOURS, *SHAPES, "0", "1", "2", "3", *NUMBER_WORDS, "left", "right")
# Image classes (written as classify_class2label.pkl, label = position; the TSV holds label + 1).
CLASS_NAMES = tuple(f"{colour} {shape}" for shape in SHAPES for colour in OBJECT_COLOURS)


# ----------------------------------------------------------------------------------------------------------
# Captions (reference §5.2)


def caption_candidates(scene: Scene) -> list[str]:
    """All distinct true captions of the scene (at least 5), lowercase, in a fixed order."""
    objs = scene.objects
    on_bg = f"on {with_article(background_word(scene))} background"
    coloured = listing([noun_phrase(scene, o) for o in objs])
    plain = listing([noun_phrase(scene, o, colour=False) for o in objs])
    sized = listing([noun_phrase(scene, o, size=True) for o in objs])
    count = ("", "one shape", "two shapes", "three shapes")[len(objs)]
    captions = [f"{sized} {on_bg}", coloured, f"{plain} {on_bg}", f"{count} {on_bg}",
                f"{with_article(background_word(scene))} background with {coloured}"]
    if len(objs) == 1:
        captions += [f"there is {coloured} in the image", f"{coloured} {position_phrase(scene, objs[0])}"]
    elif len(objs) == 2:
        relation, converse = relation_words(objs[0], objs[1], scene)
        captions += [f"there is {coloured} in the image",
                     f"{noun_phrase(scene, objs[0])} {relation} {noun_phrase(scene, objs[1])}",
                     f"{noun_phrase(scene, objs[1])} {converse} {noun_phrase(scene, objs[0])}"]
    else:
        captions += ["there are three shapes in the image", f"{sized}"]
    if scene.grayscale:
        captions.append(f"a black and white picture of {plain}")
    return list(dict.fromkeys(captions))


_IMAGE_ID_TASKS = ("vqa", "refcoco", "snli_ve")  # tasks with image ids beside the caption task


def _image_id(task: str, split: str, index: int) -> str:
    """Numeric image ids, unique across splits and tasks: 8 digits for captions, 9 for the others."""
    if task == "caption":
        return f"{SPLIT_CODES[split]}{index + 1:07d}"
    return f"{1 + _IMAGE_ID_TASKS.index(task)}{SPLIT_CODES[split]}{index + 1:07d}"


def caption_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
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
    obj = colour_fact_subject(scene, rng, by="shape")
    return None if obj is None else (f"What color is the {obj.shape}?", obj.colour)


def _ask_background(scene: Scene, rng: random.Random) -> _Question | None:
    return None if scene.grayscale else ("What color is the background?", scene.background)


def _ask_shape_of_colour(scene: Scene, rng: random.Random) -> _Question | None:
    obj = colour_fact_subject(scene, rng, by="colour")
    return None if obj is None else (f"Which shape is {obj.colour}?", obj.shape)


def _ask_shape_at_side(scene: Scene, rng: random.Random) -> _Question | None:
    if len(scene.objects) == 1:
        return "What shape is in the picture?", scene.objects[0].shape
    sides = [(place, o) for o in scene.objects for place in extreme_places(scene, o, scene.objects)
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
        return f"How many {shape}s are there?", str(shape_count(scene, shape))
    if scene.grayscale:
        return None
    colours = [c for c in OBJECT_COLOURS if c != scene.background]
    colour = rng.choice(scene.objects).colour if rng.random() < 0.5 else rng.choice(colours)
    return f"How many {colour} shapes are there?", str(colour_count(scene, colour))


def _ask_existence(scene: Scene, rng: random.Random) -> _Question:
    if rng.random() < 0.5:
        obj = rng.choice(scene.objects)
        return f"Is there {noun_phrase(scene, obj)}?", "yes"
    return f"Is there {absent_noun(scene, rng)}?", "no"


def _ask_side(scene: Scene, rng: random.Random) -> _Question | None:
    sided = [(o, name) for o in scene.objects if (name := definite_name(scene, o))
             and abs(o.centre[0] / scene.width - 0.5) >= CLEAR]
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


def vqa_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
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
            expressions += [f"the {noun} {place}" for place in extreme_places(scene, target, group)]
            expressions += [f"the {size} {noun}" for size in size_extremes(target, group)]
    return list(dict.fromkeys(expressions))


def refcoco_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
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
# Visual entailment (reference §5.5)


def snli_ve_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """uniq-id, image-id, hypothesis, premise caption, label (image goes at 2)."""
    scene = draw_scene(rng, size_range)
    label = rng.choice(ENTAILMENT_LABELS)
    image_id = _image_id("snli_ve", split, index)
    premise = rng.choice(caption_candidates(scene))
    return scene, [f"{image_id}.jpg#0r1{label[0]}", image_id, hypothesis(scene, label, rng) + ".",
                   premise + ".", label]


# ----------------------------------------------------------------------------------------------------------
# Image classification (reference §5.7)


def classify_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """label index (1-based), class name (image goes at 0): one shape, class = 'colour shape'."""
    label = rng.randrange(len(CLASS_NAMES))
    colour, shape = CLASS_NAMES[label].split()
    return draw_single_object_scene(rng, shape, colour, size_range), [str(label + 1), CLASS_NAMES[label]]

