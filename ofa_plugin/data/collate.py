"""Batching of OFA samples into the official `net_input` layout (reference §4.6)."""
from typing import Any, Dict, List

import torch
from fairseq.data import data_utils

# Sample key of the per-sample values a task needs at batch level after generation (see `collate`).
BATCH_EXTRAS = "batch_extras"


def collate_tokens(samples: List[Dict[str, Any]], key: str, pad_idx: int) -> torch.Tensor:
    """Right-pad the 1-D token tensors `sample[key]` into a (B, T) tensor."""
    return data_utils.collate_tokens([s[key] for s in samples], pad_idx, left_pad=False)


def collate(samples: List[Dict[str, Any]], pad_idx: int) -> Dict[str, Any]:
    """Collate samples with `id`, `source`, optional `patch_image`/`patch_mask`, `target`,
    `prev_output_tokens`, optional (T, V) `constraint_mask`, optional string `uniq_id` and optional
    `batch_extras` into a fairseq batch ({} when empty). Constraint masks are padded with True (padded
    positions allow everything, as official) into `constraint_masks` (B, T, V). `batch_extras` is a dict
    of per-sample values that a task needs after generation (e.g. refcoco's resize ratios, VQA's answer
    confidences): tensors are stacked into `batch[name]`, anything else is kept as a list."""
    if not samples:
        return {}
    src_tokens = collate_tokens(samples, "source", pad_idx)
    net_input = {"src_tokens": src_tokens, "src_lengths": src_tokens.ne(pad_idx).long().sum(1)}
    if "patch_image" in samples[0]:
        net_input["patch_images"] = torch.stack([s["patch_image"] for s in samples])
        net_input["patch_masks"] = torch.tensor([bool(s["patch_mask"]) for s in samples])
    batch = {
        "id": torch.tensor([s["id"] for s in samples], dtype=torch.long),
        "nsentences": len(samples),
        "net_input": net_input,
    }
    if "uniq_id" in samples[0]:
        batch["uniq_id"] = [s["uniq_id"] for s in samples]
    for name, first in samples[0].get(BATCH_EXTRAS, {}).items():
        values = [s[BATCH_EXTRAS][name] for s in samples]
        batch[name] = torch.stack(values) if isinstance(first, torch.Tensor) else values
    if "target" in samples[0]:
        batch["target"] = collate_tokens(samples, "target", pad_idx)
        net_input["prev_output_tokens"] = collate_tokens(samples, "prev_output_tokens", pad_idx)
        batch["ntokens"] = int(batch["target"].ne(pad_idx).sum())
        if "constraint_mask" in samples[0]:
            batch["constraint_masks"] = collate_constraint_masks([s["constraint_mask"] for s in samples])
    else:
        batch["ntokens"] = int(src_tokens.ne(pad_idx).sum())
    return batch


def collate_constraint_masks(masks: List[torch.Tensor]) -> torch.Tensor:
    """(T_i, V) bool masks -> (B, max T, V), padded rows all True."""
    batch = masks[0].new_ones(len(masks), max(m.size(0) for m in masks), masks[0].size(1))
    for i, mask in enumerate(masks):
        batch[i, : mask.size(0)] = mask
    return batch
