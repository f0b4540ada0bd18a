"""Image transforms of the official OFA evaluation pipeline (caption, VQA, SNLI-VE, classification eval)."""
from __future__ import annotations

from typing import Sequence

from torchvision import transforms

OFA_MEAN = (0.5, 0.5, 0.5)
OFA_STD = (0.5, 0.5, 0.5)
# Used only with `--imagenet-default-mean-and-std` (image classification), reference §4.4.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def square_resize_transform(
    size: int, mean: Sequence[float] = OFA_MEAN, std: Sequence[float] = OFA_STD
) -> transforms.Compose:
    """PIL RGB image -> normalised (3, size, size) float tensor; the aspect ratio is not kept.

    Bicubic resize to an exact square, as the official datasets do; bit-exact with their tensors.
    """
    if size <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    return transforms.Compose(
        [
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize(mean=list(mean), std=list(std)),
        ]
    )
