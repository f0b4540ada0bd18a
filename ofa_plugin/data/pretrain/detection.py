"""Detection examples from `detection_examples.tsv` rows (uniq-id, image, boxes), reference §10.3.

Boxes are `x0,y0,x1,y1,cat_id,cat_name` items joined by `&&`. The image is flipped with probability 0.5
and large-scale-jittered to 2S x 2S (S = code_image_size): shorter side resized to round(u * 2S),
u ~ U[1, 1.5), then a random 2S x 2S crop; boxes follow, are clipped to the crop, and boxes left with no
area are dropped. Target: per box, 4 `<bin_i>` tokens (coordinates / max_image_size) then the tokens of
" {cat_name}"; then eos.
"""
import math
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import torch
from fairseq.data import Dictionary
from PIL import Image

from ofa_plugin.vocab import TextTokenizer, coord_to_bin, encode_text

from ..images import decode_image
from .examples import EXTRA_CONF, make_example
from .pair_transforms import normalise

DETECTION_PROMPT = " what are the objects in the image?"
BOX_SEPARATOR = "&&"
JITTER_SCALE = (1.0, 1.5)

Box = Tuple[float, float, float, float]


def parse_detection_boxes(field: str, tsv_path: str, row: int) -> List[Tuple[Box, str]]:
    """`x0,y0,x1,y1,cat_id,cat_name&&...` -> [(box, cat_name)] (the name may hold commas)."""
    boxes = []
    for item in field.split(BOX_SEPARATOR):
        parts = item.strip().split(",", 5)
        try:
            coords = tuple(float(v) for v in parts[:4])
        except ValueError:
            coords = ()
        if len(parts) != 6 or len(coords) != 4 or not all(math.isfinite(c) for c in coords) or not parts[5].strip():
            raise ValueError(f"{tsv_path}: row {row}: boxes must be 'x0,y0,x1,y1,cat_id,cat_name' items joined "
                             f"by '&&', got {item!r}")
        boxes.append((coords, parts[5].strip()))
    return boxes


def hflip(image: Image.Image, boxes: List[Tuple[Box, str]]) -> Tuple[Image.Image, List[Tuple[Box, str]]]:
    width = image.size[0]
    flipped = [((width - x1, y0, width - x0, y1), name) for (x0, y0, x1, y1), name in boxes]
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), flipped


def large_scale_jitter(image: Image.Image, boxes: List[Tuple[Box, str]], size: int,
                       rng: random.Random) -> Tuple[Image.Image, List[Tuple[Box, str]]]:
    """Resize the shorter side to round(u * size), u ~ U[1.0, 1.5), crop size x size at a random offset;
    boxes scaled, shifted, clipped, and dropped when empty."""
    width, height = image.size
    scaled = round(rng.uniform(*JITTER_SCALE) * size)
    scale = max(scaled / width, scaled / height)
    new_w, new_h = round(width * scale), round(height * scale)
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = math.floor((new_w - size) * rng.random()), math.floor((new_h - size) * rng.random())
    image = image.crop((left, top, left + size, top + size))
    kept = []
    for (x0, y0, x1, y1), name in boxes:
        box = tuple(min(max(v * scale - offset, 0.0), float(size))
                    for v, offset in ((x0, left), (y0, top), (x1, left), (y1, top)))
        if box[2] > box[0] and box[3] > box[1]:
            kept.append((box, name))
    return image, kept


@dataclass
class DetectionBuilder:
    """(uniq_id, image, boxes) -> example listing the boxes and names of the jittered image."""

    dictionary: Dictionary
    tokenizer: TextTokenizer
    image_size: int  # 2 x code_image_size
    max_image_size: int
    num_bins: int
    mean: Sequence[float]
    std: Sequence[float]
    tsv_path: str

    def __post_init__(self) -> None:
        self.to_tensor = normalise(self.mean, self.std)

    def __call__(self, columns: List[str], row: int, rng: random.Random) -> Dict[str, Any]:
        if len(columns) != 3:
            raise ValueError(f"{self.tsv_path}: row {row}: detection rows need 3 selected columns "
                             f"(uniq_id, image, boxes), got {len(columns)}")
        uniq_id, image_field, box_field = columns
        boxes = parse_detection_boxes(box_field, self.tsv_path, row)
        image = decode_image(image_field, self.tsv_path, row)
        if rng.random() < 0.5:
            image, boxes = hflip(image, boxes)
        image, boxes = large_scale_jitter(image, boxes, self.image_size, rng)
        source = encode_text(self.dictionary, self.tokenizer, DETECTION_PROMPT, append_bos=True, append_eos=True)
        return make_example(self.dictionary, uniq_id, source, self.target(boxes), self.to_tensor(image), True,
                            conf=EXTRA_CONF)

    def target(self, boxes: List[Tuple[Box, str]]) -> torch.Tensor:
        """4 bin tokens then " {name}" per box, in order (no eos)."""
        parts = [torch.zeros(0, dtype=torch.long)]
        for box, name in boxes:
            bins = " ".join(f"<bin_{coord_to_bin(c, self.max_image_size, self.num_bins)}>" for c in box)
            parts.append(encode_text(self.dictionary, None, bins, use_bpe=False))
            parts.append(encode_text(self.dictionary, self.tokenizer, " " + name))
        return torch.cat(parts)
