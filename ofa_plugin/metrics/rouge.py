"""ROUGE-1/2/L for Gigaword, computed as Google's `rouge_score` does, and the PTB re-tokenisation of
hypotheses (reference §5.9, §8.2).

ROUGE follows `rouge_score.rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)`:
lowercase, every run of characters other than a-z0-9 is a separator, tokens longer than 3 characters
are stemmed with NLTK's Porter stemmer (its default NLTK_EXTENSIONS mode); ROUGE-N from clipped n-gram
counts, ROUGE-L from the longest common subsequence; precision, recall and F1 per sample. The
stemmer is imported only when stemming is asked for (it needs nltk, which rouge-score brings).
`corpus_rouge` averages the per-sample scores. The official training-time validation does the same
(x100); the official evaluate script reports the "mid" of rouge_score's bootstrap aggregate, a
resampled estimate of the same mean.

Split of the hypothesis post-processing between the gigaword task and this module: the task decodes,
lowercases and strips the text, calls `fix_tokenization` from here, then maps "<unk>" to " unk" and
every digit "1" to "#" (as the references' digits are). The references are only lowercased.
"""
from __future__ import annotations

import functools
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import NamedTuple

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")
_MIN_STEMMED_LENGTH = 4  # rouge_score stems only tokens longer than 3 characters

# Tokens PTB writes as escapes; "[UNK]" is BERT's unknown token.
_TOKEN_ESCAPES = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-",
                  "[UNK]": "UNK", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CLITICS_AFTER_APOSTROPHE = frozenset({"s", "d", "ll", "m", "re", "ve"})


class RougeScore(NamedTuple):
    """Precision, recall and F1 of one ROUGE type for one sample."""

    precision: float
    recall: float
    fmeasure: float


@functools.lru_cache(maxsize=1)
def _porter_stem() -> Callable[[str], str]:
    """NLTK's Porter stemmer (the one rouge_score uses), memoised per word."""
    try:
        from nltk.stem.porter import PorterStemmer
    except ImportError as err:
        raise ImportError("ROUGE with stemming needs nltk's Porter stemmer: install rouge-score "
                          "(it brings nltk), or pass use_stemmer=False") from err
    return functools.lru_cache(maxsize=1 << 16)(PorterStemmer().stem)


def rouge_tokenize(text: str, use_stemmer: bool = True) -> list[str]:
    """rouge_score's default tokenizer: lowercase, split on non-[a-z0-9], Porter-stem tokens of 4+ chars."""
    tokens = _NON_ALPHANUMERIC.sub(" ", text.lower()).split()
    if use_stemmer:
        stem = _porter_stem()
        tokens = [stem(token) if len(token) >= _MIN_STEMMED_LENGTH else token for token in tokens]
    return tokens


def _fmeasure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _ngrams(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(target_tokens: Sequence[str], prediction_tokens: Sequence[str], n: int) -> RougeScore:
    """ROUGE-N: clipped n-gram overlap over the prediction's (precision) and target's (recall) n-grams."""
    if n < 1:
        raise ValueError(f"ROUGE-N needs n >= 1, got {n}")
    target, prediction = _ngrams(target_tokens, n), _ngrams(prediction_tokens, n)
    overlap = sum((target & prediction).values())
    precision = overlap / max(sum(prediction.values()), 1)
    recall = overlap / max(sum(target.values()), 1)
    return RougeScore(precision, recall, _fmeasure(precision, recall))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence (dynamic programming, one row at a time)."""
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(target_tokens: Sequence[str], prediction_tokens: Sequence[str]) -> RougeScore:
    """ROUGE-L: longest common subsequence over the prediction's and the target's lengths."""
    if not target_tokens or not prediction_tokens:
        return RougeScore(0.0, 0.0, 0.0)
    lcs = _lcs_length(target_tokens, prediction_tokens)
    precision, recall = lcs / len(prediction_tokens), lcs / len(target_tokens)
    return RougeScore(precision, recall, _fmeasure(precision, recall))


def rouge_scores(target: str, prediction: str, use_stemmer: bool = True) -> dict[str, RougeScore]:
    """ROUGE-1, ROUGE-2 and ROUGE-L of one prediction against its target (rouge_score's `score`)."""
    target_tokens = rouge_tokenize(target, use_stemmer)
    prediction_tokens = rouge_tokenize(prediction, use_stemmer)
    return {
        "rouge1": rouge_n(target_tokens, prediction_tokens, 1),
        "rouge2": rouge_n(target_tokens, prediction_tokens, 2),
        "rougeL": rouge_l(target_tokens, prediction_tokens),
    }


def corpus_rouge(targets: Sequence[str], predictions: Sequence[str], use_stemmer: bool = True) -> dict[str, float]:
    """Mean per-sample ROUGE as fractions: keys "{rouge1,rouge2,rougeL}_{precision,recall,f1}"."""
    if len(targets) != len(predictions) or len(targets) == 0:
        raise ValueError(f"need equally many targets and predictions, at least one; got {len(targets)} "
                         f"and {len(predictions)}")
    sums = dict.fromkeys((f"{kind}_{part}" for kind in ROUGE_TYPES for part in ("precision", "recall", "f1")), 0.0)
    for target, prediction in zip(targets, predictions):
        for kind, score in rouge_scores(target, prediction, use_stemmer).items():
            sums[f"{kind}_precision"] += score.precision
            sums[f"{kind}_recall"] += score.recall
            sums[f"{kind}_f1"] += score.fmeasure
    return {name: total / len(targets) for name, total in sums.items()}


def _is_number(token: str | None) -> bool:
    """Digits, possibly with thousands commas ("3", "3,000")."""
    return bool(token) and any(c.isdigit() for c in token) and all(c.isdigit() or c == "," for c in token)


def _is_letter(token: str | None) -> bool:
    return token is not None and len(token) == 1 and token.isalpha()


def _is_punctuation(token: str) -> bool:
    return all(c in string.punctuation for c in token)


def fix_tokenization(text: str) -> str:
    """Re-tokenise a detokenised hypothesis PTB-style, the way Gigaword references are written.

    On whitespace tokens: brackets -> -lrb- -rrb- -lsb- -rsb- -lcb- -rcb-, & < > -> &amp; &lt; &gt;;
    '"' alternately -> `` and ''; "don ' t" -> "do n't"; "' s" (also 'd 'll 'm 're 've) -> "'s"; other
    lone "'" alternately -> ` and '; ". . ." -> "..."; "3 , 000" -> "3,000"; "3 . 5" -> "3.5";
    "u . s ." -> "u.s."; "- -" -> "--"; "a - b" -> "a-b" (a dash between two words is joined, one at
    the start or end, or next to punctuation, stays a token).
    """
    tokens = text.split()
    out: list[str] = []
    double_open = single_open = glue_next = False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        after = tokens[i + 2] if i + 2 < len(tokens) else None
        glue, glue_next = glue_next, False
        step = 1
        if token in _TOKEN_ESCAPES:
            out.append(_TOKEN_ESCAPES[token])
        elif token == '"':
            out.append("''" if double_open else "``")
            double_open = not double_open
        elif token == "'" and out and out[-1].endswith("n") and following == "t":
            word = out.pop()[:-1]
            out.extend([word, "n't"] if word else ["n't"])
            step = 2
        elif token == "'" and following in _CLITICS_AFTER_APOSTROPHE:
            out.append("'" + following)
            step = 2
        elif token == "'":
            out.append("'" if single_open else "`")
            single_open = not single_open
        elif token == "." and following == "." and after == ".":
            out.append("...")
            step = 3
        elif token == "," and out and _is_number(out[-1]) and _is_number(following):
            out[-1] += "," + following
            step = 2
        elif token == "." and out and out[-1].isdigit() and following is not None and following.isdigit():
            out[-1] += "." + following
            step = 2
        elif token == "." and out and _is_letter(out[-1]) and _is_letter(following) and after == ".":
            out[-1] += "." + following + "."
            step = 3
            while _is_letter(tokens[i + step] if i + step < len(tokens) else None) \
                    and i + step + 1 < len(tokens) and tokens[i + step + 1] == ".":
                out[-1] += tokens[i + step] + "."
                step += 2
        elif token == "-" and following == "-":
            out.append("--")
            step = 2
        elif token == "-" and out and following is not None and not _is_punctuation(out[-1]) \
                and following[0] not in string.punctuation:
            out[-1] += "-"
            glue_next = True
        elif glue and token[0] not in string.punctuation:
            out[-1] += token
        else:
            out.append(token)
        i += step
    return " ".join(out)
