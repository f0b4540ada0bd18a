"""`--scoring ofa_vqa`: the official OFA VQA score printed by `fairseq-generate` at the end of a run.

The vqa_gen task publishes each question's answer with the row's answer confidences (see
`published.py`); a question scores the confidence of the predicted answer, 0 if it is not among the
row's answers (`ref_dict.get(answer, 0)` on raw strings, as the official evaluation; the normalised
variant is `metrics.vqa.vqa_soft_accuracy`). The predict JSON holds `{"question_id": int, "answer": str}`
records (EvalAI format).
"""
from __future__ import annotations

from dataclasses import dataclass

from fairseq.scoring import register_scorer

from ofa_plugin.metrics.published import PublishedPredictionScorer, PublishedScorerConfig


@dataclass
class VqaPrediction:
    """One question's predicted answer and the confidences of its reference answers."""

    question_id: int
    answer: str
    ref_dict: dict[str, float]

    @property
    def score(self) -> float:
        """The official soft score: the predicted answer's confidence, 0 if it is not a reference."""
        return float(self.ref_dict.get(self.answer, 0))

    def matches_target(self, target: str) -> bool:
        """The target is the most confident answer, possibly cut to --max-tgt-length tokens."""
        best = max(self.ref_dict, key=self.ref_dict.get)
        return bool(target.strip()) and best.startswith(target.strip())

    def record(self) -> dict:
        return {"question_id": self.question_id, "answer": self.answer}


@register_scorer("ofa_vqa", dataclass=PublishedScorerConfig)
class VqaScorer(PublishedPredictionScorer):
    """Mean official VQA score of the answers the vqa_gen task published."""

    task_names = "the vqa_gen task"

    def score(self) -> float:
        """Mean score of the predictions added so far (0.0 when none)."""
        if not self.predictions:
            return 0.0
        return sum(p.score for p in self.predictions) / len(self.predictions)

    def metrics_string(self) -> str:
        total = sum(p.score for p in self.predictions)
        return f"VQA accuracy {self.score():.4f} (score sum {total:g} over {len(self.predictions)} questions)"
