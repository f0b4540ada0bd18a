"""Image classification samples from TSV rows (reference §5.7) and the official training augmentation.

The instruction is the caption one; the answer is the class name, one of the candidate classes
(`--ans2label-file`). Training images go through timm's ImageNet pipeline with OFA's extra
RandomAugment after timm's RandAugment; evaluation images are only resized to a square.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence

from fairseq.data import Dictionary
from PIL import Image, ImageOps
from timm.data import create_transform
from timm.data.auto_augment import AugmentOp, RandAugment
from torch import nn
from torchvision import transforms

from ofa_plugin.vocab import TextTokenizer, encode_text

from .answers import CandidateAnswers
from .caption import CAPTION_PROMPT
from .closed_set import answer_fields
from .images import decode_image

CLASSIFY_PROMPT = CAPTION_PROMPT  # " what does the image describe?"
CLASSIFY_PROMPT_TYPE = "none"  # the decoder starts from bos alone

# OFA's own RandomAugment (applied after timm's): 2 ops drawn with replacement from these, each applied
# with probability 0.5 at magnitude 7 of 10. Its level -> argument mapping is the one timm's ops use
# (factor 0.1 + 1.8 m/10, shear 0.3 m/10, rotation 30 m/10 degrees, random sign), with translations of
# 10 m/10 pixels and the official grey fill (128) and bilinear resampling of its OpenCV implementation.
OFA_AUGMENT_OPS = ("AutoContrast", "Equalize", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX",
                   "TranslateY", "Rotate")
OFA_AUGMENT_LAYERS = 2
OFA_AUGMENT_MAGNITUDE = 7
OFA_AUGMENT_HPARAMS = {"translate_const": 10, "img_mean": (128, 128, 128), "interpolation": Image.BILINEAR}


def ofa_random_augment() -> RandAugment:
    """OFA's RandomAugment(N=2, M=7) over Identity and the ops above, on PIL images."""
    ops = [nn.Identity()] + [AugmentOp(name, prob=0.5, magnitude=OFA_AUGMENT_MAGNITUDE, hparams=OFA_AUGMENT_HPARAMS)
                             for name in OFA_AUGMENT_OPS]
    return RandAugment(ops, num_layers=OFA_AUGMENT_LAYERS)


def posterize_to_black_at_zero_bits(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's posterize, but 0 bits gives a black image (old Pillow's result, which the official recipe
    trained with) instead of Pillow >= 10's ValueError: timm's "PosterizeIncreasing" asks for 0 bits at
    magnitude 10, which rand-m9-mstd0.5 reaches now and then."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return img.point(lambda _: 0)
    return ImageOps.posterize(img, bits_to_keep)


def _allow_zero_bit_posterize(rand_augment: RandAugment) -> None:
    """Swap the posterize function of timm's RandAugment ops for the zero-bit-tolerant one."""
    for op in rand_augment.ops:
        if getattr(op, "name", "").startswith("Posterize"):
            op.aug_fn = posterize_to_black_at_zero_bits


def classify_train_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> transforms.Compose:
    """PIL RGB image -> augmented, normalised (3, size, size) tensor, as the official training recipe:
    timm's `create_transform` (random resized crop, flip, RandAugment rand-m9-mstd0.5-inc1, colour
    jitter off because of it, random erasing p=0.25 in pixel mode) with OFA's RandomAugment inserted
    right after timm's RandAugment."""
    timm_steps = create_transform(
        input_size=size, is_training=True, color_jitter=0.4, auto_augment="rand-m9-mstd0.5-inc1",
        interpolation="bicubic", re_prob=0.25, re_mode="pixel", re_count=1, mean=tuple(mean), std=tuple(std),
    ).transforms
    after = [i for i, step in enumerate(timm_steps) if isinstance(step, RandAugment)]
    if len(after) != 1:
        raise RuntimeError(f"timm's training pipeline has changed: expected one RandAugment step in {timm_steps}")
    split = after[0] + 1
    _allow_zero_bit_posterize(timm_steps[after[0]])
    return transforms.Compose([*timm_steps[:split], ofa_random_augment(), *timm_steps[split:]])


@dataclass
class ImageClassifySampleBuilder:
    """Turns (image, class name) columns into a classification sample; its id is the row index."""

    dictionary: Dictionary
    tokenizer: TextTokenizer
    transform: Callable
    tsv_path: str
    candidates: CandidateAnswers

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        where = f"{self.tsv_path}: row {row}"
        if len(columns) != 2:
            raise ValueError(f"{where}: image_classify rows need 2 selected columns (image, label name), "
                             f"got {len(columns)}")
        image_field, label_name = columns
        source = encode_text(self.dictionary, self.tokenizer, CLASSIFY_PROMPT, append_bos=True, append_eos=True)
        answer = answer_fields(source, label_name, CLASSIFY_PROMPT_TYPE, self.candidates, self.dictionary, where)
        image = decode_image(image_field, self.tsv_path, row)
        return {"uniq_id": int(row), "source": source, "patch_image": self.transform(image), "patch_mask": True,
                **answer}
