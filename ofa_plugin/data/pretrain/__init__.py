"""Pretraining data of the `unify_task` (reference §10): every example kind of OFA's pretraining.

Modules (one job each): `examples` (the example dict), `pairs` (caption / matching / QA / grounding /
grounded captioning from image-text rows), `pair_transforms` (their image transforms), `negatives` (negative
captions and answers), `infilling` (BART span masking), `text_infilling`, `image_infilling`, `detection`
(the extra examples of the side files), `dataset` (side readers, the per-row builder, the two-batch collater).
"""
from .dataset import SideReader, UnifyDataset, UnifySampleBuilder, collate_examples
from .detection import DetectionBuilder, large_scale_jitter, parse_detection_boxes
from .examples import EXTRA_CONF, make_example
from .image_infilling import ImageInfillingBuilder, central_square
from .infilling import SpanMasker, poisson_span_probabilities, word_start_mask
from .negatives import NegativeSamples
from .pair_transforms import grounding_transform, pair_image_transform
from .pairs import PairBuilder
from .text_infilling import TextInfillingBuilder

__all__ = [
    "EXTRA_CONF", "DetectionBuilder", "ImageInfillingBuilder", "NegativeSamples", "PairBuilder", "SideReader",
    "SpanMasker", "TextInfillingBuilder", "UnifyDataset", "UnifySampleBuilder", "central_square",
    "collate_examples", "grounding_transform", "large_scale_jitter", "make_example", "pair_image_transform",
    "parse_detection_boxes", "poisson_span_probabilities", "word_start_mask",
]
