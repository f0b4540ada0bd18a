"""What stock fairseq needs to load and save checkpoints on current torch (>= 2.6) and numpy 2, and to
train OFA models (the training fixes below).

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

Training fixes, each a wrapper of one fairseq function:
- `--store-ema` (`_copy_non_float_entries` around `EMA._step_internal`): fairseq multiplies every
  state-dict entry by the decay in place, which fails on integer tensors (`result type Float can't be
  cast to ... Long`): OFA's int64 bucket tables and image position ids, BatchNorm's `num_batches_tracked`.
  Averaging them would be wrong anyway (counters and index tables, not weights); as in the official
  vendored fairseq they are copied from the model (fairseq's own skip-key path, plus the fp32 copy of
  `--ema-fp32` that checkpoints save as `ema_fp32_params`). Tied parameters (OFA's one embedding matrix is
  the encoder's and decoder's `embed_tokens` and the `output_projection`) are three state-dict entries
  of one tensor, which fairseq decays three times per update (decay**3, also in the official code); here
  each tensor is decayed once.
- `--store-ema` with `--restore-file` of a checkpoint without EMA weights (every pretrained OFA model, the
  official VQA recipe): fairseq's trainer reads `state["model"]` after deleting it (KeyError). The EMA is
  set up after the load instead (`_weights_after_restore` around `Trainer.load_checkpoint`): from the
  checkpoint's EMA weights if it has them (as fairseq), else from the restored model; it says which. The
  same wrapper provides the official vendored-fairseq options `--use-ema-weights-to-init-param` and
  `--use-latest-weights-to-init-ema`, declared by the OFA tasks (stock fairseq has no place for them).
- `--bf16`: fairseq's option post-processing sets `--tpu` whenever `--bf16` is given (a TPU-only
  assumption), so `fairseq-train --bf16` dies looking for torch_xla on CPU and CUDA machines.
  `_precision_options_for_the_device` (around `call_main`) clears that implied `tpu` when torch_xla is not
  installed (no TPU run is possible then); the trainer casts the model and batches to bfloat16 instead.
- `--fp16` without CUDA: fairseq's default FP16Optimizer puts its flat fp32 master copy on
  `torch.cuda.current_device()` and dies; its unflattened variant (`--fp16-no-flatten-grads`: one fp32
  copy per parameter, the same arithmetic) runs anywhere, so the same wrapper selects it.

Importing this module applies everything (idempotent); `ofa_plugin/__init__.py` imports it first,
and fairseq imports the `--user-dir` before it loads any checkpoint.
"""
import argparse
import importlib.util
import logging
import os
import pickle
import re
import types
from typing import IO, Any, Callable, Union

import fairseq.checkpoint_utils
import fairseq.distributed.utils
from fairseq.data import data_utils
from fairseq.models.ema.ema import EMA
from fairseq.trainer import Trainer
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


class IncompleteCheckpointError(RuntimeError):
    """A checkpoint file that is empty or truncated (e.g. the run was killed while copying it)."""


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


def _is_incomplete_file_error(err: Exception) -> bool:
    """torch.load's error for an empty file (EOFError) or an incomplete zip archive (PytorchStreamReader)."""
    return isinstance(err, EOFError) or (isinstance(err, RuntimeError) and "PytorchStreamReader" in str(err))


def _incomplete_error(source: str, err: Exception) -> IncompleteCheckpointError:
    """The error for an empty or truncated checkpoint file, naming the file and what to do."""
    reason = str(err).split(". ")[0] or "the file is empty"
    return IncompleteCheckpointError(
        f"{source}: cannot read the checkpoint, the file is empty or truncated ({reason}). A run killed while "
        "saving can leave checkpoint_last.pt incomplete: copy an intact checkpoint_<epoch>_<updates>.pt over "
        "it to resume from there, or delete it to start afresh."
    )


def load_checkpoint_file(f: FileLike, map_location: Any = None) -> Any:
    """`torch.load` for checkpoint files: `weights_only=True` with `SAFE_GLOBALS`, unless trusted."""
    source = _source_name(f)
    trusted = checkpoint_trusted()
    if trusted:
        logger.warning("%s: loading with weights_only=False because %s is set", source, TRUST_ENV_VAR)
    try:
        return torch.load(f, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as err:
        if trusted:
            raise
        raise _unsafe_error(source, err) from err
    except (EOFError, RuntimeError) as err:
        if not _is_incomplete_file_error(err):
            raise
        raise _incomplete_error(source, err) from err


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


def _storage_key(tensor: torch.Tensor) -> tuple:
    """Identifies the memory a state-dict entry views: tied parameters share it."""
    return tensor.data_ptr(), tensor.dtype, tuple(tensor.shape), tuple(tensor.stride())


def _copy_non_float_entries(step_internal: Callable) -> Callable:
    """Wrap `EMA._step_internal`: integer/bool entries are copied, and tied entries are decayed once."""
    if getattr(step_internal, "_ofa_wrapped", False):
        return step_internal

    def step(self: EMA, new_model: torch.nn.Module, updates: Any = None) -> None:
        state, first_of = {}, {}  # entries without tied aliases; the first key of each tensor's memory
        for key, value in new_model.state_dict().items():
            if torch.is_tensor(value) and value.numel() > 0:
                first_of.setdefault(_storage_key(value), key)
                if first_of[_storage_key(value)] != key:
                    continue  # a tied alias of an earlier entry (fairseq would decay the tensor again)
            state[key] = value
        exact = {key for key, value in state.items() if torch.is_tensor(value) and not torch.is_floating_point(value)}
        self.skip_keys = set(self.skip_keys) | exact  # fairseq's path for entries taken over unchanged
        step_internal(self, types.SimpleNamespace(state_dict=lambda: state), updates)
        if self.config.ema_fp32:  # the fp32 copy that checkpoints save as ema_fp32_params
            for key in exact & set(self.fp32_params):
                self.fp32_params[key] = state[key].detach().clone()
            for key, value in new_model.state_dict().items():
                if key not in state and key in self.fp32_params:  # aliases follow their first key
                    self.fp32_params[key] = self.fp32_params[first_of[_storage_key(value)]]

    step._ofa_wrapped = True
    return step


def _weights_after_restore(load_checkpoint: Callable) -> Callable:
    """Wrap `Trainer.load_checkpoint`: the official `--use-ema-weights-to-init-param` and the `--store-ema`
    EMA of the restored run, set up here instead of in fairseq's branch, which crashes (KeyError 'model')
    when the checkpoint has no EMA weights."""
    if getattr(load_checkpoint, "_ofa_wrapped", False):
        return load_checkpoint

    def load(self: Trainer, filename: str, *args: Any, **kwargs: Any) -> Any:
        store_ema = self.cfg.ema.store_ema
        self.cfg.ema.store_ema = False  # skip fairseq's EMA branch
        try:
            extra_state = load_checkpoint(self, filename, *args, **kwargs)
        finally:
            self.cfg.ema.store_ema = store_ema
        if extra_state is None:
            return None
        if _task_option(self, "use_ema_weights_to_init_param"):
            _load_ema_weights_into_model(self, extra_state, filename)
        if store_ema:
            _restore_ema(self, extra_state, filename)
        return extra_state

    load._ofa_wrapped = True
    return load


def _task_option(trainer: Trainer, name: str) -> bool:
    """An option that the official vendored fairseq had and OFA tasks now declare (tasks/ofa_task.py)."""
    return bool(getattr(trainer.cfg.task, name, False))


def _load_ema_weights_into_model(trainer: Trainer, extra_state: dict, filename: str) -> None:
    """`--use-ema-weights-to-init-param`: the checkpoint's EMA weights (fp32 copy if saved) replace its
    model weights in the model (official: only when the checkpoint has EMA weights)."""
    weights = extra_state.get("ema_fp32_params") or extra_state.get("ema")
    if weights is None:
        logger.info("%s has no EMA weights: --use-ema-weights-to-init-param keeps its model weights", filename)
        return
    logger.info("--use-ema-weights-to-init-param: the model starts from the EMA weights of %s", filename)
    trainer.model.load_state_dict(weights, strict=True, model_cfg=trainer.cfg.model)


def _restore_ema(trainer: Trainer, extra_state: dict, filename: str) -> None:
    """The EMA of a restored run: the checkpoint's EMA weights, else (or with the official
    `--use-latest-weights-to-init-ema`) a copy of the restored model."""
    trainer._ema = None  # built again, from the model as restored
    if "ema" not in extra_state or _task_option(trainer, "use_latest_weights_to_init_ema"):
        logger.info("the EMA starts from the restored model weights (%s)", "--use-latest-weights-to-init-ema"
                    if "ema" in extra_state else f"{filename} has no EMA weights")
        return
    trainer.ema.restore(extra_state["ema"], build_fp32_params=False)
    if trainer.cfg.ema.ema_fp32:
        trainer.ema.build_fp32_params(extra_state.get("ema_fp32_params"))
    logger.info("the EMA continues from the EMA weights of %s", filename)


def _precision_options_for_the_device(call_main: Callable) -> Callable:
    """Wrap `distributed.utils.call_main`: `--bf16` implies `--tpu` in fairseq's options; undo that when
    torch_xla is missing (no TPU run is possible then). Also let `--fp16` train without CUDA."""
    if getattr(call_main, "_ofa_wrapped", False):
        return call_main

    def checked(cfg: Any, main: Callable, **kwargs: Any) -> Any:
        common = cfg.common
        if common.bf16 and common.tpu and importlib.util.find_spec("torch_xla") is None:
            logger.info("--bf16 without torch_xla: bfloat16 on %s, not on a TPU",
                        "CUDA" if torch.cuda.is_available() and not common.cpu else "CPU")
            common.tpu = False
        _fp16_master_weights_off_cuda(common)
        return call_main(cfg, main, **kwargs)

    checked._ofa_wrapped = True
    return checked


def _fp16_master_weights_off_cuda(common: Any) -> None:
    """`--fp16` without CUDA: one fp32 master copy per parameter instead of fairseq's flat CUDA buffer."""
    if common.fp16 and not common.memory_efficient_fp16 and not common.fp16_no_flatten_grads and (
            common.cpu or not torch.cuda.is_available()):
        logger.info("--fp16 without CUDA: fp32 master weights per parameter (--fp16-no-flatten-grads), as "
                    "fairseq's flat master copy lives on a CUDA device")
        common.fp16_no_flatten_grads = True


def install() -> None:
    """Register `SAFE_GLOBALS` with torch and route fairseq's checkpoint loads (idempotent); let
    fairseq-train accept TSV files as `data`; make `--store-ema` and `--bf16` work."""
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    _set_module_torch_load(fairseq.checkpoint_utils, load_checkpoint_file)
    _set_module_torch_load(fairseq.distributed.utils, load_rank0_payload)
    data_utils.raise_if_valid_subsets_unintentionally_ignored = _skip_valid_subset_check_for_files(
        data_utils.raise_if_valid_subsets_unintentionally_ignored)
    EMA._step_internal = _copy_non_float_entries(EMA._step_internal)
    Trainer.load_checkpoint = _weights_after_restore(Trainer.load_checkpoint)
    fairseq.distributed.utils.call_main = _precision_options_for_the_device(fairseq.distributed.utils.call_main)


install()
