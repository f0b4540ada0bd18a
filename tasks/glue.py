"""The GLUE tasks cola, mnli, mrpc, qnli, qqp, rte and sst2 (reference §5.10).

One task class serves all seven; they differ only in data (prompt, columns, label mapping: see
`ofa_plugin.data.glue`), in the default `--ans2label-dict` and in the official extra metrics (MCC for
cola, F1 for mrpc and qqp). Nothing is generated: the answer is the argmax, over the candidates' single
tokens, of the trie-masked logits at the last decoder position (the official last-token argmax). It is
computed with `score_candidates(..., append_eos=False)`, which gives the same log-softmax over the allowed
tokens but projects only that position onto the vocabulary. `fairseq-generate` prints the accuracy (and
MCC/F1) through the `ofa_accuracy` scorer; `fairseq-train` validation logs `acc` (and `mcc`/`F1`) from
counts summed over all batches.
"""
import math
from dataclasses import dataclass, field
from typing import ClassVar, List, Tuple

import torch
from fairseq import metrics, utils
from fairseq.tasks import register_task
from torch import Tensor

from ofa_plugin.candidate_scoring import score_candidates
from ofa_plugin.data.answers import CandidateAnswers, load_ans2label
from ofa_plugin.data.glue import GLUE_SPECS, REFERENCE_ANSWERS, GlueSampleBuilder, GlueSpec
from ofa_plugin.metrics.classification import binary_counts, f1_from_counts, mcc_from_counts
from ofa_plugin.metrics.label_scorer import LabelPrediction
from ofa_plugin.metrics.published import publish_predictions

from .ofa_task import OFAConfig, OFATask

POSITIVE_ANSWER = "yes"  # the positive class of the official MCC / F1 counts
COUNT_KEYS = ("_tp", "_fp", "_tn", "_fn")


@dataclass
class GlueConfig(OFAConfig):
    """Options of cola, mrpc, qnli, qqp and rte (official names and defaults)."""

    ans2label_dict: str = field(default='{"no": 0, "yes": 1}', metadata={
        "help": "candidate answers as a JSON answer -> label dict; every answer must be a single token"})
    prompt_type: str = field(default="none", metadata={
        "help": "decoder prompt before the answer: none ([bos]), src (the whole source) or prev_output "
                "(the source without its eos); the official scripts use src"})


@dataclass
class MnliConfig(GlueConfig):
    ans2label_dict: str = field(default='{"maybe": 0, "yes": 1, "no": 2}', metadata={
        "help": "candidate answers as a JSON answer -> label dict; every answer must be a single token"})


@dataclass
class Sst2Config(GlueConfig):
    ans2label_dict: str = field(default='{"negative": 0, "positive":1}', metadata={
        "help": "candidate answers as a JSON answer -> label dict; every answer must be a single token"})


class GlueTask(OFATask):
    """A GLUE task: `spec` holds its data, `extra_metrics` its official metrics besides accuracy."""

    cfg: GlueConfig
    spec: ClassVar[GlueSpec]
    extra_metrics: ClassVar[Tuple[str, ...]] = ()
    candidates: CandidateAnswers

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        parser.set_defaults(scoring="ofa_accuracy")  # fairseq-generate prints accuracy (+ MCC / F1)

    def build_sample_builder(self, split: str, tsv_path: str) -> GlueSampleBuilder:
        """The builder of the loaded data; its candidates are also the ones predictions choose from."""
        answers = list(load_ans2label(None, self.cfg.ans2label_dict))
        self.candidates = CandidateAnswers.build(answers, self.tgt_dict, self.tokenizer)
        return GlueSampleBuilder(self.spec, self.tgt_dict, self.tokenizer, self.candidates, self.cfg.prompt_type,
                                 tsv_path, self.cfg.max_src_length)

    def predict(self, models, sample) -> Tuple[Tensor, Tensor]:
        """(B,) index of the predicted candidate and its log-prob (ensembles average probabilities)."""
        pad = self.tgt_dict.pad()
        prompts = [utils.strip_pad(p, pad) for p in sample["net_input"]["prev_output_tokens"]]
        with torch.no_grad():
            scores = torch.stack([score_candidates(m, sample, self.candidates, prompts, append_eos=False)
                                  for m in models])
        scores = torch.logsumexp(scores, dim=0) - math.log(len(models))
        best, indices = scores.max(dim=1)
        return indices, best

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """No generation: the predicted answer token (+ eos) as fairseq's single best hypothesis, and a
        `LabelPrediction` per sample for the `ofa_accuracy` scorer. The score is the answer's log-prob
        over the allowed tokens; eos is not predicted (GLUE targets have none) and scores 0."""
        indices, scores = self.predict(models, sample)
        answers = [self.candidates.answers[k] for k in indices.tolist()]
        publish_predictions(
            LabelPrediction(uniq_id, answer, reference, extra_metrics=self.extra_metrics, positive=POSITIVE_ANSWER)
            for uniq_id, answer, reference in zip(sample["id"].tolist(), answers, sample[REFERENCE_ANSWERS]))
        eos = self.tgt_dict.eos()
        return [[{
            "tokens": torch.cat([self.candidates.tokens[k], torch.LongTensor([eos])]).to(score.device),
            "score": score,
            "positional_scores": torch.stack([score, torch.zeros_like(score)]),
            "alignment": None,
        }] for k, score in zip(indices.tolist(), scores)]

    def valid_step(self, sample, model, criterion):
        """The criterion's loss plus the official counts: correct answers, and TP/FP/TN/FN for MCC / F1."""
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        indices, _ = self.predict([model], sample)
        answers = [self.candidates.answers[k] for k in indices.tolist()]
        references: List[str] = sample[REFERENCE_ANSWERS]
        logging_output["_score_sum"] = sum(a == r for a, r in zip(answers, references))
        logging_output["_score_cnt"] = len(answers)
        if self.extra_metrics:
            logging_output.update(zip(COUNT_KEYS, binary_counts(answers, references, POSITIVE_ANSWER)))
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        count = sum(log.get("_score_cnt", 0) for log in logging_outputs)
        if count == 0:
            return
        keys = ("_score_sum", "_score_cnt") + (COUNT_KEYS if self.extra_metrics else ())
        for key in keys:
            metrics.log_scalar(key, sum(log.get(key, 0) for log in logging_outputs))
        metrics.log_derived("acc", lambda m: round(m["_score_sum"].sum / m["_score_cnt"].sum, 4))
        if "mcc" in self.extra_metrics:
            metrics.log_derived("mcc", lambda m: round(mcc_from_counts(*(m[k].sum for k in COUNT_KEYS)), 4))
        if "f1" in self.extra_metrics:
            metrics.log_derived("F1", lambda m: round(f1_from_counts(m["_tp"].sum, m["_fp"].sum, m["_fn"].sum), 4))


@register_task("cola", dataclass=GlueConfig)
class ColaTask(GlueTask):
    spec = GLUE_SPECS["cola"]
    extra_metrics = ("mcc",)


@register_task("mnli", dataclass=MnliConfig)
class MnliTask(GlueTask):
    spec = GLUE_SPECS["mnli"]


@register_task("mrpc", dataclass=GlueConfig)
class MrpcTask(GlueTask):
    spec = GLUE_SPECS["mrpc"]
    extra_metrics = ("f1",)


@register_task("qnli", dataclass=GlueConfig)
class QnliTask(GlueTask):
    spec = GLUE_SPECS["qnli"]


@register_task("qqp", dataclass=GlueConfig)
class QqpTask(GlueTask):
    spec = GLUE_SPECS["qqp"]
    extra_metrics = ("f1",)


@register_task("rte", dataclass=GlueConfig)
class RteTask(GlueTask):
    spec = GLUE_SPECS["rte"]


@register_task("sst2", dataclass=Sst2Config)
class Sst2Task(GlueTask):
    spec = GLUE_SPECS["sst2"]
