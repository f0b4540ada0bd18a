"""Relative-position bucket tables and image position ids (reference §1.5, §1.6, §1.9.1).

All tables are pure functions of the hyper-parameters; they must be bit-identical to the official
ones because released checkpoints store them as buffers.
"""
import math

import torch


def token_bucket_table(bucket_size: int, max_position: int) -> torch.Tensor:
    """(max_position, max_position) int64: 1-D log-bucketed relative distance i - j, in [0, 2*bucket_size-2]."""
    relative = torch.arange(max_position)[:, None] - torch.arange(max_position)[None, :]
    sign = torch.sign(relative)
    mid = bucket_size // 2
    near = (relative < mid) & (relative > -mid)
    abs_pos = torch.where(near, torch.full_like(relative, mid - 1), relative.abs())
    log_pos = torch.ceil(torch.log(abs_pos / mid) / math.log((max_position - 1) / mid) * (mid - 1)) + mid
    bucket = torch.where(abs_pos.le(mid), relative, log_pos.int() * sign).long()
    return bucket + bucket_size - 1


def image_bucket_table(bucket_size: int) -> torch.Tensor:
    """(S*S+1, S*S+1) int64 2-D relative-position index over grid cells; row/col 0 is the special slot."""
    num_distances = num_image_buckets(bucket_size)
    rows, cols = torch.meshgrid(torch.arange(bucket_size), torch.arange(bucket_size), indexing="ij")
    flat = torch.stack([rows.flatten(), cols.flatten()])  # (2, S*S)
    delta = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0) + (bucket_size - 1)
    table = torch.zeros((bucket_size * bucket_size + 1,) * 2, dtype=torch.long)
    table[1:, 1:] = delta[:, :, 0] * (2 * bucket_size - 1) + delta[:, :, 1]
    table[0, :] = num_distances - 3
    table[:, 0] = num_distances - 2
    table[0, 0] = num_distances - 1
    return table


def num_token_buckets(bucket_size: int) -> int:
    return 2 * bucket_size - 1


def num_image_buckets(bucket_size: int) -> int:
    return (2 * bucket_size - 1) ** 2 + 3


def image_grid_position_ids(height: int, width: int, bucket_size: int) -> torch.Tensor:
    """Position id r * bucket_size + c + 1 of every patch of an h x w grid, row-major, shape (h*w,)."""
    if height > bucket_size or width > bucket_size:
        raise ValueError(
            f"image patch grid {height}x{width} exceeds --image-bucket-size {bucket_size} "
            f"(images larger than {16 * bucket_size}px need a larger bucket size)"
        )
    rows = torch.arange(height)[:, None] * bucket_size
    return (rows + torch.arange(width)[None, :] + 1).flatten()


def code_position_ids(code_image_size: int, bucket_size: int) -> torch.Tensor:
    """Decoder image position id of every step of an image-code sequence (official `image_position_idx`).

    Step 0 (bos) uses the special slot 0, step k+1 the k-th code's grid cell, and 769 further
    steps the arbitrary id 1024 (official constants: the buffer has 1 + window**2 + 769 entries).
    """
    window = code_image_size // 8
    grid = image_grid_position_ids(window, window, bucket_size)
    tail = torch.full((769,), 1024, dtype=torch.long)
    return torch.cat([torch.zeros(1, dtype=torch.long), grid, tail])
