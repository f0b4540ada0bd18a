"""Image infilling examples from `image_examples.tsv` rows (uniq-id, image, codes), reference §10.3.

The image is 2S x 2S (S = code_image_size); its central S x S square is zeroed (after normalisation) and
the target is the (S/8)^2 VQGAN codes of that square, as `<code_i>` tokens.
"""
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import TextTokenizer, encode_text
from ofa_plugin.vqgan import CodeFormatError, parse_codes

from ..images import decode_image
from .examples import EXTRA_CONF, make_example
from .pair_transforms import normalise

IMAGE_INFILLING_PROMPT = " what is the image in the middle part?"
VQGAN_FACTOR = 8  # pixels per code side


def central_square(code_image_size: int) -> slice:
    """Rows/columns [int(0.5 S), int(1.5 S)) of a 2S x 2S image: the part the codes describe."""
    return slice(int(0.5 * code_image_size), int(1.5 * code_image_size))


@dataclass
class ImageInfillingBuilder:
    """(uniq_id, image, codes) -> example with the centre blanked and the centre's codes as target."""

    dictionary: Dictionary
    tokenizer: TextTokenizer
    code_image_size: int
    code_dict_size: int
    mean: Sequence[float]
    std: Sequence[float]
    tsv_path: str

    def __post_init__(self) -> None:
        self.to_tensor = normalise(self.mean, self.std)
        self.first_code = self.dictionary.index("<code_0>")
        self.num_codes = (self.code_image_size // VQGAN_FACTOR) ** 2

    def __call__(self, columns: List[str], row: int, rng: random.Random) -> Dict[str, Any]:
        if len(columns) != 3:
            raise ValueError(f"{self.tsv_path}: row {row}: image rows need 3 selected columns "
                             f"(uniq_id, image, codes), got {len(columns)}")
        uniq_id, image_field, code_field = columns
        image = decode_image(image_field, self.tsv_path, row)
        side = 2 * self.code_image_size
        if image.size != (side, side):
            raise ValueError(f"{self.tsv_path}: row {row}: image is {image.size[0]}x{image.size[1]}, image "
                             f"infilling needs {side}x{side} (2 x --code-image-size {self.code_image_size})")
        try:
            codes = parse_codes(code_field, self.code_dict_size, self.num_codes)
        except CodeFormatError as err:
            raise ValueError(f"{self.tsv_path}: row {row}: code column {err}") from err
        patch_image = self.to_tensor(image)
        centre = central_square(self.code_image_size)
        patch_image[:, centre, centre] = 0
        source = encode_text(self.dictionary, self.tokenizer, IMAGE_INFILLING_PROMPT, append_bos=True,
                             append_eos=True)
        target = torch.LongTensor(codes) + self.first_code
        return make_example(self.dictionary, uniq_id, source, target, patch_image, True, conf=EXTRA_CONF,
                            code_mask=True)
