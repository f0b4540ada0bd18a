"""`scst_reward_criterion`: self-critical sequence training with a CIDEr-D reward (reference §6.3).

Per batch: the task's SCST beam search (`--scst --scst-args`) captions every image with the model in
eval mode and without gradients, keeping all k beam hypotheses; each hypothesis gets its CIDEr-D against
the image's references (document frequencies of the training references, see `tasks/caption.py`), and
its reward is that score minus the mean score of the image's other k - 1 hypotheses (leave-one-out
baseline, float64). Then a teacher-forced forward on the hypotheses (`[bos] + hyp[:-1] -> hyp`, encoder
inputs repeated k times) gives the REINFORCE loss `-sum_j reward_j * sum_t log p(y_jt)` over the non-pad
target tokens; hypotheses better than their siblings become more likely, worse ones less.

Differences from the official criterion: generation restores the model's previous train/eval mode
instead of leaving it in train mode (so validation runs the teacher-forced pass in eval mode), and the
cached document frequencies are a caption-task option (`--scst-cider-cached-tokens`), not a criterion one.

Other rewards subclass this criterion and override `hypothesis_scores` (and the class attributes saying
which task they need and under which name the mean score is logged): `clip_scst_reward_criterion`.
"""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from fairseq import utils
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.data import data_utils
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II
from torch import Tensor

from ofa_plugin.metrics.cider_d import scst_wrap
from ofa_plugin.vocab import parse_constraint_range

from .label_smoothed_cross_entropy import range_allowed_tokens


@dataclass
class ScstRewardCriterionConfig(FairseqDataclass):
    ignore_prefix_size: int = field(default=0, metadata={"help": "ignore the first N target positions of every row"})
    sentence_avg: bool = II("optimization.sentence_avg")
    constraint_range: Optional[str] = field(
        default=None, metadata={"help": "'start,end': only tokens 0-3 and [start, end) may be predicted"})


def leave_one_out_rewards(scores: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Per image, each hypothesis's score minus the mean score of the image's other hypotheses (float64).

    Every image needs at least two hypotheses (a beam of at least 2).
    """
    rewards = []
    for image_scores in scores:
        image_scores = np.asarray(image_scores, dtype=np.float64)
        k = len(image_scores)
        if k < 2:
            raise ValueError(f"SCST needs at least 2 hypotheses per image for its baseline, got {k} "
                             "(use a beam of 2 or more in --scst-args)")
        rewards.append(image_scores - (image_scores.sum() - image_scores) / (k - 1))
    return rewards


@register_criterion("scst_reward_criterion", dataclass=ScstRewardCriterionConfig)
class ScstRewardCriterion(FairseqCriterion):
    """CIDEr-D self-critical training loss (module docstring); needs the caption task with --scst."""

    criterion_name = "scst_reward_criterion"
    required_task = ("the caption task with --scst "
                     "(and the beam search in --scst-args, e.g. '{\"beam\": 5, \"max_len_b\": 16}')")
    score_metric = "score"  # name of the logged mean reward score of the generated hypotheses

    def __init__(self, task, sentence_avg: bool, ignore_prefix_size: int = 0,
                 constraint_range: Optional[str] = None) -> None:
        super().__init__(task)
        if not getattr(task.cfg, "scst", False) or not self.supports_task(task):
            raise ValueError(f"{self.criterion_name} needs {self.required_task}")
        if ignore_prefix_size < 0:
            raise ValueError(f"--ignore-prefix-size must be >= 0, got {ignore_prefix_size}")
        self.sentence_avg = sentence_avg
        self.ignore_prefix_size = ignore_prefix_size
        self.constraint_range = parse_constraint_range(constraint_range)

    @staticmethod
    def supports_task(task) -> bool:
        """The task gives this criterion's scores: the caption task's CIDEr-D of the training references."""
        return hasattr(type(task), "scst_cider")  # on the class: the property itself counts the references

    def forward(self, model, sample, update_num: int = 0, reduce: bool = True) -> Tuple[Tensor, int, Dict[str, Any]]:
        """Return (summed REINFORCE loss, sample_size, logging output) for a batch of images."""
        if not reduce:
            raise ValueError("reduce=False is not supported: the loss is a sum over tokens")
        hypotheses = self.generate(model, sample)
        scores = self.hypothesis_scores(hypotheses, sample)
        rewards = torch.from_numpy(np.concatenate(leave_one_out_rewards(scores)))
        tokens = [hyp["tokens"] for hyps in hypotheses for hyp in hyps]
        counts = torch.tensor([len(hyps) for hyps in hypotheses])
        loss, ntokens = self.reinforce_loss(model, sample, tokens, counts, rewards)
        nsentences = len(tokens)
        sample_size = nsentences if self.sentence_avg else ntokens
        logging_output = {
            "loss": loss.data,
            "score": float(sum(s.sum() for s in scores)),
            "ntokens": ntokens,
            "nsentences": nsentences,
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    def generate(self, model, sample) -> List[List[Dict[str, Tensor]]]:
        """All SCST beam hypotheses of every image, generated in eval mode (the mode is restored)."""
        was_training = model.training
        model.eval()
        try:
            return self.task.scst_hypotheses(model, sample)
        finally:
            model.train(was_training)

    def hypothesis_scores(self, hypotheses: List[List[Dict[str, Tensor]]], sample) -> List[np.ndarray]:
        """Every hypothesis's reward score, per sample: here its CIDEr-D against the image's references, both
        in the official SCST form."""
        captions = [[scst_wrap(self.task.caption_text(hyp["tokens"])) for hyp in hyps] for hyps in hypotheses]
        references = [[scst_wrap(ref) for ref in refs] for refs in self.task.sample_references(sample)]
        return self.task.scst_cider.score(captions, references)

    def reinforce_loss(self, model, sample, tokens: List[Tensor], counts: Tensor,
                       rewards: Tensor) -> Tuple[Tensor, int]:
        """`-sum reward * log p(token)` of the teacher-forced hypotheses and the number of scored tokens.

        Each hypothesis ends with eos: the decoder reads `[bos] + hyp[:-1]` and predicts `hyp`; the
        encoder inputs of image i are repeated `counts[i]` times.
        """
        pad, bos = self.task.target_dictionary.pad(), self.task.target_dictionary.bos()
        target = data_utils.collate_tokens(tokens, pad)
        prev_output_tokens = data_utils.collate_tokens([torch.cat([t.new_tensor([bos]), t[:-1]]) for t in tokens], pad)
        net_input = {key: value.repeat_interleave(counts.to(value.device), dim=0)
                     for key, value in sample["net_input"].items() if key != "prev_output_tokens"}
        logits = model(**net_input, prev_output_tokens=prev_output_tokens)[0].float()
        if self.constraint_range is not None:
            allowed = range_allowed_tokens(logits.size(-1), *self.constraint_range, logits.device)
            logits = logits.masked_fill(~allowed, float("-inf"))
        lprobs = F.log_softmax(logits, dim=-1)[:, self.ignore_prefix_size:]
        target = target[:, self.ignore_prefix_size:]
        keep = target.ne(pad)
        token_lprobs = lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        weights = rewards.to(device=lprobs.device, dtype=lprobs.dtype).unsqueeze(-1)
        loss = -(weights * token_lprobs).masked_fill(~keep, 0.0).sum()
        return loss, int(keep.sum())

    @classmethod
    def reduce_metrics(cls, logging_outputs: List[Dict[str, Any]]) -> None:
        """loss per sample_size; `score_metric` = mean reward score (CIDEr-D) of the generated hypotheses."""

        def total(key: str) -> float:
            return utils.item(sum(log.get(key, 0) for log in logging_outputs))

        sample_size, nsentences = total("sample_size"), total("nsentences")
        if sample_size > 0:
            metrics.log_scalar("loss", total("loss") / sample_size, sample_size, round=3)
        if nsentences > 0:
            metrics.log_scalar(cls.score_metric, total("score") / nsentences, nsentences, round=3)
        for key in ("ntokens", "nsentences", "sample_size"):
            metrics.log_scalar(key, total(key), 1, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        """All logged values are sums, so workers may add them before `reduce_metrics`."""
        return True
