"""Examples from one `vision_language_examples.tsv` row (reference §10.3): uniq-id, image, caption,
question, refs, gt_objects, dataset_name, type (caption | qa | visual_grounding).

- caption: " what does the image describe?" -> " {caption}"; in training plus an image-text matching
  example ' does the image describe " {caption} "?' -> " yes", or (half of the time) a negative caption
  -> " no". For dataset "cc12m" the first two target tokens are pad (not trained), as official.
- qa: " {question}" -> " {answer}" (the most confident answer, its confidence as loss weight); in training
  plus ' what is the answer to question " {q} ". is " {a} "?' -> " yes" / a negative answer -> " no".
- visual_grounding (refs = "x0,y0,x1,y1"): ' which region does the text " {caption} " describe?' -> 4 bin
  tokens; in training plus grounded captioning, '  what does the region describe? region:' (the official
  double space kept) + the 4 bin tokens -> " {caption}".
"""
import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import torch
from fairseq.data import Dictionary
from PIL import Image

from ofa_plugin.vocab import TextTokenizer, coord_to_bin, encode_text

from ..caption import CAPTION_PROMPT
from ..images import decode_image
from ..refcoco import REFCOCO_PROMPT, parse_region
from ..text import pre_caption, pre_question
from ..vqa import best_answer, parse_answers
from .examples import make_example
from .negatives import NegativeSamples

ITM_CAPTION_PROMPT = ' does the image describe " {} "?'
ITM_QA_PROMPT = ' what is the answer to question " {} ". is " {} "?'
GROUNDED_CAPTION_PROMPT = "  what does the region describe? region:"
PAIR_TYPES = ("caption", "qa", "visual_grounding")
NUM_COLUMNS = 8
UNTRAINED_PREFIX_DATASETS = {"cc12m": 2}  # dataset -> leading target tokens set to pad


@dataclass
class PairBuilder:
    dictionary: Dictionary
    tokenizer: TextTokenizer
    image_transform: Callable  # (image, rng) -> tensor
    grounding_transform: Callable  # (image, box, rng) -> (tensor, box)
    negatives: Optional[NegativeSamples]  # needed in training (matching examples)
    max_src_length: int
    max_tgt_length: int
    max_image_size: int
    num_bins: int
    is_training: bool
    tsv_path: str

    def __call__(self, columns: List[str], row: int, rng: random.Random) -> List[Dict[str, Any]]:
        if len(columns) != NUM_COLUMNS:
            raise ValueError(f"{self.tsv_path}: row {row}: image-text rows need {NUM_COLUMNS} selected columns "
                             "(uniq_id, image, caption, question, refs, gt_objects, dataset_name, type), "
                             f"got {len(columns)}")
        kind = columns[7]
        if kind not in PAIR_TYPES:
            raise ValueError(f"{self.tsv_path}: row {row}: type must be one of {PAIR_TYPES}, got {kind!r}")
        image = decode_image(columns[1], self.tsv_path, row)
        build = {"caption": self.caption, "qa": self.qa, "visual_grounding": self.grounding}[kind]
        return build(columns, image, row, rng)

    def _encode(self, text: str, bos_eos: bool = False) -> torch.Tensor:
        return encode_text(self.dictionary, self.tokenizer, text, append_bos=bos_eos, append_eos=bos_eos)

    def _yes_no(self, uniq_id: str, patch_image: torch.Tensor, positive: str, negative: str,
                rng: random.Random) -> Dict[str, Any]:
        """The matching example: the true statement half of the time (u >= 0.5), else the false one."""
        if rng.random() >= 0.5:
            return make_example(self.dictionary, uniq_id, self._encode(positive, True), self._encode(" yes"),
                                patch_image, True)
        return make_example(self.dictionary, uniq_id, self._encode(negative, True), self._encode(" no"),
                            patch_image, True)

    def caption(self, columns: List[str], image: Image.Image, row: int, rng: random.Random) -> List[Dict[str, Any]]:
        uniq_id, _, caption_field, _, _, objects_field, dataset_name, _ = columns
        caption = pre_caption(caption_field, self.max_tgt_length)
        if not caption:
            raise ValueError(f"{self.tsv_path}: row {row}: empty caption")
        patch_image = self.image_transform(image, rng)
        target = self._encode(" " + caption)
        target[: UNTRAINED_PREFIX_DATASETS.get(dataset_name, 0)] = self.dictionary.pad()
        examples = [make_example(self.dictionary, uniq_id, self._encode(CAPTION_PROMPT, True), target,
                                 patch_image, True)]
        if self.is_training:
            gt_objects = [o.strip() for o in objects_field.split("&&") if o.strip()]
            negative = self.negatives.caption(caption, gt_objects, rng)
            examples.append(self._yes_no(
                uniq_id, patch_image, ITM_CAPTION_PROMPT.format(pre_caption(caption, self.max_src_length)),
                ITM_CAPTION_PROMPT.format(pre_caption(negative, self.max_src_length)), rng))
        return examples

    def qa(self, columns: List[str], image: Image.Image, row: int, rng: random.Random) -> List[Dict[str, Any]]:
        uniq_id, _, _, question_field, refs, _, _, _ = columns
        question = pre_question(question_field, self.max_src_length)
        if not question:
            raise ValueError(f"{self.tsv_path}: row {row}: empty question")
        answers = parse_answers(refs, self.tsv_path, row)
        answer = best_answer(answers)
        conf = answers[answer]
        patch_image = self.image_transform(image, rng)
        examples = [make_example(self.dictionary, uniq_id, self._encode(" " + question, True),
                                 self._encode(" " + answer), patch_image, True, conf=conf)]
        if self.is_training:
            negative = self.negatives.answer(answer, conf, rng)
            examples.append(self._yes_no(uniq_id, patch_image, ITM_QA_PROMPT.format(question, answer),
                                         ITM_QA_PROMPT.format(question, negative), rng))
        return examples

    def grounding(self, columns: List[str], image: Image.Image, row: int, rng: random.Random) -> List[Dict[str, Any]]:
        uniq_id, _, caption_field, _, refs, _, _, _ = columns
        caption = pre_caption(caption_field, self.max_src_length)
        if not caption:
            raise ValueError(f"{self.tsv_path}: row {row}: empty region description")
        box = parse_region(refs, self.tsv_path, row).tolist()
        patch_image, crop_box = self.grounding_transform(image, box, rng)
        try:
            bins = " ".join(f"<bin_{coord_to_bin(c, self.max_image_size, self.num_bins)}>" for c in crop_box)
        except ValueError as err:
            raise ValueError(f"{self.tsv_path}: row {row}: {err}") from err
        bin_tokens = encode_text(self.dictionary, None, bins, use_bpe=False)
        examples = [make_example(self.dictionary, uniq_id, self._encode(REFCOCO_PROMPT.format(caption), True),
                                 bin_tokens, patch_image, True)]
        if self.is_training:
            bos, eos = torch.LongTensor([self.dictionary.bos()]), torch.LongTensor([self.dictionary.eos()])
            source = torch.cat([bos, self._encode(GROUNDED_CAPTION_PROMPT), bin_tokens, eos])
            examples.append(make_example(self.dictionary, uniq_id, source, self._encode(" " + caption),
                                         patch_image, True))
        return examples
