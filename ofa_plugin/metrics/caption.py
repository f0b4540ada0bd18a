"""Corpus caption metrics as the COCO caption toolkit computes them: CIDEr, BLEU-1..4, METEOR, ROUGE-L.

The official evaluation (reference §8.2) runs pycocoevalcap's `COCOEvalCap`: Stanford's PTB tokenizer
(Java) with its punctuation tokens removed, then the Bleu(4), Meteor, Rouge and Cider scorers (SPICE
is not computed here). `caption_scores` does the same with one of two tokenisers:

- "java": the toolkit's own tokenizer command (stanford-corenlp-3.4.1.jar shipped in pycocoevalcap),
  run on the references and on the predictions as COCOEvalCap does, and METEOR (meteor-1.5.jar and
  its paraphrase table, also shipped). Needs a working `java`; METEOR's start takes ~15 s (it loads
  a 60 MB paraphrase table), so this path is meant for one final evaluation, not per batch.
- "python": `ptb_tokenize`, a pure-Python approximation of `PTBTokenizer -preserveLines -lowerCase`
  plus the punctuation removal. On the lowercase, ASCII-punctuation-free captions OFA scores
  (hypotheses and references both go through `strip_punctuation`) it gives the same tokens, up to
  rare non-ASCII symbols (Java writes "½" as "1/2"). On raw text it differs in rare cases: the
  toolkit keeps the final period of abbreviations ("u.s.", "mr."), splits off # $ % & * \\ as
  tokens, and keeps brackets as "-lrb-" etc. (its punctuation list has them in upper case, but
  -lowerCase lowercases them). METEOR needs Java and is then left out; CIDEr, BLEU and ROUGE-L are
  pure Python.
- "auto" (default): "java" when a working `java` is on PATH, else "python". If a Java tool fails in
  this mode, a warning is logged and the whole result is computed with "python" (the result says
  which tokeniser it used); with an explicit "java" such a failure raises `JavaMetricError`.

Scores are fractions as pycocoevalcap returns them: BLEU, METEOR and ROUGE-L in [0, 1]; CIDEr (not
CIDEr-D) is unbounded, typically 0..~2 for real systems and up to 10 (papers report it x100).
"""
import contextlib
import functools
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer import ptbtokenizer

logger = logging.getLogger(__name__)

TOKENIZERS = ("auto", "java", "python")

# Clitics the PTB tokenizer splits off and keeps as tokens ("dog's" -> "dog 's", "don't" -> "do n't").
_CLITIC = re.compile(r"(?<=\w)(n't|'s|'re|'ve|'m|'ll|'d)\b")
_CLITICS = {"n't", "'s", "'re", "'ve", "'m", "'ll", "'d"}
# Characters PTB always splits off; pycocoevalcap then drops them (quotes become `` ''; brackets: module docstring).
_ALWAYS_SEPARATE = re.compile(r"[!?;\"()\[\]{}]|--|\.\.\.")
_COMMA_NOT_IN_NUMBER = re.compile(r",(?!\d)|(?<!\d),")
# Dropped when they start or end a token; kept inside one ("well-known", "3.5").
_EDGE_PUNCT = ".,:-'`"
# Unicode quotes, dashes and ellipsis PTB normalises to the ASCII tokens above.
_UNICODE_PUNCT = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00ab": '"',
                                "\u00bb": '"', "\u2039": '"', "\u203a": '"', "\u2014": "--", "\u2013": "--",
                                "\u2026": "..."})
# Words PTB splits in two ("cannot" -> "can not").
_SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "gimme": "gim me", "lemme": "lem me",
                "wanna": "wan na"}

_PTB_CLASS = "edu.stanford.nlp.process.PTBTokenizer"
_ERROR_TAIL = 2000  # characters of a failed Java tool's stderr quoted in the error


class JavaMetricError(RuntimeError):
    """Java is missing, or a Java part of the COCO toolkit (PTB tokenizer, METEOR) failed."""


class CaptionScores(dict):
    """Metric name -> score (a plain dict of floats), plus the `tokenizer` used: "java" or "python"."""

    def __init__(self, scores: Mapping[str, float], tokenizer: str):
        super().__init__(scores)
        self.tokenizer = tokenizer


def ptb_tokenize(text: str) -> str:
    """Lowercase, split like the PTB tokenizer and drop pycocoevalcap's punctuation tokens."""
    text = _CLITIC.sub(r" \1", text.lower().replace("\n", " ").translate(_UNICODE_PUNCT))
    text = _COMMA_NOT_IN_NUMBER.sub(" ", _ALWAYS_SEPARATE.sub(" ", text))
    tokens = (word if word in _CLITICS else word.strip(_EDGE_PUNCT) for word in text.split())
    return " ".join(_SPLIT_WORDS.get(token, token) for token in tokens if token)


def java_available() -> bool:
    """Whether `java` on PATH runs (`java -version`); checked once per java binary."""
    java = shutil.which("java")
    return java is not None and _java_runs(java)


@functools.lru_cache(maxsize=None)
def _java_runs(java: str) -> bool:
    try:
        return subprocess.run([java, "-version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def resolve_tokenizer(tokenizer: str) -> str:
    """The tokeniser `caption_scores` uses for `tokenizer`: "java" or "python" ("auto" checks Java)."""
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown caption tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
    if tokenizer == "auto":
        return "java" if java_available() else "python"
    if tokenizer == "java" and not java_available():
        raise JavaMetricError("caption tokenizer 'java' needs a working `java` on PATH (none found); "
                              "use tokenizer='auto' or 'python' for the pure-Python fallback without METEOR")
    return tokenizer


def caption_scores(
    predictions: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]], tokenizer: str = "auto"
) -> CaptionScores:
    """Corpus CIDEr, BLEU-1..4, ROUGE-L and (Java only) METEOR of one predicted caption per key.

    Keys of both mappings must be identical; every key needs at least one reference. An empty
    prediction is allowed and contributes zero matches. `tokenizer` is "auto", "java" or "python"
    (module docstring); the result's `tokenizer` attribute says which one was used.
    """
    _check_keys(predictions, references)
    if resolve_tokenizer(tokenizer) == "java":
        try:
            return _java_scores(predictions, references)
        except JavaMetricError as error:
            if tokenizer == "java":
                raise
            logger.warning("COCO caption Java tools failed; scoring with the pure-Python tokeniser and without "
                           "METEOR instead: %s", error)
    res = {key: [ptb_tokenize(predictions[key])] for key in predictions}
    gts = {key: [ptb_tokenize(ref) for ref in references[key]] for key in predictions}
    return CaptionScores(_pure_python_metrics(gts, res), "python")


def _java_scores(predictions: Mapping, references: Mapping) -> CaptionScores:
    """COCOEvalCap's computation: Java PTB tokenisation of references and predictions, all scorers."""
    meteor = _start_meteor()  # the JVM loads the paraphrase table while the captions are tokenised
    gts = _java_ptb_tokenize({key: references[key] for key in predictions})
    res = _java_ptb_tokenize({key: [predictions[key]] for key in predictions})
    scores = _pure_python_metrics(gts, res)
    scores["METEOR"] = _meteor_score(meteor, gts, res)
    return CaptionScores(scores, "java")


def _pure_python_metrics(gts: dict, res: dict) -> dict[str, float]:
    """BLEU-1..4, ROUGE-L and CIDEr of tokenised captions (pycocoevalcap's pure-Python scorers)."""
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{n}": float(bleu[n - 1]) for n in range(1, 5)}
    scores["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    scores["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    return scores


def _java_ptb_tokenize(captions_for_image: Mapping[Hashable, Sequence[str]]) -> dict[Hashable, list[str]]:
    """pycocoevalcap's `PTBTokenizer.tokenize`: the same command, input lines and punctuation removal.

    Unlike the toolkit it checks the exit status and that every caption came back as one line (a
    caption with a character Java reads as a line break, e.g. "\\r", would shift all later captions),
    and it keeps its temporary file out of site-packages.
    """
    keys = [key for key, captions in captions_for_image.items() for _ in captions]
    sentences = "\n".join(caption.replace("\n", " ") for captions in captions_for_image.values()
                          for caption in captions)
    jar = Path(ptbtokenizer.__file__).parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "captions.txt"
        path.write_bytes(sentences.encode())
        command = ["java", "-cp", str(jar), _PTB_CLASS, "-preserveLines", "-lowerCase", str(path)]
        try:
            result = subprocess.run(command, capture_output=True)
        except OSError as error:
            raise JavaMetricError(f"cannot run the PTB tokenizer ({' '.join(command[:3])}): {error}") from error
    if result.returncode != 0:
        raise JavaMetricError(f"the PTB tokenizer ({jar.name}) exited with status {result.returncode}: "
                              f"{result.stderr.decode(errors='replace').strip()[-_ERROR_TAIL:]}")
    lines = result.stdout.decode().split("\n")
    if len(lines) != len(keys):
        raise JavaMetricError(f"the PTB tokenizer returned {len(lines)} lines for {len(keys)} captions; "
                              "a caption contains a character Java reads as a line break (\\r, \\f, \\v, \\u2028 ...)")
    tokenized: dict[Hashable, list[str]] = {key: [] for key in captions_for_image}
    for key, line in zip(keys, lines):
        tokenized[key].append(" ".join(w for w in line.rstrip().split(" ") if w not in ptbtokenizer.PUNCTUATIONS))
    return tokenized


def _start_meteor() -> Meteor:
    try:
        return Meteor()
    except OSError as error:
        raise JavaMetricError(f"cannot start METEOR (java -jar meteor-1.5.jar): {error}") from error


def _meteor_score(meteor: Meteor, gts: dict, res: dict) -> float:
    """Corpus METEOR from the toolkit's scorer; a dead or garbled METEOR process becomes JavaMetricError."""
    try:
        return float(meteor.compute_score(gts, res)[0])
    except (OSError, ValueError) as error:
        process = meteor.meteor_p
        process.kill()
        stderr = process.stderr.read().decode(errors="replace").strip()
        with contextlib.suppress(OSError):  # unflushed input to the dead process; the pipe closes either way
            process.stdin.close()
        if meteor.lock.locked():
            meteor.lock.release()  # compute_score failed holding it, and Meteor.__del__ acquires it
        raise JavaMetricError(f"METEOR (java -jar meteor-1.5.jar) failed: {error!r}; "
                              f"its stderr: {stderr[-_ERROR_TAIL:]}") from error


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
