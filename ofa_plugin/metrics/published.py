"""Scorers fed by the task: how `fairseq-generate` prints metrics that need more than two strings.

fairseq-generate gives a scorer only the decoded target and hypothesis strings. Most official metrics
need more (refcoco: resize ratios and the original box; VQA: every answer's confidence; Gigaword: the
raw reference). So a task computes each sample's prediction in its `inference_step` and publishes it
here (`publish_predictions`); every live scorer queues what was published and `add_string`, which
fairseq-generate calls once per sample right after the batch's `inference_step`, takes the next one.
Each prediction checks the target string against its own ground truth, so a scorer fed out of order
fails loudly instead of mis-scoring. With `--results-path` the predictions are written as the
official `{gen_subset}_predict.json` when the result is printed.
"""
from __future__ import annotations

import json
import logging
import weakref
from abc import abstractmethod
from dataclasses import dataclass
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Protocol

from fairseq.dataclass import FairseqDataclass
from fairseq.scoring import BaseScorer
from omegaconf import DictConfig

logger = logging.getLogger(__name__)

_LIVE_SCORERS: "weakref.WeakSet[PublishedPredictionScorer]" = weakref.WeakSet()


class Prediction(Protocol):
    """One sample's prediction with its ground truth."""

    def matches_target(self, target: str) -> bool:
        """Whether fairseq-generate's decoded target string belongs to this sample."""

    def record(self) -> dict[str, Any]:
        """The sample's entry in the official predict JSON."""


@dataclass
class PublishedScorerConfig(FairseqDataclass):
    """Published-prediction scorers have no options: the task's predictions carry all they need."""


def publish_predictions(predictions: Iterable[Prediction]) -> None:
    """Queue a batch's predictions, in batch order, for every live published-prediction scorer."""
    predictions = list(predictions)
    for scorer in list(_LIVE_SCORERS):
        scorer.pending.extend(predictions)


class PublishedPredictionScorer(BaseScorer):
    """Collects the published predictions in fairseq-generate's order; subclasses compute the metric."""

    task_names = "the task"  # for the error when nothing was published

    def __init__(self, cfg):
        super().__init__(cfg)
        self.pending: deque[Prediction] = deque()
        self.predictions: list[Prediction] = []
        _LIVE_SCORERS.add(self)

    def add_string(self, ref: str, pred: str) -> None:
        if not self.pending:
            raise RuntimeError(f"sentence {len(self.predictions)}: scorer {type(self).__name__} has no prediction "
                               f"for hypothesis {pred!r}: it only works with {self.task_names}, which publishes them")
        prediction = self.pending.popleft()
        if not prediction.matches_target(ref):
            raise ValueError(f"sentence {len(self.predictions)}: target {ref!r} does not belong to the published "
                             f"sample {prediction.record()}")
        self.predictions.append(prediction)

    def result_string(self) -> str:
        self.write_predict_json()
        return self.metrics_string()

    @abstractmethod
    def metrics_string(self) -> str:
        """The metrics line fairseq-generate prints."""

    def write_predict_json(self) -> None:
        """Write `{results_path}/{gen_subset}_predict.json` if this run has a --results-path."""
        root = self.cfg._get_parent() if isinstance(self.cfg, DictConfig) else None
        results_path = root.common_eval.get("results_path") if root is not None else None
        if not results_path:
            return
        path = Path(results_path) / f"{root.dataset.gen_subset}_predict.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        records = [p.record() for p in self.predictions]
        path.write_text(json.dumps(records))
        logger.info("wrote %d predictions to %s", len(records), path)
