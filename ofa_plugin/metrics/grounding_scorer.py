"""`--scoring ofa_grounding`: refcoco Acc@0.5 printed by `fairseq-generate` at the end of a run.

The refcoco task publishes each sample's box in original pixels (see `published.py`); the scorer
checks the target string's bins against the sample's and reports Acc@0.5.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from fairseq.scoring import register_scorer

from ofa_plugin.metrics.grounding import grounding_hit
from ofa_plugin.metrics.published import PublishedPredictionScorer, PublishedScorerConfig

_BIN_SYMBOL = re.compile(r"<bin_(\d+)>")


@dataclass
class GroundingPrediction:
    """One sample's official refcoco prediction: boxes in original-image pixels (x0, y0, x1, y1)."""

    uniq_id: str
    box: list[float]
    target_box: list[float]
    target_bins: list[int]

    @property
    def hit(self) -> bool:
        """IoU >= 0.5 with an intersection of positive width and height (official Acc@0.5)."""
        return bool(grounding_hit(self.box, self.target_box))

    def matches_target(self, target: str) -> bool:
        return [int(b) for b in _BIN_SYMBOL.findall(target)] == self.target_bins

    def record(self) -> dict:
        return {"uniq_id": self.uniq_id, "box": self.box}


@register_scorer("ofa_grounding", dataclass=PublishedScorerConfig)
class GroundingScorer(PublishedPredictionScorer):
    """Acc@0.5 over the predictions the refcoco task published; predict JSON [{"uniq_id", "box"}]."""

    task_names = "the refcoco task"

    def score(self) -> float:
        """Acc@0.5 of the predictions added so far (0.0 when none)."""
        if not self.predictions:
            return 0.0
        return sum(p.hit for p in self.predictions) / len(self.predictions)

    def metrics_string(self) -> str:
        hits = sum(p.hit for p in self.predictions)
        return f"Acc@0.5 {self.score():.4f} ({hits}/{len(self.predictions)} hits)"
