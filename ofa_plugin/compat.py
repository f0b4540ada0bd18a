"""What stock fairseq needs to load and save checkpoints on current torch (>= 2.6) and numpy 2.

torch >= 2.6 calls `torch.load` with `weights_only=True` by default, and fairseq calls it without the
argument, so every fairseq checkpoint fails to load (`cfg["model"]` is an `argparse.Namespace`).
Instead of turning the safety off, this module keeps fairseq's checkpoint loading on
`weights_only=True` and allow-lists exactly the globals that fairseq and official OFA checkpoints
pickle (`SAFE_GLOBALS`). A checkpoint that needs anything else is refused with an
`UnsafeCheckpointError` naming the file and the class; setting `OFA_TRUST_CHECKPOINT=1` loads such a
trusted legacy file with `weights_only=False`.

Where it patches, and why there: fairseq calls `torch.load` inside the bodies of
`checkpoint_utils.load_checkpoint_to_cpu` and `checkpoint_utils.load_ema_from_checkpoint` (checkpoint
files) and `distributed.utils._broadcast_object_slow` (the state rank 0 sends to the other ranks).
Each of those two modules gets its own `torch` name: a view of the real torch module whose only
difference is `load`. This chooses `weights_only` per call without copying fairseq's function bodies,
covers every loader of a module (even callers holding a direct reference to a loader function), and
leaves `torch.load` unchanged for every other library in the process. Wrapping the loader functions
instead would still need a process-wide switch (patching `torch.load` or setting
`TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`) to implement the opt-in.

Saving needs no fix: `fairseq-train` writes checkpoints with `torch.save` unchanged. The numpy 2 aliases
still used by this fairseq (`np.int` in `data_utils.compute_mask_indices(no_overlap=True)`,
`np.float` in `modules.dynamic_crf_layer`) sit in wav2vec masking and the NAT-CRF model, which no
OFA or stock text task reaches, so they are left alone.

Importing this module applies everything (idempotent); `ofa_plugin/__init__.py` imports it first,
and fairseq imports the `--user-dir` before it loads any checkpoint.
"""
import argparse
import logging
import os
import pickle
import re
import types
from typing import IO, Any, Callable, Union

import fairseq.checkpoint_utils
import fairseq.distributed.utils
from fairseq.data import data_utils
import numpy as np
import torch

try:  # numpy >= 2
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import scalar as _numpy_scalar

logger = logging.getLogger(__name__)

TRUST_ENV_VAR = "OFA_TRUST_CHECKPOINT"
_TRUE_VALUES = ("1", "true", "yes")

FileLike = Union[str, os.PathLike, IO[bytes]]


def _dtype_class(code: str) -> tuple[type, str]:
    """The concrete class of numpy dtype `code` (numpy.dtypes.Float64DType for "float64") and its name."""
    cls = type(np.dtype(code))
    return cls, f"{cls.__module__}.{cls.__qualname__}"


# (object, the name the pickle refers to it by): the only globals beyond torch's own tensor/builtin set
# that fairseq and official OFA checkpoints contain. The Namespace is all that
# torch.serialization.get_unsafe_globals_in_checkpoint finds in the official fixture and in stock
# fairseq-train checkpoints (adam state, meters, iterator state, EMA); the numpy entries cover metric
# values that OFA computes with numpy. One line each: what pickles it.
SAFE_GLOBALS: list[tuple[Callable, str]] = [
    # Trainer.state_dict(): cfg["model"] of legacy add_args models (OFA, transformer), legacy state["args"]
    (argparse.Namespace, "argparse.Namespace"),
    # numpy scalars written by numpy 2: metric sums computed with numpy (e.g. CIDEr in valid_step) end up in
    # extra_state["val_loss"], extra_state["best"] and the saved meters
    (_numpy_scalar, "numpy._core.multiarray.scalar"),
    # the same numpy scalars written by numpy 1.x (the released 2022 OFA checkpoints)
    (_numpy_scalar, "numpy.core.multiarray.scalar"),
    # the dtype argument of those numpy scalars (numpy 1.x and 2 both pickle it as numpy.dtype) ...
    (np.dtype, "numpy.dtype"),
    # ... whose state is then set on an instance of its concrete class: float64 (numpy float math),
    # float32 (sums over float32 arrays), int64 (sums over integer arrays)
    _dtype_class("float64"),
    _dtype_class("float32"),
    _dtype_class("int64"),
]

# torch names the refused global in one of these two forms
_REFUSED_CLASS = re.compile(r"GLOBAL (\S+)|but got <class '([^']+)'>")


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs a global outside `SAFE_GLOBALS` and `OFA_TRUST_CHECKPOINT` is not set."""


def checkpoint_trusted() -> bool:
    """Whether the user opted in to loading checkpoints with `weights_only=False`."""
    return os.environ.get(TRUST_ENV_VAR, "").strip().lower() in _TRUE_VALUES


def _source_name(f: FileLike) -> str:
    """The path of `f` for messages (fairseq passes open files)."""
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    return str(getattr(f, "name", repr(f)))


def _unsafe_error(source: str, err: pickle.UnpicklingError) -> UnsafeCheckpointError:
    """The error for a checkpoint the safe loader refused, naming the file and the class."""
    match = _REFUSED_CLASS.search(str(err))
    what = f"the class {match.group(1) or match.group(2)}" if match else f"an object it cannot load ({err})"
    return UnsafeCheckpointError(
        f"{source}: checkpoint contains {what}, which OFA's safe loader does not allow. A checkpoint is "
        f"code: only if you trust this file, set {TRUST_ENV_VAR}=1 to load it with weights_only=False."
    )


def load_checkpoint_file(f: FileLike, map_location: Any = None) -> Any:
    """`torch.load` for checkpoint files: `weights_only=True` with `SAFE_GLOBALS`, unless trusted."""
    source = _source_name(f)
    if checkpoint_trusted():
        logger.warning("%s: loading with weights_only=False because %s is set", source, TRUST_ENV_VAR)
        return torch.load(f, map_location=map_location, weights_only=False)
    try:
        return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _unsafe_error(source, err) from err


def load_rank0_payload(f: FileLike, map_location: Any = None) -> Any:
    """`torch.load` for the bytes that rank 0 of this same job broadcasts (fairseq's `broadcast_object`).

    The payload holds the already loaded checkpoint state with its tensors replaced by fairseq
    placeholders and `cfg` turned into an OmegaConf object, so it cannot pass the allow-list. It was
    written by this job's own rank 0 from objects it already holds, so loading it trusts nothing new.
    """
    return torch.load(f, map_location=map_location, weights_only=False)


class _TorchView(types.ModuleType):
    """The torch module as one fairseq module sees it: everything forwarded, except `load`."""

    def __init__(self, load: Callable[..., Any]) -> None:
        super().__init__("torch", "torch as seen by a fairseq module patched in ofa_plugin.compat")
        self.load = load

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


def _set_module_torch_load(module: types.ModuleType, load: Callable[..., Any]) -> None:
    """Make the `torch.load` calls inside `module` call `load` (idempotent)."""
    if not isinstance(module.torch, _TorchView):
        module.torch = _TorchView(load)


def _data_names_files(data: Any) -> bool:
    """True when a task's `data` is a list of files (OFA's comma-separated TSVs), not a folder."""
    return isinstance(data, str) and any(os.path.isfile(path) for path in data.split(","))


def _skip_valid_subset_check_for_files(check: Callable[[Any], None]) -> Callable[[Any], None]:
    """fairseq-train lists the `data` folder to find unused valid*.bin subsets; with OFA's TSV files
    there is no folder to list (it crashes), and nothing to find."""
    if getattr(check, "_ofa_wrapped", False):
        return check

    def checked(train_cfg: Any) -> None:
        if _data_names_files(getattr(train_cfg.task, "data", None)):
            return
        check(train_cfg)

    checked._ofa_wrapped = True
    return checked


def install() -> None:
    """Register `SAFE_GLOBALS` with torch and route fairseq's checkpoint loads (idempotent); let
    fairseq-train accept TSV files as `data`."""
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    _set_module_torch_load(fairseq.checkpoint_utils, load_checkpoint_file)
    _set_module_torch_load(fairseq.distributed.utils, load_rank0_payload)
    data_utils.raise_if_valid_subsets_unintentionally_ignored = _skip_valid_subset_check_for_files(
        data_utils.raise_if_valid_subsets_unintentionally_ignored)


install()
