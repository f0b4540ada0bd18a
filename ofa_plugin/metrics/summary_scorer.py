"""`--scoring ofa_rouge`: Gigaword ROUGE-1/2/L F1 (x100) printed by `fairseq-generate` at the end of a run.

The gigaword task publishes one `SummaryPrediction` per sample (see `published.py`): the official
post-processed hypothesis and the raw lower-cased reference, neither of which fairseq-generate's strings
give. ROUGE is computed by our `metrics/rouge.py` (`rouge_score`'s tokenizer, Porter stemming, ROUGE-N
and LCS ROUGE-L, tested equal to the `rouge_score` package), not by the package itself: training-time
validation uses the same function, so both paths report identical numbers, and the package is not a
dependency of the plugin. The printed figure is the mean of the per-sample F1, as the official
training-time validation logs it; the official evaluate script reports the "mid" of rouge_score's
bootstrap aggregate, a resampled estimate of the same mean.
"""
from __future__ import annotations

from dataclasses import dataclass

from fairseq.scoring import register_scorer

from ofa_plugin.metrics.published import PublishedPredictionScorer, PublishedScorerConfig
from ofa_plugin.metrics.rouge import ROUGE_TYPES, corpus_rouge

ROUGE_NAMES = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L"}


@dataclass
class SummaryPrediction:
    """One sample's official hypothesis, its reference, and fairseq-generate's target string of the sample."""

    hyp: str
    ref: str
    target_text: str

    def matches_target(self, target: str) -> bool:
        return target == self.target_text

    def record(self) -> dict:
        return {"hyp": self.hyp, "ref": self.ref}


@register_scorer("ofa_rouge", dataclass=PublishedScorerConfig)
class SummaryScorer(PublishedPredictionScorer):
    """Mean ROUGE-1/2/L F1 (x100) of the summaries published by the gigaword task."""

    task_names = "the gigaword task"

    def f1_scores(self) -> dict[str, float]:
        """{rouge1, rouge2, rougeL: mean F1 x 100} of the predictions added so far (zeros when none)."""
        if not self.predictions:
            return dict.fromkeys(ROUGE_TYPES, 0.0)
        scores = corpus_rouge([p.ref for p in self.predictions], [p.hyp for p in self.predictions])
        return {kind: 100 * scores[f"{kind}_f1"] for kind in ROUGE_TYPES}

    def score(self) -> float:
        return self.f1_scores()["rougeL"]

    def metrics_string(self) -> str:
        scores = self.f1_scores()
        parts = " | ".join(f"{ROUGE_NAMES[kind]} {scores[kind]:.2f}" for kind in ROUGE_TYPES)
        return f"{parts} (F1 x100, n={len(self.predictions)})"
