"""The answer half of every closed-set sample (snli_ve, image_classify, GLUE; reference §5.3, §5.5, §5.7,
§5.10): the answer's decoder input, target and trie constraint mask after the task's decoder prompt, and
the per-sample values the task needs after scoring (the decoder prompt and the reference answer).
"""
from typing import Any, Dict

import torch
from fairseq.data import Dictionary

from .answers import CandidateAnswers
from .collate import BATCH_EXTRAS
from .decoder_prompts import decoder_prompt, prompted_target

# Batch keys of the closed-set extras (lists, one entry per sample).
DECODER_PROMPTS = "decoder_prompts"  # token ids the decoder is given before the answer
REF_LABELS = "ref_labels"  # the reference answer


def answer_fields(source: torch.Tensor, answer: str, prompt_type: str, candidates: CandidateAnswers,
                  dictionary: Dictionary, where: str, append_eos: bool = True) -> Dict[str, Any]:
    """target, prev_output_tokens, constraint_mask and batch extras of `answer` after the decoder prompt
    of `source` (`--prompt-type`); `where` ("file: row n") names the row in errors. The target ends
    with eos unless `append_eos` is False (GLUE).

    The answer must be a candidate: the constraint mask of any other answer would forbid its own tokens.
    """
    try:
        index = candidates.answers.index(answer)
    except ValueError:
        raise ValueError(f"{where}: answer {answer!r} is not one of the {len(candidates)} candidate answers "
                         f"(--ans2label-dict / --ans2label-file)") from None
    prompted = prompted_target(decoder_prompt(source, prompt_type, dictionary.bos()), candidates.tokens[index],
                               dictionary.pad(), dictionary.eos() if append_eos else None, candidates.trie,
                               len(dictionary))
    return {
        "target": prompted.target,
        "prev_output_tokens": prompted.prev_output_tokens,
        "constraint_mask": prompted.constraint_mask,
        # a list, not a tensor: prompts differ in length, and the collater stacks tensors
        BATCH_EXTRAS: {DECODER_PROMPTS: prompted.decoder_prompt.tolist(), REF_LABELS: answer},
    }
