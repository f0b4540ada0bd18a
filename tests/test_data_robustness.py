"""Data robustness: image modes, EXIF orientation, extreme sizes, truncated/corrupt images, unicode text
and malformed rows, through the real caption and refcoco sample builders and a TSVTaskDataset.

Pinned decisions (documented in ofa_plugin/data/images.py): every mode converts as PIL's convert("RGB")
does (as official; alpha dropped, not composited), except 16-bit grey, which PIL clips to white and which
keeps its high byte here; EXIF orientation is applied and refcoco boxes are read in displayed pixels;
truncated images load (official LOAD_TRUNCATED_IMAGES) unless cut inside their header; PIL's
decompression-bomb limit stays on; a corrupt EXIF block never loses (or crashes on) a decodable image.
"""
import base64
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ofa_plugin  # noqa: F401  (attaches ofa_plugin.tasks)
from ofa_plugin.data.collate import BATCH_EXTRAS
from ofa_plugin.data.dataset import TSVTaskDataset
from ofa_plugin.data.images import ImageDecodeError, decode_image
from ofa_plugin.data.text import caption_train_target, pre_caption, pre_question
from ofa_plugin.data.tsv import TSVFile
from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask
from ofa_plugin.tasks.refcoco import RefcocoConfig, RefcocoTask

from conftest import BPE_DIR

CAPTION_SIZE = 32
REFCOCO_SIZE = 64  # also its max_image_size, so a box spanning the image gives bins 0 and 999
RED, GREEN, BLUE, GREY, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (255, 255, 255)


@pytest.fixture(autouse=True)
def _user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))


@pytest.fixture(scope="module")
def caption_task() -> CaptionTask:
    return CaptionTask.setup_task(CaptionConfig(bpe_dir=str(BPE_DIR), patch_image_size=CAPTION_SIZE))


@pytest.fixture(scope="module")
def refcoco_task() -> RefcocoTask:
    return RefcocoTask.setup_task(RefcocoConfig(bpe_dir=str(BPE_DIR), patch_image_size=REFCOCO_SIZE,
                                                max_image_size=REFCOCO_SIZE))


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def dataset(task, tmp_path: Path, rows, split: str = "valid", selected_cols=None,
            skip: bool = False) -> TSVTaskDataset:
    """A TSVTaskDataset over `rows` written to a TSV, with the task's own sample builder (as load_dataset)."""
    path = tmp_path / f"{split}.tsv"
    path.write_bytes(b"".join(row if isinstance(row, bytes) else ("\t".join(row) + "\n").encode() for row in rows))
    tsv = TSVFile(path, selected_cols)
    return TSVTaskDataset(tsv, task.build_sample_builder(split, str(tsv.path)), task.src_dict.pad(),
                          skip_malformed=skip)


def normalised(rgb) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.float32) / 255 * 2 - 1


def check_patch(patch: torch.Tensor, size: int) -> None:
    assert patch.shape == (3, size, size) and patch.dtype == torch.float32
    assert torch.isfinite(patch).all() and patch.min() >= -1 and patch.max() <= 1


def bin_tokens(task, bins) -> list:
    return [task.tgt_dict.index(f"<bin_{b}>") for b in bins]


def text_of(task, tokens: torch.Tensor) -> str:
    assert not (tokens == task.tgt_dict.unk()).any()
    return task.tokenizer.decode(task.tgt_dict.string(tokens))


GOOD_IMAGE = b64(encoded(Image.new("RGB", (40, 30), (200, 10, 10)), "JPEG"))


# ---------------------------------------------------------------- image modes


def _uniform(mode: str, value, fmt: str, **options):
    return lambda: encoded(Image.new(mode, (12, 10), value), fmt, **options)


def _palette(transparency=None):
    def build() -> bytes:
        image = Image.new("P", (12, 10), 3)
        image.putpalette([0, 0, 0] * 3 + list(RED) + [0, 0, 0] + list(BLUE))
        return encoded(image, "PNG", **({} if transparency is None else {"transparency": transparency}))
    return build


def _raw_16bit(mode: str, fmt: str, values: np.ndarray):
    """A 16-bit grey file; `mode` is I;16 (little-endian) or I;16B, the raw layout handed to PIL."""
    dtype = ">u2" if mode == "I;16B" else "<u2"
    height, width = values.shape
    return encoded(Image.frombytes(mode, (width, height), values.astype(dtype).tobytes()), fmt)


MODE_CASES = {
    # name: (file bytes, mode PIL opens it as, expected RGB everywhere, tolerance in levels)
    "1": (_uniform("1", 1, "PNG"), "1", WHITE, 0),
    "L": (_uniform("L", 77, "PNG"), "L", (77, 77, 77), 0),
    "L-jpeg": (_uniform("L", 77, "JPEG"), "L", (77, 77, 77), 1),
    "LA": (_uniform("LA", (77, 10), "PNG"), "LA", (77, 77, 77), 0),
    "P": (_palette(), "P", RED, 0),
    "P-transparent": (_palette(transparency=3), "P", RED, 0),
    "RGBA": (_uniform("RGBA", (255, 0, 0, 255), "PNG"), "RGBA", RED, 0),
    "RGBA-transparent": (_uniform("RGBA", (255, 0, 0, 0), "PNG"), "RGBA", RED, 0),
    "CMYK-jpeg": (_uniform("CMYK", (0, 255, 255, 0), "JPEG", quality=100), "CMYK", RED, 1),
    "I;16-png": (lambda: _raw_16bit("I;16", "PNG", np.full((10, 12), 0x8000)), "I;16", GREY, 0),
    "I;16B-tiff": (lambda: _raw_16bit("I;16B", "TIFF", np.full((10, 12), 0x80FF)), "I;16B", GREY, 0),
    "I-pgm16": (lambda: _raw_16bit("I;16", "PPM", np.full((10, 12), 0x8000)), "I", GREY, 0),
    "F-tiff": (_uniform("F", 100.7, "TIFF"), "F", (100, 100, 100), 0),  # PIL truncates, as official
    "YCbCr-tiff": (_uniform("YCbCr", (76, 84, 255), "TIFF"), "YCbCr", RED, 1),
    "LAB-tiff": (_uniform("LAB", (136, 208, 195), "TIFF"), "LAB", RED, 12),
}


@pytest.mark.parametrize("name", MODE_CASES)
def test_every_mode_becomes_the_right_rgb(caption_task, tmp_path, name):
    build, mode, rgb, tolerance = MODE_CASES[name]
    data = build()
    assert Image.open(io.BytesIO(data)).mode == mode  # the case really exercises this mode
    decoded = np.asarray(decode_image(b64(data), "x.tsv", 0), dtype=int)
    assert decoded.shape == (10, 12, 3)
    assert np.abs(decoded - np.array(rgb)).max() <= tolerance
    patch = dataset(caption_task, tmp_path, [["1", b64(data), "a caption"]])[0]["patch_image"]
    check_patch(patch, CAPTION_SIZE)
    expected = normalised(decoded[0, 0])  # the image is uniform, so is its resized tensor
    assert torch.allclose(patch, expected[:, None, None].expand_as(patch), atol=1e-6)


def test_alpha_is_dropped_not_composited():
    """As official convert("RGB"): a fully transparent pixel shows its stored colour."""
    rgba = Image.new("RGBA", (4, 2), (255, 0, 0, 255))
    rgba.paste((0, 255, 0, 0), (2, 0, 4, 2))
    palette = Image.new("P", (4, 2), 3)
    palette.putpalette([0, 0, 0] * 3 + list(RED) + [0, 0, 0] + list(BLUE))
    palette.paste(5, (2, 0, 4, 2))
    for data, right in ((encoded(rgba), GREEN), (encoded(palette, transparency=5), BLUE)):
        decoded = np.asarray(decode_image(b64(data), "x.tsv", 0))
        assert decoded[:, :2].tolist() == [[list(RED)] * 2] * 2
        assert decoded[:, 2:].tolist() == [[list(right)] * 2] * 2


@pytest.mark.parametrize("mode, fmt, opened", [("I;16", "PNG", "I;16"), ("I;16B", "TIFF", "I;16B"),
                                               ("I;16", "PPM", "I")])
def test_sixteen_bit_grey_keeps_its_ordering(caption_task, tmp_path, mode, fmt, opened):
    """PIL's convert("RGB") clips 16-bit grey at 255 (all white but black); here the high byte is kept,
    exactly what PIL itself does with 16-bit RGB files (a deliberate difference from official)."""
    ramp = np.linspace(0, 0xFFFF, 256).round().astype(np.int64)
    data = _raw_16bit(mode, fmt, np.tile(ramp, (4, 1)))
    pil_rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert Image.open(io.BytesIO(data)).mode == opened and (pil_rgb == 255).mean() > 0.99
    decoded = np.asarray(decode_image(b64(data), "x.tsv", 0))
    assert decoded.shape == (4, 256, 3)
    assert (decoded == (ramp >> 8)[None, :, None]).all()
    assert decoded[0, 0, 0] == 0 and decoded[0, -1, 0] == 255 and decoded[0, 128, 0] == 128
    patch = dataset(caption_task, tmp_path, [["1", b64(data), "a ramp"]])[0]["patch_image"]
    check_patch(patch, CAPTION_SIZE)
    columns = patch.mean(dim=(0, 1))
    assert (columns[1:] > columns[:-1]).all() and columns[0] < -0.9 and columns[-1] > 0.9


def test_float_tiff_is_read_on_the_8bit_scale():
    """Float images have no standard range: values are clipped to 0..255 and truncated, as official."""
    values = np.array([[0.0, 17.9, 100.5, 255.0, 300.0, -5.0, np.inf, np.nan]], dtype=np.float32)
    data = encoded(Image.fromarray(values), "TIFF")
    decoded = np.asarray(decode_image(b64(data), "x.tsv", 0))[0, :, 0]
    assert decoded[:7].tolist() == [0, 17, 100, 255, 255, 0, 255]  # NaN gives some valid level


# ---------------------------------------------------------------- EXIF orientation

# EXIF spec: for each orientation, the side of the displayed image where the stored row 0 and the
# stored column 0 end up.
EXIF_SIDES = {1: ("top", "left"), 2: ("top", "right"), 3: ("bottom", "right"), 4: ("bottom", "left"),
              5: ("left", "top"), 6: ("right", "top"), 7: ("right", "bottom"), 8: ("left", "bottom")}
OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def _with_orientation(image: Image.Image, orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    return encoded(image, fmt, exif=exif, **options)


def _corner_colour(image: np.ndarray, sides: set) -> str:
    height, width, _ = image.shape
    y = 3 if "top" in sides else height - 4
    x = 3 if "left" in sides else width - 4
    names = {"red": RED, "blue": BLUE, "grey": GREY}
    return min(names, key=lambda n: np.abs(image[y, x].astype(int) - names[n]).sum())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_puts_markers_where_displayed(orientation):
    stored = Image.new("RGB", (32, 16), GREY)
    stored.paste(RED, (0, 0, 8, 8))  # stored top-left
    stored.paste(BLUE, (24, 0, 32, 8))  # stored top-right
    decoded = np.asarray(decode_image(b64(_with_orientation(stored, orientation)), "x.tsv", 0))
    assert decoded.shape[:2] == ((16, 32) if orientation <= 4 else (32, 16))
    row_side, col_side = EXIF_SIDES[orientation]
    assert _corner_colour(decoded, {row_side, col_side}) == "red"
    assert _corner_colour(decoded, {row_side, OPPOSITE[col_side]}) == "blue"
    assert _corner_colour(decoded, {OPPOSITE[row_side], col_side}) == "grey"


def test_refcoco_boxes_are_in_displayed_pixels(refcoco_task, tmp_path):
    """Stored 40x20 with orientation 6 is displayed 20x40; boxes and resize ratios use displayed pixels."""
    image = b64(_with_orientation(Image.new("RGB", (40, 20), GREY), 6))
    rows = [["1", image, "everything", "0,0,20,40"], ["2", image, "stored pixels", "0,0,40,20"]]
    data = dataset(refcoco_task, tmp_path, rows)
    sample = data[0]
    assert sample["target"][:4].tolist() == bin_tokens(refcoco_task, (0, 0, 999, 999))
    assert sample[BATCH_EXTRAS]["w_resize_ratios"].item() == pytest.approx(REFCOCO_SIZE / 20)
    assert sample[BATCH_EXTRAS]["h_resize_ratios"].item() == pytest.approx(REFCOCO_SIZE / 40)
    with pytest.raises(ValueError, match=r"valid\.tsv: row 1: box .* outside \[0, 999\]"):
        data[1]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_corrupt_exif_keeps_the_image(refcoco_task, tmp_path, fmt):
    """A tag PIL cannot re-serialise made ImageOps.exif_transpose raise struct.error, which escaped the
    error handling (and --skip-malformed-rows); a bad EXIF header made the row fail. Both images decode."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "maker"
    raw = exif.tobytes()
    retyped = raw.replace(b"\x01\x0f\x00\x02", b"\x01\x40\x00\x02")  # Make -> ColorMap, still ASCII
    assert retyped != raw
    bad_header = raw[:6] + b"XX" + raw[8:]
    image = Image.new("RGB", (40, 20), GREY)
    rows = [["1", b64(encoded(image, fmt, exif=retyped)), "x", "0,0,20,40"],
            ["2", b64(encoded(image, fmt, exif=bad_header)), "x", "0,0,40,20"]]
    data = dataset(refcoco_task, tmp_path, rows)
    for row in range(2):
        check_patch(data[row]["patch_image"], REFCOCO_SIZE)
    assert data[0][BATCH_EXTRAS]["w_resize_ratios"].item() == pytest.approx(REFCOCO_SIZE / 20)  # orientation still read
    assert data[1][BATCH_EXTRAS]["w_resize_ratios"].item() == pytest.approx(REFCOCO_SIZE / 40)  # unreadable: as stored


# ---------------------------------------------------------------- extreme sizes


def test_very_large_image_through_both_builders(caption_task, refcoco_task, tmp_path):
    image = Image.new("RGB", (6000, 4000), RED)
    image.paste(GREEN, (3000, 0, 6000, 2000))
    image.paste(BLUE, (0, 2000, 3000, 4000))
    image.paste(WHITE, (3000, 2000, 6000, 4000))
    field = b64(encoded(image, "JPEG", quality=90))
    sample = dataset(refcoco_task, tmp_path, [["1", field, "the middle", "1500,1000,4500,3000"]])[0]
    patch = sample["patch_image"]
    check_patch(patch, REFCOCO_SIZE)
    quarter, three_quarters = REFCOCO_SIZE // 4, 3 * REFCOCO_SIZE // 4
    for (y, x), rgb in {(quarter, quarter): RED, (quarter, three_quarters): GREEN,
                        (three_quarters, quarter): BLUE, (three_quarters, three_quarters): WHITE}.items():
        assert torch.allclose(patch[:, y, x], normalised(rgb), atol=0.05)
    # 1500 / 6000 * 64 = 16 -> 16 / 64 * 999 = 249.75 -> 250; 4500 -> 48 -> 749.25 -> 749 (same for y)
    bins = bin_tokens(refcoco_task, (250, 250, 749, 749))
    assert sample["target"][:4].tolist() == bins
    assert sample[BATCH_EXTRAS]["w_resize_ratios"] == torch.tensor(REFCOCO_SIZE, dtype=torch.float32) / 6000
    assert sample[BATCH_EXTRAS]["region_coords"].tolist() == [1500, 1000, 4500, 3000]
    check_patch(dataset(caption_task, tmp_path, [["1", field, "four squares"]])[0]["patch_image"], CAPTION_SIZE)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels but carries a few bytes of data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


def test_decompression_bomb_header_is_a_clear_error(refcoco_task, tmp_path):
    """PIL's limit is kept on purpose (2 x MAX_IMAGE_PIXELS): the row fails fast, nothing is allocated."""
    bomb = b64(_png_header_only(20000, 20000))
    with pytest.raises(ImageDecodeError, match=r"x\.tsv: row 4: .*exceeds limit"):
        decode_image(bomb, "x.tsv", 4)
    rows = [["1", GOOD_IMAGE, "x", "0,0,10,10"], ["2", bomb, "x", "0,0,10,10"]]
    data = dataset(refcoco_task, tmp_path, rows, skip=True)
    assert data[0] is not None and data[1] is None and data.num_skipped == 1


@pytest.mark.parametrize("width, height", [(1, 1), (1, 7), (7, 1), (1, 3000)])
def test_tiny_and_thin_images(caption_task, refcoco_task, tmp_path, width, height):
    ramp = np.linspace(0, 255, width * height).round().astype(np.uint8).reshape(height, width)
    field = b64(encoded(Image.fromarray(np.stack([ramp] * 3, axis=-1))))
    patch = dataset(caption_task, tmp_path, [["1", field, "a dot"]])[0]["patch_image"]
    check_patch(patch, CAPTION_SIZE)
    if width == height == 1:
        assert torch.equal(patch, torch.full_like(patch, -1.0))
    elif width == 1:  # constant rows, brightening downwards
        assert torch.equal(patch, patch[:, :, :1].expand_as(patch))
        assert patch[0, 0, 0] < -0.9 and patch[0, -1, 0] > 0.9 and (patch[0, 1:, 0] >= patch[0, :-1, 0]).all()
    rows = [["1", field, "all of it", f"0,0,{width},{height}"],
            ["2", field, "too far", f"0,0,{width + 1},{height}"]]
    data = dataset(refcoco_task, tmp_path, rows)
    bins = bin_tokens(refcoco_task, (0, 0, 999, 999))
    assert data[0]["target"][:4].tolist() == bins
    check_patch(data[0]["patch_image"], REFCOCO_SIZE)
    with pytest.raises(ValueError, match=r"row 1: box .* outside \[0, 999\]"):
        data[1]


def test_partial_box_on_a_thin_image(refcoco_task):
    """1 x 7 image, box y from 2 to 5: 2/7 * 999 = 285.43 -> 285, 5/7 * 999 = 713.57 -> 714."""
    builder = refcoco_task.build_sample_builder("valid", "thin.tsv")
    field = b64(encoded(Image.new("RGB", (1, 7), GREY)))
    sample = builder(["1", field, "middle", "0,2,1,5"], 0)
    bins = bin_tokens(refcoco_task, (0, 285, 999, 714))
    assert sample["target"][:4].tolist() == bins


@pytest.mark.parametrize("width, height", [(1, 1), (1, 5000), (5000, 1), (6000, 4000), (13, 7)])
def test_bins_stay_in_range_for_any_box_inside_the_image(refcoco_task, width, height):
    builder = refcoco_task.build_sample_builder("valid", "any.tsv")
    image = Image.new("RGB", (width, height))
    generator = torch.Generator().manual_seed(width * 31 + height)
    corners = torch.rand(200, 2, 2, generator=generator) * torch.tensor([width, height])
    corners[0] = torch.tensor([[0, 0], [width, height]])
    boxes = torch.cat([corners.min(dim=1).values, corners.max(dim=1).values], dim=1)
    _, resized, _, _ = builder.transform(image, boxes)  # one resize; the box scaling broadcasts over rows
    for box in resized:
        bins = builder.quantise(box, 0)
        assert all(0 <= b <= 999 for b in bins) and bins[0] <= bins[2] and bins[1] <= bins[3]
    assert builder.quantise(resized[0], 0) == [0, 0, 999, 999]


# ---------------------------------------------------------------- truncated images


def test_truncated_images_load_like_official_unless_cut_in_the_header(caption_task, tmp_path):
    x, y = np.meshgrid(np.arange(64), np.arange(64))
    pixels = np.stack([x * 4, y * 4, (x * y) % 256], axis=-1).astype(np.uint8)
    jpeg = encoded(Image.fromarray(pixels), "JPEG", quality=95)
    png = encoded(Image.fromarray(pixels))
    full = np.asarray(decode_image(b64(jpeg), "x.tsv", 0), dtype=int)
    cut_jpeg = np.asarray(decode_image(b64(jpeg[: len(jpeg) * 2 // 3]), "x.tsv", 0), dtype=int)
    assert np.abs(cut_jpeg[:16] - full[:16]).max() <= 8  # decoded part intact
    assert (cut_jpeg[-8:] == 128).all()  # missing part filled grey
    cut_png = np.asarray(decode_image(b64(png[: len(png) // 2]), "x.tsv", 0))
    assert (cut_png[:8] == pixels[:8]).all() and (cut_png[-8:] == 0).all()
    header_cut = b64(jpeg[: jpeg.index(b"\xff\xda")])  # stops before the first scan
    rows = [["1", b64(jpeg[: len(jpeg) // 2]), "half"], ["2", header_cut, "header only"],
            ["3", b64(png[:20]), "png header only"]]
    data = dataset(caption_task, tmp_path, rows)
    check_patch(data[0]["patch_image"], CAPTION_SIZE)
    for row in (1, 2):
        with pytest.raises(ValueError, match=rf"valid\.tsv: row {row}: cannot decode base64 image"):
            data[row]


# ---------------------------------------------------------------- unicode text

# raw text -> pre_caption / pre_question output (identical here: no "<person>")
UNICODE_TEXTS = {
    "accents": ("Crème Brûlée ÀÉÎÕÜ", "crème brûlée àéîõü"),
    "cjk": ("一只猫坐在垫子上，看着窗外。", "一只猫坐在垫子上，看着窗外。"),
    "emoji": ("A 🐱 on a 🛋️ with 👩‍👩‍👧", "a 🐱 on a 🛋️ with 👩‍👩‍👧"),
    "arabic": ("قطة على الأريكة", "قطة على الأريكة"),
    "hebrew-rtl-marks": ("\u200fחתול\u200f LEFT", "\u200fחתול\u200f left"),
    "zero-width": ("Cat\u200bdog\u200d \ufeffbird", "cat\u200bdog\u200d \ufeffbird"),
    "nbsp-ideographic-space": ("a\xa0red\u3000cat\u2009here", "a red cat here"),
    "combining": ("Cafe\u0301 N\u0303 e\u0308", "cafe\u0301 n\u0303 e\u0308"),
    "leading-junk": ("...¿Qué pasa?", "¿qué pasa?"),
    "dotted-capital-i": ("İstanbul", "i\u0307stanbul"),
    "markup": ("<bin_5> <code_3> <unk> </s>", "<bin_5> <code_3> <unk> < s>"),  # '/' -> ' ', as official
}


@pytest.mark.parametrize("name", UNICODE_TEXTS)
def test_unicode_text_is_normalised_and_round_trips(caption_task, refcoco_task, name):
    text, expected = UNICODE_TEXTS[name]
    assert pre_caption(text) == pre_question(text) == expected
    # the GPT-2 byte-level BPE keeps every character: no <unk>, exact round trip
    tokens = caption_task.tokenizer.encode(" " + expected)
    assert caption_task.tokenizer.decode(tokens) == " " + expected
    special = {caption_task.tgt_dict.index(s) for s in ("<bin_5>", "<code_3>", "<unk>", "</s>")}

    caption = caption_task.build_sample_builder("train", "u.tsv")(["1", GOOD_IMAGE, text], 0)
    target = caption["target"]
    assert target[-1] == caption_task.tgt_dict.eos() and len(target) > 1
    assert text_of(caption_task, target[:-1]) == " " + caption_train_target(text, 20)
    assert not special & set(target[:-1].tolist())

    refcoco = refcoco_task.build_sample_builder("valid", "u.tsv")(["1", GOOD_IMAGE, text, "0,0,10,10"], 0)
    source = refcoco["source"]
    assert text_of(refcoco_task, source[1:-1]) == f' which region does the text " {expected} " describe?'
    assert not special & set(source[1:-1].tolist())


def test_unicode_word_truncation_and_empty_captions():
    assert pre_question("Ünïcödé wörds äre cöünted", max_words=2) == "ünïcödé wörds"
    assert caption_train_target("猫。 a—b “quoted” it's", 3) == "猫。 a—b “quoted”"  # only ASCII punctuation goes
    for blank in ("\xa0\u3000", "...", " - / ", "\u2028"):  # nothing left: an error, never an empty target
        with pytest.raises(ValueError, match="empty caption"):
            caption_train_target(blank, 20)


# ---------------------------------------------------------------- malformed rows

NOT_AN_IMAGE = b64(b"this is plain text, not an image")
REFCOCO_BAD_ROWS = {
    # name: (row, selected_cols, message after "<file>: row 1")
    "too-few-columns": (["2", GOOD_IMAGE, "a"], "0,1,2,3", r" has 3 columns, expected at least 4"),
    "too-many-columns": (["2", GOOD_IMAGE, "a", "0,0,1,1", "extra"], None, r": refcoco rows need 4"),
    "empty-image": (["2", "", "a", "0,0,1,1"], None, r": empty image field"),
    "non-image-bytes": (["2", NOT_AN_IMAGE, "a", "0,0,1,1"], None, r": cannot decode base64 image"),
    "missing-image-file": (["2", "images/nope.jpg", "a", "0,0,1,1"], None, r": the image column is neither"),
    "region-3-numbers": (["2", GOOD_IMAGE, "a", "0,0,1"], None, r": region must be 'x0,y0,x1,y1'"),
    "region-words": (["2", GOOD_IMAGE, "a", "left,top,right,bottom"], None, r": region must be"),
    "region-empty": (["2", GOOD_IMAGE, "a", ""], None, r": region must be"),
    "region-outside": (["2", GOOD_IMAGE, "a", "0,0,41,30"], None, r": box .* outside \[0, 999\]"),
    "region-negative": (["2", GOOD_IMAGE, "a", "-5,0,10,10"], None, r": box .* outside \[0, 999\]"),
    "region-nan": (["2", GOOD_IMAGE, "a", "nan,0,10,10"], None, r": region must be .x0,y0,x1,y1. \(4 finite numbers\)"),
    "region-inf": (["2", GOOD_IMAGE, "a", "0,0,inf,10"], None, r": region must be .x0,y0,x1,y1. \(4 finite numbers\)"),
    "empty-expression": (["2", GOOD_IMAGE, "...", "0,0,1,1"], None, r": empty referring expression"),
}


@pytest.mark.parametrize("name", REFCOCO_BAD_ROWS)
def test_malformed_refcoco_row_names_file_and_row(refcoco_task, tmp_path, name):
    row, selected_cols, message = REFCOCO_BAD_ROWS[name]
    good = ["1", GOOD_IMAGE, "the red box", "0,0,40,30"]
    data = dataset(refcoco_task, tmp_path, [good, row], selected_cols=selected_cols)
    assert data[0]["target"].shape == (5,)
    with pytest.raises(ValueError, match=str(data.tsv.path).replace(".", r"\.") + ": row 1" + message):
        data[1]


CAPTION_BAD_ROWS = {
    "too-few-columns": (["2", GOOD_IMAGE], r": caption rows need 3 selected columns"),
    "empty-image": (["2", " ", "a cat"], r": empty image field"),
    "non-image-bytes": (["2", NOT_AN_IMAGE, "a cat"], r": cannot decode base64 image"),
    "empty-caption": (["2", GOOD_IMAGE, " ?! "], r": empty caption"),
}


@pytest.mark.parametrize("name", CAPTION_BAD_ROWS)
def test_malformed_caption_row_names_file_and_row(caption_task, tmp_path, name):
    row, message = CAPTION_BAD_ROWS[name]
    data = dataset(caption_task, tmp_path, [["1", GOOD_IMAGE, "a red box"], row], split="train")
    assert text_of(caption_task, data[0]["target"][:-1]) == " a red box"
    with pytest.raises(ValueError, match=str(data.tsv.path).replace(".", r"\.") + ": row 1" + message):
        data[1]


def test_skip_malformed_counts_and_drops_every_kind(refcoco_task, tmp_path, caplog):
    good = ["g", GOOD_IMAGE, "the red box", "0,0,40,30"]
    bad = [row for row, cols, _ in REFCOCO_BAD_ROWS.values() if cols is None]
    bad.append(b"2\t\xff\xfe not utf-8\ta\t0,0,1,1\n")
    bad.append(["2", b64(_png_header_only(20000, 20000)), "bomb", "0,0,1,1"])
    rows = [good]
    for row in bad:
        rows += [row, good]
    data = dataset(refcoco_task, tmp_path, rows, skip=True)
    samples = [data[i] for i in range(len(data))]
    assert [s is None for s in samples] == [i % 2 == 1 for i in range(len(rows))]
    assert data.num_skipped == len(bad) == 14
    batch = data.collater(samples)
    assert batch["nsentences"] == len(bad) + 1 and batch["id"].tolist() == list(range(0, len(rows), 2))
    assert batch["net_input"]["patch_images"].shape == (len(bad) + 1, 3, REFCOCO_SIZE, REFCOCO_SIZE)
    assert "skipping malformed row" in caplog.text and f"row {len(rows) - 2}" in caplog.text
