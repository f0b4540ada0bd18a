"""The GLUE tasks cola, mnli, mrpc, qnli, qqp, rte and sst2 (reference §5.10).

One task class serves all seven; they differ only in data (prompt, columns, label mapping: see
`ofa_plugin.data.glue`), in the default `--ans2label-dict` and in the official extra metrics (MCC for
cola, F1 for mrpc and qqp). Nothing is generated: the answer is the argmax, over the candidates' single
tokens, of the trie-masked logits at the last decoder position (the official last-token argmax). It is
the closed-set mixin's all-candidate choice without eos, which gives the same log-softmax over the allowed
tokens but projects only that position onto the vocabulary. `fairseq-generate` prints the accuracy (and
MCC/F1) through the `ofa_accuracy` scorer; `fairseq-train` validation logs `acc` (and `mcc`/`F1`) from
counts summed over all batches.
"""
from dataclasses import dataclass, field
from typing import ClassVar, Dict, List, Sequence

from fairseq import metrics
from fairseq.tasks import register_task

from ofa_plugin.data.answers import load_ans2label
from ofa_plugin.data.glue import GLUE_SPECS, GlueSampleBuilder, GlueSpec
from ofa_plugin.metrics.classification import binary_counts, f1_from_counts, mcc_from_counts
from ofa_plugin.metrics.label_scorer import LabelPrediction

from .closed_set import ClosedSetTaskMixin
from .ofa_task import OFAConfig, OFATask

POSITIVE_ANSWER = "yes"  # the positive class of the official MCC / F1 counts (the ofa_accuracy scorer's too)
COUNT_KEYS = ("_tp", "_fp", "_tn", "_fn")
CANDIDATE_CHUNK_SIZE = 20  # GLUE has no --valid-batch-size: its few single-token answers fit one pass


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


class GlueTask(ClosedSetTaskMixin, OFATask):
    """A GLUE task: `spec` holds its data, `extra_metrics` its official metrics besides accuracy."""

    cfg: GlueConfig
    spec: ClassVar[GlueSpec]
    default_scoring = "ofa_accuracy"  # fairseq-generate prints accuracy (+ MCC / F1)
    metric_name = "acc"
    append_eos = False  # GLUE targets end with the answer token: eos is neither trained nor scored
    ensemble = True  # fairseq-generate averages the probabilities of every --path model
    constrains_generation = False  # nothing is generated

    @property
    def candidate_chunk_size(self) -> int:
        return CANDIDATE_CHUNK_SIZE

    def candidate_answers(self) -> List[str]:
        return list(load_ans2label(None, self.cfg.ans2label_dict))

    def build_sample_builder(self, split: str, tsv_path: str) -> GlueSampleBuilder:
        """The builder of the loaded data; its candidates are also the ones predictions choose from."""
        return GlueSampleBuilder(self.spec, self.tgt_dict, self.tokenizer, self.update_candidates(),
                                 self.cfg.prompt_type, tsv_path, self.cfg.max_src_length)

    def metric_logs(self, predictions: List[LabelPrediction]) -> Dict[str, float]:
        """Correct answers and, for MCC / F1, the TP/FP/TN/FN counts of the batch."""
        logs = super().metric_logs(predictions)
        if self.extra_metrics:
            answers, references = [p.answer for p in predictions], [p.reference for p in predictions]
            logs.update(zip(COUNT_KEYS, binary_counts(answers, references, POSITIVE_ANSWER)))
        return logs

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        """acc, then MCC / F1 from the counts of all batches (not averaged per batch)."""
        super().reduce_metrics(logging_outputs, criterion)
        if not (self.extra_metrics and self.log_sums(logging_outputs, COUNT_KEYS)):
            return
        if "mcc" in self.extra_metrics:
            metrics.log_derived("mcc", lambda m: round(mcc_from_counts(*_summed(m, COUNT_KEYS)), 4))
        if "f1" in self.extra_metrics:
            metrics.log_derived("F1", lambda m: round(f1_from_counts(*_summed(m, ("_tp", "_fp", "_fn"))), 4))


def _summed(meters, keys: Sequence[str]) -> List[float]:
    """The meters' sums as floats (tensors after fairseq's all-reduce across processes)."""
    return [float(meters[key].sum) for key in keys]


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
