"""SNLI-VE samples from TSV rows (reference §5.5): does the image (and premise) entail the hypothesis?

Also the answer half of every closed-set image sample (snli_ve, image_classify): the answer's decoder
input, target and trie constraint mask after the task's decoder prompt, and the per-sample values the
task needs after scoring (the decoder prompt and the reference answer).
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import TextTokenizer, encode_text

from .answers import CandidateAnswers
from .collate import BATCH_EXTRAS
from .decoder_prompts import decoder_prompt, prompted_target
from .images import decode_image
from .text import pre_caption

SNLI_PROMPT = ' does the image describe " {} "?'
SNLI_CAPTION_PROMPT = ' can image and text1 " {} " imply text2 " {} "?'  # --add-caption: premise, hypothesis
LABEL_TO_ANSWER = {"contradiction": "no", "entailment": "yes", "neutral": "maybe"}

# Batch keys of the closed-set extras (lists, one entry per sample).
DECODER_PROMPTS = "decoder_prompts"  # token ids the decoder is given before the answer
REF_LABELS = "ref_labels"  # the reference answer


def answer_fields(source: torch.Tensor, answer: str, prompt_type: str, candidates: CandidateAnswers,
                  dictionary: Dictionary, where: str) -> Dict[str, Any]:
    """target, prev_output_tokens, constraint_mask and batch extras of `answer` after the decoder prompt
    of `source` (`--prompt-type`); `where` ("file: row n") names the row in errors.

    The answer must be a candidate: the constraint mask of any other answer would forbid its own tokens.
    """
    try:
        index = candidates.answers.index(answer)
    except ValueError:
        raise ValueError(f"{where}: answer {answer!r} is not one of the {len(candidates)} candidate answers "
                         f"(--ans2label-dict / --ans2label-file)") from None
    prompted = prompted_target(decoder_prompt(source, prompt_type, dictionary.bos()), candidates.tokens[index],
                               dictionary.pad(), dictionary.eos(), candidates.trie, len(dictionary))
    return {
        "target": prompted.target,
        "prev_output_tokens": prompted.prev_output_tokens,
        "constraint_mask": prompted.constraint_mask,
        # a list, not a tensor: prompts differ in length, and the collater stacks tensors
        BATCH_EXTRAS: {DECODER_PROMPTS: prompted.decoder_prompt.tolist(), REF_LABELS: answer},
    }


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
