"""Rows of the text-only tasks (Gigaword-style summaries, reference §5.9; GLUE-style classification,
§5.10), generated from descriptions of scenes so that every label follows from the text.

Every row builder has the signature of `tasks.RowBuilder`; the scene it returns is never rendered.
"""
from __future__ import annotations

import random
from dataclasses import replace

from .claims import ENTAILMENT_LABELS, TEXT_CLAIMS, hypothesis
from .phrases import (NUMBER_WORDS, capitalised, colour_count, count_statement, indefinite_article, listing,
                      noun_phrase, position_phrase, shape_count, with_article)
from .scene import BACKGROUND_COLOURS, OBJECT_COLOURS, SHAPES, Scene, ToyObject, draw_scene


def _text_scene(rng: random.Random, size_range: tuple[int, int]) -> Scene:
    """A scene for text tasks: described in colour whatever its rendering would be."""
    return replace(draw_scene(rng, size_range), grayscale=False)


_DESCRIPTIONS = ("the picture shows {shapes} on {bg} background", "{shapes} on {bg} background",
                 "there {be} {shapes} on {bg} background", "on {bg} background there {be} {shapes}",
                 "{bg} background with {shapes}")


def _description(scene: Scene, rng: random.Random) -> str:
    """A sentence naming every shape (colour and kind, in random order) and the background."""
    nouns = [noun_phrase(scene, o) for o in scene.objects]
    rng.shuffle(nouns)
    text = rng.choice(_DESCRIPTIONS).format(shapes=listing(nouns), bg=with_article(scene.background),
                                            be="is" if len(nouns) == 1 else "are")
    return capitalised(text) + "."


_GIGAWORD_OPENERS = ("in a picture released on monday ,", "according to the artist ,",
                     "as can be seen in the new drawing ,", "in the latest image of the series ,",
                     "officials said on friday that")
_GIGAWORD_VERBS = ("can be seen", "sits", "is drawn", "appears")
_GIGAWORD_LINKS = (" , while ", " , and ", " as well as ")
_GIGAWORD_BACKGROUNDS = ("all on {0} background", "set against {0} background", "on {0} background")
_GIGAWORD_CLOSERS = (" , the artist said .", " , the gallery reported .", " .")


def gigaword_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """source (a verbose, news-like description), target (the short summary 'red circle and ...')."""
    scene = _text_scene(rng, size_range)
    order = list(scene.objects)
    rng.shuffle(order)
    clauses = [f"{noun_phrase(scene, o, size=True)} {rng.choice(_GIGAWORD_VERBS)} {position_phrase(scene, o)}"
               for o in order]
    body = clauses[0] + "".join(rng.choice(_GIGAWORD_LINKS) + clause for clause in clauses[1:])
    background = rng.choice(_GIGAWORD_BACKGROUNDS).format(with_article(scene.background))
    source = f"{rng.choice(_GIGAWORD_OPENERS)} {body} , {background}{rng.choice(_GIGAWORD_CLOSERS)}"
    names = [f"{o.colour} {o.shape}" for o in order]
    shapes = names[0] if len(names) == 1 else " , ".join(names[:-1]) + " and " + names[-1]
    return scene, [source, f"{shapes} on {scene.background} background"]


_POSITIVE = ("beautiful", "lovely", "charming", "delightful", "elegant", "pleasant", "wonderful")
_NEGATIVE = ("ugly", "dull", "boring", "awful", "clumsy", "messy", "terrible")
# (plain, negated) templates; the negation flips the sentiment.
_OPINIONS = (("{np} is {adj} .", "{np} is not {adj} ."), ("i find {np} {adj} .", "i do not find {np} {adj} ."),
             ("{np} looks {adj} .", "{np} does not look {adj} ."), ("what {adj_np} .", None))


def sst2_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """sentence, label ('1' positive, '0' negative): an opinion about a shape of the scene."""
    scene = _text_scene(rng, size_range)
    obj = rng.choice(scene.objects)
    positive = rng.random() < 0.5
    adjective = rng.choice(_POSITIVE if positive else _NEGATIVE)
    plain, negated = rng.choice(_OPINIONS)
    negate = negated is not None and rng.random() < 0.3
    where = rng.choice(("", f" on the {scene.background} background", f" {position_phrase(scene, obj)}"))
    sentence = (negated if negate else plain).format(
        np=f"the {obj.colour} {obj.shape}{where}", adj=adjective,
        adj_np=with_article(f"{adjective} {obj.colour} {obj.shape}") + where)
    return scene, [sentence, "1" if positive != negate else "0"]


def _cola_sentences(scene: Scene, obj: ToyObject) -> list[tuple[str, list[str]]]:
    """(grammatical sentence, its broken variants) about the scene: agreement and word-order errors."""
    article = indefinite_article(obj.colour)
    noun = f"{article} {obj.colour} {obj.shape}"
    broken_nouns = [f"{article} {obj.shape} {obj.colour}", f"{obj.colour} {article} {obj.shape}",
                    f"{article} {article} {obj.colour} {obj.shape}"]
    place = position_phrase(scene, obj)
    count = len(scene.objects)
    if count == 1:
        wrong_counts = ["there are one shape", "there is one shapes"]
    else:
        wrong_counts = [f"there is {NUMBER_WORDS[count]} shapes", f"there are {NUMBER_WORDS[count]} shape"]
    return [
        (f"there is {noun} {place}", [f"there are {noun} {place}"] + [f"there is {n} {place}" for n in broken_nouns]),
        (f"{noun} is {place}", [f"{noun} are {place}"] + [f"{n} is {place}" for n in broken_nouns]),
        (f"{count_statement(count)} in the picture", [f"{wrong} in the picture" for wrong in wrong_counts]),
    ]


def cola_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """index, sentence, label ('1' acceptable, '0' not)."""
    scene = _text_scene(rng, size_range)
    grammatical = rng.random() < 0.5
    good, broken = rng.choice(_cola_sentences(scene, rng.choice(scene.objects)))
    sentence = capitalised(good if grammatical else rng.choice(broken)) + "."
    return scene, [str(index), sentence, "1" if grammatical else "0"]


def _text_entailment(rng: random.Random, size_range: tuple[int, int]) -> tuple[Scene, str, str, str]:
    """A scene, its description (premise), a hypothesis and the hypothesis' label given the premise."""
    scene = _text_scene(rng, size_range)
    label = rng.choice(ENTAILMENT_LABELS)
    return scene, _description(scene, rng), capitalised(hypothesis(scene, label, rng, TEXT_CLAIMS)) + ".", label


_MNLI_LABELS = {"neutral": "0", "entailment": "1", "contradiction": "2"}  # as the official mnli files


def mnli_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
    """sentence1 (premise), sentence2 (hypothesis), label ('0' neutral, '1' entailment, '2' contradiction)."""
    scene, premise, claim, label = _text_entailment(rng, size_range)
    return scene, [premise, claim, _MNLI_LABELS[label]]


def rte_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
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


def mrpc_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
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


def qqp_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
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
    facts = [(count_statement(len(scene.objects)), {("count", "")}),
             (f"the background is {scene.background}", {("background", "")})]
    for obj in scene.objects:
        if shape_count(scene, obj.shape) == 1:  # else "the circle" would not say which circle
            answers = {("colour", obj.shape)} | ({("shape", obj.colour)} if colour_count(scene, obj.colour) == 1
                                                 else set())
            facts.append((f"the {obj.shape} is {obj.colour}", answers))
        facts.append((f"there is {noun_phrase(scene, obj, colour=False)}", set()))
    return facts


def qnli_row(rng: random.Random, split: str, index: int, size_range: tuple[int, int]) -> tuple[Scene, list[str]]:
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
    sentence = capitalised(" , and ".join(chosen)) + "."
    return scene, [str(index), _ask(intent, obj, rng), sentence, "entailment" if entailed else "not_entailment"]
