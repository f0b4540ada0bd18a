"""`--lr-scheduler ofa_polynomial_decay`: fairseq's polynomial decay plus OFA's `--warmup-ratio` (reference §9.2).

The schedule is stock `polynomial_decay`: `lr * n / warmup` during warm-up, then
`(lr - end) * (1 - (n - warmup) / (total - warmup)) ** power + end`, and `end` from `total` on.
With `--warmup-ratio R > 0` the warm-up is `int(total * R)` updates, and with `--max-epoch` the total
comes from the data, as OFA's train.py computes it: `sum over the epochs of ceil(batches per epoch on this
rank / update_freq of that epoch)`, capped by `--max-update` when that is set too. Without `--max-epoch`
the total is `--total-num-update` (default `--max-update`).

A scheduler does not see the data, so the task tells it: `OFATask` calls `record_train_batches` with the
length of every training iterator it builds, and `forget_train_batches` when it is set up (a new run). The
scheduler fixes its schedule at its first `step_update` after the first record of the run. On a fresh run
fairseq builds the training iterator before the optimizer, so that is the very first step; on a resumed
run (checkpoint_last.pt, or --restore-file) fairseq builds the optimizer first and the iterator right
after, so the schedule is fixed before the first update of the run (at `begin_epoch`), and until then the
scheduler reports the base lr. The schedule is computed again in every run (not stored in checkpoints),
as the official code does.
"""
import logging
import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from fairseq.optim.lr_scheduler import FairseqLRScheduler, register_lr_scheduler
from fairseq.optim.lr_scheduler.polynomial_decay_schedule import PolynomialDecayLRScheduleConfig
from omegaconf import II

logger = logging.getLogger(__name__)

_train_batches: Optional[int] = None  # batches per epoch of this run's training iterator on this rank


def record_train_batches(num_batches: int) -> None:
    """The task built a training iterator of `num_batches` batches per epoch (on this rank)."""
    global _train_batches
    _train_batches = num_batches


def forget_train_batches() -> None:
    """A new run starts (task setup): batch counts of an earlier run in this process no longer apply."""
    global _train_batches
    _train_batches = None


def data_total_updates(batches_per_epoch: int, max_epoch: int, update_freq: Sequence[int]) -> int:
    """Updates of `max_epoch` epochs: sum of ceil(batches / update_freq[epoch]) (the last entry repeats)."""
    return sum(math.ceil(batches_per_epoch / update_freq[min(epoch, len(update_freq) - 1)])
               for epoch in range(max_epoch))


def polynomial_decay_lr(num_updates: int, lr: float, end_lr: float, warmup: int, total: float, power: float) -> float:
    """The learning rate after `num_updates` updates (stock polynomial_decay formula)."""
    if warmup > 0 and num_updates <= warmup:
        return lr * num_updates / warmup
    if num_updates >= total:
        return end_lr
    remaining = 1 - (num_updates - warmup) / (total - warmup)
    return (lr - end_lr) * remaining ** power + end_lr


@dataclass
class OFAPolynomialDecayConfig(PolynomialDecayLRScheduleConfig):
    # stock declares it non-optional with the default ${optimization.max_update}, which the command line
    # turns into null (a crash) whenever --total-num-update is not given
    total_num_update: Optional[float] = field(default=None, metadata={
        "help": "total number of updates over which to decay the learning rate (default: --max-update)"})
    warmup_ratio: float = field(default=0.0, metadata={
        "help": "warm up for int(total updates * ratio) updates instead of --warmup-updates; with --max-epoch "
                "the total is derived from the training data (official OFA)"})
    max_epoch: int = II("optimization.max_epoch")
    max_update: int = II("optimization.max_update")
    update_freq: List[int] = II("optimization.update_freq")


@register_lr_scheduler("ofa_polynomial_decay", dataclass=OFAPolynomialDecayConfig)
class OFAPolynomialDecayLRSchedule(FairseqLRScheduler):
    """Polynomial decay whose warm-up can be a ratio of the total and whose total can come from the data."""

    def __init__(self, cfg: OFAPolynomialDecayConfig, optimizer):
        super().__init__(cfg, optimizer)
        self.lr = cfg.lr[0]
        self.warmup_updates: Optional[int] = cfg.warmup_updates
        self.total_num_update: Optional[float] = cfg.total_num_update or cfg.max_update or None
        if not 0 <= cfg.warmup_ratio <= 1:
            raise ValueError(f"--warmup-ratio must be in [0, 1], got {cfg.warmup_ratio}")
        if cfg.warmup_ratio > 0 and cfg.warmup_updates > 0:
            raise ValueError("give either --warmup-ratio or --warmup-updates, not both")
        if cfg.warmup_ratio > 0 and cfg.max_epoch > 0:
            self.warmup_updates = self.total_num_update = None  # fixed from the data at the first step
        elif self.total_num_update is None:
            raise ValueError("ofa_polynomial_decay needs the length of training: --max-update or "
                             "--total-num-update, or --max-epoch with --warmup-ratio (the total number of updates "
                             "then comes from the data)")
        elif cfg.warmup_ratio > 0:
            source = "--total-num-update" if cfg.total_num_update else "--max-update"
            self._fix_schedule(int(self.total_num_update), source)
        self.optimizer.set_lr(self._lr_at(0))

    def _fix_schedule(self, total: int, source: str) -> None:
        self.total_num_update = total
        self.warmup_updates = int(total * self.cfg.warmup_ratio)
        logger.info("ofa_polynomial_decay: total_num_update %d (%s), warmup_updates %d (warmup_ratio %g)",
                    total, source, self.warmup_updates, self.cfg.warmup_ratio)

    def _fix_schedule_from_data(self) -> bool:
        """Fix total and warm-up from the recorded training iterator; False while there is none yet."""
        if _train_batches is None:
            return False
        total = data_total_updates(_train_batches, self.cfg.max_epoch, self.cfg.update_freq)
        source = (f"{self.cfg.max_epoch} epochs of {_train_batches} batches on this rank, "
                  f"update_freq {list(self.cfg.update_freq)}")
        if self.cfg.max_update > 0 and self.cfg.max_update < total:
            total, source = self.cfg.max_update, f"--max-update; the data would give {total} = {source}"
        self._fix_schedule(total, source)
        return True

    def _lr_at(self, num_updates: int) -> float:
        if self.total_num_update is None and not self._fix_schedule_from_data():
            return self.lr  # a resumed run before its training iterator exists
        return polynomial_decay_lr(num_updates, self.lr, self.cfg.end_learning_rate, self.warmup_updates,
                                   self.total_num_update, self.cfg.power)

    def step_begin_epoch(self, epoch: int) -> float:
        """The base lr of this epoch (stock `--force-anneal` semantics); the trainer then calls step_update."""
        if self.total_num_update is None and not self._fix_schedule_from_data():
            raise RuntimeError("ofa_polynomial_decay with --warmup-ratio and --max-epoch learns the number of "
                               "batches per epoch from an OFA task; this task did not record its training data")
        if self.cfg.force_anneal is None or epoch < self.cfg.force_anneal:
            self.lr = self.cfg.lr[min(epoch, len(self.cfg.lr) - 1)]
        else:
            self.lr = self.optimizer.get_lr()
        return self.optimizer.get_lr()

    def step_update(self, num_updates: int) -> float:
        self.optimizer.set_lr(self._lr_at(num_updates))
        return self.optimizer.get_lr()
