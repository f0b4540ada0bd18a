"""Image transforms of the image-text pairs (reference §10.3), for a patch image side P.

Official sizes at P = 384: the shorter side is resized to a random integer in [384, 480], the longer side
follows the aspect ratio but is capped at 672 (the cap distorts very long images). These bounds are kept
proportional to P (480 = 1.25 P, 672 = 1.75 P), so that small toy images are zoomed as much as official
ones. Caption/QA images are then centre-cropped to P x P and augmented (OFA's RandomAugment); grounding
images are cropped P x P around the box centre (clamped to the image), the box following the crop.
"""
import random
from typing import Callable, Sequence, Tuple

import torch
from PIL import Image
from torchvision import transforms

from ..image_classify import ofa_random_augment

MAX_SCALE = 480 / 384
MAX_LONG_SIDE = 672 / 384


def random_resize(image: Image.Image, patch_size: int, rng: random.Random) -> Image.Image:
    """Shorter side -> a random integer in [P, int(1.25 P)], longer side by the aspect ratio, capped at
    int(1.75 P); bicubic."""
    shorter = rng.randint(patch_size, int(patch_size * MAX_SCALE))
    longest = int(patch_size * MAX_LONG_SIDE)
    width, height = image.size
    if width < height:
        size = (shorter, min(int(shorter * height / width), longest))
    else:
        size = (min(int(shorter * width / height), longest), shorter)
    return image.resize(size, Image.Resampling.BICUBIC)


def normalise(mean: Sequence[float], std: Sequence[float]) -> Callable[[Image.Image], torch.Tensor]:
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(list(mean), list(std))])


def pair_image_transform(patch_size: int, mean: Sequence[float], std: Sequence[float],
                         augment: bool = True) -> Callable[[Image.Image, random.Random], torch.Tensor]:
    """Caption/QA images: random resize, centre crop P x P, RandomAugment (training), normalise."""
    crop = transforms.CenterCrop(patch_size)
    steps = [ofa_random_augment()] if augment else []
    finish = transforms.Compose([*steps, normalise(mean, std)])

    def apply(image: Image.Image, rng: random.Random) -> torch.Tensor:
        return finish(crop(random_resize(image, patch_size, rng)))

    return apply


Box = Tuple[float, ...]


def grounding_transform(patch_size: int, mean: Sequence[float], std: Sequence[float]
                        ) -> Callable[[Image.Image, Box, random.Random], Tuple[torch.Tensor, Box]]:
    """Grounding images: random resize, P x P crop centred on the box (clamped to the image), normalise;
    returns the image and the box in crop pixels (clipped to the crop)."""
    to_tensor = normalise(mean, std)

    def apply(image: Image.Image, box: Box, rng: random.Random) -> Tuple[torch.Tensor, Box]:
        width, height = image.size
        image = random_resize(image, patch_size, rng)
        sx, sy = image.size[0] / width, image.size[1] / height
        x0, y0, x1, y1 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
        left = round(min(max((x0 + x1) / 2 - patch_size / 2, 0), image.size[0] - patch_size))
        top = round(min(max((y0 + y1) / 2 - patch_size / 2, 0), image.size[1] - patch_size))
        image = image.crop((left, top, left + patch_size, top + patch_size))
        crop_box = tuple(min(max(v - offset, 0.0), float(patch_size))
                         for v, offset in ((x0, left), (y0, top), (x1, left), (y1, top)))
        return to_tensor(image), crop_box

    return apply
