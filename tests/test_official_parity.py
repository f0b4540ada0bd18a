"""Parity with the official implementation on the fixtures in ../shared/fixtures/official_mini.

The checkpoint there was written by the official trainer; the goldens were computed by the official
code from it. Tolerances follow the fixture README (fp32, CPU).
"""
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils
from omegaconf import OmegaConf

import ofa_plugin  # noqa: F401
from ofa_plugin.criterions.label_smoothed_cross_entropy import AdjustLabelSmoothedCrossEntropyCriterion
from ofa_plugin.models import set_attention_impl

from conftest import BPE_DIR, OFFICIAL_MINI, assert_top_hypotheses_match

CHECKPOINT = OFFICIAL_MINI / "checkpoint.pt"
GOLDEN = OFFICIAL_MINI / "golden"
CAPTION_TSV = OFFICIAL_MINI / "data" / "caption_test.tsv"
OVERRIDES = {"bpe_dir": str(BPE_DIR), "data": str(CAPTION_TSV), "selected_cols": "1,4,2"}


@pytest.fixture(scope="module")
def loaded():
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(CHECKPOINT)], arg_overrides=OVERRIDES)
    return models[0].eval(), cfg, task


@pytest.fixture(scope="module")
def teacher_forced():
    return np.load(GOLDEN / "teacher_forced.npz"), json.loads((GOLDEN / "teacher_forced.json").read_text())


def _net_input(arrays, prefix: str) -> dict:
    tag = f"{prefix}.net_input."
    return {key[len(tag):]: torch.from_numpy(arrays[key]) for key in arrays.files if key.startswith(tag)}


def test_derived_buffers_are_bit_exact(loaded):
    model, _, _ = loaded
    info = json.loads((OFFICIAL_MINI / "checkpoint_info.json").read_text())["dropped_buffers"]["dropped_buffers"]
    state = model.state_dict()
    for key, expected in info.items():
        tensor = state[key]
        assert list(tensor.shape) == expected["shape"]
        assert hashlib.sha256(tensor.contiguous().numpy().tobytes()).hexdigest() == expected["sha256"], key


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("prefix", ["caption", "refcoco"])
def test_teacher_forced_outputs_match(loaded, teacher_forced, impl, prefix):
    model, _, _ = loaded
    arrays, _ = teacher_forced
    set_attention_impl(model, impl)
    net_input = _net_input(arrays, prefix)
    with torch.no_grad():
        encoder_out = model.encoder(**{k: v for k, v in net_input.items() if k != "prev_output_tokens"})
        features, _ = model.decoder(net_input["prev_output_tokens"], encoder_out=encoder_out, features_only=True)
        logits = model.decoder.output_projection(features)
    expect = {name: torch.from_numpy(arrays[f"{prefix}.{name}"]) for name in (
        "encoder_out", "decoder_features", "logits_argmax", "logits_logsumexp", "probe_index_btv",
        "probe_logits", "nonpad_mask", "full_logits_b0_t0", "encoder_padding_mask")}
    nonpad = expect["nonpad_mask"]
    torch.testing.assert_close(encoder_out["encoder_out"][0], expect["encoder_out"], atol=1e-4, rtol=1e-4)
    assert torch.equal(encoder_out["encoder_padding_mask"][0], expect["encoder_padding_mask"])
    torch.testing.assert_close(features, expect["decoder_features"], atol=1e-4, rtol=1e-4)
    probe = expect["probe_index_btv"]
    torch.testing.assert_close(logits[probe[:, 0], probe[:, 1], probe[:, 2]], expect["probe_logits"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits[0, 0], expect["full_logits_b0_t0"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits.logsumexp(-1)[nonpad], expect["logits_logsumexp"][nonpad], atol=1e-5, rtol=1e-5)
    assert torch.equal(logits.argmax(-1)[nonpad], expect["logits_argmax"][nonpad])


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("prefix", ["caption", "refcoco"])
def test_criterion_loss_matches(loaded, teacher_forced, impl, prefix):
    """The official criterion config stored with the fixture, applied to our model's forward pass."""
    model, _, task = loaded
    arrays, meta = teacher_forced
    set_attention_impl(model, impl)
    options = {k: v for k, v in meta["meta"]["criterion_cfg"].items() if k != "_name"}
    criterion = AdjustLabelSmoothedCrossEntropyCriterion(task, **options)
    target = torch.from_numpy(arrays[f"{prefix}.target"])
    sample = {"net_input": _net_input(arrays, prefix), "target": target, "nsentences": target.size(0),
              "ntokens": int(target.ne(task.target_dictionary.pad()).sum())}
    with torch.no_grad():
        loss, sample_size, log = criterion(model, sample, update_num=0)
    golden = meta["meta"][f"{prefix}.criterion"]
    assert loss.item() == pytest.approx(golden["loss"], rel=1e-5)
    assert log["nll_loss"].item() == pytest.approx(golden["nll_loss"], rel=1e-5)
    assert sample_size == golden["sample_size"]


def test_caption_golden_reproduced_by_fairseq_generate(tmp_path, ofa_dictionary):
    golden = json.loads((GOLDEN / "caption.json").read_text())
    overrides = repr({"data": str(CAPTION_TSV), "bpe_dir": str(BPE_DIR), "eval_cider": False,
                            "selected_cols": "1,4,2"})
    command = [
        str(Path(sys.executable).parent / "fairseq-generate"), str(CAPTION_TSV), f"--path={CHECKPOINT}",
        "--user-dir=ofa_plugin", "--log-format=simple", "--log-interval=10", "--seed=7", "--gen-subset=test",
        "--num-workers=0", "--cpu", "--task=caption", "--batch-size=16", "--beam=5", "--max-len-b=16",
        "--no-repeat-ngram-size=3", f"--model-overrides={overrides}", f"--results-path={tmp_path}",
    ]
    subprocess.run(command, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
    output = (tmp_path / "generate-test.txt").read_text()
    assert len(golden["samples"]) == 8
    assert_top_hypotheses_match(output, golden, ofa_dictionary)
    detok = {int(i): text for i, text in re.findall(r"^D-(\d+)\t\S+\t(.*)$", output, re.M)}
    predictions = {p["image_id"]: p["caption"] for p in golden["official_predict_json"]}
    for index, sample in enumerate(golden["samples"]):
        stripped = re.sub(r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]", "", detok[index]).strip()
        assert stripped == predictions[sample["id"]]
    assert "Generate test with beam=5: CIDEr" in output
    assert json.loads((tmp_path / "test_predict.json").read_text()) == golden["official_predict_json"]


def test_load_save_load_changes_nothing(loaded, tmp_path):
    model, cfg, _ = loaded
    state = checkpoint_utils.load_checkpoint_to_cpu(str(CHECKPOINT))
    state["model"] = model.state_dict()
    state["cfg"] = OmegaConf.to_container(state["cfg"], resolve=True, enum_to_str=True)  # as fairseq's trainer
    path = tmp_path / "resaved.pt"
    checkpoint_utils.torch_persistent_save(state, str(path))
    models, _, _ = checkpoint_utils.load_model_ensemble_and_task([str(path)], arg_overrides=OVERRIDES)
    reloaded = models[0].state_dict()
    original = model.state_dict()
    assert reloaded.keys() == original.keys()
    for key, tensor in original.items():
        assert torch.equal(reloaded[key], tensor), key
