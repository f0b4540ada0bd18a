"""The `gigaword` summarisation task (reference §5.9, §8.2); `fairseq-generate` prints ROUGE-1/2/L F1.

Text only (no image). Hypotheses get the official post-processing before ROUGE: decode (BPE, then the
`--eval-detok` detokenizer), lower-case, PTB re-tokenisation (`fix_tokenization`), `<unk>` -> ` unk`,
every `1` -> `#` (Gigaword references write digits as `#`). References are the raw targets, lower-cased.
Recipe generation settings: beam 6, lenpen 0.7, max_len_b 32, no_repeat_ngram_size 3.
"""
import functools
import json
import logging
from argparse import Namespace
from dataclasses import dataclass, field
from typing import List

import torch
from fairseq.data import encoders
from fairseq.tasks import register_task

from ofa_plugin.data.summary import REFERENCE_SUMMARIES, SummarySampleBuilder
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.rouge import ROUGE_TYPES, corpus_rouge, fix_tokenization
from ofa_plugin.metrics.summary_scorer import SummaryPrediction

from .ofa_task import GenerativeTaskConfig, OFATask

logger = logging.getLogger(__name__)

ROUGE_PARTS = ("recall", "f1")  # what the official validation logs of each ROUGE type


@dataclass
class GigawordConfig(GenerativeTaskConfig):
    eval_rouge: bool = field(default=False, metadata={
        "help": "report ROUGE-1/2/L recall and F1 during validation (generates summaries)"})
    eval_detok: str = field(default="space", metadata={
        "help": "fairseq tokenizer whose decode detokenizes generated summaries (space, moses, ...)"})
    eval_detok_args: str = field(default="{}", metadata={"help": "arguments of the --eval-detok tokenizer, as JSON"})
    noise_ratio: float = field(default=0.0, metadata={
        "help": "training only: probability of replacing each decoder-input token by a random text token"})


def official_hypothesis(text: str) -> str:
    """The official post-processing of a decoded summary before ROUGE."""
    return fix_tokenization(text.lower().strip()).replace("<unk>", " unk").replace("1", "#")


@register_task("gigaword", dataclass=GigawordConfig)
class GigawordTask(OFATask):
    cfg: GigawordConfig
    default_scoring = "ofa_rouge"

    def build_sample_builder(self, split: str, tsv_path: str) -> SummarySampleBuilder:
        return SummarySampleBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer, tsv_path=tsv_path,
            max_src_length=self.cfg.max_src_length, max_tgt_length=self.cfg.max_tgt_length,
            noise_ratio=self.cfg.noise_ratio if split == "train" else 0.0,
            num_text_tokens=len(self.tgt_dict) - self.cfg.code_dict_size - self.cfg.num_bins,
        )

    @property
    def validation_generates(self) -> bool:
        return self.cfg.eval_rouge

    @functools.cached_property
    def detokenizer(self):
        """The `--eval-detok` tokenizer (built on first use, after the checkpoint's options are merged)."""
        detok_args = json.loads(self.cfg.eval_detok_args)
        return encoders.build_tokenizer(Namespace(tokenizer=self.cfg.eval_detok, **detok_args))

    def decode(self, tokens: torch.Tensor) -> str:
        """Token ids -> text: BPE decode, then the `--eval-detok` detokenizer (`space` changes nothing)."""
        text = self.tokenizer.decode(self.tgt_dict.string(tokens.cpu()))
        return self.detokenizer.decode(text) if self.detokenizer is not None else text

    def hypotheses(self, hypos) -> List[str]:
        """Official post-processed text of every sample's best hypothesis."""
        return [official_hypothesis(self.decode(h[0]["tokens"])) for h in hypos]

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """Beam search from bos; each sample's summary is published for the `ofa_rouge` scorer."""
        hypos = super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens, constraints=constraints)
        publish_predictions(
            SummaryPrediction(hyp, ref, self.target_text(target))
            for hyp, ref, target in zip(self.hypotheses(hypos), sample[REFERENCE_SUMMARIES], sample["target"]))
        return hypos

    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.validation_generates:
            hyps = self.hypotheses(super().inference_step(self.validation_generator, [model], sample))
            refs = sample[REFERENCE_SUMMARIES]
            scores = corpus_rouge(refs, hyps)
            for kind in ROUGE_TYPES:
                for part in ROUGE_PARTS:
                    logging_output[f"_{kind}_{part}_sum"] = 100 * scores[f"{kind}_{part}"] * len(refs)
            logging_output["_rouge_cnt"] = len(refs)
            if self.cfg.eval_print_samples:
                logger.info("example hypothesis: %s | reference: %s", hyps[0], refs[0])
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        names = (f"{kind}_{part}" for kind in ROUGE_TYPES for part in ROUGE_PARTS)
        self.log_mean_metrics(logging_outputs, "_rouge_cnt", {name: f"_{name}_sum" for name in names})
