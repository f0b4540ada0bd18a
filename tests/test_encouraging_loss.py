"""Tests of the `adjust_label_smoothed_encouraging_loss` criterion (reference §6.2).

Hand-computed bonus values (log(1 - p), its tangent line above log_end, the clamp at log_end = 1),
drop-best selection on fake models with fixed logits, finite gradients, and one short stock
`fairseq-train` run (caption toy world) with R-Drop, drop-worst, drop-best and accuracy logging.
"""
import argparse
import math
import re
from pathlib import Path
from typing import Any, Optional

import pytest
import torch
from fairseq.criterions import CRITERION_REGISTRY, build_criterion

import ofa_plugin  # noqa: F401  (registers the criteria)
from ofa_plugin.criterions.label_smoothed_cross_entropy import (
    AdjustLabelSmoothedCrossEntropyCriterion,
)
from ofa_plugin.criterions.label_smoothed_encouraging_loss import (
    AdjustLabelSmoothedEncouragingLossConfig,
    AdjustLabelSmoothedEncouragingLossCriterion,
    encouraging_bonus,
)
from ofa_plugin.data.toyworld import write_toy_world
from conftest import cli_env as _cli_env, run_cli as _run
from test_criterion import (
    TARGET, TOKENS, V, FakeTask, RowLogits, TwoPassLogits, make_sample, token_losses,
)

NAME = "adjust_label_smoothed_encouraging_loss"
REPO = Path(__file__).resolve().parents[1]


def make_criterion(**overrides: Any) -> AdjustLabelSmoothedEncouragingLossCriterion:
    options = dict(sentence_avg=False, label_smoothing=0.1)
    options.update(overrides)
    return AdjustLabelSmoothedEncouragingLossCriterion(FakeTask(), **options)


def token_bonus(logits: torch.Tensor, target: int, eps: float, log_end: float,
                allowed: Optional[list] = None) -> float:
    """Direct formula, token by token: b(p) = log(max(1 - p, 1e-5)), or the tangent line of
    log(1 - p) at log_end for p > log_end; (1 - eps) b(p_target) + eps / V sum_v b(p_v)."""
    allowed = list(range(logits.numel())) if allowed is None else allowed
    probs = [0.0] * logits.numel()
    for v, p in zip(allowed, torch.softmax(logits.double()[allowed], dim=0).tolist()):
        probs[v] = p

    def b(p: float) -> float:
        if log_end < 1 and p > log_end:
            return (p - log_end) / (log_end - 1) + math.log(1 - log_end)
        return math.log(max(1 - p, 1e-5))

    return (1 - eps) * b(probs[target]) + eps / logits.numel() * sum(b(p) for p in probs)


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(2, 4, V, generator=torch.Generator().manual_seed(0))


def test_registered_with_official_options_and_defaults():
    assert CRITERION_REGISTRY[NAME] is AdjustLabelSmoothedEncouragingLossCriterion
    assert issubclass(AdjustLabelSmoothedEncouragingLossCriterion,
                      AdjustLabelSmoothedCrossEntropyCriterion)
    defaults = AdjustLabelSmoothedEncouragingLossConfig()
    assert (defaults.log_end, defaults.drop_best_ratio, defaults.drop_best_after) == (0.75, 0.0, 0)
    assert defaults.sample_patch_num == 196 and defaults.reg_alpha == 1.0
    parser = argparse.ArgumentParser()
    AdjustLabelSmoothedEncouragingLossCriterion.add_args(parser)
    args = parser.parse_args(["--log-end", "0.5", "--drop-best-ratio", "0.1", "--drop-best-after",
                              "3", "--drop-worst-ratio", "0.2", "--use-rdrop", "--report-accuracy"])
    args.criterion, args.sentence_avg = NAME, False
    criterion = build_criterion(args, FakeTask())
    assert isinstance(criterion, AdjustLabelSmoothedEncouragingLossCriterion)
    assert (criterion.log_end, criterion.drop_best_ratio, criterion.drop_best_after) == (0.5, 0.1, 3)
    assert criterion.drop_worst_ratio == 0.2 and criterion.use_rdrop and criterion.report_accuracy


@pytest.mark.parametrize("option, value", [("log_end", 0.0), ("log_end", 1.5),
                                           ("drop_best_ratio", 1.0), ("drop_best_ratio", -0.1)])
def test_bad_options_are_rejected(option, value):
    with pytest.raises(ValueError, match=option.replace("_", "-")):
        make_criterion(**{option: value})


PROBS = torch.tensor([[0.5, 0.2, 0.2, 0.1], [0.9, 0.05, 0.03, 0.02]], dtype=torch.float64)


def test_bonus_hand_computed_with_tangent_above_log_end():
    # Row 0 below log_end: b = ln(1 - p) = [-0.693147, -0.223144, -0.223144, -0.105361].
    # Row 1: p_target 0.9 > 0.75 -> tangent (0.9 - 0.75) / (0.75 - 1) + ln 0.25 = -1.986294;
    # the others ln .95, ln .97, ln .98 = -0.051293, -0.030459, -0.020203.
    # 0.9 * (-0.693147 - 1.986294) + 0.1 / 4 * (-1.244795 - 2.088249) = -2.494823
    bonus = encouraging_bonus(PROBS.log(), torch.tensor([0, 0]), 0.1, 0.75)
    assert bonus.item() == pytest.approx(-2.494823, abs=1e-6)


def test_bonus_with_log_end_one_is_the_clamped_log():
    # Row 1 target: ln(1 - 0.9) = -2.302585; row 0 as above.
    # 0.9 * (-0.693147 - 2.302585) + 0.025 * (-1.244795 - 2.404540) = -2.787392
    bonus = encouraging_bonus(PROBS.log(), torch.tensor([0, 0]), 0.1, 1.0)
    assert bonus.item() == pytest.approx(-2.787392, abs=1e-6)
    # p = 1 - 1e-8: 1 - p is clamped to 1e-5 -> ln 1e-5 = -11.512925, with a zero gradient.
    lprobs = torch.tensor([[math.log1p(-1e-8), math.log(1e-8)]], requires_grad=True)
    bonus = encouraging_bonus(lprobs, torch.tensor([0]), 0.0, 1.0)
    assert bonus.item() == pytest.approx(-11.512925, abs=1e-5)
    bonus.backward()
    assert lprobs.grad.abs().max() == 0  # eps = 0: only the clamped target term


def test_tangent_continues_log_smoothly_with_a_finite_slope():
    log_end, eps = 0.75, 1e-3
    below, above = [encouraging_bonus(torch.tensor([[math.log(p)]]), torch.tensor([0]), 0.0, log_end)
                    for p in (log_end - eps, log_end + eps)]
    assert below.item() == pytest.approx(math.log(0.25) + 4 * eps, abs=1e-5)
    assert above.item() == pytest.approx(math.log(0.25) - 4 * eps, abs=1e-6)
    # d b / d lprob = p * slope = 0.9 * -4 at the row-1 target, weighted (1 - eps) + eps / V.
    lprobs = PROBS.log().requires_grad_()
    encouraging_bonus(lprobs, torch.tensor([0, 0]), 0.1, 0.75).backward()
    assert lprobs.grad[1, 0].item() == pytest.approx((0.9 + 0.025) * 0.9 * -4, rel=1e-9)
    assert lprobs.grad[0, 0].item() == pytest.approx((0.9 + 0.025) * 0.5 * -1 / 0.5, rel=1e-9)


@pytest.mark.parametrize("log_end", [0.75, 1.0])
def test_criterion_adds_the_bonus_to_the_smoothed_loss(logits, log_end):
    sharp = logits.clone()
    sharp[0, 0, 5] = 8.0  # p_target ~ 0.99 > log_end: the tangent branch is used
    sample = make_sample(TARGET)
    loss, sample_size, log = make_criterion(log_end=log_end)(RowLogits(sharp), sample)
    ce, _, ce_log = AdjustLabelSmoothedCrossEntropyCriterion(
        FakeTask(), sentence_avg=False, label_smoothing=0.1)(RowLogits(sharp), sample)
    bonus = sum(token_bonus(sharp[b, t], int(TARGET[b, t]), 0.1, log_end) for b, t in TOKENS)
    assert bonus < -0.5 and sample_size == 7
    assert loss.item() == pytest.approx(ce.item() + bonus, rel=1e-5)
    assert log["nll_loss"].item() == pytest.approx(ce_log["nll_loss"].item())  # no bonus in nll


def test_bonus_under_constraint_masks_counts_allowed_tokens_only(logits):
    masks = torch.zeros(2, 4, V, dtype=torch.bool)
    allowed_sets = {}
    for index, (b, t) in enumerate(TOKENS):
        allowed_sets[(b, t)] = sorted({0, 3, int(TARGET[b, t]), 4 + index % 4})
        masks[b, t, allowed_sets[(b, t)]] = True
    sample = make_sample(TARGET, constraint_masks=masks)
    loss, _, _ = make_criterion()(RowLogits(logits), sample)
    ce, _, _ = AdjustLabelSmoothedCrossEntropyCriterion(
        FakeTask(), sentence_avg=False, label_smoothing=0.1)(RowLogits(logits), sample)
    bonus = sum(token_bonus(logits[key], int(TARGET[key]), 0.1, 0.75, allowed_sets[key])
                for key in TOKENS)
    assert loss.item() == pytest.approx(ce.item() + bonus, rel=1e-5)


def encouraging_token_losses(logits: torch.Tensor, target: torch.Tensor) -> dict:
    """(b, t) -> smoothed CE + bonus of every non-pad token (eps 0.1, log_end 0.75)."""
    return {key: ce + token_bonus(logits[key], int(target[key]), 0.1, 0.75)
            for key, (ce, _) in token_losses(logits, target).items()}


@pytest.mark.parametrize("update_num, dropping", [(5, False), (6, True)])
def test_drop_best_keeps_the_highest_loss_tokens_after_threshold(logits, update_num, dropping):
    criterion = make_criterion(drop_best_ratio=0.3, drop_best_after=5)
    loss, sample_size, log = criterion(RowLogits(logits), make_sample(TARGET), update_num)
    ce = token_losses(logits, TARGET)
    full = encouraging_token_losses(logits, TARGET)
    ranked = sorted(ce, key=lambda key: ce[key][0], reverse=True)  # ranked by smoothed CE
    kept = ranked[: int(7 * 0.7)] if dropping else ranked
    assert sample_size == len(kept) == (4 if dropping else 7)
    assert loss.item() == pytest.approx(sum(full[key] for key in kept), rel=1e-5)
    assert log["nll_loss"].item() == pytest.approx(sum(ce[key][1] for key in kept), rel=1e-5)


def test_drop_worst_then_drop_best(logits):
    criterion = make_criterion(drop_worst_ratio=0.3, drop_best_ratio=0.5)
    loss, sample_size, _ = criterion(RowLogits(logits), make_sample(TARGET), update_num=1)
    ce = token_losses(logits, TARGET)
    ascending = sorted(ce, key=lambda key: ce[key][0])
    kept = ascending[2:4]  # drop-worst keeps the 4 lowest, drop-best the 2 highest of those
    full = encouraging_token_losses(logits, TARGET)
    assert sample_size == 2
    assert loss.item() == pytest.approx(sum(full[key] for key in kept), rel=1e-5)


def test_rdrop_mirrors_drop_best_choice_of_the_first_copy(logits):
    q = logits + 3 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    criterion = make_criterion(use_rdrop=True, reg_alpha=0.0, drop_best_ratio=0.5)
    loss, sample_size, _ = criterion(TwoPassLogits(logits, q), make_sample(TARGET), 1)
    ce = token_losses(logits, TARGET)
    kept = sorted(ce, key=lambda key: ce[key][0], reverse=True)[:3]
    first, second = encouraging_token_losses(logits, TARGET), encouraging_token_losses(q, TARGET)
    assert sample_size == 6
    assert loss.item() == pytest.approx(sum(first[k] + second[k] for k in kept), rel=1e-5)


@pytest.mark.parametrize("log_end", [0.75, 1.0])
def test_gradient_is_finite_and_keeps_pushing_confident_targets(log_end):
    table = torch.zeros(2, 4, V)
    table[0, 0, 5] = table[0, 1, 6] = 30.0  # p_target = 1 in float32: above log_end, clamped at 1
    table[1, 0, 8] = 4.0  # p_target ~ 0.86
    masks = torch.ones(2, 4, V, dtype=torch.bool)
    masks[:, :, 9] = False
    masks[1, 1, 9] = True  # the target 9 of (1, 1) stays allowed
    sample = make_sample(TARGET, constraint_masks=masks, conf=torch.tensor([2.0, 0.5]))
    criterion = make_criterion(log_end=log_end, use_rdrop=True, drop_worst_ratio=0.2,
                               drop_best_ratio=0.2)
    model = TwoPassLogits(table, table + 0.1)
    loss, _, _ = criterion(model, sample, update_num=1)
    loss.backward()
    for grad in (model.p.grad, model.q.grad):
        assert torch.isfinite(grad).all()
        assert grad[~masks].abs().max() == 0
    # At p_target ~ 0.86 the encouraging loss pushes the target logit harder than the CE.
    plain = RowLogits(table)
    ce, _, _ = AdjustLabelSmoothedCrossEntropyCriterion(
        FakeTask(), sentence_avg=False, label_smoothing=0.1)(plain, make_sample(TARGET))
    ce.backward()
    encouraged = RowLogits(table)
    make_criterion(log_end=log_end)(encouraged, make_sample(TARGET))[0].backward()
    assert encouraged.table.grad[1, 0, 8] < plain.table.grad[1, 0, 8] < 0


TRAIN_LINE = re.compile(r"\| train_inner \|.* loss=([0-9.]+),.* accuracy=([0-9.]+),")


@pytest.mark.slow
def test_fairseq_train_with_rdrop_drop_worst_best_and_accuracy(tmp_path: Path) -> None:
    """Stock fairseq-train, caption toy world, 8 updates of ofa_nano on 16 px images."""
    world = tmp_path / "world"
    write_toy_world(world, 1, 128, 8, 8, (32, 40), ["caption"])
    output = _run(
        ["bash", REPO / "run_scripts" / "caption" / "train_caption_toy.sh", world, tmp_path / "ckpt",
         "--criterion", NAME, "--label-smoothing", "0.1", "--log-end", "0.75", "--use-rdrop",
         "--reg-alpha", "1.0", "--drop-worst-ratio", "0.2", "--drop-worst-after", "2",
         "--drop-best-ratio", "0.05", "--drop-best-after", "2", "--report-accuracy",
         "--patch-image-size", "16", "--batch-size", "16", "--warmup-updates", "2",
         "--log-interval", "2", "--no-save"],
        tmp_path / "train.log", {**_cli_env(), "MAX_UPDATE": "8", "OMP_NUM_THREADS": "1"},
    )
    assert f"criterion: {AdjustLabelSmoothedEncouragingLossCriterion.__name__}" in output
    logged = [(float(loss), float(acc)) for loss, acc in TRAIN_LINE.findall(output)]
    assert len(logged) == 4, output[-2000:]
    assert logged[-1][0] < logged[0][0] - 0.5
    assert logged[-1][1] > logged[0][1]
