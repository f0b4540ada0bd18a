"""Caption metrics (COCO CIDEr, BLEU-1..4 with the pure-Python PTB fallback) and the fairseq scorer."""
import math
import re

import pytest
from fairseq.scoring import SCORER_REGISTRY, build_scorer

from ofa_plugin.metrics.caption import caption_scores, ptb_tokenize
from ofa_plugin.metrics.scorer import CaptionScorer, strip_punctuation

REFS = {
    "1": ["a red circle and a blue square"],
    "2": ["two green triangles near the fence"],
    "3": ["an orange ball above brown boxes"],
}


def test_ptb_fallback_tokenisation():
    assert ptb_tokenize("A Dog's toy, on the mat.") == "a dog 's toy on the mat"
    assert ptb_tokenize('Don\'t "stop" (now)... end--start!') == "do n't stop now end start"
    assert ptb_tokenize("well-known 3.5 1,000 dogs' toys") == "well-known 3.5 1,000 dogs toys"
    assert ptb_tokenize("  ") == ""


def test_identical_predictions_score_perfectly():
    predictions = {key: refs[0] for key, refs in REFS.items()}
    scores = caption_scores(predictions, REFS)
    for n in range(1, 5):
        assert scores[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    # every n-gram vector equals its reference's: cosine 1 for n = 1..4, times CIDEr's factor 10
    assert scores["CIDEr"] == pytest.approx(10.0)


def test_case_and_punctuation_do_not_matter():
    predictions = {"1": "A red circle, and a blue square.", "2": "Two green triangles near the fence!",
                   "3": "an orange ball above brown boxes"}
    assert caption_scores(predictions, REFS) == pytest.approx(caption_scores(
        {key: refs[0] for key, refs in REFS.items()}, REFS))


def test_bleu_hand_case():
    # hyp "a red circle on a blue square" vs ref "a red circle on the blue square" (both 7 words, BP = 1)
    # clipped n-gram precisions: 1-gram 6/7 ("a" only once in ref), 2-gram 4/6 (a red, red circle,
    # circle on, blue square), 3-gram 2/5 (a red circle, red circle on), 4-gram 1/4 (a red circle on)
    # BLEU-n = geometric mean of the first n precisions:
    #   BLEU-1 = 6/7, BLEU-2 = (4/7)^(1/2), BLEU-3 = (8/35)^(1/3), BLEU-4 = (2/35)^(1/4)
    scores = caption_scores({0: "a red circle on a blue square"}, {0: ["a red circle on the blue square"]})
    assert scores["BLEU-1"] == pytest.approx(6 / 7, rel=1e-6)
    assert scores["BLEU-2"] == pytest.approx((4 / 7) ** 0.5, rel=1e-6)
    assert scores["BLEU-3"] == pytest.approx((8 / 35) ** (1 / 3), rel=1e-6)
    assert scores["BLEU-4"] == pytest.approx((2 / 35) ** 0.25, rel=1e-6)


def test_bleu_brevity_penalty_hand_case():
    # 3 correct words against a 7-word reference: precisions 1, BP = exp(1 - 7/3)
    scores = caption_scores({0: "a red circle"}, {0: ["a red circle on the blue square"]})
    assert scores["BLEU-1"] == pytest.approx(math.exp(1 - 7 / 3), rel=1e-6)


def test_empty_predictions_score_zero():
    empty = caption_scores({key: "" for key in REFS}, REFS)
    assert empty["CIDEr"] == 0.0
    assert all(empty[f"BLEU-{n}"] < 1e-6 for n in range(1, 5))
    # one empty caption among two perfect ones contributes 0 to the CIDEr mean
    mixed = caption_scores({"1": REFS["1"][0], "2": REFS["2"][0], "3": ""}, REFS)
    assert mixed["CIDEr"] == pytest.approx(20.0 / 3)


def test_mismatched_keys_are_named():
    with pytest.raises(ValueError, match=r"no references for \['4'\].*no prediction for \['3'\]"):
        caption_scores({"1": "a", "2": "b", "4": "c"}, REFS)


def test_bad_references_rejected():
    with pytest.raises(ValueError, match="non-empty list"):
        caption_scores({"1": "a"}, {"1": []})
    with pytest.raises(ValueError, match="non-empty list"):
        caption_scores({"1": "a"}, {"1": "a red circle"})
    with pytest.raises(ValueError, match="at least one prediction"):
        caption_scores({}, {})


# --- fairseq scorer ----------------------------------------------------------------------------


def test_scorer_is_registered():
    assert "ofa_caption" in SCORER_REGISTRY
    assert isinstance(build_scorer("ofa_caption", None), CaptionScorer)


def test_strip_punctuation_like_official_eval():
    assert strip_punctuation(" a man's hat, on-top. ").strip() == "a mans hat ontop"


def test_scorer_splits_references_and_strips_punctuation():
    scorer = build_scorer("ofa_caption", None)
    targets = [" a red circle and a blue square&&a red ball, next to a blue box.",
               " two green triangles near the fence", " an orange ball above brown boxes"]
    hypotheses = ["A red circle and a blue square!", "two green triangles near a fence", ""]
    for target, hypothesis in zip(targets, hypotheses):
        scorer.add_string(target, hypothesis)
    assert scorer.ref[0] == ["a red circle and a blue square", "a red ball next to a blue box"]
    assert scorer.pred[0] == "A red circle and a blue square"

    expected = caption_scores(
        {0: "a red circle and a blue square", 1: "two green triangles near a fence", 2: ""},
        {0: ["a red circle and a blue square", "a red ball next to a blue box"],
         1: ["two green triangles near the fence"], 2: ["an orange ball above brown boxes"]},
    )
    assert scorer.score() == pytest.approx(expected["CIDEr"])
    assert 0 < scorer.score() < 10
    line = scorer.result_string()
    match = re.fullmatch(
        r"CIDEr (\S+) \| BLEU-4 (\S+) \| BLEU-1 (\S+) \| BLEU-2 (\S+) \| BLEU-3 (\S+) "
        r"\(n=3, PTB-fallback tokenisation\)", line)
    assert match, line
    for value, name in zip(match.groups(), ["CIDEr", "BLEU-4", "BLEU-1", "BLEU-2", "BLEU-3"]):
        assert float(value) == pytest.approx(expected[name], abs=5e-5)


def test_scorer_rejects_target_without_references():
    scorer = build_scorer("ofa_caption", None)
    with pytest.raises(ValueError, match="sentence 0"):
        scorer.add_string(" && . ", "a caption")
