"""VQA samples from TSV rows (reference §5.3): question (+ detected objects), resized image, answer target.

The decoder sees a prompt (`--prompt-type`, see `decoder_prompts.py`) followed by the answer; the loss
covers the answer only, weighted by the answer's confidence (`conf`). With a candidate trie every answer
position carries a constraint mask of the candidates' continuations.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from fairseq.data import Dictionary, data_utils

from ofa_plugin.trie import AnswerTrie
from ofa_plugin.vocab import TextTokenizer, encode_text

from .closed_set import DECODER_PROMPTS
from .collate import BATCH_EXTRAS
from .decoder_prompts import PROMPT_TYPES, decoder_prompt, prompted_target
from .images import decode_image
from .text import pre_question

ANSWER_SEPARATOR = "&&"
CONFIDENCE_SEPARATOR = "|!+"
OBJECT_SEPARATOR = "&&"


def parse_answers(field: str, tsv_path: str, row: int) -> Dict[str, float]:
    """`conf|!+answer` items joined by `&&` -> {answer: conf}, as the official dataset reads them
    (a repeated answer keeps its first position and its last confidence)."""
    ref_dict: Dict[str, float] = {}
    for item in field.split(ANSWER_SEPARATOR):
        confidence, separator, answer = item.partition(CONFIDENCE_SEPARATOR)
        try:
            value = float(confidence)
        except ValueError:
            value = None
        if not separator or value is None or not answer:
            raise ValueError(f"{tsv_path}: row {row}: answers must be 'conf|!+answer' items joined by '&&' "
                             f"(e.g. '0.6|!+no&&1.0|!+yes'), got {field!r}")
        ref_dict[answer] = value
    return ref_dict


def best_answer(ref_dict: Dict[str, float]) -> str:
    """The training answer: the one with the highest confidence (the first of equals)."""
    return max(ref_dict, key=ref_dict.get)


def prefix_tokens(decoder_prompts: Sequence[Sequence[int]], pad: int) -> torch.Tensor:
    """(B, T) decoder prompts without their bos, right-padded: the tokens beam search is forced to start with."""
    return data_utils.collate_tokens([torch.LongTensor(list(p[1:])) for p in decoder_prompts], pad, left_pad=False)


@dataclass
class VqaSampleBuilder:
    """Turns (question_id, image, question, answers, objects[, caption]) columns into a VQA sample.

    Source: `[bos] + " {question}" (+ " object: {objects}") + [eos]`, the question normalised to
    `max_src_length` words and ended with "?". Target: `" {answer}"` (the most confident answer, cut
    to `max_tgt_length` tokens) after the decoder prompt. Batch extras: `question_id` (int), `conf`,
    `ref_dict` ({answer: confidence}, for the VQA score) and `decoder_prompts` (token-id lists, ragged).
    """

    dictionary: Dictionary
    tokenizer: TextTokenizer
    transform: Callable
    tsv_path: str
    max_src_length: int
    max_tgt_length: int
    max_object_length: int
    add_object: bool
    prompt_type: Optional[str]
    trie: Optional[AnswerTrie] = None

    def __post_init__(self):
        if self.prompt_type not in PROMPT_TYPES:
            raise ValueError(f"vqa_gen needs --prompt-type, one of {', '.join(PROMPT_TYPES)} (the official "
                             f"fine-tuning scripts use prev_output, zero-shot evaluation none), "
                             f"got {self.prompt_type!r}")

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        if len(columns) not in (5, 6):
            raise ValueError(f"{self.tsv_path}: row {row}: vqa_gen rows need 5 or 6 selected columns "
                             f"(question_id, image, question, answers, objects[, caption]), got {len(columns)}")
        question_id, image_field, question, answers_field, objects = columns[:5]
        if not question_id.strip().isdigit():
            raise ValueError(f"{self.tsv_path}: row {row}: question id must be an integer, got {question_id!r}")
        ref_dict = parse_answers(answers_field, self.tsv_path, row)
        answer = best_answer(ref_dict)
        source = self.encode_source(question, objects, row)
        image = decode_image(image_field, self.tsv_path, row)
        target = encode_text(self.dictionary, self.tokenizer, " " + answer)[: self.max_tgt_length]
        prompt = decoder_prompt(source, self.prompt_type, self.dictionary.bos())
        prompted = prompted_target(prompt, target, self.dictionary.pad(), self.dictionary.eos(), self.trie,
                                   len(self.dictionary))
        sample = {
            "source": source,
            "patch_image": self.transform(image),
            "patch_mask": True,
            "target": prompted.target,
            "prev_output_tokens": prompted.prev_output_tokens,
            BATCH_EXTRAS: {
                "question_id": int(question_id),
                "conf": torch.tensor(ref_dict[answer]),
                "ref_dict": ref_dict,
                # a list, not a tensor: prompts differ in length and tensors would be stacked
                DECODER_PROMPTS: prompted.decoder_prompt.tolist(),
            },
        }
        if prompted.constraint_mask is not None:
            sample["constraint_mask"] = prompted.constraint_mask
        return sample

    def encode_source(self, question: str, objects: str, row: int) -> torch.Tensor:
        """`[bos] + " {question}?" (+ " object: o1 o2 ...") + [eos]`, as the official dataset builds it."""
        question = pre_question(question, self.max_src_length)
        if not question:
            raise ValueError(f"{self.tsv_path}: row {row}: empty question")
        if not question.endswith("?"):
            question += "?"
        parts = [encode_text(self.dictionary, self.tokenizer, " " + question)]
        if self.add_object:  # encoded on its own, as the official dataset does
            names = objects.strip().split(OBJECT_SEPARATOR)[: self.max_object_length]
            parts.append(encode_text(self.dictionary, self.tokenizer, " object: " + " ".join(names)))
        bos, eos = torch.LongTensor([self.dictionary.bos()]), torch.LongTensor([self.dictionary.eos()])
        return torch.cat([bos, *parts, eos])
