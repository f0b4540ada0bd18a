"""Training curves from `fairseq-train --log-format simple` logs: the loss at each logged update.

fairseq logs one `train_inner` line every `--log-interval` updates, e.g.
`... | INFO | train_inner | epoch 001:     25 / 313 loss=8.397, nll_loss=8.397, ..., num_updates=25, lr=0.0005, ...`;
the loss there is the mean over the interval, in nats per target token (our criterion's unit).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# `\b` keeps "nll_loss=" from matching as the loss: "_" is a word character.
_TRAIN_INNER = re.compile(r"\| train_inner \|.*?\bloss=([0-9.eE+-]+|nan|inf),.*?\bnum_updates=(\d+)\b")


@dataclass
class LossCurve:
    """Logged training losses, in the order of the log (updates ascending for one run)."""

    updates: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)

    def points(self) -> list[tuple[float, float]]:
        """(update, loss) pairs, the chart's data."""
        return [(float(u), loss) for u, loss in zip(self.updates, self.losses)]


def loss_point(line: str) -> tuple[int, float] | None:
    """(num_updates, loss) of a `train_inner` log line, None for any other line."""
    match = _TRAIN_INNER.search(line)
    return (int(match.group(2)), float(match.group(1))) if match else None


def parse_training_log(text: str) -> LossCurve:
    """The loss curve of a whole fairseq-train log."""
    curve = LossCurve()
    for line in text.splitlines():
        point = loss_point(line)
        if point is not None:
            curve.updates.append(point[0])
            curve.losses.append(point[1])
    return curve


def read_training_log(path: str | os.PathLike) -> LossCurve:
    """The loss curve of a fairseq-train log file; ValueError if it logged no training loss."""
    curve = parse_training_log(Path(path).read_text(errors="replace"))
    if not curve.updates:
        raise ValueError(f"{path}: no 'train_inner' loss lines (run fairseq-train with --log-format simple)")
    return curve
