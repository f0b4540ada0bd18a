"""`adjust_label_smoothed_cross_entropy`: OFA's training loss (reference §6.1).

Label-smoothed cross-entropy whose smoothing mass is spread over the tokens a position may emit
(per-position constraint masks or a fixed token range), weighted per sample by `sample["conf"]`,
with optional drop-worst token selection, R-Drop regularisation and the two-batch pretraining
form. Losses are sums over tokens in nats; fairseq divides the gradient by `sample_size`.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II
from torch import Tensor

from ofa_plugin.vocab import NUM_SPECIAL_TOKENS, parse_constraint_range

RDROP_COUNT_KEYS = ("ntokens", "nsentences")  # batch-level counts that double with the batch


@dataclass
class AdjustLabelSmoothedCrossEntropyConfig(FairseqDataclass):
    label_smoothing: float = field(
        default=0.0,
        metadata={"help": "epsilon for label smoothing, 0 means no label smoothing"},
    )
    report_accuracy: bool = field(
        default=False,
        metadata={"help": "log token accuracy: argmax over the allowed tokens == target"},
    )
    ignore_prefix_size: int = field(
        default=0, metadata={"help": "ignore the first N target positions of every row"}
    )
    ignore_eos: bool = field(
        default=False, metadata={"help": "ignore the eos positions of the targets"}
    )
    sentence_avg: bool = II("optimization.sentence_avg")
    drop_worst_ratio: float = field(
        default=0.0,
        metadata={"help": "fraction of target tokens with the largest loss left out of the loss"},
    )
    drop_worst_after: int = field(
        default=0, metadata={"help": "drop the worst tokens only once update_num exceeds this"}
    )
    use_rdrop: bool = field(
        default=False,
        metadata={"help": "R-Drop: run every batch twice and add a symmetric KL between the runs"},
    )
    reg_alpha: float = field(default=1.0, metadata={"help": "weight of the R-Drop KL term"})
    sample_patch_num: int = field(
        default=196,
        metadata={"help": "image patches sampled for the first batch of a pretraining pair"},
    )
    constraint_range: Optional[str] = field(
        default=None,
        metadata={"help": "'start,end': only tokens 0-3 and [start, end) may be predicted"},
    )


def range_allowed_tokens(vocab_size: int, start: int, end: int, device: torch.device) -> Tensor:
    """Boolean (V,) mask of the tokens allowed by a constraint range: specials and [start, end)."""
    allowed = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    allowed[:NUM_SPECIAL_TOKENS] = True
    allowed[start:end] = True
    return allowed


def label_smoothed_nll_loss(
    lprobs: Tensor, target: Tensor, epsilon: float, allowed: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor]:
    """Per-token smoothed loss and nll for (N, V) log-probs and (N,) targets.

    The smoothing mass goes to the allowed set S_i of each token (all of V without constraints):
    `loss_i = (1 - eps - eps_i) * nll_i + eps_i * sum_{v in S_i} -lprobs[i, v]` with
    `eps_i = eps / (|S_i| - 1 + 1e-6)` under constraints (the official formula, 1e-6 included)
    and `eps / (V - 1)` otherwise. `allowed` is (N, V) or (V,) boolean.
    """
    nll = -lprobs.gather(dim=-1, index=target.unsqueeze(-1)).squeeze(-1)
    if allowed is None:
        smooth = -lprobs.sum(dim=-1)
        eps_i = epsilon / (lprobs.size(-1) - 1)
    else:
        smooth = -lprobs.masked_fill(~allowed, 0.0).sum(dim=-1)
        eps_i = epsilon / (allowed.sum(dim=-1) - 1 + 1e-6)
    loss = (1.0 - epsilon - eps_i) * nll + eps_i * smooth
    return loss, nll


def ranked_token_indices(
    token_loss: Tensor, drop_ratio: float, mirrored: bool, largest: bool = False
) -> Tensor:
    """Indices of the `int(n * (1 - drop_ratio))` tokens with the smallest loss (drop-worst), or
    with the largest loss when `largest` (drop-best).

    With `mirrored` (R-Drop) the choice is made on the first half and repeated on the second,
    so both copies of a token are kept or dropped together.
    """
    n = token_loss.size(0) // 2 if mirrored else token_loss.size(0)
    keep = int(n * (1 - drop_ratio))
    indices = torch.topk(token_loss[:n], k=keep, largest=largest).indices
    return torch.cat([indices, indices + n]) if mirrored else indices


class TokenLosses(NamedTuple):
    """Per-token quantities of the target positions in the loss, kept aligned by `take`.

    `lprobs` (N, V) are already multiplied by the conf weights; `allowed` is (N, V), (V,) or None.
    """

    lprobs: Tensor
    target: Tensor
    allowed: Optional[Tensor]
    loss: Tensor
    nll: Tensor

    def take(self, indices: Tensor) -> "TokenLosses":
        """The tokens at `indices` (a per-position allowed mask follows them)."""
        allowed = self.allowed
        if allowed is not None and allowed.dim() == 2:
            allowed = allowed[indices]
        return TokenLosses(
            self.lprobs[indices], self.target[indices], allowed,
            self.loss[indices], self.nll[indices],
        )


def symmetric_kl(lprobs: Tensor, allowed: Optional[Tensor] = None) -> Tensor:
    """R-Drop term `(KL(Q||P) + KL(P||Q)) / 2`, summed, for lprobs stacked as `[P; Q]`.

    Disallowed tokens (log-prob -inf in both halves) contribute 0; the official code slices the
    constraint range out and yields NaN with per-position constraint masks instead.
    """
    p, q = lprobs.chunk(2, dim=0)
    if allowed is not None:
        if allowed.dim() == 2:
            allowed_p, allowed_q = allowed.chunk(2, dim=0)
            allowed = allowed_p & allowed_q
        p = p.masked_fill(~allowed, 0.0)
        q = q.masked_fill(~allowed, 0.0)
    return 0.5 * ((q.exp() - p.exp()) * (q - p)).sum()


def duplicate_for_rdrop(sample: Dict[str, Any]) -> Dict[str, Any]:
    """The batch twice over, `[x; x]` along dim 0, so one forward sees two dropout masks.

    Tensors, NumPy arrays and per-sample lists are tiled the same way (the official code repeats
    arrays element-wise, reference §12.2 item 20) and the batch counts double; other scalars (e.g.
    `sample_patch_num`, which the official code doubles too) stay. The input dict is left unchanged.
    """
    doubled: Dict[str, Any] = {}
    for key, value in sample.items():
        if isinstance(value, dict):
            doubled[key] = duplicate_for_rdrop(value)
        elif torch.is_tensor(value) and value.dim() > 0:
            doubled[key] = torch.cat([value, value], dim=0)
        elif isinstance(value, np.ndarray) and value.ndim > 0:
            doubled[key] = np.concatenate([value, value], axis=0)
        elif isinstance(value, list):
            doubled[key] = value + value
        elif key in RDROP_COUNT_KEYS:
            doubled[key] = value * 2
        else:
            doubled[key] = value
    return doubled


@register_criterion(
    "adjust_label_smoothed_cross_entropy", dataclass=AdjustLabelSmoothedCrossEntropyConfig
)
class AdjustLabelSmoothedCrossEntropyCriterion(FairseqCriterion):
    """OFA's label-smoothed cross-entropy (reference §6.1), `report_accuracy` working."""

    def __init__(
        self,
        task,
        sentence_avg: bool,
        label_smoothing: float,
        ignore_prefix_size: int = 0,
        ignore_eos: bool = False,
        report_accuracy: bool = False,
        drop_worst_ratio: float = 0.0,
        drop_worst_after: int = 0,
        use_rdrop: bool = False,
        reg_alpha: float = 1.0,
        sample_patch_num: int = 196,
        constraint_range: Optional[str] = None,
    ) -> None:
        super().__init__(task)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {label_smoothing}")
        if not 0.0 <= drop_worst_ratio < 1.0:
            raise ValueError(f"--drop-worst-ratio must be in [0, 1), got {drop_worst_ratio}")
        if ignore_prefix_size < 0:
            raise ValueError(f"--ignore-prefix-size must be >= 0, got {ignore_prefix_size}")
        self.sentence_avg = sentence_avg
        self.eps = label_smoothing
        self.ignore_prefix_size = ignore_prefix_size
        self.ignore_eos = ignore_eos
        self.report_accuracy = report_accuracy
        self.drop_worst_ratio = drop_worst_ratio
        self.drop_worst_after = drop_worst_after
        self.use_rdrop = use_rdrop
        self.reg_alpha = reg_alpha
        self.sample_patch_num = sample_patch_num
        self.constraint_range = parse_constraint_range(constraint_range)
        self.eos_idx = task.target_dictionary.eos()

    def forward(
        self, model, sample, update_num: int = 0, reduce: bool = True
    ) -> Tuple[Tensor, int, Dict[str, Any]]:
        """Return (summed loss, sample_size, logging output) for a batch or a pretraining pair.

        `update_num` gates drop-worst; stock fairseq's `train_step` omits it (0: never drops).
        """
        if not reduce:
            raise ValueError("reduce=False is not supported: the loss is a sum over kept tokens")
        if isinstance(sample, (list, tuple)):
            return self._forward_pair(model, sample, update_num)
        return self._forward_batch(model, sample, update_num)

    def _forward_pair(
        self, model, pair: Sequence[Dict[str, Any]], update_num: int
    ) -> Tuple[Tensor, int, Dict[str, Any]]:
        """Pretraining: each batch normalised by its own sample size, the sum counted as 1."""
        if len(pair) != 2:
            raise ValueError(f"a pretraining sample must hold 2 batches, got {len(pair)}")
        first, second = pair
        if self.sample_patch_num > 0:
            net_input = {**first["net_input"], "sample_patch_num": self.sample_patch_num}
            first = {**first, "net_input": net_input}
        loss_v1, size_v1, log_v1 = self._forward_batch(model, first, update_num)
        loss_v2, size_v2, log_v2 = self._forward_batch(model, second, update_num)
        loss = loss_v1 / size_v1 + loss_v2 / size_v2
        logging_output = {
            "loss": loss.data,
            "loss_v1": loss_v1.data,
            "loss_v2": loss_v2.data,
            "nll_loss": log_v1["nll_loss"] / size_v1 + log_v2["nll_loss"] / size_v2,
            "ntokens": log_v1["ntokens"] + log_v2["ntokens"],
            "nsentences": log_v1["nsentences"] + log_v2["nsentences"],
            "sample_size": 1,
            "sample_size_v1": size_v1,
            "sample_size_v2": size_v2,
        }
        if self.report_accuracy:
            for key in ("n_correct", "total"):
                logging_output[key] = log_v1[key] + log_v2[key]
        return loss, 1, logging_output

    def _forward_batch(
        self, model, sample: Dict[str, Any], update_num: int
    ) -> Tuple[Tensor, int, Dict[str, Any]]:
        """One collated batch: loss sum over kept tokens and its logging output.

        Accuracy counts argmax hits (over the allowed tokens) at every position that enters the
        loss before any token dropping, both R-Drop copies included.
        """
        if self.use_rdrop:
            sample = duplicate_for_rdrop(sample)
        net_output = model(**sample["net_input"])
        lprobs, target, allowed, weights = self.get_lprobs_and_target(net_output, sample)
        loss, nll_loss, kept_tokens = self.compute_loss(
            lprobs, target, allowed, weights, update_num
        )
        sample_size = sample["target"].size(0) if self.sentence_avg else kept_tokens
        logging_output = {
            "loss": loss.data,
            "nll_loss": nll_loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
        }
        if self.report_accuracy:
            logging_output["n_correct"] = utils.item(lprobs.argmax(dim=-1).eq(target).sum())
            logging_output["total"] = target.numel()
        return loss, sample_size, logging_output

    def get_lprobs_and_target(
        self, net_output, sample: Dict[str, Any]
    ) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        """Float32 log-probs (N, V), targets (N,), allowed tokens and conf weights (N,) of the N
        kept target positions (not pad, past the ignored prefix, not eos with --ignore-eos).

        Disallowed logits are set to -inf before the log-softmax; the allowed mask is (N, V) with
        constraint masks, (V,) with a constraint range only, and None without constraints.
        The weights are `sample["conf"]` of each token's row (None without conf).
        """
        logits, target = net_output[0], sample["target"]
        if logits.shape[:2] != target.shape:
            raise ValueError(
                f"logits of shape {tuple(logits.shape)} do not match target {tuple(target.shape)}"
            )
        keep = self._kept_positions(target)
        allowed = self._allowed_tokens(sample, keep, tuple(logits.shape))
        logits = logits[keep].float()
        if allowed is not None:
            logits = logits.masked_fill(~allowed, float("-inf"))
        weights = self._conf_weights(sample, keep)
        return F.log_softmax(logits, dim=-1), target[keep], allowed, weights

    @staticmethod
    def _conf_weights(sample: Dict[str, Any], keep: Tensor) -> Optional[Tensor]:
        """Per-token copy of the per-row confidence `sample["conf"]` (None if absent)."""
        conf = sample.get("conf")
        if conf is None:
            return None
        if tuple(conf.shape) != (keep.size(0),):
            raise ValueError(
                f"sample['conf'] must hold one weight per row ({keep.size(0)}), "
                f"got shape {tuple(conf.shape)}"
            )
        return conf[:, None].expand_as(keep)[keep]

    def _kept_positions(self, target: Tensor) -> Tensor:
        """(B, T) mask of the target positions that enter the loss."""
        keep = target.ne(self.padding_idx)
        keep[:, : self.ignore_prefix_size] = False
        if self.ignore_eos:
            keep &= target.ne(self.eos_idx)
        return keep

    def _allowed_tokens(
        self, sample: Dict[str, Any], keep: Tensor, logits_shape: Tuple[int, ...]
    ) -> Optional[Tensor]:
        """Allowed-token mask of the kept positions from constraint masks and/or range."""
        allowed = None
        masks = sample.get("constraint_masks")
        if masks is not None:
            if tuple(masks.shape) != logits_shape:
                raise ValueError(
                    f"sample['constraint_masks'] has shape {tuple(masks.shape)}, "
                    f"expected the logits shape {logits_shape}"
                )
            allowed = masks[keep]
        if self.constraint_range is not None:
            in_range = range_allowed_tokens(logits_shape[-1], *self.constraint_range, keep.device)
            # Both together: smooth over their intersection (the official code smooths over the
            # masks only and then sums -inf log-probs of range-excluded tokens).
            allowed = in_range if allowed is None else allowed & in_range
        return allowed

    def compute_loss(
        self,
        lprobs: Tensor,
        target: Tensor,
        allowed: Optional[Tensor],
        weights: Optional[Tensor],
        update_num: int,
    ) -> Tuple[Tensor, Tensor, int]:
        """Summed loss (plus R-Drop KL), summed nll and the number of tokens in the loss.

        The conf weights multiply the log-probabilities themselves (official behaviour), so they
        scale nll, smoothing and the R-Drop term alike. Subclasses change the token selection
        (`select_tokens`) and the per-token loss sum (`summed_loss`).
        """
        if weights is not None:
            lprobs = lprobs * weights.to(lprobs.dtype).unsqueeze(-1)
        token_loss, token_nll = label_smoothed_nll_loss(lprobs, target, self.eps, allowed)
        tokens = TokenLosses(lprobs, target, allowed, token_loss, token_nll)
        tokens = self.select_tokens(tokens, update_num)
        loss = self.summed_loss(tokens)
        if self.use_rdrop:
            loss = loss + self.reg_alpha * symmetric_kl(tokens.lprobs, tokens.allowed)
        return loss, tokens.nll.sum(), tokens.loss.numel()

    def select_tokens(self, tokens: TokenLosses, update_num: int) -> TokenLosses:
        """The tokens that enter the loss: all, or the lowest-loss ones once drop-worst is on."""
        if self.drop_worst_ratio > 0 and update_num > self.drop_worst_after:
            indices = ranked_token_indices(tokens.loss, self.drop_worst_ratio, self.use_rdrop)
            tokens = tokens.take(indices)
        return tokens

    def summed_loss(self, tokens: TokenLosses) -> Tensor:
        """The loss of the selected tokens before the R-Drop term: their smoothed losses summed."""
        return tokens.loss.sum()

    @classmethod
    def reduce_metrics(cls, logging_outputs: List[Dict[str, Any]]) -> None:
        """Aggregate logging outputs: losses per sample_size in nats, ppl = 2 ** nll_loss."""

        def total(key: str) -> float:
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        sample_size = total("sample_size")
        if sample_size > 0:
            metrics.log_scalar("loss", total("loss") / sample_size, sample_size, round=3)
            metrics.log_scalar("nll_loss", total("nll_loss") / sample_size, sample_size, round=3)
            metrics.log_derived("ppl", lambda meters: utils.get_perplexity(meters["nll_loss"].avg))
        for key in ("ntokens", "nsentences", "sample_size"):
            metrics.log_scalar(key, total(key), 1, round=3)
        for part in ("v1", "v2"):
            part_size = total(f"sample_size_{part}")
            if part_size > 0:
                metrics.log_scalar(
                    f"loss_{part}", total(f"loss_{part}") / part_size, part_size, round=3
                )
                metrics.log_scalar(f"sample_size_{part}", part_size, 1, round=3)
        n_total = total("total")
        if n_total > 0:
            metrics.log_scalar("total", n_total)
            metrics.log_scalar("n_correct", total("n_correct"))
            metrics.log_derived(
                "accuracy",
                lambda meters: round(meters["n_correct"].sum * 100.0 / meters["total"].sum, 3),
            )

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        """All logged values are sums, so workers may add them before `reduce_metrics`."""
        return True
