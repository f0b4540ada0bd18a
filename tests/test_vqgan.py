"""The VQGAN image tokenizer (ofa_plugin.vqgan): taming file formats, image <-> code conversions, code TSVs,
the encode/decode command lines and a short toy training run."""
import base64
import io
import sys
import types

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ofa_plugin.compat import UnsafeCheckpointError
from ofa_plugin.data.toyworld import write_split
from ofa_plugin.vqgan import (CodeFormatError, DDConfig, TokenizerFileError, build_model, decode_codes,
                              encode_images, image_to_tensor, load_vqgan, parse_codes, pixels_to_images,
                              read_code_rows, read_config, save_checkpoint, write_config)
from ofa_plugin.vqgan import decode_tsv as decode_tsv_cli
from ofa_plugin.vqgan import encode_tsv as encode_tsv_cli
from ofa_plugin.vqgan import train_toy
from ofa_plugin.vqgan.train_toy import (fit_toy_tokenizer, mean_colour_mse, patch_colour_tokenizer, patch_colours, psnr,
                                         toy_config, toy_images)

# The official tokenizer's config (taming vqgan_gumbel_f8: ch 128, z 256, 8192 codes) with tiny channel counts
# and codebook: same levels, same attention placement (resolution 256, attention at 32), same file layout.
TINY_F8_PARAMS = {
    "kl_weight": 1.0e-08,
    "embed_dim": 32,
    "n_embed": 64,
    "monitor": "val/rec_loss",
    "temperature_scheduler_config": {
        "target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
        "params": {"warm_up_steps": 0, "max_decay_steps": 1000001, "lr_start": 0.9, "lr_max": 0.9, "lr_min": 1.0e-06},
    },
    "ddconfig": {"double_z": False, "z_channels": 32, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 32,
                 "ch_mult": [1, 1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [32], "dropout": 0.0},
    "lossconfig": {"target": "taming.modules.losses.vqperceptual.DummyLoss"},
}


def taming_state_shapes(ch, ch_mult, num_res_blocks, z_channels, n_embed, attn_levels):
    """Key -> shape of a taming GumbelVQ state dict, spelled out from taming's module tree (independently of
    ofa_plugin.vqgan.modules): the reference the loader is checked against."""
    shapes = {}

    def conv(name, c_out, c_in, k):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (c_out, c_in, k, k), (c_out,)

    def norm(name, c):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (c,), (c,)

    def resblock(name, c_in, c_out):
        norm(f"{name}.norm1", c_in), conv(f"{name}.conv1", c_out, c_in, 3)
        norm(f"{name}.norm2", c_out), conv(f"{name}.conv2", c_out, c_out, 3)
        if c_in != c_out:
            conv(f"{name}.nin_shortcut", c_out, c_in, 1)

    def attn(name, c):
        norm(f"{name}.norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{part}", c, c, 1)

    def middle(name, c):
        resblock(f"{name}.block_1", c, c), attn(f"{name}.attn_1", c), resblock(f"{name}.block_2", c, c)

    levels = len(ch_mult)
    conv("encoder.conv_in", ch, 3, 3)
    c = ch
    for level, mult in enumerate(ch_mult):
        for i in range(num_res_blocks):
            resblock(f"encoder.down.{level}.block.{i}", c, ch * mult)
            c = ch * mult
            if level in attn_levels:
                attn(f"encoder.down.{level}.attn.{i}", c)
        if level != levels - 1:
            conv(f"encoder.down.{level}.downsample.conv", c, c, 3)
    middle("encoder.mid", c)
    norm("encoder.norm_out", c), conv("encoder.conv_out", z_channels, c, 3)
    conv("decoder.conv_in", c, z_channels, 3)
    middle("decoder.mid", c)
    for level in reversed(range(levels)):
        for i in range(num_res_blocks + 1):
            resblock(f"decoder.up.{level}.block.{i}", c, ch * ch_mult[level])
            c = ch * ch_mult[level]
            if level in attn_levels:
                attn(f"decoder.up.{level}.attn.{i}", c)
        if level != 0:
            conv(f"decoder.up.{level}.upsample.conv", c, c, 3)
    norm("decoder.norm_out", c), conv("decoder.conv_out", 3, c, 3)
    conv("quant_conv", z_channels, z_channels, 1), conv("post_quant_conv", z_channels, z_channels, 1)
    conv("quantize.proj", n_embed, z_channels, 1)
    shapes["quantize.embed.weight"] = (n_embed, z_channels)
    return shapes


# attention at nominal resolution 32 of 256 = level 3 of the encoder and of the decoder
TINY_F8_SHAPES = taming_state_shapes(32, (1, 1, 2, 4), 2, 32, 64, attn_levels={3})


def write_taming_files(folder, params=TINY_F8_PARAMS, shapes=TINY_F8_SHAPES, extra=None, drop=()):
    """A synthetic taming config + Lightning-style checkpoint (random weights, loss.* entries, trainer state)."""
    config = folder / "model.yaml"
    config.write_text(yaml.safe_dump({"model": {"base_learning_rate": 4.5e-06,
                                                "target": "taming.models.vqgan.GumbelVQ", "params": params}}))
    generator = torch.Generator().manual_seed(0)
    state = {key: 0.1 * torch.randn(shape, generator=generator) for key, shape in shapes.items() if key not in drop}
    state["loss.discriminator.main.0.weight"] = torch.zeros(64, 3, 4, 4)
    state["loss.logvar"] = torch.zeros(())
    state.update(extra or {})
    checkpoint = folder / "last.ckpt"
    torch.save({"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.0.8", "state_dict": state,
                "optimizer_states": [], "lr_schedulers": []}, checkpoint)
    return config, checkpoint, state


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    return write_taming_files(tmp_path_factory.mktemp("taming"))


@pytest.fixture(scope="module")
def tiny_model(tiny_files):
    config, checkpoint, _ = tiny_files
    return load_vqgan(config, checkpoint)


# ------------------------------------------------------------------------------------------------------------
# taming file formats


def test_synthetic_taming_checkpoint_loads_strictly_with_the_expected_keys(tiny_files, tiny_model):
    _, _, state = tiny_files
    model_state = tiny_model.state_dict()
    assert {key: tuple(value.shape) for key, value in model_state.items()} == TINY_F8_SHAPES
    for key in TINY_F8_SHAPES:
        assert torch.equal(model_state[key], state[key]), key
    families = {".".join(key.split(".")[:2]) for key in model_state}
    assert families == {"encoder.conv_in", "encoder.down", "encoder.mid", "encoder.norm_out", "encoder.conv_out",
                        "decoder.conv_in", "decoder.mid", "decoder.up", "decoder.norm_out", "decoder.conv_out",
                        "quant_conv.weight", "quant_conv.bias", "post_quant_conv.weight", "post_quant_conv.bias",
                        "quantize.proj", "quantize.embed"}
    # attention only at the 32 x 32 level, resampling between levels, shortcuts where channels change
    assert "encoder.down.3.attn.1.q.weight" in model_state and "encoder.down.2.attn.0.q.weight" not in model_state
    assert "decoder.up.3.attn.2.proj_out.weight" in model_state and "decoder.up.0.attn.0.q.weight" not in model_state
    assert "encoder.down.3.downsample.conv.weight" not in model_state and "decoder.up.0.upsample.conv.weight" not in model_state
    assert "encoder.down.2.block.0.nin_shortcut.weight" in model_state
    assert "decoder.up.1.block.0.nin_shortcut.weight" in model_state
    assert not any(key.startswith("loss.") for key in model_state)
    assert not tiny_model.training and not any(p.requires_grad for p in tiny_model.parameters())
    assert tiny_model.factor == 8 and tiny_model.n_embed == 64


def test_config_round_trips_through_the_taming_yaml(tmp_path, tiny_files):
    config = read_config(tiny_files[0])
    assert config.ddconfig == DDConfig(ch=32, out_ch=3, ch_mult=(1, 1, 2, 4), num_res_blocks=2, attn_resolutions=(32,),
                                       in_channels=3, resolution=256, z_channels=32)
    assert (config.n_embed, config.embed_dim, config.kl_weight) == (64, 32, 1e-8)
    assert (config.temperature.lr_max, config.temperature.max_decay_steps) == (0.9, 1000001)
    written = yaml.safe_load(write_config(config, tmp_path / "model.yaml").read_text())
    assert written["model"]["target"] == "taming.models.vqgan.GumbelVQ"
    assert {k: v for k, v in written["model"]["params"]["ddconfig"].items()} == {
        **TINY_F8_PARAMS["ddconfig"], "resamp_with_conv": True}
    assert read_config(tmp_path / "model.yaml") == config


@pytest.mark.parametrize("change, message", [
    ({"drop": ("decoder.up.3.attn.2.q.weight",)}, "missing keys (1): decoder.up.3.attn.2.q.weight"),
    ({"extra": {"encoder.down.0.block.0.temb_proj.weight": torch.zeros(32, 512)}},
     "unexpected keys (1): encoder.down.0.block.0.temb_proj.weight"),
    ({"extra": {"quantize.embed.weight": torch.zeros(8192, 32)}},
     "shape mismatches (1): quantize.embed.weight: (8192, 32) in the checkpoint, (64, 32) in the model"),
])
def test_key_mismatches_are_clear_errors(tmp_path, change, message):
    config, checkpoint, _ = write_taming_files(tmp_path, **change)
    with pytest.raises(TokenizerFileError) as err:
        load_vqgan(config, checkpoint)
    assert str(checkpoint) in str(err.value) and message in str(err.value)


def test_missing_or_malformed_tokenizer_files_are_clear_errors(tmp_path, tiny_files):
    config, checkpoint, _ = tiny_files
    with pytest.raises(FileNotFoundError, match=f"VQGAN tokenizer checkpoint not found: {tmp_path / 'none.ckpt'}"):
        load_vqgan(config, tmp_path / "none.ckpt")
    with pytest.raises(FileNotFoundError, match="VQGAN tokenizer config not found"):
        load_vqgan(tmp_path / "none.yaml", checkpoint)
    (tmp_path / "bad.yaml").write_text("model:\n  target: taming.models.vqgan.VQModel\n  params: {}\n")
    with pytest.raises(TokenizerFileError, match="bad.yaml: model.target .*VQModel.* only taming.models.vqgan.GumbelVQ"):
        read_config(tmp_path / "bad.yaml")
    params = {**TINY_F8_PARAMS, "ddconfig": {k: v for k, v in TINY_F8_PARAMS["ddconfig"].items() if k != "ch"}}
    (tmp_path / "noch.yaml").write_text(yaml.safe_dump({"model": {"params": params}}))
    with pytest.raises(TokenizerFileError, match="noch.yaml: model.params: .*ddconfig lacks ch"):
        read_config(tmp_path / "noch.yaml")
    torch.save({"weights": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(TokenizerFileError, match="plain.ckpt: no `state_dict` entry"):
        load_vqgan(config, tmp_path / "plain.ckpt")


def test_lightning_checkpoint_with_uninstalled_classes_needs_trust(tmp_path, tiny_files, monkeypatch):
    """Lightning 1.0 checkpoints key callback states by class; without the package they load only when trusted."""
    fake = types.ModuleType("pytorch_lightning_absent.callbacks")
    fake.ModelCheckpoint = ModelCheckpoint = type("ModelCheckpoint", (), {"__module__": fake.__name__})
    package = types.ModuleType("pytorch_lightning_absent")
    package.callbacks = fake
    for module in (package, fake):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    checkpoint = tmp_path / "lightning.ckpt"
    state = torch.load(tiny_files[1], weights_only=True)
    torch.save({**state, "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.5)}}}, checkpoint)
    for module in (package, fake):
        monkeypatch.delitem(sys.modules, module.__name__)
    monkeypatch.delenv("OFA_TRUST_CHECKPOINT", raising=False)
    with pytest.raises(UnsafeCheckpointError, match="pytorch_lightning_absent.callbacks.ModelCheckpoint"):
        load_vqgan(tiny_files[0], checkpoint)
    monkeypatch.setenv("OFA_TRUST_CHECKPOINT", "1")
    model = load_vqgan(tiny_files[0], checkpoint)
    assert torch.equal(model.quantize.embed.weight, state["state_dict"]["quantize.embed.weight"])


# ------------------------------------------------------------------------------------------------------------
# images <-> codes


def test_preprocessing_resizes_the_shorter_side_crops_the_centre_and_scales_to_minus_one_one():
    image = Image.new("RGB", (40, 20), (255, 0, 51))
    image.paste((0, 255, 0), (0, 0, 10, 20))  # the left quarter, cropped away by the centre crop
    tensor = image_to_tensor(image, 8)  # 40x20 -> 16x8 (LANCZOS) -> centre 8x8 = original x 10..30
    assert tensor.shape == (3, 8, 8)
    assert torch.allclose(tensor[:, :, 3:], torch.tensor([1.0, -1.0, 2 * 51 / 255 - 1]).view(3, 1, 1), atol=1e-6)
    assert (tensor[0, :, 0] > 0.5).all()  # only LANCZOS ringing of the green quarter remains at the left edge
    assert pixels_to_images(torch.tensor([[[[1.5]], [[0.999]], [[-0.5]]]]))[0].getpixel((0, 0)) == (255, 254, 63)


def test_encode_and_decode_shapes(tiny_model):
    generator = torch.Generator().manual_seed(1)
    for size, grid in ((256, 32), (128, 16)):
        images = torch.rand(2, 3, size, size, generator=generator) * 2 - 1
        codes = encode_images(tiny_model, images)
        assert codes.shape == (2, grid * grid) and codes.dtype == torch.long
        assert 0 <= int(codes.min()) and int(codes.max()) < 64
        assert torch.equal(codes, encode_images(tiny_model, images))  # deterministic (argmax)
        assert torch.equal(codes[1], encode_images(tiny_model, images[1:]).squeeze(0))
        decoded = decode_codes(tiny_model, codes, size)
        assert [im.size for im in decoded] == [(size, size)] * 2 and decoded[0].mode == "RGB"
    with pytest.raises(ValueError, match="image size 100 is not a positive multiple of the tokenizer's factor 8"):
        encode_images(tiny_model, torch.zeros(1, 3, 100, 100))


def test_code_range_and_count_checks(tiny_model):
    with pytest.raises(CodeFormatError, match=r"code 64 is out of range: the tokenizer has 64 codes \(0..63\)"):
        decode_codes(tiny_model, torch.full((1, 16), 64), 32)
    with pytest.raises(CodeFormatError, match=r"expected codes of shape \(B, 16\) for 32 x 32 images"):
        decode_codes(tiny_model, torch.zeros(1, 15, dtype=torch.long), 32)
    assert parse_codes("<code_5> <code_63> 7", 64) == [5, 63, 7]
    assert parse_codes("50270 50265", 64, num_codes=2, token_offset=50265) == [5, 0]
    with pytest.raises(CodeFormatError, match="has 3 codes, expected 4"):
        parse_codes("1 2 3", 64, num_codes=4)
    with pytest.raises(CodeFormatError, match="'x1' is neither an integer code nor a <code_N> token"):
        parse_codes("1 x1", 64)
    with pytest.raises(CodeFormatError, match="code -1 is out of range"):
        parse_codes("-1", 64)


def test_code_tsv_with_the_wrong_number_of_codes_names_file_and_row(tmp_path):
    path = tmp_path / "codes.tsv"
    path.write_text("a\t" + " ".join(["3"] * 16) + "\tcap\nb\t" + " ".join(["3"] * 15) + "\tcap\n")
    rows = read_code_rows(path, "0,1", 64, num_codes=16)
    assert next(rows) == (0, "a", [3] * 16)
    with pytest.raises(CodeFormatError, match=f"{path}: row 1: has 15 codes, expected 16"):
        next(rows)


# ------------------------------------------------------------------------------------------------------------
# command lines


def test_encode_tsv_and_decode_codes_commands(tmp_path, tiny_files, tiny_model):
    config, checkpoint, _ = tiny_files
    images = write_split(tmp_path / "caption.tsv", "caption", "train", 3, seed=1, size_range=(48, 96))
    paths = ["--vqgan-config-path", str(config), "--vqgan-model-path", str(checkpoint)]
    encode_tsv_cli.main([*paths, "--input", str(images), "--output", str(tmp_path / "coco_vqgan.tsv"),
                         "--selected-cols", "0,4,2", "--code-image-size", "32", "--batch-size", "2"])
    source = [line.split("\t") for line in images.read_text().splitlines()]
    rows = [line.split("\t") for line in (tmp_path / "coco_vqgan.tsv").read_text().splitlines()]
    assert [(r[0], r[2]) for r in rows] == [(s[0], s[2]) for s in source]
    first_image = Image.open(io.BytesIO(base64.b64decode(source[0][4])))
    expected = encode_images(tiny_model, image_to_tensor(first_image, 32)[None])[0].tolist()
    assert [int(c) for c in rows[0][1].split()] == expected

    encode_tsv_cli.main([*paths, "--input", str(images), "--output", str(tmp_path / "image_examples.tsv"),
                         "--layout", "image_examples", "--selected-cols", "0,4", "--code-image-size", "16"])
    uid, picture, codes = (tmp_path / "image_examples.tsv").read_text().splitlines()[0].split("\t")
    square = Image.open(io.BytesIO(base64.b64decode(picture)))
    assert (uid, square.size, len(codes.split())) == (source[0][0], (32, 32), 4)
    centre = image_to_tensor(first_image, 32)[:, 8:24, 8:24]
    assert [int(c) for c in codes.split()] == encode_images(tiny_model, centre[None])[0].tolist()

    decode_tsv_cli.main([*paths, "--input", str(tmp_path / "coco_vqgan.tsv"), "--out-dir", str(tmp_path / "png")])
    png = Image.open(tmp_path / "png" / f"{source[0][0]}.png")
    expected_png = decode_codes(tiny_model, torch.tensor([expected]), 32)[0]
    assert png.size == (32, 32) and np.array_equal(np.asarray(png), np.asarray(expected_png))
    with pytest.raises(CodeFormatError, match=r"coco_vqgan.tsv: row 0: has 16 codes, expected 64"):
        decode_tsv_cli.main([*paths, "--input", str(tmp_path / "coco_vqgan.tsv"), "--out-dir", str(tmp_path / "x"),
                               "--code-image-size", "64"])


# ------------------------------------------------------------------------------------------------------------
# our toy tokenizer


def test_toy_config_and_checkpoint_use_the_taming_format(tmp_path):
    config = toy_config(n_embed=128)
    model = build_model(config)
    write_config(config, tmp_path / "model.yaml")
    save_checkpoint(model, tmp_path / "last.ckpt", global_step=10)
    loaded = load_vqgan(tmp_path / "model.yaml", tmp_path / "last.ckpt")
    assert read_config(tmp_path / "model.yaml") == config and loaded.factor == 8
    assert torch.equal(loaded.quantize.embed.weight, model.quantize.embed.weight)
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] == 10 and set(checkpoint["state_dict"]) == set(model.state_dict())


def test_mean_colour_baseline_and_psnr_are_hand_computed():
    half = torch.ones(1, 3, 8, 8)
    half[..., :4] = -1.0  # left half black, right half white: the mean colour is mid grey, 0.5 off everywhere
    assert mean_colour_mse(half) == pytest.approx(0.25) and psnr(0.25) == pytest.approx(6.0206, abs=1e-4)


def test_patch_colour_tokenizer_decodes_each_code_to_its_colour_over_its_patch():
    """Hand-built images: each 8 x 8 patch is encoded to the key nearest its mean colour and decoded to that
    code's colour (majority colour, not the blend)."""
    keys = torch.tensor([[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [0.5, -1.0, -1.0], [0.0, 0.0, 1.0]])
    colours = torch.tensor([[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [0.0, 0.0, 1.0]])
    model = patch_colour_tokenizer(toy_config(n_embed=4, image_size=16), keys, colours)
    image = torch.full((1, 3, 16, 16), -1.0)
    image[0, 0, :8, 8:] = 1.0  # top right patch red
    image[0, 0, 8:, :6] = 1.0  # bottom left patch 3/4 red, 1/4 black: mean red channel 0.5
    image[0, :, 8:, 8:] = torch.tensor([0.1, -0.1, 0.9]).view(3, 1, 1)  # near key 3
    codes = encode_images(model, image)
    assert codes.tolist() == [[0, 1, 2, 3]]
    decoded = model.decode(codes.view(1, 2, 2))
    expected = colours[codes[0]].T.reshape(3, 2, 2).repeat_interleave(8, 1).repeat_interleave(8, 2)
    assert torch.allclose(decoded[0], expected, atol=1e-4)
    means, medians = patch_colours(image, 8)
    assert torch.allclose(means[2], torch.tensor([0.5, -1.0, -1.0])) and torch.equal(medians[2], colours[1])


def test_toy_tokenizer_round_trips_toy_images_much_better_than_the_mean_colour(tmp_path, record_property):
    config = toy_config(n_embed=64, image_size=64)
    model, metrics = fit_toy_tokenizer(config, fit_images=64, eval_images=32)
    for key, value in metrics.items():
        record_property(key, value)
    print({key: round(value, 4) for key, value in metrics.items()})
    # measured: MSE 0.0079 (PSNR 21.0 dB) against 0.0218 (16.6 dB) for the mean colour
    assert metrics["mse"] < 0.5 * metrics["mean_colour_mse"] and metrics["psnr"] > metrics["mean_colour_psnr"] + 3
    assert metrics["codes_used"] > 16

    train_toy.main(["--out", str(tmp_path), "--n-embed", "64", "--fit-images", "64", "--eval-images", "32"])
    loaded = load_vqgan(tmp_path / "model.yaml", tmp_path / "last.ckpt")
    images = toy_images("vqgan-test", 4, 64)
    codes = encode_images(loaded, images)
    assert codes.shape == (4, 64) and torch.equal(codes, encode_images(model, images))
    assert [image.size for image in decode_codes(loaded, codes, 64)] == [(64, 64)] * 4
