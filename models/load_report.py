"""What a checkpoint load put into the model: one log line for `--restore-file`, fairseq-generate and the hub.

Computed from the model's and the checkpoint's state-dict keys before fairseq's upgrade fills the gaps
(reference §2.3): tensors taken from the checkpoint, tensors it lacks (kept at their fresh initial values,
e.g. adapters or prompts added for fine-tuning), BatchNorm counters dropped by a `--freeze-resnet` model,
and the buffers that are always recomputed from the config.
"""
from typing import Dict, List, Sequence

import torch
from torch import Tensor

# Buffers that are pure functions of the config: released checkpoints store them, our fixtures drop
# them; either way the freshly computed tables are used (image_position_idx always, as official).
DERIVED_BUFFERS = ("version", "token_rp_bucket", "image_rp_bucket", "image_position_idx")
# The output projection shares the token embedding; a checkpoint without it gets the embedding's rows.
TIED_KEYS = {"decoder.output_projection.weight": "decoder.embed_tokens.weight"}
_SHOWN = 12


def is_derived(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in DERIVED_BUFFERS


def _listed(keys: Sequence[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def _float_dtypes(tensors) -> List[str]:
    return sorted({str(t.dtype).replace("torch.", "") for t in tensors if torch.is_floating_point(t)})


def describe_load(own: Dict[str, Tensor], checkpoint: Dict[str, Tensor]) -> str:
    """One line: what loading `checkpoint` (a state dict as stored) into a model with state dict `own` does."""
    def present(key: str) -> bool:
        return key in checkpoint or (key in TIED_KEYS and TIED_KEYS[key] in checkpoint)

    loaded = [key for key in own if not is_derived(key) and present(key)]
    missing = [key for key in own if not is_derived(key) and not present(key)]
    dropped = [key for key in checkpoint if key not in own and key.endswith("num_batches_tracked")]
    source, target = _float_dtypes(checkpoint[k] for k in loaded if k in checkpoint), _float_dtypes(own.values())
    cast = f" ({'/'.join(source)} cast to {'/'.join(target)})" if source and source != target else ""
    parts = [f"model weights: {len(loaded)} tensors from the checkpoint{cast}"]
    parts.append(f"{len(missing)} not in the checkpoint, newly initialised: {_listed(missing)}" if missing
                 else "none missing")
    if dropped:
        parts.append(f"{len(dropped)} BatchNorm counters dropped (frozen BatchNorm, --freeze-resnet)")
    parts.append("bucket tables and position ids recomputed from the config")
    return "; ".join(parts)
