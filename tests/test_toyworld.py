"""The toy world: determinism, official layout, decodable images, true captions, vocabulary coverage."""
import base64
import collections
import io
import logging
import random

import numpy as np
import pytest
import sentencepiece as spm
from fairseq.data import Dictionary
from fairseq.data.encoders.sentencepiece_bpe import SentencepieceBPE, SentencepieceConfig
from PIL import Image
from pycocoevalcap.cider.cider import Cider

from ofa_plugin.data import toyworld
from ofa_plugin.data.images import decode_image
from ofa_plugin.data.text import caption_references, caption_train_target
from ofa_plugin.data.tsv import TSVFile

SMALL = dict(num_train=40, num_valid=8, num_test=8)
PROMPT = " what does the image describe?"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    return out, toyworld.write_toy_world(out, seed=1, **SMALL)


def file_bytes(paths):
    return {name: path.read_bytes() for name, path in paths.items()}


def test_writes_expected_files(world):
    out, paths = world
    assert set(paths) == {"caption_train", "caption_valid", "caption_test", "spm_model", "dict"}
    assert paths["caption_train"] == out / "caption_train.tsv"
    assert paths["spm_model"] == out / "vocab" / "spm.model" and paths["dict"] == out / "vocab" / "dict.txt"
    assert all(path.is_file() and path.stat().st_size > 0 for path in paths.values())


def test_same_seed_same_bytes_other_seed_other_images(world, tmp_path):
    _, first = world
    again = toyworld.write_toy_world(tmp_path / "again", seed=1, **SMALL)
    assert file_bytes(again) == file_bytes(first)
    other = toyworld.write_toy_world(tmp_path / "other", seed=2, **SMALL)
    assert other["caption_train"].read_bytes() != first["caption_train"].read_bytes()
    # The vocabulary does not depend on the seed, so worlds of any seed or size share it.
    assert other["spm_model"].read_bytes() == first["spm_model"].read_bytes()


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
                assert abs(int(image[cy, cx]) - toyworld._luma(expected)) <= 1
            else:
                assert np.array_equal(image[cy, cx], expected)
        for a in scene.objects:  # shapes do not overlap
            for b in scene.objects:
                ax0, ay0, ax1, ay1 = a.box
                bx0, by0, bx1, by1 = b.box
                assert a is b or ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0


def test_grayscale_scenes_are_single_channel_jpegs_without_colour_words():
    rows = list(toyworld.caption_rows("valid", 80, seed=3))
    gray = [(scene, columns) for scene, columns in rows if scene.grayscale]
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


def test_vocabulary_covers_the_world(world):
    _, paths = world
    processor = spm.SentencePieceProcessor(model_file=str(paths["spm_model"]))
    lines = paths["dict"].read_text(encoding="utf-8").splitlines()
    pieces = [line.split(" ")[0] for line in lines]
    assert all(len(line.split(" ")) == 2 and int(line.split(" ")[1]) >= 1 for line in lines)
    assert 300 <= len(pieces) <= 600 and len(set(pieces)) == len(pieces)
    assert not {"<unk>", "<s>", "</s>", "<pad>"} & set(pieces)
    texts = [PROMPT, "yes", "no", "maybe", ' does the image describe " two shapes "?', "Any ASCII text: 42!"]
    for split in ("caption_train", "caption_test"):
        tsv = TSVFile(paths[split], "2")
        texts += [ref for row in range(len(tsv)) for ref in tsv[row][0].split("&&")]
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
    for text in (PROMPT, " " + caption_train_target(caption, 20)):
        ids = dictionary.encode_line(bpe.encode(text), add_if_not_exist=False, append_eos=False)
        assert dictionary.unk() not in ids.tolist()
        assert bpe.decode(dictionary.string(ids)) == text.strip()


def test_default_size_world_and_cli(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="ofa_plugin.data.toyworld"):
        toyworld.main(["--out", str(tmp_path), "--seed", "4", "--image-size-range", "48", "64"])
    assert len(TSVFile(tmp_path / "caption_train.tsv")) == 2000
    assert len(TSVFile(tmp_path / "caption_valid.tsv")) == len(TSVFile(tmp_path / "caption_test.tsv")) == 100
    image = decode_image(TSVFile(tmp_path / "caption_train.tsv", "4")[1999][0], "caption_train.tsv", 1999)
    assert max(image.size) <= 64
    assert "wrote 2000 caption rows" in caplog.text and "SentencePiece" in caplog.text


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size_range"):
        toyworld.write_toy_world("unused", image_size_range=(100, 50))
    with pytest.raises(ValueError, match="split"):
        next(toyworld.caption_rows("dev", 1, seed=1))
