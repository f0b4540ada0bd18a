"""The `refcoco` visual grounding task (reference §5.4); `fairseq-generate` prints Acc@0.5 at the end.

A prediction is the official one: the first 4 generated tokens of the best hypothesis, read as bins
whatever they are (a non-bin token gives a far-away box), mapped to resized-image pixels and then
back to original pixels with the sample's resize ratios, all in float32 like the official code.
"""
import logging
from dataclasses import dataclass, field
from typing import List

import torch
from fairseq.tasks import register_task

from ofa_plugin.data.refcoco import RefcocoSampleBuilder
from ofa_plugin.data.transforms import box_resize_transform
from ofa_plugin.metrics.grounding_scorer import GroundingPrediction
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.vocab import token_to_bin

from .ofa_task import GenerativeTaskConfig, OFATask

logger = logging.getLogger(__name__)

BOX_TOKENS = 4


@dataclass
class RefcocoConfig(GenerativeTaskConfig):
    eval_acc: bool = field(default=False, metadata={"help": "report Acc@0.5 during validation (generates boxes)"})
    max_image_size: int = field(default=512, metadata={
        "help": "boxes are divided by this (not by the image size) before quantisation into bins"})


@register_task("refcoco", dataclass=RefcocoConfig)
class RefcocoTask(OFATask):
    cfg: RefcocoConfig
    default_scoring = "ofa_grounding"

    def build_sample_builder(self, split: str, tsv_path: str) -> RefcocoSampleBuilder:
        mean, std = self.image_mean_std()
        return RefcocoSampleBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer,
            transform=box_resize_transform(self.cfg.patch_image_size, mean, std), tsv_path=tsv_path,
            max_src_length=self.cfg.max_src_length, max_image_size=self.cfg.max_image_size,
            num_bins=self.cfg.num_bins,
        )

    @property
    def validation_generates(self) -> bool:
        return self.cfg.eval_acc

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """Beam search from bos; each sample's box is published for the `ofa_grounding` scorer."""
        hypos = super().inference_step(generator, models, sample, prefix_tokens=prefix_tokens, constraints=constraints)
        publish_predictions(self.predictions(hypos, sample))
        return hypos

    def predictions(self, hypos, sample) -> List[GroundingPrediction]:
        """Official box decoding of every sample's best hypothesis, with its ground truth."""
        first_tokens = []
        for i, sample_hypos in enumerate(hypos):
            tokens = sample_hypos[0]["tokens"]
            if len(tokens) < BOX_TOKENS:
                raise ValueError(f"sample {sample['uniq_id'][i]}: a box needs {BOX_TOKENS} generated tokens, got "
                                 f"{tokens.tolist()}; generate with --min-len 4 --max-len-a 0 --max-len-b 4")
            first_tokens.append(tokens[:BOX_TOKENS])
        boxes = self.tokens_to_boxes(torch.stack(first_tokens), sample["w_resize_ratios"], sample["h_resize_ratios"])
        target_bins = token_to_bin(sample["target"][:, :BOX_TOKENS], len(self.tgt_dict), self.cfg.num_bins)
        return [
            GroundingPrediction(uniq_id, box, target_box, bins)
            for uniq_id, box, target_box, bins in zip(sample["uniq_id"], boxes.tolist(),
                                                      sample["region_coords"].tolist(), target_bins.tolist())
        ]

    def tokens_to_boxes(self, tokens: torch.Tensor, w_ratios: torch.Tensor, h_ratios: torch.Tensor) -> torch.Tensor:
        """(B, 4) token ids -> (B, 4) float32 boxes in original pixels, as the official evaluation computes."""
        bins = token_to_bin(tokens.cpu(), len(self.tgt_dict), self.cfg.num_bins)
        boxes = bins / (self.cfg.num_bins - 1) * self.cfg.max_image_size
        boxes[:, ::2] /= w_ratios.cpu().unsqueeze(1)
        boxes[:, 1::2] /= h_ratios.cpu().unsqueeze(1)
        return boxes

    def valid_step(self, sample, model, criterion):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.validation_generates:
            model.eval()
            with torch.no_grad():
                hypos = super().inference_step(self.validation_generator, [model], sample)
            predictions = self.predictions(hypos, sample)
            logging_output["_score_sum"] = sum(p.hit for p in predictions)
            logging_output["_score_cnt"] = len(predictions)
            if self.cfg.eval_print_samples:
                logger.info("example box: %s | ground truth: %s", predictions[0].box, predictions[0].target_box)
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        self.log_mean_metrics(logging_outputs, "_score_cnt", {"score": "_score_sum"})
