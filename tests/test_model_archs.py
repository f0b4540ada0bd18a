"""Every official architecture builds with exactly the official state-dict keys, shapes and size."""
import argparse
import json
from types import SimpleNamespace

import pytest
import torch
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

import ofa_plugin  # noqa: F401  (registers the model)
from ofa_plugin.models.ofa_model import OFAModel

from conftest import FIXTURES

OFFICIAL_ARCHS = ["ofa_tiny", "ofa_medium", "ofa_base", "ofa_large", "ofa_huge"]


def _manifest(arch: str) -> dict:
    return json.loads((FIXTURES / "state_dict_manifests" / f"{arch}.json").read_text())


def _args_from_flags(flags) -> argparse.Namespace:
    """Model args as fairseq parses them: only the given flags are set, then the arch fills the rest."""
    args = argparse.Namespace()
    for flag in flags:
        name, _, value = flag.lstrip("-").partition("=")
        name = name.replace("-", "_")
        setattr(args, name, value if value else True)
    for int_opt in ("max_src_length", "max_tgt_length", "num_bins", "patch_image_size"):
        if hasattr(args, int_opt):
            setattr(args, int_opt, int(getattr(args, int_opt)))
    for float_opt in ("resnet_drop_path_rate", "encoder_drop_path_rate", "decoder_drop_path_rate", "dropout", "attention_dropout"):
        if hasattr(args, float_opt):
            setattr(args, float_opt, float(getattr(args, float_opt)))
    ARCH_CONFIG_REGISTRY[args.arch](args)
    return args


def build_on_meta(args, dictionary) -> OFAModel:
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    with torch.device("meta"):
        return ARCH_MODEL_REGISTRY[args.arch].build_model(args, task)


def _unique_parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields tied tensors once


@pytest.mark.parametrize("variant", ["caption_runscript_flags", "arch_defaults_only"])
@pytest.mark.parametrize("arch", OFFICIAL_ARCHS)
def test_state_dict_matches_official_manifest(arch, variant, ofa_dictionary):
    manifest = _manifest(arch)["variants"][variant]
    model = build_on_meta(_args_from_flags(manifest["flags"]), ofa_dictionary)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    official = [(entry["key"], entry["shape"]) for entry in manifest["keys"]]
    assert sorted(ours) == sorted(official)
    assert [k for k, _ in ours] == [k for k, _ in official], "state-dict order differs from the official one"
    assert _unique_parameter_count(model) == manifest["num_unique_parameters"]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    for entry in manifest["keys"]:
        if entry.get("kind") == "param" and entry["key"] in dict(model.named_parameters()):
            assert (entry["key"] in trainable) == entry["requires_grad"], entry["key"]
