"""Corpus caption metrics: COCO CIDEr and BLEU-1..4 with pycocoevalcap's scorers.

The official evaluation (reference §8.2) runs pycocoevalcap's `COCOEvalCap`, whose PTB tokenizer is a
Java program. Java may be absent, so text is tokenised here by `ptb_tokenize`, a pure-Python
approximation of `PTBTokenizer -preserveLines -lowerCase` followed by pycocoevalcap's punctuation
removal. On the lowercase, punctuation-stripped captions OFA produces it gives the same tokens; on raw
text it can differ in rare cases (e.g. "u.s." or "1,000" at a token edge).

Scores are fractions as pycocoevalcap returns them: BLEU in [0, 1]; CIDEr (not CIDEr-D) is
unbounded, typically 0..~2 for real systems and up to ~10 (papers report it x100).
"""
import re
from collections.abc import Hashable, Mapping, Sequence

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider

# Clitics the PTB tokenizer splits off and keeps as tokens ("dog's" -> "dog 's", "don't" -> "do n't").
_CLITIC = re.compile(r"(?<=\w)(n't|'s|'re|'ve|'m|'ll|'d)\b")
_CLITICS = {"n't", "'s", "'re", "'ve", "'m", "'ll", "'d"}
# Characters PTB always splits off and pycocoevalcap then drops (brackets become -LRB- etc., quotes `` '').
_ALWAYS_SEPARATE = re.compile(r"[!?;\"()\[\]{}]|--|\.\.\.")
_COMMA_NOT_IN_NUMBER = re.compile(r",(?!\d)|(?<!\d),")
# Dropped when they start or end a token; kept inside one ("well-known", "3.5").
_EDGE_PUNCT = ".,:-'`"


def ptb_tokenize(text: str) -> str:
    """Lowercase, split like the PTB tokenizer and drop pycocoevalcap's punctuation tokens."""
    text = _CLITIC.sub(r" \1", text.lower().replace("\n", " "))
    text = _COMMA_NOT_IN_NUMBER.sub(" ", _ALWAYS_SEPARATE.sub(" ", text))
    tokens = (word if word in _CLITICS else word.strip(_EDGE_PUNCT) for word in text.split())
    return " ".join(token for token in tokens if token)


def caption_scores(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]
) -> dict[str, float]:
    """Corpus CIDEr and BLEU-1..4 of one predicted caption per key against that key's references.

    Keys of both mappings must be identical; every key needs at least one reference. An empty
    prediction is allowed and contributes zero n-gram matches.
    """
    _check_keys(predictions, references)
    res = {key: [ptb_tokenize(predictions[key])] for key in predictions}
    gts = {key: [ptb_tokenize(ref) for ref in references[key]] for key in predictions}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, _ = Cider().compute_score(gts, res)
    scores = {"CIDEr": float(cider)}
    scores.update({f"BLEU-{n}": float(bleu[n - 1]) for n in range(1, 5)})
    return scores


def _check_keys(predictions: Mapping, references: Mapping) -> None:
    if not predictions:
        raise ValueError("caption_scores needs at least one prediction")
    missing_refs = [k for k in predictions if k not in references]
    missing_preds = [k for k in references if k not in predictions]
    if missing_refs or missing_preds:
        raise ValueError(
            f"prediction and reference keys differ: no references for {missing_refs[:10]}"
            f"{' ...' if len(missing_refs) > 10 else ''}, no prediction for {missing_preds[:10]}"
            f"{' ...' if len(missing_preds) > 10 else ''}"
        )
    empty = [k for k, refs in references.items() if isinstance(refs, str) or len(refs) == 0]
    if empty:
        raise ValueError(f"references must be a non-empty list of strings; bad entries for keys {empty[:10]}")
