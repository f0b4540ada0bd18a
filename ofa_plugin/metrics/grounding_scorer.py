"""`--scoring ofa_grounding`: refcoco Acc@0.5 printed by `fairseq-generate` at the end of a run.

fairseq-generate gives a scorer only the decoded target and hypothesis strings, which hold neither
the generated token ids (a non-bin token is decoded to text) nor the resize ratios and the original
box that the official score needs. So the refcoco task, which has the batch, computes each sample's
box in its `inference_step` and publishes it here (`publish_predictions`); every live scorer queues
what was published and `add_string`, which fairseq-generate calls once per sample right after the
batch's `inference_step`, takes the next one. The target string is checked against the queued
sample's target bins, so a scorer fed out of order fails loudly instead of mis-scoring.
"""
from __future__ import annotations

import json
import logging
import re
import weakref
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from fairseq.dataclass import FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer
from omegaconf import DictConfig

from ofa_plugin.metrics.grounding import grounding_hit

logger = logging.getLogger(__name__)

_BIN_SYMBOL = re.compile(r"<bin_(\d+)>")
_LIVE_SCORERS: "weakref.WeakSet[GroundingScorer]" = weakref.WeakSet()


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


def publish_predictions(predictions: Iterable[GroundingPrediction]) -> None:
    """Queue a batch's predictions, in batch order, for every live `ofa_grounding` scorer (none: no-op)."""
    predictions = list(predictions)
    for scorer in list(_LIVE_SCORERS):
        scorer.pending.extend(predictions)


@dataclass
class GroundingScorerConfig(FairseqDataclass):
    """The grounding scorer has no options: it always reports Acc@0.5."""


@register_scorer("ofa_grounding", dataclass=GroundingScorerConfig)
class GroundingScorer(BaseScorer):
    """Acc@0.5 over the predictions the refcoco task published; with `--results-path`, also writes
    them as the official `{gen_subset}_predict.json` ([{"uniq_id", "box"}]) when the result is printed."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.pending: deque[GroundingPrediction] = deque()
        self.predictions: list[GroundingPrediction] = []
        _LIVE_SCORERS.add(self)

    def add_string(self, ref: str, pred: str) -> None:
        if not self.pending:
            raise RuntimeError(f"sentence {len(self.predictions)}: the ofa_grounding scorer has no box for "
                               f"hypothesis {pred!r}: it only works with the refcoco task, which publishes them")
        prediction = self.pending.popleft()
        target_bins = [int(b) for b in _BIN_SYMBOL.findall(ref)]
        if target_bins != prediction.target_bins:
            raise ValueError(f"sentence {len(self.predictions)} ({prediction.uniq_id}): target {ref!r} does not "
                             f"match the published sample's bins {prediction.target_bins}")
        self.predictions.append(prediction)

    def score(self) -> float:
        """Acc@0.5 of the predictions added so far (0.0 when none)."""
        if not self.predictions:
            return 0.0
        return sum(p.hit for p in self.predictions) / len(self.predictions)

    def result_string(self) -> str:
        self.write_predict_json()
        hits = sum(p.hit for p in self.predictions)
        return f"Acc@0.5 {self.score():.4f} ({hits}/{len(self.predictions)} hits)"

    def write_predict_json(self) -> None:
        """Write `{results_path}/{gen_subset}_predict.json` if this run has a --results-path."""
        root = self.cfg._get_parent() if isinstance(self.cfg, DictConfig) else None
        results_path = root.common_eval.get("results_path") if root is not None else None
        if not results_path:
            return
        path = Path(results_path) / f"{root.dataset.gen_subset}_predict.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        records = [{"uniq_id": p.uniq_id, "box": p.box} for p in self.predictions]
        path.write_text(json.dumps(records))
        logger.info("wrote %d predictions to %s", len(records), path)

