"""`--scoring ofa_caption`: COCO caption metrics printed by `fairseq-generate` at the end of a run.

The caption task publishes each image's caption with its id and references (see `published.py`); for
caption evaluation sets the target holds all references of the image joined by "&&" (reference §5.2).
Like the official caption evaluation, ASCII punctuation is removed from the hypothesis and from each
reference before scoring (after splitting on "&&", which is itself punctuation). With `--results-path`
the captions are written as the official COCO results JSON `[{"image_id", "caption"}]`.
The metrics come from `caption_scores` with tokenizer "auto": the COCO toolkit's Java tokenizer and
METEOR when Java works, else the pure-Python fallback without METEOR; the line names the tokeniser.
"""
from dataclasses import dataclass

from fairseq.scoring import register_scorer

from ofa_plugin.data.text import strip_punctuation
from ofa_plugin.metrics.caption import CaptionScores, caption_scores
from ofa_plugin.metrics.published import PublishedPredictionScorer, PublishedScorerConfig

REFERENCE_SEPARATOR = "&&"
# Metrics in the order of the printed line; BLEU-1..3 come last.
REPORTED_METRICS = ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L", "BLEU-1", "BLEU-2", "BLEU-3")


def split_references(target: str) -> list[str]:
    """The references of a "&&"-joined target, punctuation removed, empty ones dropped."""
    references = (strip_punctuation(r).strip() for r in target.split(REFERENCE_SEPARATOR))
    return [r for r in references if r]


@dataclass
class CaptionPrediction:
    """One image's generated caption (punctuation removed, as official) and its references."""

    image_id: str
    caption: str
    references: list[str]

    def matches_target(self, target: str) -> bool:
        return split_references(target) == self.references

    def record(self) -> dict:
        return {"image_id": self.image_id, "caption": self.caption}


@register_scorer("ofa_caption", dataclass=PublishedScorerConfig)
class CaptionScorer(PublishedPredictionScorer):
    """Scores the captions the caption task published with `caption_scores`."""

    task_names = "the caption task"

    def scores(self) -> CaptionScores:
        """All metrics of the captions added so far, as fractions (METEOR only with Java)."""
        if not self.predictions:
            raise ValueError("no captions to score")
        empty = [p.image_id for p in self.predictions if not p.references]
        if empty:
            raise ValueError(f"no reference caption for images {empty[:10]}")
        return caption_scores({i: p.caption for i, p in enumerate(self.predictions)},
                              {i: p.references for i, p in enumerate(self.predictions)})

    def score(self) -> float:
        return self.scores()["CIDEr"]

    def metrics_string(self) -> str:
        scores = self.scores()
        metrics = " | ".join(f"{name} {scores[name]:.4f}" if name in scores else f"{name} n/a (needs Java)"
                             for name in REPORTED_METRICS)
        return f"{metrics} (n={len(self.predictions)}, {scores.tokenizer} tokenisation)"
