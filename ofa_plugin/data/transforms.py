"""Image transforms of the official OFA evaluation pipeline (caption, VQA, SNLI-VE, refcoco, classification eval)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from PIL import Image
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


def box_resize_transform(
    size: int, mean: Sequence[float] = OFA_MEAN, std: Sequence[float] = OFA_STD
) -> Callable[[Image.Image, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(PIL RGB image, float32 box xyxy in its pixels) -> (image tensor, box in resized pixels,
    w_resize_ratio, h_resize_ratio), the refcoco positioning transform (reference §5.4).

    The official RandomResize([S], max_size=S) always yields exactly S x S (aspect ratio not kept),
    bicubic, so the image goes through `square_resize_transform`. The box is scaled by the float32
    ratios (S/w, S/h) and the ratios are float32 `S / w`, as the official tensors are, so the bins and
    the decoded boxes are bit-exact.
    """
    image_transform = square_resize_transform(size, mean, std)

    def apply(image: Image.Image, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        width, height = image.size
        scale = torch.as_tensor([size / width, size / height] * 2, dtype=torch.float32)
        w_ratio = torch.tensor(size, dtype=torch.float32) / width
        h_ratio = torch.tensor(size, dtype=torch.float32) / height
        return image_transform(image), box.to(torch.float32) * scale, w_ratio, h_ratio

    return apply
