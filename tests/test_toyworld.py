"""The toy world: determinism, official layouts, decodable images, labels that follow from the scene,
trivial baselines that a model can beat, vocabulary coverage."""
import base64
import collections
import io
import json
import logging
import math
import pickle
import random
import re
import runpy

import numpy as np
import pytest
import sentencepiece as spm
from fairseq.data import Dictionary
from fairseq.data.encoders.sentencepiece_bpe import SentencepieceBPE, SentencepieceConfig
from PIL import Image
from pycocoevalcap.cider.cider import Cider

from ofa_plugin.data import toyworld
from ofa_plugin.data.images import decode_image
from ofa_plugin.data.text import caption_references, caption_train_target, pre_caption, pre_question
from ofa_plugin.data.toyworld.phrases import background_word, count_statement
from ofa_plugin.data.toyworld.scene import luma
from ofa_plugin.data.toyworld.vocabulary import PROMPTS
from ofa_plugin.data.tsv import TSVFile

SMALL = dict(num_train=40, num_valid=8, num_test=8)
PROMPT = " what does the image describe?"
SPLITS = ("train", "valid", "test")
COLUMNS = {"caption": 5, "vqa": 6, "refcoco": 5, "snli_ve": 6, "classify": 3, "gigaword": 2, "cola": 3,
           "mnli": 3, "mrpc": 3, "qnli": 4, "qqp": 6, "rte": 4, "sst2": 2}
IMAGE_COLUMN = {"caption": 4, "vqa": 5, "refcoco": 4, "snli_ve": 2, "classify": 0}
LABELS = {"snli_ve": {"entailment", "contradiction", "neutral"}, "cola": {"0", "1"}, "mnli": {"0", "1", "2"},
          "mrpc": {"0", "1"}, "qnli": {"entailment", "not_entailment"}, "qqp": {"0", "1"},
          "rte": {"entailment", "not_entailment"}, "sst2": {"0", "1"}}
COLOURS = "|".join(toyworld.ANSWER_COLOURS)
SHAPES = "|".join(toyworld.SHAPES)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    return out, toyworld.write_toy_world(out, seed=1, **SMALL)


def file_bytes(paths):
    return {name: path.read_bytes() for name, path in paths.items()}


def rows(task, num_rows=300, split="test", seed=1):
    return list(toyworld.task_rows(task, split, num_rows, seed))


# ----------------------------------------------------------------------------------------------------------
# Files, layouts, determinism


def test_writes_expected_files(world):
    out, paths = world
    splits = {f"{task}_{split}" for task in toyworld.TASKS for split in SPLITS}
    assert set(paths) == splits | {"vqa_ans2label", "vqa_ans2label_json", "classify_class2label", "spm_model",
                                   "dict"}
    assert set(toyworld.TASKS) == set(COLUMNS)
    assert paths["caption_train"] == out / "caption_train.tsv" and paths["snli_ve_test"] == out / "snli_ve_test.tsv"
    assert paths["spm_model"] == out / "vocab" / "spm.model" and paths["dict"] == out / "vocab" / "dict.txt"
    assert all(path.is_file() and path.stat().st_size > 0 for path in paths.values())


def test_same_seed_same_bytes_other_seed_other_rows(world, tmp_path):
    _, first = world
    again = toyworld.write_toy_world(tmp_path / "again", seed=1, **SMALL)
    assert file_bytes(again) == file_bytes(first)
    other = toyworld.write_toy_world(tmp_path / "other", seed=2, **SMALL)
    for task in toyworld.TASKS:
        assert other[f"{task}_train"].read_bytes() != first[f"{task}_train"].read_bytes(), task
    # The vocabulary does not depend on the seed, so worlds of any seed or size share it.
    assert other["spm_model"].read_bytes() == first["spm_model"].read_bytes()


def test_a_subset_of_tasks_writes_the_same_files(world, tmp_path):
    _, everything = world
    subset = toyworld.write_toy_world(tmp_path, seed=1, tasks=["refcoco", "sst2"], **SMALL)
    assert set(subset) == {f"{t}_{s}" for t in ("refcoco", "sst2") for s in SPLITS} | {"spm_model", "dict"}
    assert all(path.read_bytes() == everything[name].read_bytes() for name, path in subset.items())


def test_caption_stage2_file_has_all_references_of_fresh_images(world, tmp_path):
    _, first = world
    written = toyworld.write_toy_world(tmp_path, seed=1, tasks=["caption"], num_caption_stage2=6, **SMALL)
    assert written["caption_train"].read_bytes() == first["caption_train"].read_bytes()
    rows = [line.split("\t") for line in written["caption_stage2_train"].read_text(encoding="utf-8").splitlines()]
    assert written["caption_stage2_train"] == tmp_path / "caption_stage2_train.tsv" and len(rows) == 6
    assert all(len(row) == COLUMNS["caption"] and 3 <= len(row[2].split("&&")) <= 5 for row in rows)
    assert [row[1] for row in rows] == [f"4{i:07d}" for i in range(1, 7)]  # image ids of their own split


@pytest.mark.parametrize("task", toyworld.TASKS)
def test_official_column_layout(world, task):
    _, paths = world
    for split, count in zip(SPLITS, SMALL.values()):
        path = paths[f"{task}_{split}"]
        lines = path.read_text(encoding="utf-8").splitlines()
        assert len(lines) == count
        assert all(len(line.split("\t")) == COLUMNS[task] for line in lines), (task, split)
        selected = TSVFile(path, toyworld.OFFICIAL_SELECTED_COLS[task])
        assert all(field.strip() for row in range(len(selected)) for field in selected[row])
    if task in IMAGE_COLUMN:
        tsv = TSVFile(paths[f"{task}_test"], [IMAGE_COLUMN[task]])
        images = [decode_image(tsv[row][0], str(tsv.path), row) for row in range(len(tsv))]
        assert all(48 <= side <= 160 for image in images for side in image.size)
    if task in LABELS:
        tsv = TSVFile(paths[f"{task}_train"], [COLUMNS[task] - 1])
        assert {tsv[row][0] for row in range(len(tsv))} <= LABELS[task]


def test_image_ids_are_numeric_and_unique_across_tasks_and_splits(world):
    _, paths = world
    ids = collections.Counter()
    for task in ("caption", "vqa", "refcoco", "snli_ve"):
        for split in SPLITS:
            tsv = TSVFile(paths[f"{task}_{split}"], [1])
            ids.update(tsv[row][0] for row in range(len(tsv)))
    assert all(image_id.isdigit() for image_id in ids) and max(ids.values()) == 1
    question_ids = [row[0] for split in SPLITS for row in TSVFile(paths[f"vqa_{split}"], [0])]
    assert all(q.isdigit() for q in question_ids) and len(set(question_ids)) == len(question_ids)


# ----------------------------------------------------------------------------------------------------------
# Captions


def test_train_rows_official_layout(world):
    _, paths = world
    train = TSVFile(paths["caption_train"], "0,4,2")
    by_image = TSVFile(paths["caption_train"], "1,4,2")
    assert len(train) == len(by_image) == SMALL["num_train"]
    for row in range(len(train)):
        uniq_id, image, caption = train[row]
        image_id, same_image, same_caption = by_image[row]
        assert uniq_id == str(row + 1) and image_id == f"1{row + 1:07d}"
        assert same_image == image and same_caption == caption
        assert "&&" not in caption and caption == caption.lower()
        assert caption_train_target(caption, 20)


def test_eval_rows_hold_3_to_5_distinct_references(world):
    _, paths = world
    image_ids = set()
    for split, code in (("caption_valid", "2"), ("caption_test", "3")):
        tsv = TSVFile(paths[split], "1,4,2")
        assert len(tsv) == 8
        for row in range(len(tsv)):
            image_id, _, field = tsv[row]
            references = caption_references(field)
            assert 3 <= len(references) <= 5 and len(set(references)) == len(references)
            assert image_id.startswith(code)
            image_ids.add(image_id)
    assert len(image_ids) == 16


def test_images_decode_within_size_range(world):
    _, paths = world
    tsv = TSVFile(paths["caption_test"], "1,4,3")
    for row in range(len(tsv)):
        _, field, objects = tsv[row]
        image = decode_image(field, str(paths["caption_test"]), row)
        assert image.mode == "RGB"
        assert all(48 <= side <= 160 for side in image.size)
        assert 1 <= len(objects.split("&&")) <= 3


def test_scenes_are_valid_and_rendered_where_they_say():
    rng = random.Random(0)
    scenes = [toyworld.draw_scene(rng, (40, 90)) for _ in range(300)]
    assert {len(s.objects) for s in scenes} == {1, 2, 3}
    assert {o.shape for s in scenes for o in s.objects} == set(toyworld.SHAPES)
    assert 0 < sum(s.grayscale for s in scenes) < 100
    for scene in scenes:
        assert 40 <= scene.width <= 90 and 40 <= scene.height <= 90
        pairs = [(o.shape, o.colour) for o in scene.objects]
        assert len(set(pairs)) == len(pairs)
        assert all(o.colour != scene.background for o in scene.objects)
        image = np.asarray(toyworld.render_scene(scene))
        assert image.shape[:2] == (scene.height, scene.width)
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 < x1 <= scene.width and 0 <= y0 < y1 <= scene.height
            cx, cy = int(obj.centre[0]), int(obj.centre[1])
            expected = np.array(toyworld.OBJECT_COLOURS[obj.colour])
            if scene.grayscale:
                assert abs(int(image[cy, cx]) - luma(expected)) <= 1
            else:
                assert np.array_equal(image[cy, cx], expected)
        for a in scene.objects:  # shapes do not overlap
            for b in scene.objects:
                ax0, ay0, ax1, ay1 = a.box
                bx0, by0, bx1, by1 = b.box
                assert a is b or ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0


def test_grayscale_scenes_are_single_channel_jpegs_without_colour_words():
    gray = [(scene, columns) for scene, columns in toyworld.caption_rows("valid", 80, seed=3) if scene.grayscale]
    assert gray
    for scene, columns in gray:
        words = set(columns[2].split())
        assert not words & {"red", "green", "blue", "purple", "orange"}
        assert Image.open(io.BytesIO(base64.b64decode(columns[4]))).mode == "L"


def test_captions_say_what_the_scene_shows():
    rng = random.Random(5)
    for _ in range(200):
        scene = toyworld.draw_scene(rng)
        candidates = toyworld.caption_candidates(scene)
        assert len(candidates) >= 5 and len(set(candidates)) == len(candidates)
        for caption in candidates:
            words = caption.replace(",", "").split()
            shapes_named = [w for w in words if w in toyworld.SHAPES]
            assert all(w in {o.shape for o in scene.objects} for w in shapes_named)
            if not scene.grayscale:
                colours_named = {w for w in words if w in toyworld.OBJECT_COLOURS} - {scene.background}
                assert colours_named <= {o.colour for o in scene.objects}


def test_reading_the_image_beats_the_most_frequent_caption():
    train = [columns[2] for _, columns in toyworld.caption_rows("train", 500, seed=1)]
    most_frequent = collections.Counter(train).most_common(1)[0][0]
    test = list(toyworld.caption_rows("test", 60, seed=1))
    references = {i: caption_references(columns[2]) for i, (_, columns) in enumerate(test)}
    baseline = {i: [most_frequent] for i in references}
    reader = {i: [toyworld.caption_candidates(scene)[1]] for i, (scene, _) in enumerate(test)}
    baseline_cider, _ = Cider().compute_score(references, baseline)
    reader_cider, _ = Cider().compute_score(references, reader)
    assert reader_cider > 3 * baseline_cider


# ----------------------------------------------------------------------------------------------------------
# VQA


def vqa_truth(scene, question):
    """The answer to a toy question, worked out from the scene alone."""
    objs = scene.objects

    def named(colour, shape):
        return [o for o in objs if o.shape == shape and colour in (None, o.colour)]

    patterns = [
        (r"what color is the background", lambda: scene.background),
        (rf"what color is the ({SHAPES})", lambda s: named(None, s)[0].colour if len(named(None, s)) == 1 else None),
        (rf"which shape is ({COLOURS})", lambda c: [o.shape for o in objs if o.colour == c]),
        (r"what shape is in the picture", lambda: objs[0].shape if len(objs) == 1 else None),
        (r"what shape is on the left", lambda: min(objs, key=lambda o: o.centre[0]).shape),
        (r"what shape is on the right", lambda: max(objs, key=lambda o: o.centre[0]).shape),
        (r"how many shapes are there", lambda: str(len(objs))),
        (rf"how many ({SHAPES})s are there", lambda s: str(len(named(None, s)))),
        (rf"how many ({COLOURS}) shapes are there", lambda c: str(sum(o.colour == c for o in objs))),
        (rf"is there an? (?:({COLOURS}) )?({SHAPES})", lambda c, s: "yes" if named(c, s) else "no"),
        (rf"is the (?:({COLOURS}) )?({SHAPES}) on the left or on the right",
         lambda c, s: "left" if named(c, s)[0].centre[0] < scene.width / 2 else "right"),
    ]
    for pattern, answer in patterns:
        match = re.fullmatch(pattern + r"\?", question)
        if match:
            result = answer(*match.groups())
            return result[0] if isinstance(result, list) and len(result) == 1 else result
    raise AssertionError(f"unexpected question {question!r}")


def best_answer(field):
    answers = parse_answers(field)
    return max(answers, key=answers.get)


def parse_answers(field):
    answers = {}
    for item in field.split("&&"):
        confidence, answer = item.split("|!+")
        answers[answer] = float(confidence)
    return answers


def test_vqa_answers_follow_from_the_scene():
    kinds = collections.Counter()
    for scene, columns in rows("vqa", 600):
        question_id, image_id, question, field, objects, _ = columns
        assert question_id.startswith(image_id)
        assert objects.split("&&") == [o.shape for o in scene.objects]
        answers = parse_answers(field)
        best = max(answers, key=answers.get)
        assert answers[best] == 1.0 and sorted(answers.values())[:-1] < [1.0]
        assert set(answers) <= set(toyworld.VQA_ANSWERS) and len(answers) <= 2
        normalised = pre_question(question)
        assert normalised[0].islower() and question[0].isupper()
        assert vqa_truth(scene, normalised) == best, (question, best, scene)
        if scene.grayscale:
            assert not set(normalised[:-1].split()) & set(toyworld.OBJECT_COLOURS)
        kinds[" ".join(normalised.split()[:2])] += 1
    assert len(kinds) >= 6 and max(kinds.values()) < 0.4 * sum(kinds.values())


def test_vqa_majority_answer_is_a_weak_baseline():
    train = collections.Counter(best_answer(c[3]) for _, c in rows("vqa", 2000, "train"))
    majority = train.most_common(1)[0][0]
    test = [parse_answers(c[3]) for _, c in rows("vqa", 500)]
    accuracy = sum(answers.get(majority, 0.0) for answers in test) / len(test)
    assert len(train) >= 20 and accuracy < 0.25
    assert collections.Counter(a for answers in test for a, c in answers.items() if c < 1.0)  # some alternatives


def test_vqa_answer_list_files(world):
    _, paths = world
    from_pickle = pickle.loads(paths["vqa_ans2label"].read_bytes())
    from_json = json.loads(paths["vqa_ans2label_json"].read_text(encoding="utf-8"))
    assert from_pickle == from_json and list(from_pickle) == list(from_json) == list(toyworld.VQA_ANSWERS)
    assert list(from_pickle.values()) == list(range(len(from_pickle)))
    for split in SPLITS:
        tsv = TSVFile(paths[f"vqa_{split}"], [3])
        assert all(set(parse_answers(tsv[row][0])) <= set(from_pickle) for row in range(len(tsv)))


# ----------------------------------------------------------------------------------------------------------
# Referring expressions


def resolve(scene, text):
    """The one shape a toy referring expression names; fails if it names none or several."""
    match = re.fullmatch(rf"the (?:(larger|largest|smaller|smallest) )?(?:({COLOURS}) )?({SHAPES}|shape)"
                         r"(?: (on the left|on the right|at the top|at the bottom))?", text)
    assert match, text
    size, colour, shape, place = match.groups()
    group = [o for o in scene.objects if shape in ("shape", o.shape) and colour in (None, o.colour)]
    if not (size or place):
        assert len(group) == 1, text
        return group[0]
    assert len(group) >= 2, text
    if size:  # clearly (1.5 times) larger / smaller than every other one
        sign = 1 if size.startswith("larg") else -1
        values = sorted(sign * math.log(o.area) for o in group)
        assert values[-1] - values[-2] >= math.log(1.5), text
        return max(group, key=lambda o: sign * o.area)
    axis = 1 if place in ("at the top", "at the bottom") else 0
    sign = 1 if place in ("on the right", "at the bottom") else -1
    values = sorted(sign * o.centre[axis] / (scene.width, scene.height)[axis] for o in group)
    assert values[-1] - values[-2] >= 0.1 - 1e-9, text  # clearly beyond every other one
    return max(group, key=lambda o: sign * o.centre[axis])


def box_of(field):
    return tuple(float(v) for v in field.split(","))


def test_refcoco_expressions_name_the_boxed_shape_only():
    for scene, (uniq_id, image_id, text, box, image) in rows("refcoco", 600):
        assert re.fullmatch(r"\d+\.0,\d+\.0,\d+\.0,\d+\.0", box) and uniq_id.startswith(image_id + "_")
        assert pre_caption(text) == text
        target = resolve(scene, text)
        assert box_of(box) == tuple(float(v) for v in target.box)
        if scene.grayscale:
            assert not set(text.split()) & set(toyworld.OBJECT_COLOURS)
    texts = [c[2] for _, c in rows("refcoco", 600)]
    assert sum("left" in t or "right" in t or "top" in t or "bottom" in t for t in texts) > 30
    assert sum(t.split()[1] in ("larger", "largest", "smaller", "smallest") for t in texts) > 10


def test_refcoco_box_is_drawn_where_the_row_says():
    for scene, (_, _, text, box, image) in rows("refcoco", 80):
        decoded = np.asarray(decode_image(image, "refcoco_test.tsv", 0), dtype=float)
        target = resolve(scene, text)
        if scene.grayscale or target.shape not in ("square", "rectangle", "circle"):
            continue
        x0, y0, x1, y1 = (int(v) for v in box_of(box))
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        patch = decoded[cy - 1:cy + 2, cx - 1:cx + 2].reshape(-1, 3).mean(axis=0)
        assert np.abs(patch - toyworld.OBJECT_COLOURS[target.colour]).max() < 40, (text, patch)


def iou(a, b):
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return ix * iy / (area(a) + area(b) - ix * iy)


def centre_box_accuracy(train, test):
    """Acc@0.5 of a box of the mean relative training size placed at the image centre."""
    sizes = np.array([((b[2] - b[0]) / s.width, (b[3] - b[1]) / s.height)
                      for s, b in ((s, box_of(c[3])) for s, c in train)])
    w, h = sizes.mean(axis=0)
    hits = [iou(box_of(c[3]), (s.width * (1 - w) / 2, s.height * (1 - h) / 2, s.width * (1 + w) / 2,
                                s.height * (1 + h) / 2)) >= 0.5 for s, c in test]
    return sum(hits) / len(hits)


def test_refcoco_centre_box_is_a_weak_baseline():
    assert centre_box_accuracy(rows("refcoco", 1000, "train"), rows("refcoco", 500)) < 0.2


# ----------------------------------------------------------------------------------------------------------
# Entailment (snli_ve, and the mnli / rte text pairs)

NEUTRAL = re.compile(r"the [a-z ]+ (was drawn by a child|is made of paper|is moving slowly)|"
                     r"someone painted the [a-z ]+ by hand|the artist likes the [a-z ]+ best|"
                     r"the picture was made last year")
RELATIONS = {"above": (1, 1), "below": (1, -1), "to the left of": (0, 1), "to the right of": (0, -1)}


def claim_truth(scene, claim):
    """Whether a toy claim holds in the scene (None for claims a picture cannot decide)."""
    objs = scene.objects
    if NEUTRAL.fullmatch(claim):
        return None
    if m := re.fullmatch(r"there is one shape|there are (two|three) shapes", claim):
        return len(objs) == (toyworld.NUMBER_WORDS.index(m.group(1)) if m.group(1) else 1)
    if m := re.fullmatch(rf"there is an? (?:({COLOURS}) )?({SHAPES})", claim):
        return any(o.shape == m.group(2) and m.group(1) in (None, o.colour) for o in objs)
    if m := re.fullmatch(r"the background is (\w+)", claim):
        return m.group(1) == background_word(scene)
    if m := re.fullmatch(rf"the ({SHAPES}) is ({COLOURS})", claim):
        (obj,) = [o for o in objs if o.shape == m.group(1)]
        return obj.colour == m.group(2)
    names = rf"the (?:({COLOURS}) )?({SHAPES})"
    m = re.fullmatch(rf"{names} is ({'|'.join(RELATIONS)}) {names}", claim)
    assert m, f"unexpected claim {claim!r}"
    (a,) = [o for o in objs if o.shape == m.group(2) and m.group(1) in (None, o.colour)]
    (b,) = [o for o in objs if o.shape == m.group(5) and m.group(4) in (None, o.colour)]
    axis, sign = RELATIONS[m.group(3)]
    delta = [(b.centre[i] - a.centre[i]) / (scene.width, scene.height)[i] for i in (0, 1)]
    return sign * delta[axis] > 0 and abs(delta[axis]) > abs(delta[1 - axis])


EXPECTED_TRUTH = {"entailment": True, "contradiction": False, "neutral": None}


def test_snli_ve_labels_are_correct_by_construction():
    labels = collections.Counter()
    for scene, (uniq_id, image_id, image, hypothesis, premise, label) in rows("snli_ve", 900):
        assert uniq_id == f"{image_id}.jpg#0r1{label[0]}" and hypothesis.endswith(".") and premise.endswith(".")
        assert premise[:-1] in toyworld.caption_candidates(scene)
        assert claim_truth(scene, pre_caption(hypothesis)[:-1]) is EXPECTED_TRUTH[label], (hypothesis, label, scene)
        labels[label] += 1
    assert max(labels.values()) < 0.4 * sum(labels.values())


def test_snli_ve_majority_label_is_a_weak_baseline():
    majority = collections.Counter(c[5] for _, c in rows("snli_ve", 2000, "train")).most_common(1)[0][0]
    test = [c[5] for _, c in rows("snli_ve", 500)]
    assert test.count(majority) / len(test) < 0.4


def described_scene(text):
    """The shapes (colour, kind) and background a premise-like description names."""
    pairs = re.findall(rf"\ban? ({COLOURS}) ({SHAPES})\b", text.lower())
    background = re.search(rf"an? ({COLOURS}) background", text.lower()).group(1)
    objects = tuple(toyworld.ToyObject(shape, colour, (0, 0, 1, 1)) for colour, shape in pairs)
    return toyworld.Scene(100, 100, background, objects)


def facts(scene):
    return scene.background, sorted((o.colour, o.shape) for o in scene.objects)


@pytest.mark.parametrize("task", ["mnli", "rte"])
def test_text_entailment_labels_follow_from_the_premise(task):
    truths = {"mnli": {"1": True, "2": False, "0": None}, "rte": {"entailment": True}}[task]
    labels = collections.Counter()
    for scene, columns in rows(task, 600):
        premise, hypothesis, label = columns[-3:]
        described = described_scene(premise)
        assert facts(described) == facts(scene)
        truth = claim_truth(described, hypothesis.lower()[:-1])
        if label in truths:
            assert truth is truths[label], (premise, hypothesis, label)
        else:
            assert truth is not True, (premise, hypothesis, label)
        labels[label] += 1
    assert min(labels.values()) > 0.25 * sum(labels.values())


# ----------------------------------------------------------------------------------------------------------
# Image classification


def test_classify_labels_name_the_single_shape(world):
    _, paths = world
    class2label = pickle.loads(paths["classify_class2label"].read_bytes())
    assert list(class2label) == list(toyworld.CLASS_NAMES) and len(class2label) == 40
    assert list(class2label.values()) == list(range(40))
    seen = collections.Counter()
    for scene, (image, label, name) in rows("classify", 400):
        (obj,) = scene.objects
        assert name == f"{obj.colour} {obj.shape}" and int(label) == class2label[name] + 1
        assert not scene.grayscale and scene.background != obj.colour
        seen[name] += 1
    assert len(seen) == 40 and max(seen.values()) < 0.06 * 400
    for scene, (image, _, name) in rows("classify", 40):
        obj = scene.objects[0]
        if obj.shape in ("square", "circle"):
            decoded = np.asarray(decode_image(image, "classify_test.tsv", 0), dtype=float)
            cx, cy = (int(v) for v in obj.centre)
            assert np.abs(decoded[cy, cx] - toyworld.OBJECT_COLOURS[obj.colour]).max() < 40, name


# ----------------------------------------------------------------------------------------------------------
# Text-only tasks


def test_gigaword_targets_summarise_the_source():
    for scene, (source, target) in rows("gigaword", 300):
        named = re.findall(rf"({COLOURS}) ({SHAPES})", source)
        names = [f"{colour} {shape}" for colour, shape in named]
        listing = names[0] if len(names) == 1 else " , ".join(names[:-1]) + " and " + names[-1]
        assert target == f"{listing} on {scene.background} background", (source, target)
        assert sorted(named) == sorted((o.colour, o.shape) for o in scene.objects)
        assert len(source.split()) >= 2 * len(target.split()) and source == source.lower()


def test_sst2_labels_follow_the_wording():
    positive = re.compile(r"\b(beautiful|lovely|charming|delightful|elegant|pleasant|wonderful)\b")
    labels = collections.Counter()
    for _, (sentence, label) in rows("sst2", 400):
        negated = " not " in sentence
        assert label == ("1" if bool(positive.search(sentence)) != negated else "0"), sentence
        labels[label] += 1
    assert min(labels.values()) > 0.35 * sum(labels.values())


BROKEN = re.compile(rf"\b(a|an) (a|an)\b|\b({SHAPES}) ({COLOURS})\b|\b({COLOURS}) (a|an)\b|there are (a|an|one)\b|"
                    rf"there is (two|three)\b|\bone shapes\b|\b(two|three) shape\b|^(a|an) \w+ \w+ are\b")


def test_cola_labels_mark_the_broken_sentences():
    labels = collections.Counter()
    for _, (index, sentence, label) in rows("cola", 400):
        assert sentence[0].isupper() and sentence.endswith(".")
        assert label == ("0" if BROKEN.search(sentence.lower()) else "1"), sentence
        labels[label] += 1
    assert min(labels.values()) > 0.35 * sum(labels.values())


def test_mrpc_paraphrases_describe_the_same_scene():
    labels = collections.Counter()
    for scene, (first, second, label) in rows("mrpc", 400):
        assert facts(described_scene(first)) == facts(scene) and first != second
        assert (facts(described_scene(second)) == facts(scene)) == (label == "1"), (first, second, label)
        labels[label] += 1
    assert min(labels.values()) > 0.35 * sum(labels.values())


INTENTS = {
    "colour": rf"(?:what color is the|which color does the|what is the color of the) ({SHAPES})(?: have)?",
    "shape": rf"(?:which shape is|what shape is the|what is the shape of the) ({COLOURS})(?: object)?",
    "count": r"how many shapes are there|what is the number of shapes in the picture|how many shapes can you see",
    "background": r"(?:what color is the|which color does the|what is the color of the) background(?: have)?",
}


def intent(question):
    for name, pattern in INTENTS.items():
        if m := re.fullmatch(f"(?:{pattern})" + r"\?", question.lower()):
            return name, m.group(1) if m.groups() else ""
    raise AssertionError(f"unexpected question {question!r}")


def test_qqp_duplicates_ask_the_same_thing():
    labels = collections.Counter()
    for _, (index, qid1, qid2, first, second, label) in rows("qqp", 400):
        assert (int(qid1), int(qid2)) == (2 * int(index) + 1, 2 * int(index) + 2)
        assert (intent(first) == intent(second)) == (label == "1") and first != second
        labels[label] += 1
    assert min(labels.values()) > 0.35 * sum(labels.values())


def test_qnli_sentences_contain_the_answer_exactly_when_labelled():
    labels = collections.Counter()
    for scene, (index, question, sentence, label) in rows("qnli", 400):
        kind, slot = intent(question)
        answer = {"colour": lambda: [o.colour for o in scene.objects if o.shape == slot],
                  "shape": lambda: [o.shape for o in scene.objects if o.colour == slot],
                  "count": lambda: [toyworld.NUMBER_WORDS[len(scene.objects)]],
                  "background": lambda: [scene.background]}[kind]()
        assert len(answer) == 1, question
        statements = sentence.lower()[:-1].split(" , and ")
        assert all(claim_truth(scene, s) for s in statements), sentence
        answering = {"colour": f"the {slot} is {answer[0]}", "shape": f"the {answer[0]} is {slot}",
                     "count": count_statement(len(scene.objects)),
                     "background": f"the background is {answer[0]}"}[kind]
        assert (answering in statements) == (label == "entailment"), (question, sentence, label)
        labels[label] += 1
    assert min(labels.values()) > 0.35 * sum(labels.values())


# ----------------------------------------------------------------------------------------------------------
# Vocabulary and the whole world


def model_texts(paths, tasks=toyworld.TASKS):
    """Every text column of the world's files as the tasks feed it to the model (lowercase)."""
    text_cols = {"caption": [2], "vqa": [2, 3], "refcoco": [2], "snli_ve": [3, 4], "classify": [2],
                 "gigaword": [0, 1], "cola": [1], "mnli": [0, 1], "mrpc": [0, 1], "qnli": [1, 2], "qqp": [3, 4],
                 "rte": [1, 2], "sst2": [0]}
    for task in tasks:
        for split in SPLITS:
            tsv = TSVFile(paths[f"{task}_{split}"], text_cols[task])
            for row in range(len(tsv)):
                for field in tsv[row]:
                    yield from (re.sub(r"^\d\.\d\|!\+", "", part).lower() for part in field.split("&&"))


def test_vocabulary_covers_the_world(world):
    _, paths = world
    processor = spm.SentencePieceProcessor(model_file=str(paths["spm_model"]))
    lines = paths["dict"].read_text(encoding="utf-8").splitlines()
    pieces = [line.split(" ")[0] for line in lines]
    assert all(len(line.split(" ")) == 2 and int(line.split(" ")[1]) >= 1 for line in lines)
    assert 300 <= len(pieces) <= 700 and len(set(pieces)) == len(pieces)
    assert not {"<unk>", "<s>", "</s>", "<pad>"} & set(pieces)
    texts = list(model_texts(paths))
    words = {w for text in texts for w in re.findall(r"[a-z0-9]+", text)}
    assert len(words) > 100
    labels = {"yes", "no", "maybe", "positive", "negative"}  # closed-set targets must be single tokens
    for word in words | labels:  # every word of the world is one piece of its own
        assert processor.encode(" " + word, out_type=str) == ["▁" + word], word
    texts += [PROMPT, "Any ASCII text: 42!"]
    texts += [prompt.format(texts[0], texts[1]) for prompt in PROMPTS]
    known = set(pieces)
    for text in texts:
        assert processor.unk_id() not in processor.encode(text)
        assert set(processor.encode(text, out_type=str)) <= known, text
    assert processor.encode("a red circle", out_type=str) == ["▁a", "▁red", "▁circle"]


def test_fairseq_sentencepiece_and_dictionary_read_the_vocabulary(world):
    _, paths = world
    bpe = SentencepieceBPE(SentencepieceConfig(sentencepiece_model=str(paths["spm_model"])))
    dictionary = Dictionary.load(str(paths["dict"]))
    caption = TSVFile(paths["caption_train"], "2")[0][0]
    question = pre_question(TSVFile(paths["vqa_train"], "2")[0][0])
    hypothesis = pre_caption(TSVFile(paths["snli_ve_train"], "3")[0][0])
    for text in (PROMPT, " " + caption_train_target(caption, 20), " " + question,
                 f' does the image describe " {hypothesis} "?'):
        ids = dictionary.encode_line(bpe.encode(text), add_if_not_exist=False, append_eos=False)
        assert dictionary.unk() not in ids.tolist()
        assert bpe.decode(dictionary.string(ids)) == text.strip()


def test_default_size_world_and_cli(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="ofa_plugin.data.toyworld"):
        toyworld.main(["--out", str(tmp_path), "--seed", "4", "--image-size-range", "48", "64"])
    for task in toyworld.TASKS:
        assert len(TSVFile(tmp_path / f"{task}_train.tsv")) == 2000
        assert len(TSVFile(tmp_path / f"{task}_valid.tsv")) == len(TSVFile(tmp_path / f"{task}_test.tsv")) == 100
    image = decode_image(TSVFile(tmp_path / "caption_train.tsv", "4")[1999][0], "caption_train.tsv", 1999)
    assert max(image.size) <= 64
    assert "wrote 2000 caption rows" in caplog.text and "wrote 2000 qqp rows" in caplog.text
    assert "SentencePiece" in caplog.text


def test_cli_writes_chosen_tasks(tmp_path):
    toyworld.main(["--out", str(tmp_path), "--num-train", "5", "--num-valid", "2", "--num-test", "2",
                   "--tasks", "vqa", "cola"])
    assert sorted(p.name for p in tmp_path.glob("*.tsv")) == [f"{t}_{s}.tsv" for t in ("cola", "vqa")
                                                               for s in ("test", "train", "valid")]
    assert (tmp_path / "vqa_ans2label.pkl").is_file() and not (tmp_path / "classify_class2label.pkl").exists()


def test_module_entry_point(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["toyworld", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("ofa_plugin.data.toyworld", run_name="__main__")
    assert exit_info.value.code == 0
    assert "python -m ofa_plugin.data.toyworld" in capsys.readouterr().out


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size_range"):
        toyworld.write_toy_world("unused", image_size_range=(100, 50))
    with pytest.raises(ValueError, match="split"):
        next(toyworld.caption_rows("dev", 1, seed=1))
    with pytest.raises(ValueError, match="'imagenet'"):
        toyworld.write_toy_world("unused", tasks=["caption", "imagenet"])
    with pytest.raises(ValueError, match="label"):
        toyworld.hypothesis(toyworld.draw_scene(random.Random(0)), "maybe", random.Random(0))
