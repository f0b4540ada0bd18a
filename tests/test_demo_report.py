"""The demo's report (ofa_plugin.report) and the demo driver's reading of the CLIs' output.

Fast: a real-format fairseq-train log snippet, hand-computed chart coordinates and box pixels, a page
built from hand-made test TSVs and predict JSONs (the formats fairseq-generate writes), hand-drawn
"generated" PNGs with their images.tsv index, and the random-codes baseline with a hand-built VQGAN.
"""
import base64
import importlib.util
import io
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw

from ofa_plugin.metrics.toy_image_check import PALETTE
from ofa_plugin.report.curves import chart_points, line_chart_svg, nice_ceiling
from ofa_plugin.report.examples import caption_examples, grounding_examples, image_gen_examples, vqa_examples
from ofa_plugin.report.html_page import (GOLD_COLOUR, PREDICTED_COLOUR, Section, caption_card, grounding_card,
                                         image_gen_card, render_page, vqa_card)
from ofa_plugin.report.metrics_table import MetricRow, text_table
from ofa_plugin.report.pictures import png_data_uri, with_boxes
from ofa_plugin.metrics.random_codes_baseline import random_codes_baseline, read_captions
from ofa_plugin.report.training_log import loss_point, parse_training_log, read_training_log
from ofa_plugin.vqgan.train_toy import patch_colour_tokenizer, toy_config

REPO = Path(__file__).resolve().parents[1]

# From a run of run_scripts/caption/train_caption_toy.sh (nll_loss edited to differ from loss).
TRAIN_LOG = """\
2026-11-29 09:07:38 | INFO | fairseq_cli.train | Start iterating over samples
2026-11-29 09:07:47 | INFO | train_inner | epoch 001:     25 / 313 loss=8.397, nll_loss=7.5, ntokens=316.08, \
nsentences=32, sample_size=316.08, ppl=337.2, wps=989.8, ups=3.12, wpb=316.1, bsz=32, num_updates=25, lr=0.0005, \
gnorm=3.826, train_wall=8, wall=9
2026-11-29 09:07:54 | INFO | train_inner | epoch 001:     50 / 313 loss=5.552, nll_loss=5.552, ntokens=308.2, \
nsentences=32, sample_size=308.2, ppl=46.9, wps=994.6, ups=3.23, wpb=308.2, bsz=32, num_updates=50, lr=0.001, \
gnorm=2.929, train_wall=8, wall=16
2026-11-29 09:12:35 | INFO | train | epoch 003 | loss 0.909 | nll_loss 0.909 | ntokens 308.716 | num_updates 939
2026-11-29 09:13:51 | INFO | train_inner | epoch 004:    262 / 313 loss=0.857, nll_loss=0.857, ntokens=308.6, \
nsentences=32, sample_size=308.6, ppl=1.81, wps=1045.6, ups=3.39, wpb=308.6, bsz=32, num_updates=1200, lr=0, \
gnorm=0.92, train_wall=75, wall=374
2026-11-29 09:13:52 | INFO | fairseq_cli.train | done training in 373.5 seconds
"""


def test_training_log_gives_the_loss_of_every_train_inner_line(tmp_path: Path) -> None:
    curve = parse_training_log(TRAIN_LOG)
    assert curve.updates == [25, 50, 1200]
    assert curve.losses == [8.397, 5.552, 0.857]
    assert curve.points() == [(25.0, 8.397), (50.0, 5.552), (1200.0, 0.857)]
    assert loss_point(TRAIN_LOG.splitlines()[3]) is None  # the epoch summary line
    (tmp_path / "empty.log").write_text("fairseq-train: error: unrecognized arguments\n")
    with pytest.raises(ValueError, match=r"empty\.log: no 'train_inner' loss lines"):
        read_training_log(tmp_path / "empty.log")


def test_chart_maps_points_into_the_plot_area() -> None:
    assert [nice_ceiling(v) for v in (8.4, 6.1, 5.0, 0.73, 12.0)] == [10.0, 8.0, 5.0, 0.8, 15.0]
    # Plot area: x from 48 to 360 - 16 = 344 px, y from 220 - 40 = 180 (value 0) up to 28 (value y_max).
    assert chart_points([(0, 0), (50, 2.5), (100, 5)], 100, 5) == [(48, 180), (196, 104), (344, 28)]
    svg = line_chart_svg([(25, 8.4), (50, 4.2), (100, 1.05)], "VQA <toy>", "update", "loss")
    # y axis up to 10: 8.4 -> 180 - 152 * 0.84 = 52.32; x axis up to 100: 25 -> 48 + 296 / 4 = 122.
    assert '<polyline points="122,52.3 196,116.2 344,164"' in svg
    assert "VQA &lt;toy&gt;" in svg and ">10</text>" in svg and ">100</text>" in svg
    with pytest.raises(ValueError, match="no finite points"):
        line_chart_svg([(1, float("nan"))], "t", "x", "y")


def test_boxes_are_drawn_at_the_enlarged_image_scale() -> None:
    image = Image.new("RGB", (20, 10), "white")
    picture = with_boxes(image, [([2, 2, 6, 6], "#00ff00"), ([6, 3, 4, 5], "#ff0000")], size=40, line_width=1)
    assert picture.size == (40, 20)  # scale 2
    assert picture.getpixel((4, 8)) == (0, 255, 0) and picture.getpixel((12, 12)) == (0, 255, 0)
    assert picture.getpixel((8, 6)) == (255, 0, 0)  # the inverted box (6,3)-(4,5) spans x 8..12, y 6..10
    assert picture.getpixel((6, 6)) == (255, 255, 255) and picture.getpixel((14, 4)) == (255, 255, 255)


def _b64_png(image: Image.Image) -> str:
    return png_data_uri(image).split(",", 1)[1]


def _decode_uri(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")


@pytest.fixture()
def test_sets(tmp_path: Path) -> Path:
    """Caption, VQA and refcoco test TSVs (official layouts) and their predict JSONs, two rows each."""
    red, blue = _b64_png(Image.new("RGB", (60, 40), "red")), _b64_png(Image.new("RGB", (100, 50), "blue"))
    (tmp_path / "caption_test.tsv").write_text(
        f"0\t501\ta red image.&&red\tobj\t{red}\n1\t502\tblue & wide&&a blue one\tobj\t{blue}\n")
    (tmp_path / "caption.json").write_text(json.dumps([{"image_id": "502", "caption": "a blue one"},
                                                       {"image_id": "501", "caption": "a <red> thing"}]))
    (tmp_path / "vqa_test.tsv").write_text(
        f"7\t501\twhat color?\t1.0|!+red&&0.6|!+pink\tobj\t{red}\n8\t502\tis it wide?\t1.0|!+yes\tobj\t{blue}\n")
    (tmp_path / "vqa.json").write_text(json.dumps([{"question_id": 7, "answer": "pink"},
                                                   {"question_id": 8, "answer": "no"}]))
    (tmp_path / "refcoco_test.tsv").write_text(
        f"501_1\t501\tthe left half\t0.0,0.0,30.0,40.0\t{red}\n502_1\t502\tall of it\t0,0,100,50\t{blue}\n")
    (tmp_path / "refcoco.json").write_text(json.dumps([{"uniq_id": "501_1", "box": [0.0, 0.0, 20.0, 40.0]},
                                                       {"uniq_id": "502_1", "box": [50, 0, 100, 50]}]))
    return tmp_path


def test_examples_join_test_rows_and_predictions(test_sets: Path) -> None:
    captions = caption_examples(test_sets / "caption_test.tsv", test_sets / "caption.json")
    assert [(e.caption, e.references, e.image.size) for e in captions] == [
        ("a <red> thing", ["a red image", "red"], (60, 40)), ("a blue one", ["blue wide", "a blue one"], (100, 50))]
    answers = vqa_examples(test_sets / "vqa_test.tsv", test_sets / "vqa.json", count=5)
    assert [(e.question, e.answer, e.score) for e in answers] == [
        ("what color?", "pink", 0.6), ("is it wide?", "no", 0)]
    boxes = grounding_examples(test_sets / "refcoco_test.tsv", test_sets / "refcoco.json", count=1)
    assert len(boxes) == 1 and boxes[0].gold_box == [0, 0, 30, 40]
    assert boxes[0].iou == pytest.approx(2 / 3) and boxes[0].hit


def test_missing_prediction_names_the_file_and_row(test_sets: Path) -> None:
    (test_sets / "vqa.json").write_text(json.dumps([{"question_id": 7, "answer": "red"}]))
    with pytest.raises(ValueError, match=r"vqa\.json: no prediction for id '8' \(.*vqa_test\.tsv: row 1\)"):
        vqa_examples(test_sets / "vqa_test.tsv", test_sets / "vqa.json")
    (test_sets / "vqa.json").write_text(json.dumps([{"question_id": 7}]))
    with pytest.raises(ValueError, match=r"vqa\.json: record 0 lacks 'question_id' or 'answer'"):
        vqa_examples(test_sets / "vqa_test.tsv", test_sets / "vqa.json")


def test_page_shows_pictures_texts_boxes_table_and_curves(test_sets: Path) -> None:
    captions = caption_examples(test_sets / "caption_test.tsv", test_sets / "caption.json")
    answers = vqa_examples(test_sets / "vqa_test.tsv", test_sets / "vqa.json")
    boxes = grounding_examples(test_sets / "refcoco_test.tsv", test_sets / "refcoco.json")
    rows = [MetricRow("VQA", "VQA accuracy", 0.6612, 0.1134, 'the most frequent answer ("no")')]
    sections = [Section("Captioning", "c", [caption_card(e) for e in captions]),
                Section("VQA", "v", [vqa_card(e) for e in answers]),
                Section("Grounding", "g", [grounding_card(e) for e in boxes])]
    chart = line_chart_svg([(25, 8.4), (50, 1.0)], "captioning", "update", "loss")
    page = render_page("Demo & co", "summary", rows, [chart], sections, "baselines")

    assert page.startswith("<!DOCTYPE html>") and "<title>Demo &amp; co</title>" in page
    assert "a &lt;red&gt; thing" in page and "blue wide" in page  # caption, escaped; a reference
    assert "what color?" in page and "pink (score 0.6)" in page and "red (1), pink (0.6)" in page
    # IoU 0.5 exactly is a miss (the official union + 1e-6).
    assert "the left half" in page and "0.67 (hit)" in page and "0.50 (miss)" in page
    assert "<td class=\"num\">0.661</td>" in page and "0.113" in page and chart in page
    uris = re.findall(r'<img src="(data:image/png;base64,[^"]+)"', page)
    assert len(uris) == 6
    caption_picture = _decode_uri(uris[0])
    assert caption_picture.size == (240, 160) and caption_picture.getpixel((120, 80)) == (255, 0, 0)
    # Grounding, first image: 60x40 px shown at scale 4; gold box x 0..30 (green), predicted x 0..20 (red).
    grounded = _decode_uri(uris[4])
    assert grounded.getpixel((120, 80)) == Image.new("RGB", (1, 1), GOLD_COLOUR).getpixel((0, 0))
    assert grounded.getpixel((80, 80)) == Image.new("RGB", (1, 1), PREDICTED_COLOUR).getpixel((0, 0))
    assert grounded.getpixel((100, 80)) == (255, 0, 0)  # inside both boxes: the image itself


def test_text_table_aligns_the_columns() -> None:
    rows = [MetricRow("captioning", "CIDEr", 1.8123, 0.5247, "x"), MetricRow("VQA", "VQA accuracy", 0.7, 0.1, "y")]
    assert text_table(rows).splitlines() == [
        "task        metric        model  trivial baseline",
        "----------  ------------  -----  ----------------",
        "captioning  CIDEr         1.812  0.525",
        "VQA         VQA accuracy  0.700  0.100"]


def _demo_driver():
    spec = importlib.util.spec_from_file_location("demo_driver", REPO / "run_scripts" / "demo" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_demo_reads_the_metric_and_baseline_lines(tmp_path: Path) -> None:
    """The lines evaluate_*_toy.sh print (copied from real runs) give the table's rows."""
    demo, log = _demo_driver(), tmp_path / "generate.log"
    caption = demo.caption_metrics(
        "Generate test with beam=5: CIDEr 1.9166 | BLEU-4 0.5976 | BLEU-1 0.7002 | BLEU-2 0.6682 | BLEU-3 0.6344 "
        "(n=200, PTB-fallback tokenisation)\nMost-frequent-caption baseline (\"there are three shapes in the image\", "
        "435 of 10000 training rows): CIDEr 0.5247 | BLEU-4 0.3021 | BLEU-1 0.5093\n", log)
    assert [(r.metric, r.model, r.baseline) for r in caption] == [("CIDEr", 1.9166, 0.5247), ("BLEU-4", 0.5976, 0.3021)]
    assert '"there are three shapes in the image"' in caption[0].baseline_name
    vqa = demo.vqa_metrics('Generate test with beam=5: VQA accuracy 0.4445 (score sum 88.9 over 200 questions)\n'
                           'Most-frequent-answer baseline ("no"): VQA accuracy 0.1125\n'
                           'Most-frequent-answer-per-question baseline (no image): VQA accuracy 0.3315\n', log)
    assert [(r.model, r.baseline) for r in vqa] == [(0.4445, 0.3315)] and "each question" in vqa[0].baseline_name
    refcoco = demo.refcoco_metrics("Generate test with beam=5: Acc@0.5 0.1500 (30/200 hits)\n"
                                   "Centred-box baseline: Acc@0.5 0.0350\n", log)
    assert [(r.model, r.baseline) for r in refcoco] == [(0.15, 0.035)]
    with pytest.raises(SystemExit, match="no line matching .* in .*generate.log"):
        demo.refcoco_metrics("Centred-box baseline: Acc@0.5 0.0350\n", log)
    images = demo.image_gen_metrics(
        "Generate test with beam=4: toy check on 256 images: colour 0.8125, shape 0.5000, both 0.4688 "
        "(64 of 64 prompts checked)\nRandom-codes baseline: toy check on 256 images: colour 0.117, shape 0.125, "
        "both 0.020\n", log)
    assert [(r.metric, r.model, r.baseline) for r in images] == [
        ("object colour", 0.8125, 0.117), ("colour and shape", 0.4688, 0.02)]
    assert "random image codes" in images[0].baseline_name
    with pytest.raises(SystemExit, match="no line matching .*Random-codes baseline"):
        demo.image_gen_metrics("Generate test with beam=4: toy check on 4 images: colour 1.000, shape 0.000, "
                               "both 0.000\n", log)


def _toy_picture(background: str, colour: str | None = None) -> Image.Image:
    """64 x 64 px of a toy background, with a 24 px square of `colour` in the middle if given."""
    image = Image.new("RGB", (64, 64), tuple(PALETTE[background]))
    if colour is not None:
        ImageDraw.Draw(image).rectangle([20, 20, 43, 43], fill=tuple(PALETTE[colour]))
    return image


@pytest.fixture()
def generated(tmp_path: Path) -> Path:
    """What `fairseq-generate --task image_gen --gen-images-path DIR` leaves: PNGs and DIR/images.tsv
    (rows in generation order, not test order), next to the coco_vqgan test TSV."""
    pictures = {"test-1_0": _toy_picture("black", "green"), "test-0_0": _toy_picture("blue", "red"),
                "test-0_1": _toy_picture("blue")}
    (tmp_path / "all_results").mkdir()
    for name, picture in pictures.items():
        picture.save(tmp_path / "all_results" / f"{name}.png")
    (tmp_path / "images.tsv").write_text(
        "test-1\t0\tall_results/test-1_0.png\ta green square on a black background\n"
        "test-0\t1\tall_results/test-0_1.png\ta red square on a blue background\n"
        "test-0\t0\tall_results/test-0_0.png\ta red square on a blue background\n")
    (tmp_path / "coco_vqgan_test.tsv").write_text(
        "test-0\t1 2 3\ta red square on a blue background\ntest-1\t4 5 6\ta green square on a black background\n")
    return tmp_path


def test_generated_images_are_read_in_test_order_and_checked(generated: Path) -> None:
    examples = image_gen_examples(generated / "coco_vqgan_test.tsv", generated)
    assert [e.caption for e in examples] == ["a red square on a blue background",
                                             "a green square on a black background"]
    first = examples[0]
    assert [image.getpixel((32, 32)) for image in first.images] == [PALETTE["red"], PALETTE["blue"]]  # j order
    assert [(c.reading.colour, c.reading.shape, c.colour_ok) for c in first.checks] == [
        ("red", "square", True), (None, None, False)]
    assert first.colour_passes == 1 and examples[1].colour_passes == 1
    assert len(image_gen_examples(generated / "coco_vqgan_test.tsv", generated, count=1)) == 1


def test_bad_image_index_names_the_file_and_row(generated: Path) -> None:
    (generated / "all_results" / "test-0_1.png").unlink()
    with pytest.raises(ValueError, match=r"images\.tsv: row 1: no image file .*test-0_1\.png"):
        image_gen_examples(generated / "coco_vqgan_test.tsv", generated)
    (generated / "images.tsv").write_text("test-0\t0\tall_results/test-0_0.png\ta red square on a blue background\n")
    with pytest.raises(ValueError, match=r"images\.tsv: no images for id 'test-1' \(.*coco_vqgan_test\.tsv: row 1\)"):
        image_gen_examples(generated / "coco_vqgan_test.tsv", generated)
    (generated / "images.tsv").write_text("test-0\tfirst\tall_results/test-0_0.png\tcaption\n")
    with pytest.raises(ValueError, match=r"images\.tsv: row 0: expected uniq_id, j, file, caption"):
        image_gen_examples(generated / "coco_vqgan_test.tsv", generated)


def test_image_gen_card_shows_the_caption_and_framed_images(generated: Path) -> None:
    example = image_gen_examples(generated / "coco_vqgan_test.tsv", generated, count=1)[0]
    page = render_page("p", "s", [], [], [Section("Image generation", "n", [image_gen_card(example)])])
    assert "a red square on a blue background" in page and "1 of 2 pass" in page
    pictures = re.findall(r'<img src="(data:image/png;base64,[^"]+)" class="(\w+)"[^>]* title="([^"]*)"', page)
    assert [(css, title) for _, css, title in pictures] == [
        ("good", "seen: a red square on blue"), ("bad", "seen: no object on blue")]
    shown = _decode_uri(pictures[0][0])  # twice the size, nearest neighbour: the square spans 40..87
    assert shown.size == (128, 128)
    assert shown.getpixel((40, 40)) == PALETTE["red"] and shown.getpixel((39, 40)) == PALETTE["blue"]


def test_random_codes_baseline_decodes_and_checks_seeded_random_codes(tmp_path: Path) -> None:
    """A hand-built VQGAN: code 0 paints its 8 x 8 patch blue, code 1 red; 16 x 16 images have 2 x 2 patches.
    For "a red square", the colour passes iff exactly one patch is red (two are a tie for the background,
    which goes to the palette's first colour, red); the shape iff one patch differs from the other three."""
    keys = torch.tensor([PALETTE["blue"], PALETTE["red"]], dtype=torch.float32) / 127.5 - 1
    vqgan = patch_colour_tokenizer(toy_config(n_embed=2, image_size=16), keys, keys)
    (tmp_path / "test.tsv").write_text("".join(f"{i}\t0 1\ta red square on a blue background\n" for i in range(3)))
    captions = read_captions(tmp_path / "test.tsv")
    summary = random_codes_baseline(vqgan, captions, size=16, samples=2, seed=3)
    red_patches = torch.randint(0, 2, (6, 4), generator=torch.Generator().manual_seed(3)).sum(1).tolist()
    assert red_patches == [2, 1, 3, 3, 1, 2]
    assert (summary.count, summary.colour, summary.shape, summary.both) == (6, 2 / 6, 4 / 6, 2 / 6)
    assert random_codes_baseline(vqgan, captions, size=16, samples=2, seed=3) == summary
