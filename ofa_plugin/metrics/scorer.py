"""`--scoring ofa_caption`: COCO caption metrics printed by `fairseq-generate` at the end of a run.

fairseq-generate calls `add_string(target, hypothesis)` with both strings decoded. For caption
evaluation sets the target holds all references of the image joined by "&&" (reference §5.2).
Like the official caption evaluation, ASCII punctuation is removed from the hypothesis and from each
reference before scoring (after splitting on "&&", which is itself punctuation).
The metrics come from `caption_scores` with tokenizer "auto": the COCO toolkit's Java tokenizer and
METEOR when Java works, else the pure-Python fallback without METEOR; the line names the tokeniser.
"""
from dataclasses import dataclass

from fairseq.dataclass import FairseqDataclass
from fairseq.scoring import BaseScorer, register_scorer

from ofa_plugin.data.text import strip_punctuation
from ofa_plugin.metrics.caption import CaptionScores, caption_scores

REFERENCE_SEPARATOR = "&&"
# Metrics in the order of the printed line; BLEU-1..3 come last.
REPORTED_METRICS = ("CIDEr", "BLEU-4", "METEOR", "ROUGE-L", "BLEU-1", "BLEU-2", "BLEU-3")


@dataclass
class CaptionScorerConfig(FairseqDataclass):
    """The caption scorer has no options: references are always split on "&&", the tokeniser is "auto"."""


@register_scorer("ofa_caption", dataclass=CaptionScorerConfig)
class CaptionScorer(BaseScorer):
    """Collects (references, hypothesis) pairs and scores them with `caption_scores`."""

    def add_string(self, ref: str, pred: str) -> None:
        references = [strip_punctuation(r).strip() for r in ref.split(REFERENCE_SEPARATOR)]
        references = [r for r in references if r]
        if not references:
            raise ValueError(f"sentence {len(self.ref)}: no reference caption in target {ref!r}")
        self.ref.append(references)
        self.pred.append(strip_punctuation(pred).strip())

    def scores(self) -> CaptionScores:
        """All metrics of the strings added so far, as fractions (METEOR only with Java)."""
        return caption_scores(dict(enumerate(self.pred)), dict(enumerate(self.ref)))

    def score(self) -> float:
        return self.scores()["CIDEr"]

    def result_string(self) -> str:
        scores = self.scores()
        metrics = " | ".join(f"{name} {scores[name]:.4f}" if name in scores else f"{name} n/a (needs Java)"
                             for name in REPORTED_METRICS)
        return f"{metrics} (n={len(self.pred)}, {scores.tokenizer} tokenisation)"
