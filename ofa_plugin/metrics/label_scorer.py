"""`--scoring ofa_accuracy`: accuracy of closed-set answers (SNLI-VE, image classification, GLUE),
plus Matthews correlation (CoLA) and F1 (MRPC, QQP) where the task's official metrics include them.

The task publishes one `LabelPrediction` per sample (see `published.py`); the binary metrics count
"yes" (or the prediction's `positive` answer) as the positive class.
"""
from __future__ import annotations

from dataclasses import dataclass

from fairseq.scoring import register_scorer

from ofa_plugin.metrics.classification import accuracy, binary_f1, matthews_corrcoef
from ofa_plugin.metrics.published import PublishedPredictionScorer, PublishedScorerConfig

BINARY_METRICS = {"mcc": ("MCC", matthews_corrcoef), "f1": ("F1", binary_f1)}


@dataclass
class LabelPrediction:
    """One sample's predicted answer and its reference; `extra_metrics` names official binary metrics."""

    uniq_id: str | int
    answer: str
    reference: str
    id_key: str = "uniq_id"
    extra_metrics: tuple[str, ...] = ()
    positive: str = "yes"

    @property
    def score(self) -> int:
        """The sample's term of the official accuracy: 1 for the right answer, else 0."""
        return int(self.answer == self.reference)

    def matches_target(self, target: str) -> bool:
        return target.strip() == self.reference

    def record(self) -> dict:
        return {self.id_key: self.uniq_id, "answer": self.answer}


@register_scorer("ofa_accuracy", dataclass=PublishedScorerConfig)
class LabelScorer(PublishedPredictionScorer):
    """Accuracy (and MCC/F1 where official) of the answers published by a closed-set task."""

    task_names = "snli_ve, image_classify and the GLUE tasks"

    def _answers(self) -> tuple[list[str], list[str]]:
        return [p.answer for p in self.predictions], [p.reference for p in self.predictions]

    def score(self) -> float:
        """Accuracy of the predictions added so far (0.0 when none)."""
        return accuracy(*self._answers()) if self.predictions else 0.0

    def metrics_string(self) -> str:
        if not self.predictions:
            return "accuracy 0.0000 (no predictions)"
        predictions, references = self._answers()
        correct = sum(p == r for p, r in zip(predictions, references))
        parts = [f"accuracy {self.score():.4f} ({correct}/{len(predictions)})"]
        first = self.predictions[0]
        for name in first.extra_metrics:
            label, metric = BINARY_METRICS[name]
            parts.append(f"{label} {metric(predictions, references, first.positive):.4f}")
        return " | ".join(parts)
