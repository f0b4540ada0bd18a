"""CIDEr-D, the reward of self-critical caption training (reference §6.3).

The computation is that of the COCO toolkit's `Cider` scorer (pycocoevalcap's `cider_scorer.py`, which
is CIDEr-D: clipped n-gram counts and a Gaussian length penalty) and of the `ciderD` copy the official
SCST code uses: n-grams of n = 1..4 of whitespace-split words, TF-IDF vectors with
`idf = ref_len - log(max(1, df))`, per n the clipped cosine `sum min(h, r) * r / (|h| |r|)` times
`exp(-(len_h - len_r)^2 / (2 sigma^2))` where the "length" is the number of bigrams (an artefact of the
original code, kept for equal numbers), averaged over n and over the references, times 10.

Document frequencies come from one of two places:
- "corpus" (`CiderD(None)`): from the references being scored, one document per image, with
  `ref_len = log(number of images)`; this is the COCO evaluation toolkit's CIDEr;
- cached (`CiderD(df)`): a `DocumentFrequency` computed once from the training references, stored in
  the official pickle format `{"document_frequency": {ngram tuple: count}, "ref_len": float}`
  (e.g. `coco-train-words.p`); SCST scores against it, so rewards do not depend on the batch.

The SCST reward wraps every caption as the official code does (`scst_wrap`) so that its statistics
match the cached frequencies, whose references end with an "<eos>" word.
"""
from __future__ import annotations

import math
import os
import pickle
import string
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

import numpy as np

NGRAM_ORDER = 4
SIGMA = 6.0
SCST_EOS_WORD = "<eos>"

Ngram = Tuple[str, ...]
_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)
# Globals an official document-frequency pickle may name: a defaultdict(float) of counts, and ref_len
# as a NumPy float64 (a NumPy scalar of a dtype, its bytes through _codecs.encode in protocols < 3), with
# the Python 2 module names of old pickles. Nothing else is unpickled.
_PICKLE_GLOBALS = {
    ("collections", "defaultdict"), ("builtins", "float"), ("builtins", "int"), ("__builtin__", "float"),
    ("__builtin__", "int"), ("_codecs", "encode"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


def scst_wrap(caption: str) -> str:
    """The official SCST form of a caption: ASCII punctuation removed, stripped, " <eos>" appended (the
    cached training frequencies were counted on references ending so). The official code then also drops
    a final '.', which the punctuation removal has already done."""
    return f"{caption.translate(_PUNCTUATION_TABLE).strip()} {SCST_EOS_WORD}"


def ngram_counts(sentence: str, n: int = NGRAM_ORDER) -> Counter:
    """Counts of the 1..n-grams (word tuples) of a whitespace-split sentence."""
    words = sentence.split()
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


@dataclass
class DocumentFrequency:
    """In how many documents (images) each n-gram occurs in some reference, and `ref_len`, the log of
    the number of documents: the IDF statistics of CIDEr-D."""

    counts: Dict[Ngram, float]
    ref_len: float

    @classmethod
    def from_references(cls, references: Iterable[Sequence[str]], n: int = NGRAM_ORDER) -> "DocumentFrequency":
        """Statistics of a corpus given as one list of reference captions per image."""
        counts: Counter = Counter()
        num_documents = 0
        for refs in references:
            counts.update({ngram for ref in refs for ngram in ngram_counts(ref, n)})
            num_documents += 1
        if num_documents == 0:
            raise ValueError("CIDEr-D document frequencies need at least one image's references")
        return cls({ngram: float(count) for ngram, count in counts.items()}, math.log(float(num_documents)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "DocumentFrequency":
        """Read the official pickle (`{"document_frequency": ..., "ref_len": ...}`, Python 2 or 3).

        Only plain containers, floats and NumPy scalars are unpickled, so a foreign pickle cannot run code.
        """
        try:
            with open(path, "rb") as handle:
                data = _DocumentFrequencyUnpickler(handle, encoding="latin1").load()
            counts = {tuple(str(word) for word in ngram): float(count)
                      for ngram, count in data["document_frequency"].items()}
            return cls(counts, float(data["ref_len"]))
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"{path}: not a CIDEr-D document-frequency pickle "
                             f"({{'document_frequency': {{ngram: count}}, 'ref_len': float}}): {err}") from err

    def save(self, path: str | os.PathLike) -> None:
        """Write the official pickle format, atomically (a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as tmp:
            pickle.dump({"document_frequency": self.counts, "ref_len": self.ref_len}, tmp,
                        protocol=pickle.HIGHEST_PROTOCOL)
        os.chmod(tmp.name, 0o644)
        os.replace(tmp.name, path)


class _DocumentFrequencyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


@dataclass
class TfIdfVector:
    """A sentence's TF-IDF weights per n-gram order, their norms and its bigram count."""

    weights: List[Dict[Ngram, float]]
    norms: List[float]
    length: int


class CiderD:
    """CIDEr-D scores of hypotheses against their images' references (module docstring).

    `df=None` takes the frequencies from the references of each `score` call ("corpus", the COCO
    toolkit's CIDEr); a `DocumentFrequency` keeps them fixed (SCST). Reference vectors are computed
    once per image and shared by all of that image's hypotheses.
    """

    def __init__(self, df: DocumentFrequency | None = None, n: int = NGRAM_ORDER, sigma: float = SIGMA):
        self.df, self.n, self.sigma = df, n, sigma

    def score(self, hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> List[np.ndarray]:
        """Per image i, the scores (float64 array) of each hypothesis in `hypotheses[i]` against
        `references[i]` (a non-empty list)."""
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypothesis groups for {len(references)} reference groups")
        if any(isinstance(refs, str) or not refs for refs in references):
            raise ValueError("every image needs a non-empty list of reference captions")
        df = self.df or DocumentFrequency.from_references(references, self.n)
        scores = []
        for hyps, refs in zip(hypotheses, references):
            ref_vectors = [self.vector(ref, df) for ref in refs]
            scores.append(np.array([self._similarity(self.vector(hyp, df), ref_vectors) for hyp in hyps],
                                   dtype=np.float64))
        return scores

    def vector(self, sentence: str, df: DocumentFrequency) -> TfIdfVector:
        """TF-IDF weights of a sentence's n-grams under the frequencies `df`."""
        weights: List[Dict[Ngram, float]] = [{} for _ in range(self.n)]
        squares = [0.0] * self.n
        length = 0
        for ngram, term_freq in ngram_counts(sentence, self.n).items():
            order = len(ngram) - 1
            weight = float(term_freq) * (df.ref_len - math.log(max(1.0, df.counts.get(ngram, 0.0))))
            weights[order][ngram] = weight
            squares[order] += weight ** 2
            if order == 1:  # the original code's "length": bigrams, not words
                length += term_freq
        return TfIdfVector(weights, [math.sqrt(s) for s in squares], length)

    def _similarity(self, hyp: TfIdfVector, refs: Sequence[TfIdfVector]) -> float:
        """Mean over n-gram orders and references of the clipped, length-penalised cosine, times 10."""
        total = np.zeros(self.n)
        for ref in refs:
            penalty = math.exp(-(float(hyp.length - ref.length) ** 2) / (2 * self.sigma ** 2))
            for order in range(self.n):
                ref_weights = ref.weights[order]
                dot = sum(min(w, ref_weights.get(g, 0.0)) * ref_weights.get(g, 0.0)
                          for g, w in hyp.weights[order].items())
                if hyp.norms[order] != 0 and ref.norms[order] != 0:
                    dot /= hyp.norms[order] * ref.norms[order]
                total[order] += dot * penalty
        return float(np.mean(total) / len(refs) * 10.0)
