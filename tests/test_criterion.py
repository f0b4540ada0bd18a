"""Tests of the `adjust_label_smoothed_cross_entropy` criterion (reference §6.1).

Hand-computed cases on tiny fake models that return fixed logits, the official loss on the
fixture's teacher-forced batches, and a tiny model that learns with the criterion.
"""
import argparse
import json
import math
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fairseq.criterions import CRITERION_REGISTRY, build_criterion
from fairseq.data import Dictionary
from fairseq.logging import metrics
from torch import nn

import ofa_plugin  # noqa: F401  (registers the criterion)
from ofa_plugin.criterions.label_smoothed_cross_entropy import (
    AdjustLabelSmoothedCrossEntropyConfig,
    AdjustLabelSmoothedCrossEntropyCriterion,
    duplicate_for_rdrop,
    parse_constraint_range,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE = SHARED / "fixtures" / "official_mini"
NAME = "adjust_label_smoothed_cross_entropy"
PAD, EOS = 1, 2
V = 10


class FakeTask:
    """The only task attribute the criterion reads: the target dictionary (pad 1, eos 2)."""

    target_dictionary = Dictionary()


class RowLogits(nn.Module):
    """Fake encoder-decoder: row b of the batch gets the fixed logits `table[src_tokens[b, 0]]`."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone())

    def forward(self, src_tokens: torch.Tensor, **unused: Any):
        return self.table[src_tokens[:, 0]], {}


class TwoPassLogits(nn.Module):
    """Fake model for R-Drop: the first copy of the batch gets `p`, the second copy `q`."""

    def __init__(self, p: torch.Tensor, q: torch.Tensor) -> None:
        super().__init__()
        self.p, self.q = nn.Parameter(p.clone()), nn.Parameter(q.clone())

    def forward(self, src_tokens: torch.Tensor, **unused: Any):
        assert src_tokens.size(0) == 2 * self.p.size(0)
        return torch.cat([self.p, self.q]), {}


class TinySeq2Seq(nn.Module):
    """A minimal trainable encoder-decoder: mean source embedding plus previous-token embedding."""

    def __init__(self, vocab_size: int, dim: int = 32) -> None:
        super().__init__()
        self.src_embed = nn.Embedding(vocab_size, dim)
        self.prev_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Embedding(16, dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, src_tokens, src_lengths, prev_output_tokens):
        context = self.src_embed(src_tokens).mean(dim=1, keepdim=True)
        positions = torch.arange(prev_output_tokens.size(1))
        hidden = torch.tanh(context + self.prev_embed(prev_output_tokens) + self.pos_embed(positions))
        return self.out(hidden), {}


def make_criterion(**overrides: Any) -> AdjustLabelSmoothedCrossEntropyCriterion:
    options = dict(sentence_avg=False, label_smoothing=0.1)
    options.update(overrides)
    return AdjustLabelSmoothedCrossEntropyCriterion(FakeTask(), **options)


def make_sample(target: torch.Tensor, **extra: Any) -> Dict[str, Any]:
    batch = target.size(0)
    sample = {
        "id": np.arange(batch),
        "nsentences": batch,
        "ntokens": int(target.ne(PAD).sum()),
        "net_input": {"src_tokens": torch.arange(batch)[:, None]},
        "target": target,
    }
    sample.update(extra)
    return sample


def smoothed_ce(logits: torch.Tensor, target: int, eps: float, allowed: Optional[list] = None):
    """Direct formula: cross-entropy against 1 - eps on the target and eps / (|S| - 1) on every
    other allowed token, log-probs renormalised over S (returns loss, nll as floats)."""
    allowed = list(range(logits.numel())) if allowed is None else allowed
    lprobs = torch.log_softmax(logits.double()[allowed], dim=0)
    others = len(allowed) - 1 + (1e-6 if len(allowed) < logits.numel() else 0.0)
    weights = torch.full((len(allowed),), eps / others, dtype=torch.float64)
    weights[allowed.index(target)] = 1.0 - eps
    nll = -lprobs[allowed.index(target)]
    # The official formula adds eps_i once more on the target: (1 - eps - eps_i) + eps_i = 1 - eps.
    return float(-(weights * lprobs).sum()), float(nll)


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(2, 4, V, generator=torch.Generator().manual_seed(0))


TARGET = torch.tensor([[5, 6, 7, EOS], [8, 9, EOS, PAD]])
TOKENS = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2)]  # non-pad (b, t)


def test_registered_with_official_options_and_defaults():
    assert CRITERION_REGISTRY[NAME] is AdjustLabelSmoothedCrossEntropyCriterion
    defaults = AdjustLabelSmoothedCrossEntropyConfig()
    expected = dict(
        label_smoothing=0.0, report_accuracy=False, ignore_prefix_size=0, ignore_eos=False,
        drop_worst_ratio=0.0, drop_worst_after=0, use_rdrop=False, reg_alpha=1.0,
        sample_patch_num=196, constraint_range=None,
    )
    assert {key: getattr(defaults, key) for key in expected} == expected
    parser = argparse.ArgumentParser()
    AdjustLabelSmoothedCrossEntropyCriterion.add_args(parser)
    args = parser.parse_args(
        ["--label-smoothing", "0.2", "--drop-worst-ratio", "0.3", "--drop-worst-after", "5",
         "--constraint-range", "4,8", "--report-accuracy", "--use-rdrop"]
    )
    args.criterion, args.sentence_avg = NAME, True
    criterion = build_criterion(args, FakeTask())
    assert isinstance(criterion, AdjustLabelSmoothedCrossEntropyCriterion)
    assert (criterion.eps, criterion.drop_worst_ratio, criterion.drop_worst_after) == (0.2, 0.3, 5)
    assert criterion.constraint_range == (4, 8)
    assert criterion.sentence_avg and criterion.report_accuracy and criterion.use_rdrop


@pytest.mark.parametrize("value", ["4", "a,b", "8,4", "2,8", "4,8,9"])
def test_bad_constraint_range_is_rejected(value):
    with pytest.raises(ValueError, match="constraint-range"):
        parse_constraint_range(value)


def test_label_smoothing_matches_direct_formula(logits):
    criterion = make_criterion(label_smoothing=0.1)
    loss, sample_size, log = criterion(RowLogits(logits), make_sample(TARGET))
    expected = [smoothed_ce(logits[b, t], int(TARGET[b, t]), 0.1) for b, t in TOKENS]
    assert loss.item() == pytest.approx(sum(e[0] for e in expected), rel=1e-5)
    assert log["nll_loss"].item() == pytest.approx(sum(e[1] for e in expected), rel=1e-5)
    assert sample_size == len(TOKENS) == log["sample_size"]
    assert (log["ntokens"], log["nsentences"]) == (7, 2)


def test_no_smoothing_is_plain_cross_entropy(logits):
    loss, _, log = make_criterion(label_smoothing=0.0)(RowLogits(logits), make_sample(TARGET))
    expected = F.cross_entropy(logits.view(-1, V), TARGET.view(-1), ignore_index=PAD, reduction="sum")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert log["nll_loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_constraint_masks_smooth_over_each_allowed_set(logits):
    masks = torch.zeros(2, 4, V, dtype=torch.bool)
    allowed_sets = {}
    for index, (b, t) in enumerate(TOKENS):
        allowed = sorted({0, 1, 2, 3, int(TARGET[b, t])} | set(range(4, 4 + index % 3)))
        masks[b, t, allowed] = True
        allowed_sets[(b, t)] = allowed
    # masks[1, 3] (pad position) stays all False, like the official prompt positions.
    model = RowLogits(logits)
    loss, _, log = make_criterion()(model, make_sample(TARGET, constraint_masks=masks))
    expected = [smoothed_ce(logits[b, t], int(TARGET[b, t]), 0.1, allowed_sets[(b, t)])
                for b, t in TOKENS]
    assert loss.item() == pytest.approx(sum(e[0] for e in expected), rel=1e-5)
    assert log["nll_loss"].item() == pytest.approx(sum(e[1] for e in expected), rel=1e-5)
    loss.backward()
    assert torch.isfinite(model.table.grad).all()
    assert model.table.grad[~masks].abs().max() == 0  # disallowed logits get no gradient


def test_constraint_range_smooths_over_specials_and_range(logits):
    target = torch.tensor([[6, 7, EOS, PAD], [7, 6, 6, EOS]])
    criterion = make_criterion(constraint_range="6,8")
    loss, sample_size, log = criterion(RowLogits(logits), make_sample(target))
    allowed = [0, 1, 2, 3, 6, 7]
    tokens = [(b, t) for b in range(2) for t in range(4) if target[b, t] != PAD]
    expected = [smoothed_ce(logits[b, t], int(target[b, t]), 0.1, allowed) for b, t in tokens]
    assert loss.item() == pytest.approx(sum(e[0] for e in expected), rel=1e-5)
    assert log["nll_loss"].item() == pytest.approx(sum(e[1] for e in expected), rel=1e-5)
    assert sample_size == 7


def test_constraint_range_with_masks_uses_their_intersection(logits):
    masks = torch.ones(2, 4, V, dtype=torch.bool)
    masks[0, 0, 7] = False
    target = torch.tensor([[6, 7, EOS, PAD], [7, 6, 6, EOS]])
    loss, _, _ = make_criterion(constraint_range="6,8")(
        RowLogits(logits), make_sample(target, constraint_masks=masks)
    )
    first = smoothed_ce(logits[0, 0], 6, 0.1, [0, 1, 2, 3, 6])[0]
    rest = [smoothed_ce(logits[b, t], int(target[b, t]), 0.1, [0, 1, 2, 3, 6, 7])[0]
            for b, t in [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (1, 3)]]
    assert loss.item() == pytest.approx(first + sum(rest), rel=1e-5)


def test_conf_multiplies_log_probs(logits):
    criterion = make_criterion()
    conf = torch.tensor([2.0, 0.5])
    loss, _, log = criterion(RowLogits(logits), make_sample(TARGET, conf=conf))
    per_row = [criterion(RowLogits(logits[b : b + 1]), make_sample(TARGET[b : b + 1]))
               for b in range(2)]
    assert loss.item() == pytest.approx(2.0 * per_row[0][0].item() + 0.5 * per_row[1][0].item())
    assert log["nll_loss"].item() == pytest.approx(
        2.0 * per_row[0][2]["nll_loss"].item() + 0.5 * per_row[1][2]["nll_loss"].item()
    )


def test_conf_with_wrong_shape_is_rejected(logits):
    with pytest.raises(ValueError, match="conf"):
        make_criterion()(RowLogits(logits), make_sample(TARGET, conf=torch.ones(3)))


def test_constraint_masks_with_wrong_shape_are_rejected(logits):
    masks = torch.ones(2, 4, V - 1, dtype=torch.bool)
    with pytest.raises(ValueError, match="constraint_masks"):
        make_criterion()(RowLogits(logits), make_sample(TARGET, constraint_masks=masks))


def token_losses(logits: torch.Tensor, target: torch.Tensor, eps: float = 0.1):
    return {(b, t): smoothed_ce(logits[b, t], int(target[b, t]), eps)
            for b in range(target.size(0)) for t in range(target.size(1)) if target[b, t] != PAD}


@pytest.mark.parametrize("update_num, dropping", [(5, False), (6, True)])
def test_drop_worst_keeps_smallest_tokens_after_threshold(logits, update_num, dropping):
    criterion = make_criterion(drop_worst_ratio=0.3, drop_worst_after=5)
    loss, sample_size, log = criterion(RowLogits(logits), make_sample(TARGET), update_num)
    losses = sorted(token_losses(logits, TARGET).values())
    kept = losses[: int(7 * (1 - 0.3))] if dropping else losses
    assert sample_size == len(kept) == (4 if dropping else 7)
    assert loss.item() == pytest.approx(sum(e[0] for e in kept), rel=1e-5)
    assert log["nll_loss"].item() == pytest.approx(sum(e[1] for e in kept), rel=1e-5)
    assert log["ntokens"] == 7  # logged before dropping, as the official criterion does


def test_stock_train_step_call_never_drops(logits):
    criterion = make_criterion(drop_worst_ratio=0.5, drop_worst_after=0)
    _, sample_size, _ = criterion(RowLogits(logits), make_sample(TARGET))
    assert sample_size == 7


def test_ignore_prefix_size_equals_padding_the_prefix(logits):
    loss, sample_size, _ = make_criterion(ignore_prefix_size=2)(
        RowLogits(logits), make_sample(TARGET)
    )
    padded = TARGET.clone()
    padded[:, :2] = PAD
    expected = token_losses(logits, padded)
    assert sample_size == len(expected) == 3
    assert loss.item() == pytest.approx(sum(e[0] for e in expected.values()), rel=1e-5)


def test_ignore_eos_drops_eos_positions(logits):
    loss, sample_size, _ = make_criterion(ignore_eos=True)(RowLogits(logits), make_sample(TARGET))
    expected = token_losses(logits, TARGET.masked_fill(TARGET.eq(EOS), PAD))
    assert sample_size == len(expected) == 5
    assert loss.item() == pytest.approx(sum(e[0] for e in expected.values()), rel=1e-5)


def test_sentence_avg_sample_size_is_batch_size(logits):
    loss_tok, _, _ = make_criterion()(RowLogits(logits), make_sample(TARGET))
    loss_sent, sample_size, log = make_criterion(sentence_avg=True)(
        RowLogits(logits), make_sample(TARGET)
    )
    assert sample_size == log["sample_size"] == 2
    assert loss_sent.item() == loss_tok.item()


def test_report_accuracy_counts_argmax_hits():
    table = torch.full((2, 4, V), -5.0)
    predictions = torch.tensor([[5, 0, 7, EOS], [8, 4, 4, 4]])  # hits: 3 of row 0, 1 of row 1
    table.scatter_(-1, predictions.unsqueeze(-1), 5.0)
    criterion = make_criterion(report_accuracy=True)
    _, _, log = criterion(RowLogits(table), make_sample(TARGET))
    assert (log["n_correct"], log["total"]) == (4, 7)
    with metrics.aggregate(new_root=True) as agg:
        AdjustLabelSmoothedCrossEntropyCriterion.reduce_metrics([log, log])
        assert agg.get_smoothed_values()["accuracy"] == pytest.approx(round(400 / 7, 3))


def test_reduce_metrics_logs_nats_per_sample_size():
    logs = [
        {"loss": torch.tensor(6.0), "nll_loss": torch.tensor(4.0), "ntokens": 3,
         "nsentences": 1, "sample_size": 3},
        {"loss": torch.tensor(4.0), "nll_loss": torch.tensor(2.0), "ntokens": 2,
         "nsentences": 1, "sample_size": 2},
    ]
    assert AdjustLabelSmoothedCrossEntropyCriterion.logging_outputs_can_be_summed()
    with metrics.aggregate(new_root=True) as agg:
        AdjustLabelSmoothedCrossEntropyCriterion.reduce_metrics(logs)
        values = agg.get_smoothed_values()
    assert values["loss"] == pytest.approx(2.0)  # 10 / 5, no division by ln 2
    assert values["nll_loss"] == pytest.approx(1.2)
    assert values["ppl"] == pytest.approx(round(2**1.2, 2))
    assert (values["ntokens"], values["nsentences"], values["sample_size"]) == (5, 2, 5)
    assert "accuracy" not in values and "loss_v1" not in values


def test_rdrop_duplicates_the_batch_without_touching_it():
    sample = make_sample(TARGET, conf=torch.tensor([1.0, 2.0]))
    doubled = duplicate_for_rdrop(sample)
    assert torch.equal(doubled["target"], torch.cat([TARGET, TARGET]))
    assert torch.equal(doubled["net_input"]["src_tokens"][:, 0], torch.tensor([0, 1, 0, 1]))
    assert doubled["id"].tolist() == [0, 1, 0, 1]
    assert (doubled["ntokens"], doubled["nsentences"]) == (14, 4)
    assert sample["target"].shape == (2, 4) and sample["ntokens"] == 7


def test_rdrop_adds_symmetric_kl(logits):
    q = logits + torch.randn(logits.shape, generator=torch.Generator().manual_seed(1))
    criterion = make_criterion(use_rdrop=True, reg_alpha=0.7)
    loss, sample_size, log = criterion(TwoPassLogits(logits, q), make_sample(TARGET))
    ce = sum(e[0] for e in token_losses(logits, TARGET).values())
    ce += sum(e[0] for e in token_losses(q, TARGET).values())
    keep = TARGET.ne(PAD)
    lp, lq = F.log_softmax(logits[keep], -1), F.log_softmax(q[keep], -1)
    kl = 0.5 * (F.kl_div(lp, lq.exp(), reduction="sum") + F.kl_div(lq, lp.exp(), reduction="sum"))
    assert kl.item() > 0.1
    assert loss.item() == pytest.approx(ce + 0.7 * kl.item(), rel=1e-5)
    assert sample_size == 14 and log["ntokens"] == 14 and log["nsentences"] == 4


def test_rdrop_drop_worst_mirrors_the_first_copy(logits):
    q = logits + 3 * torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))
    criterion = make_criterion(use_rdrop=True, reg_alpha=0.0, drop_worst_ratio=0.3)
    loss, sample_size, _ = criterion(TwoPassLogits(logits, q), make_sample(TARGET), 1)
    first, second = token_losses(logits, TARGET), token_losses(q, TARGET)
    kept = sorted(first, key=lambda key: first[key][0])[:4]
    assert sample_size == 8
    assert loss.item() == pytest.approx(sum(first[k][0] + second[k][0] for k in kept), rel=1e-5)


@pytest.mark.parametrize("container", [list, tuple])
def test_pretraining_pair_normalises_each_batch(logits, container):
    criterion = make_criterion(sample_patch_num=3)
    seen = []

    class Recorder(RowLogits):
        def forward(self, src_tokens, **net_input):
            seen.append(net_input.get("sample_patch_num"))
            return super().forward(src_tokens)

    other = torch.tensor([[4, EOS, PAD, PAD], [5, 6, 7, EOS]])
    first, second = make_sample(TARGET), make_sample(other)
    loss, sample_size, log = criterion(Recorder(logits), container([first, second]))
    l1 = sum(e[0] for e in token_losses(logits, TARGET).values())
    l2 = sum(e[0] for e in token_losses(logits, other).values())
    assert sample_size == 1 == log["sample_size"]
    assert loss.item() == pytest.approx(l1 / 7 + l2 / 6, rel=1e-5)
    assert (log["sample_size_v1"], log["sample_size_v2"], log["ntokens"]) == (7, 6, 13)
    assert log["loss_v1"].item() == pytest.approx(l1, rel=1e-5)
    assert seen == [3, None]
    assert "sample_patch_num" not in first["net_input"]
    with metrics.aggregate(new_root=True) as agg:
        AdjustLabelSmoothedCrossEntropyCriterion.reduce_metrics([log])
        values = agg.get_smoothed_values()
    assert values["loss"] == pytest.approx(loss.item(), abs=1e-3)
    assert values["loss_v2"] == pytest.approx(l2 / 6, abs=1e-3)


def test_pretraining_sample_must_be_a_pair(logits):
    with pytest.raises(ValueError, match="2 batches"):
        make_criterion()(RowLogits(logits), [make_sample(TARGET)] * 3)


@pytest.mark.parametrize("name", ["caption", "refcoco"])
def test_official_loss_on_fixture_logits(name):
    """Full logits = fixture decoder features @ the checkpoint's output projection (exact)."""
    state = torch.load(FIXTURE / "checkpoint.pt", map_location="cpu", weights_only=False)
    projection = state["model"]["decoder.output_projection.weight"].float()
    arrays = np.load(FIXTURE / "golden" / "teacher_forced.npz")
    meta = json.loads((FIXTURE / "golden" / "teacher_forced.json").read_text())["meta"]
    logits = torch.from_numpy(arrays[f"{name}.decoder_features"]) @ projection.T
    assert torch.equal(logits[0, 0], torch.from_numpy(arrays[f"{name}.full_logits_b0_t0"]))
    options = {key: value for key, value in meta["criterion_cfg"].items() if key != "_name"}
    criterion = AdjustLabelSmoothedCrossEntropyCriterion(FakeTask(), **options)
    target = torch.from_numpy(arrays[f"{name}.target"])
    loss, sample_size, log = criterion(RowLogits(logits), make_sample(target), update_num=0)
    golden = meta[f"{name}.criterion"]
    assert loss.item() == pytest.approx(golden["loss"], rel=1e-6)
    assert log["nll_loss"].item() == pytest.approx(golden["nll_loss"], rel=1e-6)
    assert sample_size == golden["sample_size"] and log["ntokens"] == golden["ntokens"]


def test_tiny_model_learns_with_the_criterion():
    torch.manual_seed(0)
    vocab = 12
    src = torch.randint(4, vocab, (16, 3))
    target = torch.cat([src, torch.full((16, 1), EOS)], dim=1)
    prev = torch.cat([torch.zeros(16, 1, dtype=torch.long), target[:, :-1]], dim=1)
    sample = {
        "nsentences": 16,
        "ntokens": target.numel(),
        "net_input": {"src_tokens": src, "src_lengths": torch.full((16,), 3),
                      "prev_output_tokens": prev},
        "target": target,
    }
    model = TinySeq2Seq(vocab)
    criterion = make_criterion(label_smoothing=0.1, drop_worst_ratio=0.1, drop_worst_after=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    per_token = []
    for step in range(50):
        loss, sample_size, _ = criterion(model, sample, update_num=step)
        optimizer.zero_grad()
        (loss / sample_size).backward()
        optimizer.step()
        per_token.append(loss.item() / sample_size)
    assert per_token[-1] < 0.5 * per_token[0]
    assert per_token[0] == pytest.approx(math.log(vocab), rel=0.2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_give_a_float32_loss(logits, dtype):
    half = logits.to(dtype)
    loss, _, _ = make_criterion()(RowLogits(half), make_sample(TARGET))
    reference, _, _ = make_criterion()(RowLogits(half.float()), make_sample(TARGET))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)


def symmetric_kl_over(p: torch.Tensor, q: torch.Tensor, allowed: list) -> float:
    """Direct R-Drop term for (N, V) logits renormalised over the token set `allowed`."""
    lp, lq = F.log_softmax(p[:, allowed].double(), -1), F.log_softmax(q[:, allowed].double(), -1)
    return float(0.5 * ((lp.exp() * (lp - lq)).sum() + (lq.exp() * (lq - lp)).sum()))


def test_rdrop_kl_is_restricted_to_the_constraint_range(logits):
    q = logits + torch.randn(logits.shape, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([[6, 7, EOS, PAD], [7, 6, 6, EOS]])
    model = TwoPassLogits(logits, q)
    criterion = make_criterion(use_rdrop=True, reg_alpha=0.5, constraint_range="6,8")
    loss, sample_size, _ = criterion(model, make_sample(target))
    allowed = [0, 1, 2, 3, 6, 7]
    tokens = [(b, t) for b in range(2) for t in range(4) if target[b, t] != PAD]
    ce = sum(smoothed_ce(x[b, t], int(target[b, t]), 0.1, allowed)[0]
             for x in (logits, q) for b, t in tokens)
    keep = target.ne(PAD)
    kl = symmetric_kl_over(logits[keep], q[keep], allowed)
    assert kl > 0.05 and sample_size == 14
    assert loss.item() == pytest.approx(ce + 0.5 * kl, rel=1e-5)
    loss.backward()
    assert torch.isfinite(model.p.grad).all() and torch.isfinite(model.q.grad).all()


def test_rdrop_with_constraint_masks_is_finite_and_smooths_per_row(logits):
    """Per-position masks (the official code gives NaN here): KL over each row's allowed set."""
    q = logits + torch.randn(logits.shape, generator=torch.Generator().manual_seed(4))
    masks = torch.zeros(2, 4, V, dtype=torch.bool)
    allowed_sets = {}
    for index, (b, t) in enumerate(TOKENS):
        allowed_sets[(b, t)] = sorted({0, 1, 2, 3, int(TARGET[b, t]), 4 + index % 5})
        masks[b, t, allowed_sets[(b, t)]] = True
    model = TwoPassLogits(logits, q)
    loss, _, _ = make_criterion(use_rdrop=True, reg_alpha=1.0)(
        model, make_sample(TARGET, constraint_masks=masks)
    )
    expected = 0.0
    for key in TOKENS:
        allowed = allowed_sets[key]
        expected += sum(smoothed_ce(x[key], int(TARGET[key]), 0.1, allowed)[0] for x in (logits, q))
        expected += symmetric_kl_over(logits[key][None], q[key][None], allowed)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert torch.isfinite(model.p.grad).all() and model.p.grad[~masks].abs().max() == 0


def test_rdrop_doubles_lists_but_not_other_scalars():
    sample = make_sample(TARGET, uniq_id=["a", "b"])
    sample["net_input"]["sample_patch_num"] = 3
    doubled = duplicate_for_rdrop(sample)
    assert doubled["uniq_id"] == ["a", "b", "a", "b"] and sample["uniq_id"] == ["a", "b"]
    assert doubled["net_input"]["sample_patch_num"] == 3  # the official code doubles it to 6


def test_pretraining_pair_with_rdrop_and_no_patch_sampling(logits):
    seen = []

    class Recorder(RowLogits):
        def forward(self, src_tokens, **net_input):
            seen.append((src_tokens.size(0), net_input.get("sample_patch_num")))
            return super().forward(src_tokens)

    other = torch.tensor([[4, EOS, PAD, PAD], [5, 6, 7, EOS]])
    pair = (make_sample(TARGET), make_sample(other))
    model = Recorder(torch.cat([logits, logits]))
    _, _, log = make_criterion(use_rdrop=True, sample_patch_num=5)(model, pair)
    assert seen == [(4, 5), (4, None)]
    assert (log["sample_size_v1"], log["sample_size_v2"], log["nsentences"]) == (14, 12, 8)
    seen.clear()
    make_criterion(sample_patch_num=0)(Recorder(logits), pair)
    assert seen == [(2, None), (2, None)]


def one_hot_table(predictions: torch.Tensor) -> torch.Tensor:
    """Logits (B, T, V) whose argmax at each position is `predictions[b, t]`."""
    table = torch.full((*predictions.shape, V), -5.0)
    return table.scatter_(-1, predictions.unsqueeze(-1), 5.0)


def test_accuracy_is_argmax_over_allowed_tokens_before_dropping():
    predictions = torch.tensor([[5, 0, 7, EOS], [8, 4, 4, 4]])  # 4 hits of 7 at full vocabulary
    table = one_hot_table(predictions)
    table[0, 1, 6] = 4.0  # runner-up at (0, 1) is the target 6, but 0 wins over the full vocabulary
    masks = torch.ones(2, 4, V, dtype=torch.bool)
    masks[0, 1, 0] = False  # ... and is disallowed here, so the target becomes the argmax
    criterion = make_criterion(report_accuracy=True, drop_worst_ratio=0.5)
    _, sample_size, log = criterion(RowLogits(table), make_sample(TARGET), update_num=1)
    assert (log["n_correct"], log["total"], sample_size) == (4, 7, 3)
    _, _, log = criterion(RowLogits(table), make_sample(TARGET, constraint_masks=masks), 1)
    assert (log["n_correct"], log["total"]) == (5, 7)
    _, _, log = make_criterion(report_accuracy=True, ignore_prefix_size=1)(
        RowLogits(table), make_sample(TARGET)
    )
    assert (log["n_correct"], log["total"]) == (2, 5)


def test_accuracy_with_rdrop_and_pretraining_pairs():
    p = one_hot_table(torch.tensor([[5, 0, 7, EOS], [8, 4, 4, 4]]))  # 4 hits
    q = one_hot_table(torch.tensor([[5, 6, 7, EOS], [8, 9, EOS, 4]]))  # 7 hits
    criterion = make_criterion(report_accuracy=True, use_rdrop=True)
    _, _, log = criterion(TwoPassLogits(p, q), make_sample(TARGET))
    assert (log["n_correct"], log["total"]) == (11, 14)
    _, _, pair_log = make_criterion(report_accuracy=True)(
        RowLogits(torch.cat([p, q])), [make_sample(TARGET), make_sample(TARGET, net_input={
            "src_tokens": torch.tensor([[2], [3]])})]
    )
    assert (pair_log["n_correct"], pair_log["total"]) == (11, 14)
    with metrics.aggregate(new_root=True) as agg:
        AdjustLabelSmoothedCrossEntropyCriterion.reduce_metrics([log, pair_log])
        values = agg.get_smoothed_values()
    assert values["accuracy"] == pytest.approx(round(2200 / 28, 3))
    assert values["loss_v1"] == pytest.approx(pair_log["loss_v1"].item() / 7, abs=1e-3)
