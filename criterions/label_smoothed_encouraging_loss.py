"""`adjust_label_smoothed_encouraging_loss`: OFA's criterion with the encouraging loss (§6.2).

"Well-classified examples are underestimated" (Zhao et al.): the label-smoothed cross-entropy of
`adjust_label_smoothed_cross_entropy` plus a bonus `log(1 - p)` that keeps rewarding confident
correct predictions, continued by its tangent line above `--log-end`, and optional drop-best
token selection (leave out the tokens with the smallest loss). Everything else (constraints,
conf, drop-worst, R-Drop, pretraining pairs, logging) is the parent criterion's.
"""
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from fairseq.criterions import register_criterion
from torch import Tensor

from .label_smoothed_cross_entropy import (
    AdjustLabelSmoothedCrossEntropyConfig,
    AdjustLabelSmoothedCrossEntropyCriterion,
    TokenLosses,
    ranked_token_indices,
)

BONUS_FLOOR = 1e-5  # 1 - p is clamped here before the log (official constant)


@dataclass
class AdjustLabelSmoothedEncouragingLossConfig(AdjustLabelSmoothedCrossEntropyConfig):
    log_end: float = field(
        default=0.75,
        metadata={"help": "above this probability the log(1-p) bonus continues as its tangent "
                  "line; 1 keeps the (clamped) log everywhere"},
    )
    drop_best_ratio: float = field(
        default=0.0,
        metadata={"help": "fraction of target tokens with the smallest loss left out of the loss"},
    )
    drop_best_after: int = field(
        default=0, metadata={"help": "drop the best tokens only once update_num exceeds this"}
    )


def encouraging_bonus(lprobs: Tensor, target: Tensor, epsilon: float, log_end: float) -> Tensor:
    """Summed bonus `(1 - eps) * sum_i b[i, target_i] + eps / V * sum_{i,v} b[i, v]` for (N, V)
    log-probs, with `b = log(max(1 - p, 1e-5))` and, when `log_end < 1`, the tangent line of
    `log(1 - p)` at `log_end` for `p > log_end` (finite slope, so confident tokens keep a gradient).
    Disallowed tokens (p = 0) contribute log(1) = 0.
    """
    probs = lprobs.exp()
    bonus = torch.log(torch.clamp(1.0 - probs, min=BONUS_FLOOR))
    if log_end != 1.0:
        tangent = (probs - log_end) / (log_end - 1.0) + math.log(1.0 - log_end)
        bonus = torch.where(probs > log_end, tangent, bonus)
    on_target = bonus.gather(dim=-1, index=target.unsqueeze(-1)).sum()
    return (1.0 - epsilon) * on_target + epsilon / lprobs.size(-1) * bonus.sum()


@register_criterion(
    "adjust_label_smoothed_encouraging_loss", dataclass=AdjustLabelSmoothedEncouragingLossConfig
)
class AdjustLabelSmoothedEncouragingLossCriterion(AdjustLabelSmoothedCrossEntropyCriterion):
    """The CE criterion plus drop-best selection and the encouraging bonus (reference §6.2).

    With R-Drop the drop-best choice is mirrored like drop-worst (the official code is not, which
    misaligns the two copies in the KL term).
    """

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
        log_end: float = 0.75,
        drop_best_ratio: float = 0.0,
        drop_best_after: int = 0,
    ) -> None:
        super().__init__(
            task, sentence_avg, label_smoothing, ignore_prefix_size, ignore_eos, report_accuracy,
            drop_worst_ratio, drop_worst_after, use_rdrop, reg_alpha, sample_patch_num,
            constraint_range,
        )
        if not 0.0 < log_end <= 1.0:
            raise ValueError(f"--log-end must be in (0, 1], got {log_end}")
        if not 0.0 <= drop_best_ratio < 1.0:
            raise ValueError(f"--drop-best-ratio must be in [0, 1), got {drop_best_ratio}")
        self.log_end = log_end
        self.drop_best_ratio = drop_best_ratio
        self.drop_best_after = drop_best_after

    def select_tokens(self, tokens: TokenLosses, update_num: int) -> TokenLosses:
        """Drop-worst, then (once `update_num > drop_best_after`) keep the highest-loss tokens."""
        tokens = super().select_tokens(tokens, update_num)
        if self.drop_best_ratio > 0 and update_num > self.drop_best_after:
            indices = ranked_token_indices(
                tokens.loss, self.drop_best_ratio, self.use_rdrop, largest=True
            )
            tokens = tokens.take(indices)
        return tokens

    def summed_loss(self, tokens: TokenLosses) -> Tensor:
        """Smoothed cross-entropy plus the encouraging bonus of the selected tokens."""
        bonus = encouraging_bonus(tokens.lprobs, tokens.target, self.eps, self.log_end)
        return super().summed_loss(tokens) + bonus
