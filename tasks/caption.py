"""The `caption` task (reference §5.2); `fairseq-generate` prints CIDEr and BLEU at the end."""
import logging
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from fairseq.tasks import register_task

from ofa_plugin.data.caption import CaptionSampleBuilder
from ofa_plugin.data.text import strip_punctuation
from ofa_plugin.data.transforms import square_resize_transform
from ofa_plugin.metrics.caption import caption_scores
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.scorer import CaptionPrediction, split_references

from .ofa_task import GenerativeTaskConfig, OFATask

logger = logging.getLogger(__name__)

VALIDATION_METRICS = {"cider": "CIDEr", "bleu4": "BLEU-4"}


@dataclass
class CaptionConfig(GenerativeTaskConfig):
    eval_bleu: bool = field(default=False, metadata={"help": "report BLEU-4 during validation (generates captions)"})
    eval_cider: bool = field(default=False, metadata={
        "help": "report CIDEr during validation (generates captions; document frequencies per batch, as official)"})
    eval_cider_cached_tokens: Optional[str] = field(default=None, metadata={
        "help": "pickle of CIDEr-D document frequencies (used by SCST)"})


@register_task("caption", dataclass=CaptionConfig)
class CaptionTask(OFATask):
    cfg: CaptionConfig
    default_scoring = "ofa_caption"

    def build_sample_builder(self, split: str, tsv_path: str) -> CaptionSampleBuilder:
        mean, std = self.image_mean_std()
        return CaptionSampleBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer,
            transform=square_resize_transform(self.cfg.patch_image_size, mean, std), tsv_path=tsv_path,
            max_tgt_length=self.cfg.max_tgt_length, is_training=(split == "train" and not self.cfg.scst),
        )

    @property
    def validation_generates(self) -> bool:
        return self.cfg.eval_cider or self.cfg.eval_bleu

    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.validation_generates:
            hypotheses, references = self.generate_captions(model, sample)
            # pure-Python tokeniser: no Java process per validation batch
            scores = caption_scores(dict(enumerate(hypotheses)), dict(enumerate(references)), tokenizer="python")
            for name, key in VALIDATION_METRICS.items():
                logging_output[f"_{name}_sum"] = scores[key] * len(hypotheses)
                logging_output[f"_{name}_cnt"] = len(hypotheses)
            if self.cfg.eval_print_samples:
                logger.info("example hypothesis: %r | references: %s", hypotheses[0], references[0])
        return loss, sample_size, logging_output

    def generate_captions(self, model, sample) -> Tuple[List[str], List[List[str]]]:
        """Best hypothesis of every sample and its references, punctuation removed (official eval)."""
        predictions = self.predictions(self.inference_step(self.validation_generator, [model], sample), sample)
        return [p.caption for p in predictions], [p.references for p in predictions]

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """Beam search from bos; each image's caption is published for the `ofa_caption` scorer."""
        hypos = super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens, constraints=constraints)
        publish_predictions(self.predictions(hypos, sample))
        return hypos

    def predictions(self, hypos, sample) -> List[CaptionPrediction]:
        """The official caption of every sample's best hypothesis (decoded, punctuation removed)."""
        ignore = {self.tgt_dict.bos(), self.tgt_dict.eos()}
        return [
            CaptionPrediction(str(uniq_id), strip_punctuation(self.tokenizer.decode(
                self.tgt_dict.string(h[0]["tokens"].int().cpu(), extra_symbols_to_ignore=ignore))).strip(),
                split_references(self.target_text(target)))
            for uniq_id, h, target in zip(sample["uniq_id"], hypos, sample["target"])
        ]

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        for name in VALIDATION_METRICS:
            self.log_mean_metrics(logging_outputs, f"_{name}_cnt", {name: f"_{name}_sum"})
