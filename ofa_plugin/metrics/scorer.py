"""`--scoring ofa_caption`: caption CIDEr/BLEU printed by `fairseq-generate` at the end of a run.

fairseq-generate calls `add_string(target, hypothesis)` with both strings decoded. For caption
evaluation sets the target holds all references of the image joined by "&&" (reference §5.2).
Like the official caption evaluation, ASCII punctuation is removed from the hypothesis and from each
reference before scoring (after splitting on "&&", which is itself punctuation).
"""
from dataclasses import dataclass

from fairseq.dataclass import FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer

from ofa_plugin.data.text import strip_punctuation
from ofa_plugin.metrics.caption import caption_scores

REFERENCE_SEPARATOR = "&&"


@dataclass
class CaptionScorerConfig(FairseqDataclass):
    """The caption scorer has no options: references are always split on "&&"."""


@register_scorer("ofa_caption", dataclass=CaptionScorerConfig)
class CaptionScorer(BaseScorer):
    """Collects (references, hypothesis) pairs and scores them with `caption_scores` (CIDEr, BLEU-1..4)."""

    def add_string(self, ref: str, pred: str) -> None:
        references = [strip_punctuation(r).strip() for r in ref.split(REFERENCE_SEPARATOR)]
        references = [r for r in references if r]
        if not references:
            raise ValueError(f"sentence {len(self.ref)}: no reference caption in target {ref!r}")
        self.ref.append(references)
        self.pred.append(strip_punctuation(pred).strip())

    def scores(self) -> dict[str, float]:
        """All metrics of the strings added so far (CIDEr, BLEU-1..4, as fractions)."""
        return caption_scores(dict(enumerate(self.pred)), dict(enumerate(self.ref)))

    def score(self) -> float:
        return self.scores()["CIDEr"]

    def result_string(self) -> str:
        scores = self.scores()
        order = ["CIDEr", "BLEU-4", "BLEU-1", "BLEU-2", "BLEU-3"]
        metrics = " | ".join(f"{name} {scores[name]:.4f}" for name in order)
        return f"{metrics} (n={len(self.pred)}, PTB-fallback tokenisation)"
