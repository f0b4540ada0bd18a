"""Caption metrics (COCO CIDEr, BLEU-1..4, METEOR, ROUGE-L) and the fairseq scorer `ofa_caption`.

Checks of the Java path run against the real COCO toolkit when `java` is on PATH (as on CI); without
Java the same tests check the pure-Python fallback instead, so nothing is skipped. METEOR's start
takes ~15 s, so the module shares one METEOR process (`shared_meteor`).
"""
import math
import os
import re
import shutil
from pathlib import Path

import pytest
from fairseq.scoring import SCORER_REGISTRY, build_scorer
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from ofa_plugin.metrics import caption
from ofa_plugin.metrics.caption import (
    JavaMetricError, caption_scores, java_available, ptb_tokenize, resolve_tokenizer,
)
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.scorer import CaptionPrediction, CaptionScorer, split_references, strip_punctuation

from conftest import BPE_DIR

HAS_JAVA = shutil.which("java") is not None
PURE_PYTHON_METRICS = {"CIDEr", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"}

REFS = {
    "1": ["a red circle and a blue square"],
    "2": ["two green triangles near the fence"],
    "3": ["an orange ball above brown boxes"],
}

# Raw captions with what the PTB tokenizer cares about: case, punctuation, quotes, clitics, brackets,
# abbreviations, "cannot", numbers, non-ASCII text, an empty prediction, a punctuation-only reference.
RAW_PREDICTIONS = {
    391: "A man riding a motorbike on a dirt road.",
    74: "Two dogs (brown) playing in the U.S. park!",
    5: "",
    1200: "A café table with 1,000 cups, isn't it?",
    8: "The cat cannot reach the shelf.",
}
RAW_REFERENCES = {
    5: ["A plate of food on a wooden table.", "..."],
    8: ["A cat can't reach the top shelf.", "The kitten cannot get to the shelf -- it's too high."],
    74: ["Two brown dogs play in a park in the U.S.", "Dogs [two] running on grass.", "A pair of dogs outside."],
    391: ["A man with a red helmet rides a motorbike on a dirt road.",
          'Man riding a "vintage" motor bike on a country road.'],
    1200: ["A table in a café holding many cups.", "Lots of cups (about 1,000) on a cafe table."],
}

# Captions as OFA scores them: strip_punctuation'ed text (lowercase decoder output; references keep case).
OFA_PREDICTIONS = {0: "a man riding a motorbike on a dirt road", 1: "two dogs playing in the park",
                   2: "a cat cannot reach the shelf", 3: "a café table with 1000 cups", 4: ""}
OFA_REFERENCES = {0: ["A man with a red helmet rides a motorbike on a dirt road", "Man riding a motor bike"],
                  1: ["Two brown dogs play in a park", "dogs wanna play outside"],
                  2: ["A cats paw cant reach the top shelf", "the kitten cannot get to the shelf"],
                  3: ["A table in a café holding many cups"], 4: ["A plate of food on a wooden table"]}


@pytest.fixture(scope="module")
def meteor_process():
    """One METEOR process for the module (None without Java: no test reaches METEOR then)."""
    return Meteor() if HAS_JAVA else None


@pytest.fixture
def shared_meteor(monkeypatch, meteor_process):
    """`caption_scores` uses the module's METEOR process instead of starting its own."""
    monkeypatch.setattr(caption, "Meteor", lambda: meteor_process)
    return meteor_process


@pytest.fixture
def no_java_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))


def _use_fake_java(monkeypatch, folder: Path, tokenizer: str) -> None:
    """Put first on PATH a `java` that passes `java -version`, runs the PTB tokenizer as `tokenizer`
    (a shell command reading the caption file "$last") and fails to start METEOR like a JVM without memory."""
    script = folder / "java"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        "  -version) exit 0 ;;\n"
        f'  -cp) for last; do :; done; {tokenizer} ;;\n'
        '  *) echo "Error occurred during initialization of VM" >&2; exit 1 ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def _coco_eval_cap(predictions: dict, references: dict, meteor) -> dict[str, float]:
    """What `COCOEvalCap.evaluate` computes (without SPICE), done step by step with pycocoevalcap."""
    gts = {key: [{"caption": ref} for ref in references[key]] for key in predictions}
    res = {key: [{"caption": predictions[key]}] for key in predictions}
    tokenizer = PTBTokenizer()
    gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    return _scorers(gts, res) | {"METEOR": meteor.compute_score(gts, res)[0]}


def _python_reference(predictions: dict, references: dict) -> dict[str, float]:
    """The pycocoevalcap scorers on `ptb_tokenize`d captions."""
    gts = {key: [ptb_tokenize(ref) for ref in references[key]] for key in predictions}
    res = {key: [ptb_tokenize(predictions[key])] for key in predictions}
    return _scorers(gts, res)


def _scorers(gts: dict, res: dict) -> dict[str, float]:
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {"BLEU-1": bleu[0], "BLEU-2": bleu[1], "BLEU-3": bleu[2], "BLEU-4": bleu[3],
            "ROUGE-L": Rouge().compute_score(gts, res)[0], "CIDEr": Cider().compute_score(gts, res)[0]}


# --- pure-Python path: tokeniser and hand-computed scores ----------------------------------------


def test_ptb_fallback_tokenisation():
    assert ptb_tokenize("A Dog's toy, on the mat.") == "a dog 's toy on the mat"
    assert ptb_tokenize('Don\'t "stop" now... end--start!') == "do n't stop now end start"
    assert ptb_tokenize("well-known 3.5 1,000 dogs' toys") == "well-known 3.5 1,000 dogs toys"
    assert ptb_tokenize("You cannot, gonna wanna") == "you can not gon na wan na"
    assert ptb_tokenize("the dog\u2019s \u201cball\u201d \u2014 wait\u2026") == "the dog 's ball wait"
    assert ptb_tokenize("  ") == ""


def test_identical_predictions_score_perfectly():
    predictions = {key: refs[0] for key, refs in REFS.items()}
    scores = caption_scores(predictions, REFS, tokenizer="python")
    assert scores.tokenizer == "python" and set(scores) == PURE_PYTHON_METRICS
    for n in range(1, 5):
        assert scores[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(1.0)
    # every n-gram vector equals its reference's: cosine 1 for n = 1..4, times CIDEr's factor 10
    assert scores["CIDEr"] == pytest.approx(10.0)


def test_case_and_punctuation_do_not_matter():
    predictions = {"1": "A red circle, and a blue square.", "2": "Two green triangles near the fence!",
                   "3": "an orange ball above brown boxes"}
    assert caption_scores(predictions, REFS, tokenizer="python") == pytest.approx(caption_scores(
        {key: refs[0] for key, refs in REFS.items()}, REFS, tokenizer="python"))


def test_bleu_and_rouge_hand_case():
    # hyp "a red circle on a blue square" vs ref "a red circle on the blue square" (both 7 words, BP = 1)
    # clipped n-gram precisions: 1-gram 6/7 ("a" only once in ref), 2-gram 4/6 (a red, red circle,
    # circle on, blue square), 3-gram 2/5 (a red circle, red circle on), 4-gram 1/4 (a red circle on)
    # BLEU-n = geometric mean of the first n precisions:
    #   BLEU-1 = 6/7, BLEU-2 = (4/7)^(1/2), BLEU-3 = (8/35)^(1/3), BLEU-4 = (2/35)^(1/4)
    # ROUGE-L: LCS "a red circle on blue square" = 6 words, precision = recall = 6/7, so F = 6/7
    scores = caption_scores({0: "a red circle on a blue square"}, {0: ["a red circle on the blue square"]},
                            tokenizer="python")
    assert scores["BLEU-1"] == pytest.approx(6 / 7, rel=1e-6)
    assert scores["BLEU-2"] == pytest.approx((4 / 7) ** 0.5, rel=1e-6)
    assert scores["BLEU-3"] == pytest.approx((8 / 35) ** (1 / 3), rel=1e-6)
    assert scores["BLEU-4"] == pytest.approx((2 / 35) ** 0.25, rel=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(6 / 7)


def test_brevity_penalty_and_rouge_recall_hand_case():
    # 3 correct words against a 7-word reference: BLEU precisions 1, BP = exp(1 - 7/3);
    # ROUGE-L: LCS 3, P = 1, R = 3/7, F = (1 + 1.2^2) P R / (R + 1.2^2 P) = 2.44 * 3 / (3 + 1.44 * 7)
    scores = caption_scores({0: "a red circle"}, {0: ["a red circle on the blue square"]}, tokenizer="python")
    assert scores["BLEU-1"] == pytest.approx(math.exp(1 - 7 / 3), rel=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(2.44 * 3 / (3 + 1.44 * 7))


def test_empty_predictions_score_zero():
    empty = caption_scores({key: "" for key in REFS}, REFS, tokenizer="python")
    assert empty["CIDEr"] == 0.0 and empty["ROUGE-L"] == 0.0
    assert all(empty[f"BLEU-{n}"] < 1e-6 for n in range(1, 5))
    # one empty caption among two perfect ones contributes 0 to the CIDEr mean
    mixed = caption_scores({"1": REFS["1"][0], "2": REFS["2"][0], "3": ""}, REFS, tokenizer="python")
    assert mixed["CIDEr"] == pytest.approx(20.0 / 3)


def test_mismatched_keys_are_named():
    with pytest.raises(ValueError, match=r"no references for \['4'\].*no prediction for \['3'\]"):
        caption_scores({"1": "a", "2": "b", "4": "c"}, REFS)


def test_bad_references_and_tokenizer_rejected():
    with pytest.raises(ValueError, match="non-empty list"):
        caption_scores({"1": "a"}, {"1": []})
    with pytest.raises(ValueError, match="non-empty list"):
        caption_scores({"1": "a"}, {"1": "a red circle"})
    with pytest.raises(ValueError, match="at least one prediction"):
        caption_scores({}, {})
    with pytest.raises(ValueError, match="unknown caption tokenizer 'nltk'; choose one of auto, java, python"):
        caption_scores({"1": "a"}, {"1": ["a"]}, tokenizer="nltk")


# --- tokeniser choice and the Java path ----------------------------------------------------------


def test_auto_uses_python_without_java(no_java_on_path):
    assert not java_available() and resolve_tokenizer("auto") == "python"
    scores = caption_scores(OFA_PREDICTIONS, OFA_REFERENCES)
    assert scores.tokenizer == "python" and set(scores) == PURE_PYTHON_METRICS
    with pytest.raises(JavaMetricError, match="'java' needs a working `java` on PATH"):
        caption_scores(OFA_PREDICTIONS, OFA_REFERENCES, tokenizer="java")


def test_auto_uses_java_when_on_path():
    assert java_available() is HAS_JAVA
    assert resolve_tokenizer("auto") == ("java" if HAS_JAVA else "python")


def test_auto_scores_like_coco_eval_cap(shared_meteor):
    """Java: every metric equals COCOEvalCap's computation; no Java: the pure-Python reference."""
    scores = caption_scores(RAW_PREDICTIONS, RAW_REFERENCES)
    if HAS_JAVA:
        assert scores.tokenizer == "java"
        assert dict(scores) == _coco_eval_cap(RAW_PREDICTIONS, RAW_REFERENCES, shared_meteor)
        assert 0.1 < scores["METEOR"] < 0.5
        # the raw captions exercise tokenisation differences (brackets, "U.S.")
        assert caption_scores(RAW_PREDICTIONS, RAW_REFERENCES, tokenizer="python")["CIDEr"] != scores["CIDEr"]
    else:
        assert scores.tokenizer == "python"
        assert dict(scores) == _python_reference(RAW_PREDICTIONS, RAW_REFERENCES)


def test_python_and_java_tokenisation_agree_on_ofa_captions(shared_meteor):
    python = caption_scores(OFA_PREDICTIONS, OFA_REFERENCES, tokenizer="python")
    assert python == _python_reference(OFA_PREDICTIONS, OFA_REFERENCES)
    if not HAS_JAVA:
        with pytest.raises(JavaMetricError, match="needs a working `java`"):
            caption_scores(OFA_PREDICTIONS, OFA_REFERENCES, tokenizer="java")
        return
    java = caption_scores(OFA_PREDICTIONS, OFA_REFERENCES, tokenizer="java")
    assert java.tokenizer == "java" and set(java) == PURE_PYTHON_METRICS | {"METEOR"}
    assert {name: java[name] for name in PURE_PYTHON_METRICS} == python
    assert 0.1 < java["METEOR"] < 0.6


def test_caption_with_a_java_line_break_is_an_error(shared_meteor, tmp_path, monkeypatch):
    """A "\\r" inside a caption makes the PTB tokenizer emit an extra line; COCOEvalCap would then
    silently pair every later caption with the wrong image."""
    predictions = {0: "a dog\ron a mat", 1: "a cat"}
    references = {0: ["a dog on a mat"], 1: ["a cat"]}
    if HAS_JAVA:
        with pytest.raises(JavaMetricError, match="returned 3 lines for 2 captions"):
            caption_scores(predictions, references, tokenizer="java")
    _use_fake_java(monkeypatch, tmp_path, "tr '\\r' '\\n' < \"$last\"")
    with pytest.raises(JavaMetricError, match="returned 3 lines for 2 captions"):
        caption_scores(predictions, references, tokenizer="java")


def test_failing_java_tokenizer(tmp_path, monkeypatch, caplog):
    _use_fake_java(monkeypatch, tmp_path, 'echo "Could not find main class" >&2; exit 3')
    with pytest.raises(JavaMetricError, match="PTB tokenizer .* exited with status 3: Could not find main class"):
        caption_scores(OFA_PREDICTIONS, OFA_REFERENCES, tokenizer="java")
    # auto: a warning, then the whole result from the pure-Python tokeniser
    scores = caption_scores(OFA_PREDICTIONS, OFA_REFERENCES)
    assert scores.tokenizer == "python"
    assert scores == caption_scores(OFA_PREDICTIONS, OFA_REFERENCES, tokenizer="python")
    assert "Java tools failed; scoring with the pure-Python tokeniser" in caplog.text


def test_failing_meteor(tmp_path, monkeypatch):
    """METEOR's JVM dies: a clear error with its stderr (and no hang on the toolkit's lock)."""
    _use_fake_java(monkeypatch, tmp_path, 'cat "$last"')
    with pytest.raises(JavaMetricError, match="METEOR .* failed.*Error occurred during initialization of VM"):
        caption_scores(OFA_PREDICTIONS, OFA_REFERENCES, tokenizer="java")


def test_validation_scores_with_the_python_tokenizer(tmp_path, monkeypatch):
    """fairseq-train's per-batch CIDEr/BLEU-4 must not start Java, even where Java works."""
    from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask
    from ofa_plugin.tasks.ofa_task import OFATask

    def no_java(*args):
        raise AssertionError("validation started the Java tools")

    _use_fake_java(monkeypatch, tmp_path, 'cat "$last"')
    monkeypatch.setattr(caption, "_java_scores", no_java)
    monkeypatch.setattr(OFATask, "valid_step", lambda self, sample, model, criterion: (0.0, 1, {}))
    task = CaptionTask.setup_task(CaptionConfig(bpe_dir=str(BPE_DIR), eval_cider=True, eval_bleu=True))
    monkeypatch.setattr(task, "generate_captions", lambda model, sample: (
        list(OFA_PREDICTIONS.values()), list(OFA_REFERENCES.values())))
    assert resolve_tokenizer("auto") == "java"
    _, _, log = task.valid_step({}, None, None)
    assert log


# --- fairseq scorer ----------------------------------------------------------------------------

SCORER_TARGETS = [" a red circle and a blue square&&a red ball, next to a blue box.",
                  " two green triangles near the fence", " an orange ball above brown boxes"]
SCORER_HYPOTHESES = ["A red circle and a blue square!", "two green triangles near a fence", ""]
SCORER_PREDICTIONS = {0: "A red circle and a blue square", 1: "two green triangles near a fence", 2: ""}
SCORER_REFERENCES = {0: ["a red circle and a blue square", "a red ball next to a blue box"],
                     1: ["two green triangles near the fence"], 2: ["an orange ball above brown boxes"]}
SCORER_LINE = re.compile(
    r"CIDEr (\S+) \| BLEU-4 (\S+) \| METEOR (n/a \(needs Java\)|\S+) \| ROUGE-L (\S+) \| BLEU-1 (\S+) \| "
    r"BLEU-2 (\S+) \| BLEU-3 (\S+) \(n=3, (java|python) tokenisation\)")


def _scorer_line() -> tuple[CaptionScorer, re.Match]:
    """A scorer fed as fairseq-generate feeds it: the caption task publishes, then add_string per sample."""
    scorer = build_scorer("ofa_caption", None)
    publish_predictions([CaptionPrediction(str(i), strip_punctuation(hypothesis).strip(), split_references(target))
                         for i, (target, hypothesis) in enumerate(zip(SCORER_TARGETS, SCORER_HYPOTHESES))])
    for target, hypothesis in zip(SCORER_TARGETS, SCORER_HYPOTHESES):
        scorer.add_string(target, hypothesis)
    line = scorer.result_string()
    match = SCORER_LINE.fullmatch(line)
    assert match, line
    return scorer, match


def _assert_line_values(match: re.Match, expected: dict) -> None:
    names = ["CIDEr", "BLEU-4", "METEOR", "ROUGE-L", "BLEU-1", "BLEU-2", "BLEU-3"]
    for value, name in zip(match.groups(), names):
        if name in expected:
            assert float(value) == pytest.approx(expected[name], abs=5e-5), name
        else:
            assert value == "n/a (needs Java)"


def test_scorer_is_registered():
    assert "ofa_caption" in SCORER_REGISTRY
    assert isinstance(build_scorer("ofa_caption", None), CaptionScorer)


def test_strip_punctuation_like_official_eval():
    assert strip_punctuation(" a man's hat, on-top. ").strip() == "a mans hat ontop"


def test_scorer_splits_references_and_strips_punctuation(no_java_on_path):
    scorer, match = _scorer_line()
    assert scorer.predictions[0].references == SCORER_REFERENCES[0]
    assert scorer.predictions[0].caption == SCORER_PREDICTIONS[0]
    assert scorer.predictions[0].record() == {"image_id": "0", "caption": SCORER_PREDICTIONS[0]}
    expected = caption_scores(SCORER_PREDICTIONS, SCORER_REFERENCES, tokenizer="python")
    assert scorer.score() == pytest.approx(expected["CIDEr"])
    assert 0 < scorer.score() < 10
    assert match.group(8) == "python"
    _assert_line_values(match, expected)


def test_scorer_line_with_java_when_present(shared_meteor):
    _, match = _scorer_line()
    expected = caption_scores(SCORER_PREDICTIONS, SCORER_REFERENCES)
    assert match.group(8) == expected.tokenizer == ("java" if HAS_JAVA else "python")
    assert ("METEOR" in expected) is HAS_JAVA
    _assert_line_values(match, expected)


def test_scorer_rejects_target_without_references_or_out_of_order():
    scorer = build_scorer("ofa_caption", None)
    publish_predictions([CaptionPrediction("7", "a caption", split_references(" && . ")),
                         CaptionPrediction("8", "a caption", ["a dog"])])
    scorer.add_string(" && . ", "a caption")
    with pytest.raises(ValueError, match="no reference caption for images \\['7'\\]"):
        scorer.score()
    with pytest.raises(ValueError, match="sentence 1: target ' a cat' does not belong"):
        scorer.add_string(" a cat", "a caption")
