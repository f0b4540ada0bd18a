"""VQA accuracy: the official VQA answer normalisation, soft accuracy from confidences, and the
10-human-answer accuracy.

`normalize_vqa_answer` follows the official VQA evaluation (vqaEval.py: `processPunctuation` then
`processDigitArticle`), including its quirks, so scores match the EvalAI server:
- the punctuation characters below are deleted where a space is next to them in the original text,
  or anywhere when the text holds a digit-comma-digit ("1,000 t-shirts" -> "1000 tshirts");
  otherwise each becomes a space ("black/white" -> "black white");
- a period not followed by a digit is deleted ("u.s." -> "us", "3.5" kept), at most 32 of them (the
  official passes `re.UNICODE`, i.e. 32, as `re.sub`'s count);
- apostrophes, colons and other characters outside the list are kept;
- lowercase, number words "none" and "zero".."ten" -> digits, articles a/an/the dropped, and
  apostrophe-less contractions restored ("dont" -> "don't").

Where the official evaluation differs from plain normalisation we choose normalisation: it skips
normalising the human answers and the prediction when all ten human answers are identical; here both
are always normalised, so "two" scores against ten "2"s.

OFA itself (reference §5.3) scores `ref_dict.get(hyp, 0)` on raw strings; `vqa_soft_accuracy` is that
score with the prediction and the keys normalised the same way.
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence

_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`",
                ",", "?", "!")
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
# The official pattern "(?!<=\d)(\.)(?!\d)" has a malformed look-behind that never blocks a match.
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
_OFFICIAL_PERIOD_COUNT = 32
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
# The official contraction map, minus its capitalised keys ("Im", "Ive", "Id've", "I'dve"), which can
# never match because the text is lowercased first. "somebody'd" -> "somebodyd" is the official entry.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're",
    "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're",
    "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
# An answer counts as fully correct once this many (other) humans gave it.
_HUMANS_FOR_FULL_CREDIT = 3


def _process_punctuation(text: str) -> str:
    """The official `processPunctuation` (see the module docstring)."""
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        # the official tests the original text, not the partly processed one
        delete = delete_all or f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if delete else " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def _process_digit_article(text: str) -> str:
    """The official `processDigitArticle`: lowercase, number words -> digits, drop articles, contractions."""
    words = (_NUMBER_WORDS.get(word, word) for word in text.lower().split())
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def normalize_vqa_answer(answer: str) -> str:
    """Normalise an answer as the official VQA evaluation does ("The two dogs." -> "2 dogs")."""
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    return _process_digit_article(_process_punctuation(text))


def vqa_soft_accuracy(prediction: str, answer_confidences: Mapping[str, float]) -> float:
    """Confidence of the normalised prediction among the normalised answers, 0 if absent (OFA's score).

    Confidences must lie in [0, 1]. If several answers normalise to the same string, the highest
    confidence counts. An empty mapping scores 0, as `ref_dict.get(hyp, 0)` does.
    """
    normalised: dict[str, float] = {}
    for answer, confidence in answer_confidences.items():
        if not (isinstance(confidence, numbers.Real) and 0.0 <= confidence <= 1.0):
            raise ValueError(f"confidence of answer {answer!r} must be a number in [0, 1], got {confidence!r}")
        key = normalize_vqa_answer(answer)
        normalised[key] = max(float(confidence), normalised.get(key, 0.0))
    return normalised.get(normalize_vqa_answer(prediction), 0.0)


def vqa_accuracy_from_human_answers(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy: min(1, #other humans who gave the answer / 3), averaged over leaving out
    each human answer in turn (10 answers in VQA v2: 1 match -> 0.3, 2 -> 0.6, 3 -> 0.9, 4+ -> 1)."""
    if isinstance(answers, str) or len(answers) == 0:
        raise ValueError(f"need a non-empty list of human answers, got {answers!r}")
    predicted = normalize_vqa_answer(prediction)
    matches = [normalize_vqa_answer(answer) == predicted for answer in answers]
    total = sum(matches)
    per_subset = (min(1.0, (total - left_out) / _HUMANS_FOR_FULL_CREDIT) for left_out in matches)
    return math.fsum(per_subset) / len(answers)
