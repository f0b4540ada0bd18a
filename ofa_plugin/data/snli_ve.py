"""SNLI-VE samples from TSV rows (reference §5.5): does the image (and premise) entail the hypothesis?"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import TextTokenizer, encode_text

from .answers import CandidateAnswers
from .closed_set import answer_fields
from .images import decode_image
from .text import pre_caption

SNLI_PROMPT = ' does the image describe " {} "?'
SNLI_CAPTION_PROMPT = ' can image and text1 " {} " imply text2 " {} "?'  # --add-caption: premise, hypothesis
LABEL_TO_ANSWER = {"contradiction": "no", "entailment": "yes", "neutral": "maybe"}


@dataclass
class SnliVeSampleBuilder:
    """Turns (uniq_id, image, hypothesis, premise caption, label) columns into an entailment sample.

    The label (contradiction / entailment / neutral) becomes the answer no / yes / maybe. The premise
    enters the instruction only with `add_caption`.
    """

    dictionary: Dictionary
    tokenizer: TextTokenizer
    transform: Callable
    tsv_path: str
    max_src_length: int
    add_caption: bool
    prompt_type: str
    candidates: CandidateAnswers

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        where = f"{self.tsv_path}: row {row}"
        if len(columns) != 5:
            raise ValueError(f"{where}: snli_ve rows need 5 selected columns "
                             f"(uniq_id, image, hypothesis, caption, label), got {len(columns)}")
        uniq_id, image_field, hypothesis, caption, label = columns
        if label not in LABEL_TO_ANSWER:
            raise ValueError(f"{where}: label must be one of {', '.join(LABEL_TO_ANSWER)}, got {label!r}")
        source = self.encode_instruction(hypothesis, caption, where)
        image = decode_image(image_field, self.tsv_path, row)
        return {
            "uniq_id": uniq_id,
            "source": source,
            "patch_image": self.transform(image),
            "patch_mask": True,
            **answer_fields(source, LABEL_TO_ANSWER[label], self.prompt_type, self.candidates, self.dictionary,
                            where),
        }

    def encode_instruction(self, hypothesis: str, caption: str, where: str) -> torch.Tensor:
        """[bos] + the instruction's tokens + [eos]."""
        hypothesis = pre_caption(hypothesis, self.max_src_length)
        if not hypothesis:
            raise ValueError(f"{where}: empty hypothesis")
        if self.add_caption:
            caption = pre_caption(caption, self.max_src_length)
            if not caption:
                raise ValueError(f"{where}: empty caption (premise), needed by --add-caption")
            prompt = SNLI_CAPTION_PROMPT.format(caption, hypothesis)
        else:
            prompt = SNLI_PROMPT.format(hypothesis)
        return encode_text(self.dictionary, self.tokenizer, prompt, append_bos=True, append_eos=True)
