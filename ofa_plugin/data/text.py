"""Text normalisation of the official OFA datasets (reference §4.5, §5.2).

Whitespace: the official normalisers collapse runs of two or more whitespace characters and strip only
spaces; here every whitespace run becomes one space and the ends are stripped. The two agree on all
official data (TSV fields hold no tabs or newlines) and differ only on a lone tab/newline/no-break space.
"""
from __future__ import annotations

import string

# Characters the official normalisers strip from the start of a caption or question.
_LEADING_JUNK = ",.!?*#:;~"
_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)


def _normalise(text: str, max_words: int | None) -> str:
    """Shared tail of pre_caption/pre_question: split '-' and '/', collapse whitespace, truncate."""
    text = text.lstrip(_LEADING_JUNK).replace("-", " ").replace("/", " ")
    words = text.split()
    if max_words is not None:
        words = words[:max_words]
    return " ".join(words)


def pre_question(text: str, max_words: int | None = None) -> str:
    """Official question normaliser: lowercase, drop leading ',.!?*#:;~', '-' and '/' -> space,
    collapse whitespace and keep the first `max_words` words (all if None)."""
    return _normalise(text.lower(), max_words)


def pre_caption(text: str, max_words: int | None = None) -> str:
    """Official caption normaliser: `pre_question` plus '<person>' -> 'person'."""
    return _normalise(text.lower().replace("<person>", "person"), max_words)


def strip_punctuation(text: str) -> str:
    """Remove every ASCII punctuation character (`string.punctuation`)."""
    return text.translate(_PUNCTUATION_TABLE)


def caption_train_target(caption: str, max_words: int) -> str:
    """Training target of the caption task: punctuation removed, no lowercasing, first `max_words` words.

    Raises ValueError for a caption with no words left, which would train on an empty target.
    """
    words = strip_punctuation(caption).split()[:max_words]
    if not words:
        raise ValueError(f"empty caption after removing punctuation: {caption!r}")
    return " ".join(words)


def caption_references(field: str) -> list[str]:
    """Reference captions of an evaluation row: split on '&&', punctuation removed, whitespace collapsed.

    Raises ValueError if any reference is empty (e.g. "a cat&&&&a dog"), which would skew the metrics.
    """
    references = [" ".join(strip_punctuation(ref).split()) for ref in field.split("&&")]
    if not all(references):
        raise ValueError(f"empty caption reference in {field!r}")
    return references
