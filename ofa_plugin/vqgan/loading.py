"""The taming-transformers file formats of a VQGAN tokenizer: config YAML and checkpoint.

Config (`model.yaml`, as OFA's `--vqgan-config-path`): `model.target` = taming.models.vqgan.GumbelVQ and
`model.params` = {embed_dim, n_embed, kl_weight, ddconfig{...}, temperature_scheduler_config, lossconfig}.
Checkpoint (`last.ckpt`, as `--vqgan-model-path`): a (PyTorch Lightning) dict whose `state_dict` holds the
weights; its `loss.*` entries (discriminator, perceptual network) are training-only and ignored, every
other key must match the model built from the config exactly (names and shapes), else the error lists
what differs. The official code loads non-strictly, which would hide a wrong config.

Checkpoints load through the plugin's safe loader (`ofa_plugin.compat`: weights only). A full Lightning
checkpoint also pickles callback classes; with `OFA_TRUST_CHECKPOINT=1` it loads unpickling everything, and
classes of packages that are not installed (pytorch_lightning, taming's `main`) become placeholders, since
only `state_dict` is used.
"""
from __future__ import annotations

import logging
import pickle
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..compat import checkpoint_trusted, load_checkpoint_file
from .gumbel_vq import GumbelVQ
from .modules import DDConfig

logger = logging.getLogger(__name__)

GUMBEL_VQ_TARGET = "taming.models.vqgan.GumbelVQ"
TEMPERATURE_SCHEDULER_TARGET = "taming.lr_scheduler.LambdaWarmUpCosineScheduler"
DUMMY_LOSS_TARGET = "taming.modules.losses.vqperceptual.DummyLoss"
IGNORED_KEY_PREFIXES = ("loss.",)  # training losses (discriminator, LPIPS) stored beside the model
_REQUIRED_DDCONFIG = ("ch", "out_ch", "ch_mult", "num_res_blocks", "attn_resolutions", "in_channels", "resolution",
                      "z_channels")
_LISTED_KEYS = 8  # keys named per kind in a mismatch error


class TokenizerFileError(ValueError):
    """A tokenizer config or checkpoint that does not have the expected content; names the file."""


@dataclass(frozen=True)
class TemperatureSchedule:
    """`temperature_scheduler_config.params` (taming's LambdaWarmUpCosineScheduler of the Gumbel temperature):
    kept so that a config reads and writes back unchanged; encoding and decoding do not use it."""

    warm_up_steps: int = 0
    max_decay_steps: int = 1000001
    lr_start: float = 0.9
    lr_max: float = 0.9
    lr_min: float = 1e-6


@dataclass(frozen=True)
class VQGANConfig:
    """`model.params` of a GumbelVQ config; `kl_weight` and `temperature` (training settings) are kept as read."""

    ddconfig: DDConfig
    n_embed: int
    embed_dim: int
    kl_weight: float = 1e-8
    temperature: TemperatureSchedule = field(default_factory=TemperatureSchedule)


def build_model(config: VQGANConfig) -> GumbelVQ:
    """A randomly initialised GumbelVQ of this shape."""
    return GumbelVQ(config.ddconfig, config.n_embed, config.embed_dim)


def read_config(path: str | Path) -> VQGANConfig:
    """The GumbelVQ config of a taming YAML file; errors name the file and the missing or wrong entry."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VQGAN tokenizer config not found: {path}")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except (OmegaConfBaseException, ValueError, OSError) as err:  # yaml errors are ValueErrors too
        raise TokenizerFileError(f"{path}: cannot read the tokenizer config: {err}") from err
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("params"), dict):
        raise TokenizerFileError(f"{path}: not a taming config: expected a `model.params` mapping")
    target = model.get("target", GUMBEL_VQ_TARGET)
    if not str(target).endswith("GumbelVQ"):
        raise TokenizerFileError(f"{path}: model.target is {target!r}; only {GUMBEL_VQ_TARGET} is supported")
    try:
        return _parse_params(model["params"])
    except (KeyError, TypeError, ValueError) as err:
        raise TokenizerFileError(f"{path}: model.params: {err}") from err


def _parse_params(params: Mapping[str, Any]) -> VQGANConfig:
    for key in ("ddconfig", "n_embed", "embed_dim"):
        if key not in params:
            raise KeyError(f"missing entry {key!r}")
    if params.get("remap") is not None:
        raise ValueError("`remap` (a reduced code set) is not supported")
    dd = dict(params["ddconfig"])
    missing = [key for key in _REQUIRED_DDCONFIG if key not in dd]
    if missing:
        raise KeyError(f"ddconfig lacks {', '.join(missing)}")
    if dd.get("double_z", True):
        raise ValueError("ddconfig.double_z must be false for a GumbelVQ (its encoder outputs z_channels)")
    ddconfig = DDConfig(
        ch=int(dd["ch"]), out_ch=int(dd["out_ch"]), ch_mult=tuple(int(m) for m in dd["ch_mult"]),
        num_res_blocks=int(dd["num_res_blocks"]), attn_resolutions=tuple(int(r) for r in dd["attn_resolutions"]),
        in_channels=int(dd["in_channels"]), resolution=int(dd["resolution"]), z_channels=int(dd["z_channels"]),
        dropout=float(dd.get("dropout", 0.0)), resamp_with_conv=bool(dd.get("resamp_with_conv", True)))
    schedule = (params.get("temperature_scheduler_config") or {}).get("params") or {}
    return VQGANConfig(ddconfig, int(params["n_embed"]), int(params["embed_dim"]),
                       float(params.get("kl_weight", 1e-8)), TemperatureSchedule(**schedule))


def config_to_dict(config: VQGANConfig) -> dict:
    """The taming YAML content of `config` (what `write_config` saves)."""
    ddconfig = {**asdict(config.ddconfig), "double_z": False}
    ddconfig["ch_mult"], ddconfig["attn_resolutions"] = list(ddconfig["ch_mult"]), list(ddconfig["attn_resolutions"])
    return {"model": {"target": GUMBEL_VQ_TARGET, "params": {
        "kl_weight": config.kl_weight,
        "embed_dim": config.embed_dim,
        "n_embed": config.n_embed,
        "temperature_scheduler_config": {"target": TEMPERATURE_SCHEDULER_TARGET,
                                         "params": asdict(config.temperature)},
        "ddconfig": ddconfig,
        "lossconfig": {"target": DUMMY_LOSS_TARGET},
    }}}


def write_config(config: VQGANConfig, path: str | Path) -> Path:
    """Save `config` as a taming `model.yaml`."""
    OmegaConf.save(OmegaConf.create(config_to_dict(config)), path)
    return Path(path)


def save_checkpoint(model: GumbelVQ, path: str | Path, global_step: int) -> Path:
    """Save the weights in the taming/Lightning layout (`state_dict`, `global_step`)."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save({"state_dict": state, "global_step": global_step}, path)
    return Path(path)


class _Placeholder:
    """Stands in for a pickled class whose package is not installed; keeps what the pickle gives it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _LenientUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            logger.warning("checkpoint class %s.%s is not importable; a placeholder stands in", module, name)
            return type(name, (_Placeholder,), {"__module__": module})


# torch.load's `pickle_module`: it uses `Unpickler` for the pickled objects and `load` for file headers
_LENIENT_PICKLE = types.ModuleType("lenient_pickle")
_LENIENT_PICKLE.Unpickler = _LenientUnpickler
_LENIENT_PICKLE.load = pickle.load


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of a taming checkpoint, without the `loss.*` entries."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VQGAN tokenizer checkpoint not found: {path}")
    if checkpoint_trusted():
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_LENIENT_PICKLE)
    else:
        checkpoint = load_checkpoint_file(path, map_location="cpu")
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, Mapping):
        raise TokenizerFileError(f"{path}: no `state_dict` entry (taming checkpoints keep the weights there)")
    return {key: value for key, value in state.items() if not key.startswith(IGNORED_KEY_PREFIXES)}


def check_state_dict(model: GumbelVQ, state: Mapping[str, torch.Tensor], source: str) -> None:
    """An error naming `source` if the keys or shapes of `state` differ from the model's."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    shapes = [f"{key}: {tuple(state[key].shape)} in the checkpoint, {tuple(expected[key].shape)} in the model"
              for key in sorted(expected.keys() & state.keys()) if state[key].shape != expected[key].shape]
    problems = [f"{what} ({len(keys)}): {', '.join(keys[:_LISTED_KEYS])}{' ...' if len(keys) > _LISTED_KEYS else ''}"
                for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                   ("shape mismatches", shapes)) if keys]
    if problems:
        raise TokenizerFileError(f"{source}: the checkpoint does not match the tokenizer config; " + "; ".join(problems))


def load_vqgan(config_path: str | Path, checkpoint_path: str | Path, device: str | torch.device = "cpu") -> GumbelVQ:
    """The tokenizer of a taming config + checkpoint pair, in eval mode with frozen weights."""
    model = build_model(read_config(config_path))
    state = load_state_dict(checkpoint_path)
    check_state_dict(model, state, f"{checkpoint_path} (config {config_path})")
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    return model.eval().to(device)
