"""GLUE samples from TSV rows (reference §5.10): text-only prompts answered by one label token.

Every GLUE task has the same sample shape and differs only in its data: the prompt, the number of
sentence columns before the label column, and the raw label -> answer word mapping. Each sentence is
lower-cased and cut to its first `max_src_length` words; the answer must be a single token (the official
dataset asserts it), because prediction reads one token at the last decoder position. Targets carry no
eos, and only the answer row of the constraint mask is set (the first tokens of all candidates).
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Tuple

from fairseq.data import Dictionary

from ofa_plugin.vocab import TextTokenizer, encode_text

from .answers import CandidateAnswers
from .closed_set import answer_fields
from .decoder_prompts import PROMPT_TYPES

_YES_NO = {"0": "no", "1": "yes"}
_ENTAILMENT = {"not_entailment": "no", "entailment": "yes"}


@dataclass(frozen=True)
class GlueSpec:
    """The data of one GLUE task: `prompt` is formatted with the sentence columns in TSV order."""

    name: str
    columns: Tuple[str, ...]
    prompt: str
    labels: Mapping[str, str] = field(default_factory=dict)


GLUE_SPECS: Dict[str, GlueSpec] = {spec.name: spec for spec in (
    GlueSpec("cola", ("sentence",), ' is the text " {0} " grammatically correct?', _YES_NO),
    GlueSpec("mnli", ("sentence1", "sentence2"), ' can text1 " {0} " imply text2 " {1} "?',
             {"0": "maybe", "1": "yes", "2": "no"}),
    GlueSpec("mrpc", ("sentence1", "sentence2"), ' does text1 " {0} " and text2 " {1} " have the same semantics?',
             _YES_NO),
    GlueSpec("qnli", ("question", "sentence"), ' does " {1} " contain the answer to question " {0} "?',
             {**_YES_NO, **_ENTAILMENT}),
    GlueSpec("qqp", ("question1", "question2"), ' is question " {0} " and question " {1} " equivalent?', _YES_NO),
    GlueSpec("rte", ("sentence1", "sentence2"), ' can text1 " {0} " imply text2 " {1} "?', _ENTAILMENT),
    GlueSpec("sst2", ("sentence",), ' is the sentiment of text " {0} " positive or negative?',
             {"0": "negative", "1": "positive"}),
)}


def glue_sentence(text: str, max_words: int) -> str:
    """Official GLUE normalisation: lower-case, collapse whitespace, keep the first `max_words` words."""
    return " ".join(text.lower().split()[:max_words])


def check_single_token_answers(candidates: CandidateAnswers, task: str) -> None:
    """Raise ValueError unless every candidate answer is exactly one token (GLUE predicts one token)."""
    for answer, tokens in zip(candidates.answers, candidates.tokens):
        if len(tokens) != 1:
            raise ValueError(f"{task}: the answer {answer!r} of --ans2label-dict is {len(tokens)} tokens "
                             f"({tokens.tolist()}); GLUE answers must be single tokens of the vocabulary")


@dataclass
class GlueSampleBuilder:
    """Turns (sentence columns..., label) into a GLUE sample for `--prompt-type` none/src/prev_output;
    its id is the row index."""

    spec: GlueSpec
    dictionary: Dictionary
    tokenizer: TextTokenizer
    candidates: CandidateAnswers
    prompt_type: str
    tsv_path: str
    max_src_length: int

    def __post_init__(self):
        check_single_token_answers(self.candidates, self.spec.name)
        if self.prompt_type not in PROMPT_TYPES:
            raise ValueError(f"--prompt-type must be one of {', '.join(PROMPT_TYPES)}, got {self.prompt_type!r}")

    def __call__(self, columns: List[str], row: int) -> Dict[str, Any]:
        expected = len(self.spec.columns) + 1
        if len(columns) != expected:
            raise ValueError(f"{self.tsv_path}: row {row}: {self.spec.name} rows need {expected} selected columns "
                             f"({', '.join(self.spec.columns)}, label), got {len(columns)}")
        *sentences, label = columns
        answer = self.answer(label, row)
        text = self.spec.prompt.format(*(glue_sentence(s, self.max_src_length) for s in sentences))
        source = encode_text(self.dictionary, self.tokenizer, text, append_bos=True, append_eos=True)
        return {"uniq_id": int(row), "source": source,
                **answer_fields(source, answer, self.prompt_type, self.candidates, self.dictionary,
                                f"{self.tsv_path}: row {row}", append_eos=False)}

    def answer(self, label: str, row: int) -> str:
        """The answer word of a raw label; ValueError naming file and row if unknown or not a candidate."""
        answer = self.spec.labels.get(label.strip())
        if answer is None:
            raise ValueError(f"{self.tsv_path}: row {row}: unknown {self.spec.name} label {label!r}, expected one "
                             f"of {sorted(self.spec.labels)}")
        if answer not in self.candidates.answers:
            raise ValueError(f"{self.tsv_path}: row {row}: label {label!r} means {answer!r}, which is not among "
                             f"the candidate answers {self.candidates.answers} (--ans2label-dict)")
        return answer
