"""What the closed-set tasks share (SNLI-VE, image classification; reference §5.3, §5.5, §5.7, §8.2):
every candidate answer is scored after each sample's decoder prompt and the best one is the prediction.

- `fairseq-generate`: `inference_step` returns the chosen answer as the sample's only hypothesis, so the
  usual H-/D-/P- lines show it, and publishes a `LabelPrediction` per sample for `--scoring ofa_accuracy`.
- `fairseq-train` validation: `valid_step` adds the official metric as a sum/count pair of meters and
  `reduce_metrics` derives it (e.g. `snli_score`).

A task using `ClosedSetTaskMixin` (before `OFATask` in its bases) defines `candidate_answers()` and its
samples carry the batch extras `decoder_prompts` and `ref_labels` (see `ofa_plugin.data.snli_ve`);
its config has `valid_batch_size` (candidates scored per decoder pass) and optionally `uses_ema`.
"""
from typing import Any, Dict, List, Optional

import torch
from fairseq import metrics
from torch import Tensor

from ofa_plugin.candidate_scoring import score_candidates
from ofa_plugin.data.answers import CandidateAnswers
from ofa_plugin.data.snli_ve import DECODER_PROMPTS, REF_LABELS
from ofa_plugin.metrics.label_scorer import LabelPrediction
from ofa_plugin.metrics.published import publish_predictions


class ClosedSetTaskMixin:
    """All-candidate prediction, fairseq-generate hypotheses and validation metric of a closed-set task."""

    metric_name: str = "score"  # the official validation metric (best-checkpoint metric of the scripts)
    metric_decimals: int = 4
    candidates: Optional[CandidateAnswers] = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.update_candidates()

    def candidate_answers(self) -> List[str]:
        """The candidate answers in label order, from the task's current config."""
        raise NotImplementedError(f"task {type(self).__name__} does not define its candidate answers")

    def update_candidates(self) -> CandidateAnswers:
        """(Re)build the candidates and the generator's answer trie if the config's answers changed
        (fairseq-generate merges the checkpoint's task options, e.g. --ans2label-file, when loading data)."""
        answers = self.candidate_answers()
        if self.candidates is None or self.candidates.answers != answers:
            self.candidates = CandidateAnswers.build(answers, self.tgt_dict, self.tokenizer)
            self.constraint_trie = self.candidates.trie
        return self.candidates

    @property
    def uses_ema(self) -> bool:
        """fairseq's trainer hands the EMA model to train_step/valid_step of tasks that say so."""
        return bool(getattr(self.cfg, "uses_ema", False))

    def decoder_prompts(self, sample: Dict[str, Any]) -> List[Tensor]:
        device = sample["net_input"]["src_tokens"].device
        return [torch.tensor(prompt, dtype=torch.long, device=device) for prompt in sample[DECODER_PROMPTS]]

    def score_batch(self, model, sample: Dict[str, Any]) -> Tensor:
        """(B, len(candidates)) trie-renormalised log-likelihoods of every candidate answer."""
        with torch.no_grad():
            return score_candidates(model, sample, self.candidates, self.decoder_prompts(sample),
                                    chunk_size=self.cfg.valid_batch_size)

    def predict(self, model, sample: Dict[str, Any]) -> tuple[Tensor, Tensor, List[str]]:
        """Best score, candidate index and answer of every sample (the first best on ties, as official)."""
        best_scores, choices = self.score_batch(model, sample).max(dim=1)
        return best_scores, choices, [self.candidates.answers[k] for k in choices.tolist()]

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """Scores the candidates with the first model (as the official evaluation does; the generator is
        not used) and returns, per sample, the chosen answer as fairseq's one-hypothesis list."""
        model = models[0]
        best_scores, choices, answers = self.predict(model, sample)
        publish_predictions(self.label_predictions(sample, answers))
        return self.hypotheses(model, sample, choices, best_scores)

    def label_predictions(self, sample: Dict[str, Any], answers: List[str]) -> List[LabelPrediction]:
        return [LabelPrediction(uniq_id, answer, reference)
                for uniq_id, answer, reference in zip(sample["uniq_id"], answers, sample[REF_LABELS])]

    def hypotheses(self, model, sample: Dict[str, Any], choices: Tensor,
                   best_scores: Tensor) -> List[List[Dict[str, Any]]]:
        """fairseq-generate's hypothesis format: tokens = answer + eos, score = the candidate's summed
        log-likelihood, positional_scores = its per-token terms (they add up to the score)."""
        eos = torch.tensor([self.tgt_dict.eos()])
        token_scores = self.answer_token_scores(model, sample, choices, best_scores)
        return [
            [{"tokens": torch.cat([self.candidates.tokens[k], eos]), "score": float(score),
              "positional_scores": positional, "alignment": None}]
            for k, score, positional in zip(choices.tolist(), best_scores.cpu(), token_scores)
        ]

    def answer_token_scores(self, model, sample: Dict[str, Any], choices: Tensor,
                            best_scores: Tensor) -> List[Tensor]:
        """Per-token log-likelihoods (answer tokens, then eos) of each sample's chosen answer.

        `score_candidates` gives sums only, so the chosen answers' prefixes are scored as candidates
        without eos under the full candidate trie (the same renormalisation); successive differences of
        these cumulative sums, ending at the full score, are the per-token terms.
        """
        chosen = [self.candidates.tokens[k].tolist() for k in choices.tolist()]
        prefixes = list(dict.fromkeys(tuple(tokens[:j]) for tokens in chosen for j in range(1, len(tokens) + 1)))
        prefix_candidates = CandidateAnswers([str(p) for p in prefixes], [torch.tensor(p) for p in prefixes],
                                             self.candidates.trie)
        with torch.no_grad():
            cumulative = score_candidates(model, sample, prefix_candidates, self.decoder_prompts(sample),
                                          chunk_size=self.cfg.valid_batch_size, append_eos=False).cpu()
        column = {prefix: i for i, prefix in enumerate(prefixes)}
        token_scores = []
        for b, tokens in enumerate(chosen):
            sums = [cumulative[b, column[tuple(tokens[:j])]] for j in range(1, len(tokens) + 1)]
            running = torch.stack([torch.zeros(()), *sums, best_scores[b].cpu()])
            token_scores.append(running.diff())
        return token_scores

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **unused):
        """As OFATask's; the trainer adds `ema_model` for tasks with `uses_ema`, which training ignores."""
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad=ignore_grad)

    def valid_step(self, sample, model, criterion, ema_model=None):
        """Loss, then the official metric's sum and count from all-candidate predictions (with the EMA
        model under `--uses-ema`, as official)."""
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.uses_ema:
            if ema_model is None:
                raise ValueError("--uses-ema validates with the EMA model: train with --store-ema")
            model = ema_model
        _, _, answers = self.predict(model, sample)
        hits = [answer == reference for answer, reference in zip(answers, sample[REF_LABELS])]
        logging_output[f"_{self.metric_name}_sum"] = sum(hits)
        logging_output[f"_{self.metric_name}_cnt"] = len(hits)
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        sum_key, count_key = f"_{self.metric_name}_sum", f"_{self.metric_name}_cnt"
        count = sum(log.get(count_key, 0) for log in logging_outputs)
        if count == 0:
            return
        metrics.log_scalar(sum_key, sum(log.get(sum_key, 0) for log in logging_outputs))
        metrics.log_scalar(count_key, count)
        decimals = self.metric_decimals
        metrics.log_derived(self.metric_name,
                            lambda meters: round(meters[sum_key].sum / meters[count_key].sum, decimals))
