"""decode_image (base64 / file paths / modes / EXIF / errors) and the official eval transform (bit-exact)."""
import base64
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ofa_plugin.data.images import ImageDecodeError, decode_image
from ofa_plugin.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OFA_MEAN,
    OFA_STD,
    square_resize_transform,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "fixtures" / "official_mini"


def image_bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def gradient(size=(24, 16)) -> Image.Image:
    w, h = size
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    pixels = np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def fixture_rows(name: str) -> list[list[str]]:
    """Rows of a fixture TSV, split by hand (keeps TSVFile from writing an index cache into ../shared)."""
    lines = (FIXTURE / "data" / name).read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line]


def test_standard_and_urlsafe_base64_decode_alike():
    data = image_bytes(gradient(), "JPEG", quality=95)
    standard = base64.b64encode(data).decode()
    urlsafe = base64.urlsafe_b64encode(data).decode()
    assert standard != urlsafe  # the test image uses '+' or '/' characters
    a = decode_image(standard, "x.tsv", 0)
    b = decode_image(urlsafe, "x.tsv", 0)
    c = decode_image(standard.rstrip("=") + "\n", "x.tsv", 0)  # missing padding, trailing newline
    assert a.mode == "RGB" and a.size == (24, 16)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and np.array_equal(np.asarray(a), np.asarray(c))


def test_png_roundtrip_is_lossless():
    image = gradient()
    decoded = decode_image(base64.b64encode(image_bytes(image)).decode(), "x.tsv", 0)
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1", "I;16", "CMYK"])
def test_any_mode_becomes_rgb(mode):
    image = gradient().convert(mode) if mode != "I;16" else Image.new("I;16", (24, 16), 300)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    decoded = decode_image(base64.b64encode(image_bytes(image, fmt)).decode(), "x.tsv", 0)
    assert decoded.mode == "RGB" and decoded.size == (24, 16)


def test_palette_with_transparency_gives_no_warning():
    image = gradient().convert("P")
    image.info["transparency"] = 0
    field = base64.b64encode(image_bytes(image, transparency=0)).decode()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image(field, "x.tsv", 0).mode == "RGB"


def test_exif_orientation_is_applied():
    image = gradient((30, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    decoded = decode_image(base64.b64encode(image_bytes(image, "JPEG", exif=exif)).decode(), "x.tsv", 0)
    assert decoded.size == (10, 30)


def test_truncated_jpeg_still_loads():
    data = image_bytes(gradient((64, 64)), "JPEG", quality=95)
    decoded = decode_image(base64.b64encode(data[: len(data) * 2 // 3]).decode(), "x.tsv", 0)
    assert decoded.size == (64, 64)


def test_file_paths_relative_to_tsv_folder(tmp_path):
    (tmp_path / "images").mkdir()
    gradient().save(tmp_path / "images" / "img 1.png")
    tsv_path = str(tmp_path / "data.tsv")
    relative = decode_image("images/img 1.png", tsv_path, 3)
    absolute = decode_image(str(tmp_path / "images" / "img 1.png"), "/elsewhere/data.tsv", 3)
    assert np.array_equal(np.asarray(relative), np.asarray(gradient()))
    assert np.array_equal(np.asarray(absolute), np.asarray(relative))
    # A base64-alphabet-only name is still a path when such a file exists.
    (tmp_path / "img2").write_bytes(image_bytes(gradient()))
    assert decode_image("img2", tsv_path, 3).size == (24, 16)


@pytest.mark.parametrize(
    "field",
    [
        "images/missing.jpg",
        base64.b64encode(b"definitely not an image").decode(),
        "QUJD=DEF",  # padding in the middle
        "",
    ],
)
def test_undecodable_image_names_file_and_row(field):
    with pytest.raises(ImageDecodeError) as err:
        decode_image(field, "/data/caption_train.tsv", 17)
    assert "/data/caption_train.tsv" in str(err.value) and "row 17" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_fixture_images_decode_like_official():
    images = json.loads((FIXTURE / "data" / "data_manifest.json").read_text())["images"]
    manifest = {m["image_id"]: m for m in images}
    modes = set()
    for row, columns in enumerate(fixture_rows("caption_test.tsv")):
        image_id, field = columns[1], columns[4]
        image = decode_image(field, "caption_test.tsv", row)
        expected = manifest[image_id]
        assert list(image.size) == expected["size"]
        assert hashlib.sha256(np.asarray(image).tobytes()).hexdigest() == expected["decoded_rgb_sha256"]
        modes.add(expected["mode"])
    assert modes == {"RGB", "L"}  # the grayscale JPEG went through the RGB conversion too


def test_transform_is_bit_exact_with_official_batch():
    golden = np.load(FIXTURE / "golden" / "teacher_forced.npz")["caption.net_input.patch_images"]
    transform = square_resize_transform(256)
    rows = fixture_rows("caption_train.tsv")[:3]
    ours = np.stack([transform(decode_image(r[4], "train.tsv", i)).numpy() for i, r in enumerate(rows)])
    assert ours.shape == golden.shape == (3, 3, 256, 256)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, golden)


def test_transform_matches_official_sample_hashes():
    """golden/caption.json stores sha256 of each sample's C-contiguous fp32 patch_images bytes."""
    samples = {s["id"]: s for s in json.loads((FIXTURE / "golden" / "caption.json").read_text())["samples"]}
    transform = square_resize_transform(256)
    for row, columns in enumerate(fixture_rows("caption_test.tsv")):
        tensor = transform(decode_image(columns[4], "caption_test.tsv", row))
        array = np.ascontiguousarray(tensor.numpy(), dtype=np.float32)
        sample = samples[columns[1]]
        assert list(array.shape) == sample["patch_image_shape"]
        assert hashlib.sha256(array.tobytes()).hexdigest() == sample["patch_image_sha256_fp32"]
        assert array.astype(np.float64).mean() == pytest.approx(sample["patch_image_mean"], abs=1e-6)


def test_transform_normalisation_constants():
    white = Image.new("RGB", (10, 7), (255, 255, 255))
    assert torch.equal(square_resize_transform(4)(white), torch.ones(3, 4, 4))
    black = Image.new("RGB", (5, 5), (0, 0, 0))
    imagenet = square_resize_transform(3, IMAGENET_MEAN, IMAGENET_STD)(black)
    expected = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    assert torch.allclose(imagenet[:, 0, 0], expected)
    assert OFA_MEAN == OFA_STD == (0.5, 0.5, 0.5)
    with pytest.raises(ValueError):
        square_resize_transform(0)
