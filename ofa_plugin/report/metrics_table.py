"""The demo's results: one row per task and metric, the model next to a trivial baseline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

HEADER = ("task", "metric", "model", "trivial baseline")


@dataclass(frozen=True)
class MetricRow:
    task: str
    metric: str
    model: float
    baseline: float
    baseline_name: str  # what the baseline predicts, e.g. 'the most frequent answer ("no")'

    def cells(self) -> tuple[str, str, str, str]:
        return self.task, self.metric, f"{self.model:.3f}", f"{self.baseline:.3f}"


def text_table(rows: Sequence[MetricRow]) -> str:
    """A plain-text table for the terminal: columns padded to their widest cell."""
    table = [HEADER] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
