"""Candidate answer sets of the closed-set tasks (`--ans2label-file` / `--ans2label-dict`).

The candidate order is the mapping's insertion order, which is also the order of all-candidate scores.
"""
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch
from fairseq.data import Dictionary

from ofa_plugin.trie import AnswerTrie
from ofa_plugin.vocab import TextTokenizer, encode_text


def load_ans2label(ans2label_file: Optional[str], ans2label_dict: str) -> Dict[str, int]:
    """The answer -> label mapping: from the pickle (or .json) file if given, else the JSON option."""
    if not ans2label_file:
        try:
            mapping = json.loads(ans2label_dict)
        except json.JSONDecodeError as err:
            raise ValueError(f"--ans2label-dict is not valid JSON: {ans2label_dict!r} ({err})") from err
    else:
        path = Path(ans2label_file)
        if not path.is_file():
            raise FileNotFoundError(f"--ans2label-file {path} does not exist")
        try:
            if path.suffix == ".json":
                mapping = json.loads(path.read_text())
            else:
                with path.open("rb") as handle:
                    mapping = pickle.load(handle)
        except (pickle.UnpicklingError, json.JSONDecodeError, EOFError) as err:
            raise ValueError(f"--ans2label-file {path} is not a pickled (or JSON) answer->label dict: {err}") from err
    if not isinstance(mapping, dict) or not mapping:
        source = ans2label_file or "--ans2label-dict"
        raise ValueError(f"{source}: expected a non-empty answer->label dict, got {type(mapping).__name__}")
    return mapping


@dataclass
class CandidateAnswers:
    """Answers, their token ids (without bos/eos) and the trie of `[bos] + tokens + [eos]`."""

    answers: List[str]
    tokens: List[torch.Tensor]
    trie: AnswerTrie

    @classmethod
    def build(cls, answers: List[str], dictionary: Dictionary, tokenizer: TextTokenizer) -> "CandidateAnswers":
        tokens = [encode_text(dictionary, tokenizer, " " + answer) for answer in answers]
        bos, eos = dictionary.bos(), dictionary.eos()
        trie = AnswerTrie(([bos] + t.tolist() + [eos] for t in tokens), eos=eos)
        return cls(list(answers), tokens, trie)

    def __len__(self) -> int:
        return len(self.answers)
