"""unify_task pretraining (reference §10): text infilling, each example kind, the (v1, v2) collater, bad rows,
and a short fairseq-train run on the toy pretraining files whose checkpoint fine-tunes as a caption model."""
import json
import math
import random
import re

import numpy as np
import pytest
import torch
from fairseq.data import Dictionary
from PIL import Image

from ofa_plugin.data.collate import BATCH_EXTRAS
from ofa_plugin.data.images import decode_image
from ofa_plugin.data.pretrain import (DetectionBuilder, ImageInfillingBuilder, NegativeSamples, PairBuilder,
                                      SideReader, SpanMasker, TextInfillingBuilder, UnifyDataset,
                                      UnifySampleBuilder, large_scale_jitter, make_example,
                                      poisson_span_probabilities, word_start_mask)
from ofa_plugin.data.pretrain.detection import hflip
from ofa_plugin.data.pretrain.pair_transforms import grounding_transform
from ofa_plugin.data.toyworld.pretrain import pair_type_cycle, synthetic_codes, write_pretrain_world
from ofa_plugin.data.toyworld.scene import encode_image_base64
from ofa_plugin.data.tsv import TSVFile
from ofa_plugin.vocab import build_tokenizer, encode_text

from conftest import BPE_DIR, REPO, cli_env, run_cli

MEAN = STD = (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def gpt2():
    return build_tokenizer("gpt2", str(BPE_DIR))


@pytest.fixture(scope="module")
def gpt2_masker(ofa_dictionary, gpt2):
    """The official text-infilling masker (ratio 0.3, Poisson(3) spans, one <mask> per span)."""
    return SpanMasker(word_start_mask(ofa_dictionary, gpt2), ofa_dictionary.index("<mask>"), len(ofa_dictionary))


def _tokens(dictionary, tokenizer, text):
    return encode_text(dictionary, tokenizer, text).tolist()


def _image_field(width=64, height=48, colour=(255, 255, 255)):
    return encode_image_base64(Image.new("RGB", (width, height), colour))


class FixedRng(random.Random):
    """random() always `value`, uniform() and randint() their lower bound (scale 1, offset 0, smallest size)."""

    def __init__(self, value=0.0):
        super().__init__(0)
        self.value = value

    def random(self):
        return self.value

    def uniform(self, a, b):
        return a

    def randint(self, a, b):
        return a


# ------------------------------------------------------------------------------------------------ text infilling

# hand-made vocabulary: specials 0-3, then word starts A B C D E F and a continuation piece "x"
def _toy_masker(**kwargs):
    dictionary = Dictionary()
    for symbol in ("\u2581A", "\u2581B", "\u2581C", "\u2581D", "\u2581E", "\u2581F", "x"):
        dictionary.add_symbol(symbol)
    mask = dictionary.add_symbol("<mask>")
    starts = word_start_mask(dictionary, None)
    return dictionary, mask, SpanMasker(starts, mask, len(dictionary), **kwargs)


def test_word_starts_gpt2(ofa_dictionary, gpt2, gpt2_masker):
    starts = gpt2_masker.word_starts
    hello, ing = _tokens(ofa_dictionary, gpt2, " hello"), _tokens(ofa_dictionary, gpt2, "ing")
    assert starts[hello[0]] and not starts[ing[0]]
    assert starts[:4].all() and starts[ofa_dictionary.index("<mask>")] and starts[ofa_dictionary.index("<code_0>")]


def test_poisson_span_probabilities():
    p = poisson_span_probabilities(3.0)
    assert p[0].item() == pytest.approx(math.exp(-3))
    assert p[3].item() == pytest.approx(math.exp(-3) * 27 / 6)
    assert p[-1] < 1e-7 <= p[-2]  # truncated right after the first k below 1e-7 (k = 17 for lambda 3)
    assert len(p) == 18


def test_whole_word_masking_counts_and_continuations():
    dictionary, mask, masker = _toy_masker(ratio=0.3, mask_length="word", replace_length=1)
    # bos A B x x C D E F eos: 6 words (B spans 3 tokens) -> ceil(0.3 * 6) = 2 words masked
    A, B, C, D, E, F, x = (dictionary.index(s) for s in ("\u2581A", "\u2581B", "\u2581C", "\u2581D", "\u2581E",
                                                          "\u2581F", "x"))
    tokens = torch.tensor([0, A, B, x, x, C, D, E, F, 2])
    for seed in range(20):
        out = masker(tokens, torch.Generator().manual_seed(seed))
        assert out[0] == 0 and out[-1] == 2
        assert int((out == mask).sum()) == 2
        kept = [t for t in out.tolist() if t != mask]
        # the kept tokens are the original ones in order; a masked B takes its continuations with it
        assert (x in kept) == (B in kept)
        words = {A: 1, B: 3, C: 1, D: 1, E: 1, F: 1}
        assert len(out) == len(tokens) - sum(words[t] for t in words if t not in kept) + 2
        assert torch.equal(out, masker(tokens, torch.Generator().manual_seed(seed)))  # deterministic


def test_span_masking_deletes_and_inserts():
    _, mask, masker = _toy_masker(ratio=1.0, mask_length="word", replace_length=0)
    tokens = torch.tensor([0, 4, 5, 6, 2])
    assert masker(tokens, torch.Generator().manual_seed(0)).tolist() == [0, 2]  # every word deleted
    _, mask, masker = _toy_masker(ratio=1.0, mask_length="subword", replace_length=1)
    assert masker(tokens, torch.Generator().manual_seed(0)).tolist() == [0, mask, mask, mask, 2]
    _, mask, masker = _toy_masker(ratio=0.3, mask_length="span-poisson", poisson_lambda=3.0)
    tokens = torch.tensor([0] + [4, 5, 6, 7, 8, 9] * 5 + [2])  # 30 words -> 9 masked words
    for seed in range(10):
        out = masker(tokens, torch.Generator().manual_seed(seed))
        assert out[0] == 0 and out[-1] == 2 and (out == mask).any()
        kept = int((out != mask).sum()) - 2
        assert 30 - 9 <= kept < 30  # spans cover 9 words in all; overlapping spans merge, so at most 9 go
    with pytest.raises(ValueError, match="replace-length"):
        _toy_masker(replace_length=2)


def test_text_infilling_example(ofa_dictionary, gpt2, gpt2_masker):
    builder = TextInfillingBuilder(ofa_dictionary, gpt2, gpt2_masker, 64, "text.tsv")
    text = "The Cat sat on the mat and looked at the dog for a while"
    example = builder(["t1", text], 0, random.Random(1))
    prompt = _tokens(ofa_dictionary, gpt2, ' what is the complete text of " "?')
    assert len(prompt) == 9
    source = example["source"].tolist()
    assert source[:8] == [0] + prompt[:7] and source[-3:] == prompt[-2:] + [2]
    words = _tokens(ofa_dictionary, gpt2, " " + text.lower())
    assert example["target"].tolist() == words + [2] and example["prev_output_tokens"].tolist() == [0] + words
    middle = source[8:-3]
    assert middle.count(ofa_dictionary.index("<mask>")) >= 1 and len(middle) < len(words)
    assert example[BATCH_EXTRAS]["conf"].item() == 2.0 and not example[BATCH_EXTRAS]["code_masks"]
    assert example["patch_mask"] is False and example["patch_image"].abs().sum() == 0
    assert torch.equal(builder(["t1", text], 0, random.Random(1))["source"], example["source"])
    long_text = " ".join(f"w{i}" for i in range(400))
    kept = builder(["t2", long_text], 1, random.Random(1))["target"][:-1].tolist()
    assert len(kept) == 256 and kept == _tokens(ofa_dictionary, gpt2, " " + long_text)[:512][-256:]


# ------------------------------------------------------------------------------------------- image-text pairs

@pytest.fixture(scope="module")
def negatives():
    return NegativeSamples(["a dog on a sofa", "two cats", "a red bus"], ["dog", "cat", "bus"],
                           {"other": ["red", "blue", "yes"], "how many": ["1", "2", "3"]})


def _pairs(dictionary, tokenizer, negatives, training=True):
    return PairBuilder(dictionary, tokenizer, image_transform=lambda image, rng: torch.zeros(3, 32, 32),
                       grounding_transform=grounding_transform(32, MEAN, STD), negatives=negatives,
                       max_src_length=80, max_tgt_length=30, max_image_size=64, num_bins=1000,
                       is_training=training, tsv_path="vl.tsv")


def _text(dictionary, tokenizer, tokens):
    return tokenizer.decode(dictionary.string(torch.tensor([t for t in tokens if t > 3])))


def test_caption_and_matching_examples(ofa_dictionary, gpt2, negatives):
    builder = _pairs(ofa_dictionary, gpt2, negatives)
    row = ["7", _image_field(), "A dog, on the grass!", "", "", "dog", "coco", "caption"]
    seen = set()
    for seed in range(8):
        base, itm = builder(row, 0, random.Random(seed))
        assert _text(ofa_dictionary, gpt2, base["source"]) == " what does the image describe?"
        assert base["target"].tolist() == _tokens(ofa_dictionary, gpt2, " a dog, on the grass!") + [2]
        answer = _text(ofa_dictionary, gpt2, itm["target"])
        source = _text(ofa_dictionary, gpt2, itm["source"])
        if answer == " yes":
            assert source == ' does the image describe " a dog, on the grass! "?'
        else:
            assert answer == " no" and source != ' does the image describe " a dog, on the grass! "?'
        seen.add(answer)
    assert seen == {" yes", " no"}
    cc12m = builder(row[:6] + ["cc12m", "caption"], 0, random.Random(0))[0]
    assert cc12m["target"][:2].tolist() == [1, 1] and cc12m["target"][2:].tolist() == base["target"][2:].tolist()
    assert len(_pairs(ofa_dictionary, gpt2, None, training=False)(row, 0, random.Random(0))) == 1


def test_qa_examples(ofa_dictionary, gpt2, negatives):
    builder = _pairs(ofa_dictionary, gpt2, negatives)
    row = ["8", _image_field(), "", "How many dogs?", "0.6|!+2&&1.0|!+3", "", "vqa", "qa"]
    base, itm = builder(row, 0, random.Random(3))
    assert _text(ofa_dictionary, gpt2, base["source"]) == " how many dogs?"
    assert base["target"].tolist() == _tokens(ofa_dictionary, gpt2, " 3") + [2]
    assert base[BATCH_EXTRAS]["conf"].item() == 1.0 and itm[BATCH_EXTRAS]["conf"].item() == 1.0
    prompt = _text(ofa_dictionary, gpt2, itm["source"])
    assert prompt.startswith(' what is the answer to question " how many dogs? ". is "')
    assert (_text(ofa_dictionary, gpt2, itm["target"]) == " yes") == prompt.endswith('" 3 "?')
    row[4] = "0.3|!+red"
    assert builder(row, 0, random.Random(3))[0][BATCH_EXTRAS]["conf"].item() == pytest.approx(0.3)


def test_grounding_examples(ofa_dictionary, gpt2, negatives):
    builder = _pairs(ofa_dictionary, gpt2, negatives)
    row = ["9", _image_field(64, 64), "The red ball", "", "16,16,48,48", "", "refcoco", "visual_grounding"]
    grounding, grounded_caption = builder(row, 0, random.Random(0))
    assert _text(ofa_dictionary, gpt2, grounding["source"]) == ' which region does the text " the red ball " describe?'
    bins = grounding["target"][:-1]
    assert len(bins) == 4 and (bins >= ofa_dictionary.index("<bin_0>")).all()
    prompt = _tokens(ofa_dictionary, gpt2, "  what does the region describe? region:")
    assert prompt[0] == 1437  # the official double space: a lone ' ' token first
    assert grounded_caption["source"].tolist() == [0] + prompt + bins.tolist() + [2]
    assert grounded_caption["target"].tolist() == _tokens(ofa_dictionary, gpt2, " the red ball") + [2]


def test_grounding_crop_follows_the_box():
    image = Image.new("RGB", (100, 50))
    patch, box = grounding_transform(32, MEAN, STD)(image, (80.0, 10.0, 96.0, 26.0), FixedRng())
    assert patch.shape == (3, 32, 32)
    # shorter side 50 -> 32 (y scale 0.64), longer side 64 capped at int(1.75 * 32) = 56 (x scale 0.56);
    # box centre x 49.28 -> crop [24, 56), clamped at the right edge; y centre 11.52 -> crop [0, 32)
    assert box == pytest.approx((80 * 0.56 - 24, 10 * 0.64, 96 * 0.56 - 24, 26 * 0.64))


def test_negative_answers(negatives):
    assert negatives.answer("2", 1.0, FixedRng(0.7)) in ("1", "3")  # how many: a count +-1
    assert negatives.answer("red", 0.1, FixedRng(0.0)) in ("blue", "yes")  # low conf: type "other", not itself
    assert negatives.caption("a dog runs", ["dog"], FixedRng(0.9)) in ("a cat runs", "a bus runs")


# ------------------------------------------------------------------------------------- detection, image infilling

def test_detection_jitter_and_target(ofa_dictionary, gpt2):
    image = Image.new("RGB", (100, 50))
    boxes = [((10.0, 10.0, 60.0, 40.0), "circle"), ((80.0, 5.0, 95.0, 20.0), "red square")]
    jittered, kept = large_scale_jitter(image, boxes, 64, FixedRng(0.0))
    # shorter side -> 64 (scale 1.28, 128 x 64), crop at (0, 0): the second box falls outside and is dropped
    assert jittered.size == (64, 64)
    assert kept == [(pytest.approx((12.8, 12.8, 64.0, 51.2)), "circle")]
    builder = DetectionBuilder(ofa_dictionary, gpt2, 64, 512, 1000, MEAN, STD, "det.tsv")
    bins = [ofa_dictionary.index(f"<bin_{b}>") for b in (25, 25, 125, 100)]  # round(c / 512 * 999)
    assert builder.target(kept).tolist() == bins + _tokens(ofa_dictionary, gpt2, " circle")
    assert hflip(image, boxes)[1][0][0] == (40.0, 10.0, 90.0, 40.0)
    example = builder(["d1", encode_image_base64(image), "1,2,30,40,3,red, square"], 0, random.Random(0))
    assert example["target"][-1] == 2 and example["patch_image"].shape == (3, 64, 64)
    assert example[BATCH_EXTRAS]["conf"].item() == 2.0 and not example[BATCH_EXTRAS]["code_masks"]
    assert _text(ofa_dictionary, gpt2, example["source"]) == " what are the objects in the image?"
    assert _text(ofa_dictionary, gpt2, example["target"]).endswith(" red, square")


def test_image_infilling_example(ofa_dictionary, gpt2):
    builder = ImageInfillingBuilder(ofa_dictionary, gpt2, 16, 8192, MEAN, STD, "img.tsv")
    example = builder(["i1", _image_field(32, 32), "5 6 7 8"], 0, random.Random(0))
    assert example["target"].tolist() == [50270, 50271, 50272, 50273, 2]
    patch = example["patch_image"]
    assert patch[:, 8:24, 8:24].abs().sum() == 0
    assert patch[:, :8].min() > 0.9 and patch[:, :, 24:].min() > 0.9  # white outside the centre
    assert example[BATCH_EXTRAS]["code_masks"] and example[BATCH_EXTRAS]["conf"].item() == 2.0
    assert _text(ofa_dictionary, gpt2, example["source"]) == " what is the image in the middle part?"


def test_synthetic_codes():
    image = Image.new("RGB", (32, 32), (255, 0, 0))
    image.paste((0, 0, 255), (16, 16, 24, 24))
    assert synthetic_codes(image, 16) == [48, 48, 48, 3]  # red = 3*16, blue = 3 (cells of the centre 16 px)


def test_pair_mix_sets_the_row_types(tmp_path):
    assert pair_type_cycle((4, 1, 1)) == ["caption"] * 4 + ["qa", "visual_grounding"]
    assert pair_type_cycle((0, 2, 0)) == ["qa", "qa"]
    for bad in ((0, 0, 0), (1, -1, 1), (1, 1)):
        with pytest.raises(ValueError, match="pair mix must be 3 non-negative row counts"):
            pair_type_cycle(bad)
    write_pretrain_world(tmp_path, num_pairs=7, pair_mix=(2, 0, 1))
    rows = TSVFile(tmp_path / "vision_language_examples.tsv")
    assert [rows[i][7] for i in range(len(rows))] == ["caption", "caption", "visual_grounding"] * 2 + ["caption"]


# -------------------------------------------------------------------------------------------- batches, bad rows

def _example(dictionary, n, conf=1.0, code=False, size=8):
    return make_example(dictionary, "u", torch.tensor([0] + [5] * n + [2]), torch.tensor([6] * n),
                        torch.zeros(3, size, size), True, conf, code)


def test_collater_pairs(ofa_dictionary):
    dataset = UnifyDataset.__new__(UnifyDataset)
    dataset.pad_idx = 1
    samples = [{"id": 0, "pairs": [_example(ofa_dictionary, 2), _example(ofa_dictionary, 3)], "extras": []},
               {"id": 7, "pairs": [_example(ofa_dictionary, 1, conf=0.5)],
                "extras": [_example(ofa_dictionary, 4, 2.0, True, 16), _example(ofa_dictionary, 2, 2.0, False, 16)]}]
    v1, v2 = dataset.collater(samples)
    assert v1["id"].tolist() == [0, 0, 7] and v2["id"].tolist() == [7, 7]
    assert v1["conf"].tolist() == [1.0, 1.0, 0.5] and v2["conf"].tolist() == [2.0, 2.0]
    assert "code_masks" not in v1["net_input"] and v2["net_input"]["code_masks"].tolist() == [True, False]
    assert v1["ntokens"] == 3 + 4 + 2 and v2["ntokens"] == 5 + 3
    assert v1["net_input"]["patch_images"].shape == (3, 3, 8, 8) and v2["net_input"]["patch_images"].shape[-1] == 16
    only = dataset.collater(samples[:1])
    assert isinstance(only, dict) and only["id"].tolist() == [0, 0]
    assert dataset.collater([None]) == {}


def _write(path, rows):
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return TSVFile(path)


def test_extra_examples_every_eighth_row(tmp_path, ofa_dictionary, gpt2, gpt2_masker):
    texts = _write(tmp_path / "text.tsv", [[f"t{i}", f"text {i}"] for i in range(5)])
    reader = SideReader(texts, TextInfillingBuilder(ofa_dictionary, gpt2, gpt2_masker, 8, "text.tsv"))
    builder = UnifySampleBuilder(lambda columns, row, rng: [], num_rows=16, seed=7, text=reader, epoch=2)
    assert builder([], 6) == {"pairs": [], "extras": []}
    extras = builder([], 15)["extras"]  # 2nd extra row of epoch 2: position 16 // 8 + 1 = 3 -> text rows 6, 7
    assert [e["uniq_id"] for e in extras] == ["t1", "t2"]  # (mod 5)


def test_bad_rows_name_file_and_row(tmp_path, ofa_dictionary, gpt2, negatives):
    pairs = _pairs(ofa_dictionary, gpt2, negatives)
    with pytest.raises(ValueError, match=r"vl.tsv: row 3: .*8 selected columns"):
        pairs(["1", "x"], 3, random.Random(0))
    with pytest.raises(ValueError, match=r"vl.tsv: row 4: type must be one of"):
        pairs(["1", _image_field(), "c", "", "", "", "coco", "ocr"], 4, random.Random(0))
    detection = DetectionBuilder(ofa_dictionary, gpt2, 64, 512, 1000, MEAN, STD, "det.tsv")
    with pytest.raises(ValueError, match=r"det.tsv: row 2: boxes must be"):
        detection(["d", _image_field(), "1,2,3,cat"], 2, random.Random(0))
    image = ImageInfillingBuilder(ofa_dictionary, gpt2, 16, 8192, MEAN, STD, "img.tsv")
    with pytest.raises(ValueError, match=r"img.tsv: row 5: code column has 3 codes, expected 4"):
        image(["i", _image_field(32, 32), "1 2 3"], 5, random.Random(0))
    with pytest.raises(ValueError, match=r"img.tsv: row 6: image is 64x48, image infilling needs 32x32"):
        image(["i", _image_field(), "1 2 3 4"], 6, random.Random(0))
    # a bad side row surfaces with the image-text row that read it and the side file's own row
    main = _write(tmp_path / "vl.tsv", [["x"]] * 8)
    side = SideReader(_write(tmp_path / "img.tsv", [["i", _image_field(32, 32), "1"]]), image)
    dataset = UnifyDataset(main, UnifySampleBuilder(lambda c, r, rng: [], 8, 7, image=side), 1)
    with pytest.raises(ValueError, match=r"vl.tsv: row 7: img.tsv: row 0: code column"):
        dataset[7]


def test_items_repeat_whatever_the_global_random_state(tmp_path):
    """RandomAugment draws from Python's `random`: each item gets its own seeded state, the caller's is kept."""
    rows = _write(tmp_path / "vl.tsv", [["x"]] * 4)
    dataset = UnifyDataset(rows, UnifySampleBuilder(lambda c, r, rng: [random.random()], 4, 7), 1)
    random.seed(1)
    first = dataset[2]
    random.seed(2)
    outer = random.random()
    random.seed(2)
    assert dataset[2] == first and dataset[3] != first and random.random() == outer
    dataset.set_epoch(2)
    assert dataset[2] != first


# ------------------------------------------------------------------------------------- fairseq-train, restore

def test_toy_pretraining_run_script_and_caption_restore(tmp_path):
    """run_scripts/pretraining/train_pretrain.sh in toy mode (the official command line on the toy pretraining
    files, ofa_nano, 6 updates of fairseq-train --task unify_task), then its checkpoint restored into the
    caption task as `fairseq-train --task caption --restore-file` does (strict load)."""
    out = tmp_path / "out"
    log = run_cli(["bash", REPO / "run_scripts" / "pretraining" / "train_pretrain.sh"], tmp_path / "train.log",
                  {**cli_env(), "TOY": "1", "TOY_UPDATES": "6", "OUT": str(out), "OMP_NUM_THREADS": "1"})
    world = out / "data"
    _check_toy_files(world)
    assert "--sample-patch-num 196" in log and "--max-update 6" in log
    losses_v1 = [float(v) for v in re.findall(r"loss_v1=([0-9.]+)", log)]
    losses_v2 = [float(v) for v in re.findall(r"loss_v2=([0-9.]+)", log)]
    assert losses_v1 and len(losses_v1) == len(losses_v2) and all(np.isfinite(losses_v1 + losses_v2))
    checkpoint = out / "checkpoints" / "checkpoint_last.pt"
    assert checkpoint.is_file()
    _restore_into_caption(checkpoint, world)


@pytest.mark.parametrize("side_files", ["0", "1"])
def test_toy_pretraining_script_adds_the_side_files_on_request(tmp_path, side_files):
    """train_pretrain_toy.sh: image-text rows in its 6:1:1 cycle, the side tasks only with SIDE_FILES=1."""
    env = {**cli_env(), "MAX_UPDATE": "2", "NUM_PAIRS": "16", "SIDE_FILES": side_files, "OMP_NUM_THREADS": "1"}
    log = run_cli(["bash", REPO / "run_scripts" / "pretraining" / "train_pretrain_toy.sh", tmp_path / "data",
                   tmp_path / "save", "--log-interval", "1"], tmp_path / "train.log", env)
    rows = TSVFile(tmp_path / "data" / "vision_language_examples.tsv")
    assert [rows[i][7] for i in range(8)] == ["caption"] * 6 + ["qa", "visual_grounding"]
    assert ("loss_v2=" in log) == (side_files == "1") and "num_updates=2" in log
    assert (tmp_path / "save" / "checkpoint_last.pt").is_file()


def _check_toy_files(world):
    """The toy writer's official layouts: 64 image-text rows of the 3 types, a quarter of that per side file,
    64 px image examples with 16 codes, the negative pools."""
    rows = TSVFile(world / "vision_language_examples.tsv")
    assert len(rows) == 64 and [rows[i][7] for i in range(3)] == ["caption", "qa", "visual_grounding"]
    assert len(rows[1]) == 8 and rows[1][4].startswith("1.0|!+") and len(rows[2][4].split(",")) == 4
    assert all(len(TSVFile(world / f"{name}_examples.tsv")) == 16 for name in ("text", "image", "detection"))
    uniq_id, image, codes = TSVFile(world / "image_examples.tsv")[0]
    assert decode_image(image, "image_examples.tsv", 0).size == (64, 64) and len(codes.split()) == 16
    assert "shape" in json.loads((world / "negative_sample" / "type2ans.json").read_text())
    assert len(TSVFile(world / "negative_sample" / "object.txt")) == 5


def _restore_into_caption(checkpoint, world):
    from fairseq import checkpoint_utils, tasks
    from omegaconf import OmegaConf

    state = checkpoint_utils.load_checkpoint_to_cpu(str(checkpoint))
    cfg = state["cfg"]
    assert cfg.task._name == "unify_task"
    task_cfg = OmegaConf.merge(OmegaConf.structured(tasks.TASK_DATACLASS_REGISTRY["caption"]),
                               {"data": str(world / "vision_language_examples.tsv"), "bpe": "sentencepiece",
                                "bpe_dir": str(world / "vocab"), "patch_image_size": 32})
    caption = tasks.TASK_REGISTRY["caption"].setup_task(task_cfg)
    model = caption.build_model(cfg.model)
    model.load_state_dict(state["model"], strict=True, model_cfg=cfg.model)
