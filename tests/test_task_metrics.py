"""Metrics of the fine-tuning tasks: VQA accuracy, grounding IoU / Acc@0.5, accuracy / MCC / F1, ROUGE.

Expected values are written by hand from the official definitions (VQA evaluation, OFA's refcoco hit
rule, rouge_score); random cases are compared with sklearn and, when installed, rouge_score.
"""
import math
import random
import sys

import numpy as np
import pytest
from sklearn import metrics as skm

from ofa_plugin.metrics import rouge
from ofa_plugin.metrics.classification import (accuracy, binary_counts, binary_f1, f1_from_counts,
                                               matthews_corrcoef, mcc_from_counts)
from ofa_plugin.metrics.grounding import acc_at_threshold, box_iou, grounding_hit
from ofa_plugin.metrics.rouge import (corpus_rouge, fix_tokenization, rouge_l, rouge_n, rouge_scores,
                                      rouge_tokenize)
from ofa_plugin.metrics.vqa import normalize_vqa_answer, vqa_accuracy_from_human_answers, vqa_soft_accuracy

# ----------------------------------------------------------------------------------------------- VQA


@pytest.mark.parametrize("answer, expected", [
    # number words -> digits ("none" counts as 0), others untouched
    ("two", "2"), ("Two dogs", "2 dogs"), ("none", "0"), ("zero", "0"), ("ten", "10"), ("eleven", "eleven"),
    # articles removed, also when the answer is only an article
    ("the dog", "dog"), ("a man", "man"), ("An apple", "apple"), ("the", ""), ("there", "there"),
    # apostrophe-less contractions restored; capitalised official keys never match
    ("dont", "don't"), ("isnt", "isn't"), ("whats", "what's"), ("Im", "im"), ("its", "its"),
    # listed punctuation -> space, or deleted when a space is next to it
    ("black/white", "black white"), ("t-shirt", "t shirt"), ("yes!", "yes"), ("red, white", "red white"),
    ("red,white", "red white"), ("hello - world", "hello world"), ("(left)", "left"),
    # a digit-comma-digit anywhere deletes all listed punctuation
    ("1,000", "1000"), ("1,000 t-shirts", "1000 tshirts"),
    # a period is deleted unless a digit follows
    ("3.5", "3.5"), ("u.s.", "us"), ("yes.", "yes"), ("mr. smith", "mr smith"), (".5", ".5"),
    # characters outside the list are kept
    ("man's", "man's"), ("10:30", "10:30"), ("50%", "50%"),
    # everything together, plus whitespace
    ("  The two dogs.\n", "2 dogs"), ("none of the above", "0 of above"),
])
def test_normalize_vqa_answer(answer, expected):
    assert normalize_vqa_answer(answer) == expected


def test_period_deletion_stops_after_32_like_the_official():
    assert normalize_vqa_answer("." * 40) == "." * 8


def test_vqa_soft_accuracy_normalises_prediction_and_keys():
    confidences = {"2": 1.0, "three": 0.3, "no": 0.6}
    assert vqa_soft_accuracy("two", confidences) == 1.0
    assert vqa_soft_accuracy("3", confidences) == 0.3
    assert vqa_soft_accuracy("No.", confidences) == 0.6
    assert vqa_soft_accuracy("yes", confidences) == 0.0
    assert vqa_soft_accuracy("yes", {}) == 0.0


def test_vqa_soft_accuracy_keeps_highest_confidence_of_merged_keys():
    assert vqa_soft_accuracy("2", {"two": 0.3, "2": 0.9, "the two": 0.6}) == 0.9


@pytest.mark.parametrize("confidence", [1.5, -0.1, float("nan"), "1.0", None])
def test_vqa_soft_accuracy_rejects_bad_confidence(confidence):
    with pytest.raises(ValueError, match="'cat'"):
        vqa_soft_accuracy("dog", {"dog": 1.0, "cat": confidence})


@pytest.mark.parametrize("matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_from_ten_human_answers(matches, expected):
    answers = ["2"] * matches + ["3"] * (10 - matches)
    assert vqa_accuracy_from_human_answers("two", answers) == pytest.approx(expected)


def _leave_one_out_reference(prediction, answers):
    """The official loop, literally: for each answer, count matches among the others."""
    accs = []
    for i in range(len(answers)):
        others = answers[:i] + answers[i + 1:]
        accs.append(min(1.0, sum(a == prediction for a in others) / 3))
    return sum(accs) / len(accs)


def test_vqa_accuracy_matches_the_leave_one_out_loop():
    rng = random.Random(0)
    for _ in range(200):
        answers = [rng.choice(["yes", "no", "2", "red"]) for _ in range(rng.randint(1, 12))]
        prediction = rng.choice(["yes", "no", "2", "blue"])
        assert vqa_accuracy_from_human_answers(prediction, answers) == pytest.approx(
            _leave_one_out_reference(prediction, answers))


def test_vqa_accuracy_normalises_human_answers():
    assert vqa_accuracy_from_human_answers("2", ["Two", "two.", "the 2", "3"]) == pytest.approx(
        _leave_one_out_reference("2", ["2", "2", "2", "3"]))


@pytest.mark.parametrize("answers", [[], "yes"])
def test_vqa_accuracy_rejects_missing_answers(answers):
    with pytest.raises(ValueError, match="human answers"):
        vqa_accuracy_from_human_answers("yes", answers)


# ----------------------------------------------------------------------------------------- grounding


def _official_hit(pred, gt, thresh=0.5):
    """OFA's refcoco rule written out: unclamped intersection, IoU over union + 1e-6, w > 0 and h > 0."""
    x0, y0 = max(pred[0], gt[0]), max(pred[1], gt[1])
    x1, y1 = min(pred[2], gt[2]), min(pred[3], gt[3])
    w, h = x1 - x0, y1 - y0
    area_p = (pred[2] - pred[0]) * (pred[3] - pred[1])
    area_g = (gt[2] - gt[0]) * (gt[3] - gt[1])
    iou = w * h / (area_p + area_g - w * h + 1e-6)
    return iou >= thresh and w > 0 and h > 0


def test_identical_boxes():
    assert box_iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert grounding_hit([0, 0, 10, 10], [0, 0, 10, 10])


def test_containment_and_partial_overlap():
    assert box_iou([0, 0, 10, 10], [0, 0, 5, 5]) == 0.25
    assert not grounding_hit([0, 0, 5, 5], [0, 0, 10, 10])
    assert box_iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert box_iou([0, 0, 10, 10], [1, 1, 9, 9]) == pytest.approx(0.64)
    assert grounding_hit([1, 1, 9, 9], [0, 0, 10, 10])


def test_iou_of_exactly_one_half_is_a_miss_like_the_official():
    assert box_iou([0, 0, 10, 10], [0, 0, 5, 10]) == 0.5
    assert not grounding_hit([0, 0, 5, 10], [0, 0, 10, 10])
    assert grounding_hit([0, 0, 5.001, 10], [0, 0, 10, 10])
    assert grounding_hit([0, 0, 5, 10], [0, 0, 10, 10], threshold=0.49)


@pytest.mark.parametrize("a, b", [
    ([0, 0, 10, 10], [10, 0, 20, 10]),  # touching edges
    ([0, 0, 10, 10], [10, 10, 20, 20]),  # touching corners
    ([0, 0, 10, 10], [20, 20, 30, 30]),  # disjoint
    ([5, 5, 5, 5], [5, 5, 5, 5]),  # identical points: empty union
    ([0, 0, 10, 0], [0, 0, 10, 10]),  # zero-height box on the edge of the other
    ([2, 2, 2, 8], [0, 0, 10, 10]),  # zero-width box inside the other
    ([10, 10, 0, 0], [0, 0, 10, 10]),  # inverted copy of the other
    ([8, 2, 2, 8], [0, 0, 10, 10]),  # inverted in x only
    ([10, 10, 0, 0], [10, 10, 0, 0]),  # two identical inverted boxes
])
def test_degenerate_touching_and_inverted_boxes_score_zero(a, b):
    iou = box_iou(a, b)
    assert iou == 0.0 and not math.isnan(iou)
    assert not grounding_hit(a, b)
    assert not _official_hit(a, b)


def test_hits_agree_with_the_official_rule_on_random_boxes():
    rng = np.random.default_rng(0)
    gts = rng.integers(0, 20, size=(2000, 4)).astype(np.float64)
    gts[:, 2:] = gts[:, :2] + rng.integers(1, 16, size=(2000, 2))
    # jittered copies: hits, near misses, exact IoU 0.5 ties, zero-area and inverted predictions
    preds = gts + rng.integers(-3, 4, size=(2000, 4))
    assert (box_iou(preds, gts) == 0.5).any() and (preds[:, 2] < preds[:, 0]).any()
    hits = grounding_hit(preds, gts)
    expected = [_official_hit(p, g) for p, g in zip(preds, gts)]
    assert hits.tolist() == expected
    assert 0.2 < np.mean(expected) < 0.8
    assert acc_at_threshold(preds, gts) == pytest.approx(np.mean(expected))


def test_box_iou_broadcasts_and_is_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 50, size=(50, 4)), rng.uniform(0, 50, size=(50, 4))
    ious = box_iou(a, b)
    assert ious.shape == (50,) and ious.dtype == np.float64
    assert np.array_equal(ious, box_iou(b, a))
    assert ious.tolist() == [box_iou(x, y) for x, y in zip(a, b)]
    assert ((ious >= 0) & (ious <= 1)).all()


def test_acc_at_threshold_hand_case():
    gts = [[0, 0, 10, 10]] * 4
    preds = [[0, 0, 10, 10], [1, 1, 9, 9], [0, 0, 5, 10], [20, 20, 30, 30]]
    assert acc_at_threshold(preds, gts) == 0.5
    assert acc_at_threshold(preds, gts, threshold=0.3) == 0.75


@pytest.mark.parametrize("pred, gt, message", [
    ([0, 0, 10], [0, 0, 10, 10], "shape"),
    ([0, 0, float("nan"), 10], [0, 0, 10, 10], "non-finite"),
    ([0, 0, 10, 10], [0, 0, float("inf"), 10], "non-finite"),
])
def test_grounding_rejects_bad_boxes(pred, gt, message):
    with pytest.raises(ValueError, match=message):
        box_iou(pred, gt)
    with pytest.raises(ValueError, match=message):
        grounding_hit(pred, gt)


def test_acc_at_threshold_names_the_bad_row_and_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"index \(1,\)"):
        acc_at_threshold([[0, 0, 1, 1], [0, 0, float("nan"), 1]], [[0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match="equal shape"):
        acc_at_threshold([[0, 0, 1, 1]], [[0, 0, 1, 1]] * 2)
    with pytest.raises(ValueError, match="equal shape"):
        acc_at_threshold(np.zeros((0, 4)), np.zeros((0, 4)))


# ------------------------------------------------------------------------------------ classification


def test_accuracy_hand_case():
    assert accuracy(["yes", "no", "maybe", "no"], ["yes", "yes", "maybe", "no"]) == 0.75


def test_binary_counts_treat_other_answers_as_negative():
    preds = ["yes", "yes", "no", "maybe", "no", "yes"]
    labels = ["yes", "no", "no", "yes", "maybe", "maybe"]
    assert binary_counts(preds, labels) == (1, 2, 2, 1)


@pytest.mark.filterwarnings("ignore:A single label was found")
def test_binary_metrics_match_sklearn_on_random_cases():
    rng = random.Random(0)
    for trial in range(100):
        n = rng.randint(1, 40)
        p_yes = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0])  # includes all-yes and all-no cases
        labels = [rng.choice(["no", "maybe"]) if rng.random() > p_yes else "yes" for _ in range(n)]
        preds = [rng.choice(["no", "maybe"]) if rng.random() > rng.random() else "yes" for _ in range(n)]
        assert accuracy(preds, labels) == pytest.approx(skm.accuracy_score(labels, preds))
        y_true = [label == "yes" for label in labels]
        y_pred = [pred == "yes" for pred in preds]
        assert matthews_corrcoef(preds, labels) == pytest.approx(skm.matthews_corrcoef(y_true, y_pred), abs=1e-12)
        assert binary_f1(preds, labels) == pytest.approx(
            skm.f1_score(y_true, y_pred, pos_label=True, zero_division=0.0), abs=1e-12)


def test_positive_class_is_configurable():
    preds = ["positive", "negative", "positive", "positive"]
    labels = ["positive", "negative", "negative", "positive"]
    assert binary_f1(preds, labels, positive="positive") == pytest.approx(0.8)  # 2TP / (2TP + FP) = 4/5
    assert matthews_corrcoef(preds, labels, positive="positive") == pytest.approx(1 / math.sqrt(3))
    assert binary_f1(preds, labels) == 0.0  # no "yes" anywhere: F1 undefined -> 0


def test_metrics_from_counts_are_zero_when_undefined():
    assert mcc_from_counts(5, 0, 0, 0) == 0.0
    assert mcc_from_counts(0, 0, 5, 5) == 0.0
    assert f1_from_counts(0, 0, 0) == 0.0
    assert mcc_from_counts(3, 0, 4, 0) == 1.0
    assert mcc_from_counts(0, 3, 0, 4) == -1.0


def test_classification_rejects_bad_lengths():
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        accuracy(["yes", "no"], ["yes"])
    with pytest.raises(ValueError, match="no predictions"):
        matthews_corrcoef([], [])


# --------------------------------------------------------------------------------------------- ROUGE


def test_rouge_tokenize_without_stemming():
    assert rouge_tokenize("U.S. stocks -LRB- update #,### -rrb- café's", use_stemmer=False) == [
        "u", "s", "stocks", "lrb", "update", "rrb", "caf", "s"]
    assert rouge_tokenize(" ... ", use_stemmer=False) == []


def test_rouge_hand_case():
    # target "the cat sat on the mat" (6 tokens), prediction "the cat on the mat" (5 tokens)
    # unigrams: the x2, cat, on, mat overlap -> 5: P 5/5, R 5/6, F 10/11
    # bigrams: the-cat, on-the, the-mat of 4 predicted / 5 target: P 3/4, R 3/5, F 2/3
    # LCS "the cat on the mat" = 5: same as unigrams
    scores = rouge_scores("The cat sat on the mat.", "the cat on the mat", use_stemmer=False)
    assert scores["rouge1"] == pytest.approx((1.0, 5 / 6, 10 / 11))
    assert scores["rouge2"] == pytest.approx((0.75, 0.6, 2 / 3))
    assert scores["rougeL"] == pytest.approx((1.0, 5 / 6, 10 / 11))


def test_rouge_l_uses_subsequence_not_ngrams():
    # LCS of "a b c d e" and "a c e b" is "a c e" = 3: P 3/4, R 3/5
    score = rouge_l("a b c d e".split(), "a c e b".split())
    assert score == pytest.approx((0.75, 0.6, 2 * 0.75 * 0.6 / 1.35))
    assert rouge_n("a b c d e".split(), "a c e b".split(), 2) == (0.0, 0.0, 0.0)


def test_rouge_clips_repeated_ngrams():
    # prediction "the the the" against "the cat": 1 clipped match of 3 predicted, 2 target
    assert rouge_n(["the", "cat"], ["the"] * 3, 1) == pytest.approx((1 / 3, 0.5, 0.4))


def test_rouge_of_empty_texts_is_zero():
    for target, prediction in [("a cat", ""), ("", "a cat"), ("", ""), ("a cat", "!!")]:
        for score in rouge_scores(target, prediction, use_stemmer=False).values():
            assert score == (0.0, 0.0, 0.0)


def test_rouge_n_rejects_bad_order():
    with pytest.raises(ValueError, match="n >= 1"):
        rouge_n(["a"], ["a"], 0)


def test_corpus_rouge_averages_samples():
    scores = corpus_rouge(["the cat sat on the mat", "a dog"], ["the cat on the mat", "a cat"],
                          use_stemmer=False)
    assert set(scores) == {f"{k}_{p}" for k in ("rouge1", "rouge2", "rougeL") for p in ("precision", "recall", "f1")}
    assert scores["rouge1_recall"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert scores["rouge2_f1"] == pytest.approx((2 / 3 + 0) / 2)
    assert scores["rougeL_precision"] == pytest.approx((1 + 1 / 2) / 2)
    with pytest.raises(ValueError, match="equally many"):
        corpus_rouge(["a"], ["a", "b"], use_stemmer=False)
    with pytest.raises(ValueError, match="equally many"):
        corpus_rouge([], [], use_stemmer=False)


def test_stemming_without_nltk_raises_a_clear_error(monkeypatch):
    rouge._porter_stem.cache_clear()
    monkeypatch.setitem(sys.modules, "nltk", None)  # makes `import nltk...` raise ImportError
    monkeypatch.setitem(sys.modules, "nltk.stem.porter", None)
    try:
        with pytest.raises(ImportError, match="rouge-score"):
            rouge_tokenize("running dogs")
        assert rouge_tokenize("running dogs", use_stemmer=False) == ["running", "dogs"]
    finally:
        rouge._porter_stem.cache_clear()


def test_stemming_with_nltk():
    pytest.importorskip("nltk")
    assert rouge_tokenize("Running dogs was generously") == ["run", "dog", "was", "gener"]
    scores = rouge_scores("running dogs", "runs dog")
    assert scores["rouge2"] == (1.0, 1.0, 1.0)
    assert rouge_scores("running dogs", "runs dog", use_stemmer=False)["rouge1"] == (0.0, 0.0, 0.0)


def test_rouge_matches_rouge_score_on_random_texts():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    words = ("running runs ran runner dogs dog cats the a of u.s. stocks fall falling fell -lrb- update "
             "-rrb- #,### generously happiness happy relational conditional 's n't dying lying skies news").split()
    rng = random.Random(0)
    for use_stemmer in (True, False):
        scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=use_stemmer)
        for _ in range(300):
            target = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
            prediction = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
            expected = scorer.score(target, prediction)
            ours = rouge_scores(target, prediction, use_stemmer)
            for kind in ("rouge1", "rouge2", "rougeL"):
                assert tuple(ours[kind]) == pytest.approx(tuple(expected[kind]), abs=1e-12)


@pytest.mark.parametrize("text, expected", [
    ('he said " hi " ( update )', "he said `` hi '' -lrb- update -rrb-"),
    ("[ a ] { b } & < >", "-lsb- a -rsb- -lcb- b -rcb- &amp; &lt; &gt;"),
    ("don ' t stop , can ' t", "do n't stop , ca n't"),
    ("john ' s car ' ll ' quoted '", "john 's car 'll ` quoted '"),
    ("wait . . . now", "wait ... now"),
    ("$ 3 , 000 , 000 and 3 . 5 %", "$ 3,000,000 and 3.5 %"),
    ("a , 5 and 3 , b", "a , 5 and 3 , b"),
    ("u . s . and u . n . a . stocks", "u.s. and u.n.a. stocks"),
    ("well - known - fact", "well-known-fact"),
    ("- start a - - b end -", "- start a -- b end -"),
    ("a - ( b )", "a - -lrb- b -rrb-"),
    ("japan 's nec to cut #,### jobs", "japan 's nec to cut #,### jobs"),
    ("", ""),
])
def test_fix_tokenization(text, expected):
    assert fix_tokenization(text) == expected
