"""What the closed-set tasks share (VQA all-candidate mode, SNLI-VE, image classification, GLUE; reference
§5.3, §5.5, §5.7, §5.10, §8.2): every candidate answer is scored after each sample's decoder prompt and the
best one is the prediction.

- `fairseq-generate`: `inference_step` returns the chosen answer as the sample's only hypothesis, so the
  usual H-/D-/P- lines show it (P-: its real per-token log-probs), and publishes each sample's prediction
  for the task's scorer (`LabelPrediction` for `--scoring ofa_accuracy` unless the task says otherwise).
- `fairseq-train` validation: `valid_step` adds the official metric as a sum/count pair of meters and
  `reduce_metrics` derives it (e.g. `snli_score`) over the whole validation set.

A task using `ClosedSetTaskMixin` (before `OFATask` in its bases) defines `candidate_answers()`; its
samples carry the batch extras `decoder_prompts` and `ref_labels` (see `ofa_plugin.data.closed_set`); its
config has `valid_batch_size` (candidates scored per decoder pass) and optionally `uses_ema`. Class
attributes name its metric and say how it scores (eos, ensembles, generation constraint).
"""
import logging
import math
from abc import ABC, abstractmethod
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ofa_plugin.candidate_scoring import score_candidate_tokens
from ofa_plugin.data.answers import CandidateAnswers
from ofa_plugin.data.closed_set import DECODER_PROMPTS, REF_LABELS
from ofa_plugin.metrics.label_scorer import LabelPrediction
from ofa_plugin.metrics.published import publish_predictions

logger = logging.getLogger(__name__)

Hypotheses = List[List[Dict[str, Any]]]


class CandidateChoice(NamedTuple):
    """Every sample's best candidate: its index, answer, log-likelihood (B,) and per-token terms (B, L)."""

    indices: List[int]
    answers: List[str]
    scores: Tensor
    token_scores: Tensor


class ClosedSetTaskMixin(ABC):
    """All-candidate prediction, fairseq-generate hypotheses and validation metric of a closed-set task."""

    # The official validation metric (best-checkpoint metric of the scripts) and its meters.
    metric_name: str = "score"
    metric_sum_key: str = "_score_sum"
    metric_count_key: str = "_score_cnt"
    metric_decimals: int = 4
    extra_metrics: Tuple[str, ...] = ()  # official binary metrics of the ofa_accuracy scorer ("mcc", "f1")
    append_eos: bool = True  # a candidate's score includes its eos
    ensemble: bool = False  # fairseq-generate averages all models' probabilities (official: the first model)
    constrains_generation: bool = True  # the candidates' trie constrains the task's generator
    candidates: Optional[CandidateAnswers] = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.update_candidates()

    @abstractmethod
    def candidate_answers(self) -> List[str]:
        """The candidate answers in label order, from the task's current config."""

    def update_candidates(self) -> CandidateAnswers:
        """(Re)build the candidates if the config's answers changed (fairseq-generate merges the checkpoint's
        task options, e.g. --ans2label-file, when loading data), and set the generator's answer trie."""
        answers = self.candidate_answers()
        if self.candidates is None or self.candidates.answers != answers:
            self.candidates = CandidateAnswers.build(answers, self.tgt_dict, self.tokenizer)
            logger.info("%d candidate answers", len(answers))
        self.constraint_trie = self.candidates.trie if self.constrains_generation else None
        return self.candidates

    @property
    def uses_ema(self) -> bool:
        """fairseq's trainer hands the EMA model to train_step/valid_step of tasks that say so."""
        return bool(getattr(self.cfg, "uses_ema", False))

    @property
    def candidate_chunk_size(self) -> int:
        """Candidates scored per decoder pass (`--valid-batch-size`)."""
        return self.cfg.valid_batch_size

    def decoder_prompts(self, sample: Dict[str, Any]) -> List[Tensor]:
        device = sample["net_input"]["src_tokens"].device
        return [torch.tensor(prompt, dtype=torch.long, device=device) for prompt in sample[DECODER_PROMPTS]]

    def score_batch(self, models: Sequence, sample: Dict[str, Any]) -> Tuple[Tensor, Tensor]:
        """(B, K) trie-renormalised log-likelihoods of every candidate answer and (B, K, L) their per-token
        terms (see `score_candidate_tokens`); with several models, probabilities are averaged."""
        prompts = self.decoder_prompts(sample)
        with torch.no_grad():
            scored = [score_candidate_tokens(model, sample, self.candidates, prompts, self.candidate_chunk_size,
                                             self.append_eos) for model in models]
        if len(scored) == 1:
            return scored[0]
        scores, token_scores = (torch.logsumexp(torch.stack(parts), dim=0) - math.log(len(models))
                                for parts in zip(*scored))
        return scores, token_scores

    def choose(self, models: Sequence, sample: Dict[str, Any]) -> CandidateChoice:
        """Every sample's best candidate (the first best on ties, as official)."""
        scores, token_scores = self.score_batch(models, sample)
        best_scores, best = scores.max(dim=1)
        indices = best.tolist()
        return CandidateChoice(indices, [self.candidates.answers[k] for k in indices], best_scores,
                               token_scores[torch.arange(len(indices)), best])

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None) -> Hypotheses:
        """Scores the candidates (the generator is not used) and returns, per sample, the chosen answer as
        fairseq's one-hypothesis list; the predictions are published for the task's scorer."""
        choice = self.choose(models if self.ensemble else models[:1], sample)
        publish_predictions(self.predictions(sample, choice.answers))
        return self.hypotheses(choice)

    def hypotheses(self, choice: CandidateChoice) -> Hypotheses:
        """fairseq-generate's hypothesis format: tokens = answer + eos, score = the candidate's summed
        log-likelihood, positional_scores = its per-token terms (eos: 0 when not scored)."""
        eos = torch.tensor([self.tgt_dict.eos()])
        hypotheses = []
        for k, score, token_scores in zip(choice.indices, choice.scores, choice.token_scores):
            tokens = torch.cat([self.candidates.tokens[k], eos]).to(score.device)
            hypotheses.append([{"tokens": tokens, "score": score, "positional_scores": token_scores[: len(tokens)],
                                "alignment": None}])
        return hypotheses

    def predictions(self, sample: Dict[str, Any], answers: List[str]) -> List[LabelPrediction]:
        """The published prediction of every sample; each has the `score` its validation metric sums."""
        return [LabelPrediction(uniq_id, answer, reference, extra_metrics=self.extra_metrics)
                for uniq_id, answer, reference in zip(sample["uniq_id"], answers, sample[REF_LABELS])]

    def valid_step(self, sample, model, criterion, ema_model=None, **extra_kwargs):
        """Loss, then the official metric's sum and count over the batch's predictions (with the EMA model
        under `--uses-ema`, as official)."""
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.uses_ema:
            if ema_model is None:
                raise ValueError("--uses-ema validates with the EMA model: train with --store-ema")
            model = ema_model
        model.eval()  # the trainer sets only its own model to eval mode, not the EMA copy
        logging_output.update(self.metric_logs(self.validation_predictions(model, sample)))
        return loss, sample_size, logging_output

    def validation_predictions(self, model, sample: Dict[str, Any]) -> list:
        """The predictions validation scores: all-candidate ones."""
        return self.predictions(sample, self.choose([model], sample).answers)

    def metric_logs(self, predictions: list) -> Dict[str, float]:
        """The logging-output entries of a batch's official metric: sum of the predictions' scores, count."""
        return {self.metric_sum_key: sum(p.score for p in predictions), self.metric_count_key: len(predictions)}

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        self.log_mean_metrics(logging_outputs, self.metric_count_key, {self.metric_name: self.metric_sum_key},
                              self.metric_decimals)
