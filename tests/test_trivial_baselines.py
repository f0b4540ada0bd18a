"""The trivial baselines that the learning tests and the demo compare models with, on hand-made rows."""
from pathlib import Path

import pytest
from PIL import Image

from ofa_plugin.data.toyworld import encode_image_base64
from ofa_plugin.metrics.baseline import (centre_box_baseline, majority_answer_baseline, majority_label_baseline,
                                        question_majority_answer_baseline)


def _write(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("".join("\t".join(row) + "\n" for row in rows))
    return path


def test_majority_answer_is_scored_by_its_confidence(tmp_path):
    vqa = lambda answers: ["1", "7", "q?", answers, "", "img"]  # noqa: E731
    train = _write(tmp_path / "train.tsv", [vqa("1.0|!+red"), vqa("0.6|!+blue&&1.0|!+red"), vqa("1.0|!+two")])
    test = _write(tmp_path / "test.tsv", [vqa("1.0|!+red"), vqa("0.3|!+red&&1.0|!+blue"), vqa("1.0|!+two"),
                                          vqa("1.0|!+no")])
    assert majority_answer_baseline(train, test) == ("red", pytest.approx((1.0 + 0.3) / 4))


def test_question_majority_answers_each_question_by_its_own_majority(tmp_path):
    vqa = lambda question, answers: ["1", "7", question, answers, "", "img"]  # noqa: E731
    train = _write(tmp_path / "train.tsv", [vqa("colour?", "1.0|!+red"), vqa("colour?", "0.6|!+blue&&1.0|!+red"),
                                            vqa("count?", "1.0|!+two"), vqa("colour?", "1.0|!+blue")])
    test = _write(tmp_path / "test.tsv", [vqa("colour?", "0.3|!+red&&1.0|!+blue"), vqa("count?", "1.0|!+two"),
                                          vqa("shape?", "1.0|!+red")])
    # colour? -> red (2 of 3) scores 0.3, count? -> two scores 1, unseen shape? -> red overall (2 of 4) scores 1
    assert question_majority_answer_baseline(train, test) == pytest.approx((0.3 + 1.0 + 1.0) / 3)


def test_majority_label_accuracy(tmp_path):
    snli = lambda label: ["1", "7", "img", "hyp", "cap", label]  # noqa: E731
    train = _write(tmp_path / "train.tsv", [snli("neutral"), snli("entailment"), snli("neutral")])
    test = _write(tmp_path / "test.tsv", [snli("neutral"), snli("contradiction")])
    assert majority_label_baseline(train, test) == ("neutral", 0.5)


def test_centre_box_uses_mean_relative_size_in_each_image(tmp_path):
    def ref(box: str, width: int, height: int) -> list[str]:
        return ["1", "7", "the thing", box, encode_image_base64(Image.new("RGB", (width, height)))]

    # training boxes cover half the width and height -> the baseline box is the centred half of each image
    train = _write(tmp_path / "train.tsv", [ref("0,0,50,20", 100, 40), ref("10,10,30,30", 40, 40)])
    test = _write(tmp_path / "test.tsv", [
        ref("50,25,150,75", 200, 100),   # exactly the centred half: hit
        ref("0,0,100,50", 200, 100),     # top-left quarter, IoU 1/7: miss
        ref("20,20,70,70", 80, 80),      # centred box [20, 60] shifted by 10 px: IoU 0.6: hit
    ])
    assert centre_box_baseline(train, test) == pytest.approx(2 / 3)
