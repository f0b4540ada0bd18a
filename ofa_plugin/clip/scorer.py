"""The metric line of `fairseq-generate --task image_gen`: the official CLIP score, then the toy check.

With `--clip-model-path` the task re-ranks every caption's images by CLIP similarity and publishes their
similarities (`ClipImagePrediction.clip_scores`, best first); the CLIP score is the mean over captions of
the best image's similarity (official evaluate.py's `score`, reference §8.2). Without CLIP the line is the
toy check's alone (`ofa_plugin.metrics.toy_image_check`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fairseq.scoring import register_scorer

from ofa_plugin.metrics.published import PublishedScorerConfig
from ofa_plugin.metrics.toy_image_check import ImageGenPrediction, ToyImageScorer


@dataclass
class ClipImagePrediction(ImageGenPrediction):
    """An image_gen prediction whose images are ranked by CLIP: `clip_scores[j]` is image j's similarity
    (`clip_method`: ti_sim with the caption, ii_sim with the reference image); empty without CLIP."""

    clip_scores: list[float] = field(default_factory=list)
    clip_method: str = "ti_sim"

    def record(self) -> dict:
        return {**super().record(), "clip_scores": self.clip_scores}


@register_scorer("ofa_clip_image", dataclass=PublishedScorerConfig)
class ClipImageScorer(ToyImageScorer):
    """CLIP score of the best image per caption (when CLIP ranked them) and the toy check; predict JSON as
    the toy scorer's plus `clip_scores`."""

    def clip_scores(self) -> list[float]:
        """The best image's similarity of every caption that CLIP scored."""
        return [p.clip_scores[0] for p in self.predictions if getattr(p, "clip_scores", None)]

    def score(self) -> float:
        best = self.clip_scores()
        return sum(best) / len(best) if best else super().score()

    def metrics_string(self) -> str:
        best = self.clip_scores()
        if not best:
            return super().metrics_string()
        method = self.predictions[0].clip_method
        line = f"CLIP score {sum(best) / len(best):.4f} ({method}, best image of each of {len(best)} captions)"
        if any(p.checks for p in self.predictions):
            line += f" | {super().metrics_string()}"
        return line
