"""The `caption` task (reference §5.2); `fairseq-generate` prints CIDEr and BLEU at the end."""
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from ofa_plugin.data.caption import CaptionSampleBuilder
from ofa_plugin.data.transforms import square_resize_transform

from .ofa_task import OFAConfig, OFATask


@dataclass
class CaptionConfig(OFAConfig):
    eval_bleu: bool = field(default=False, metadata={"help": "report BLEU during validation"})
    eval_cider: bool = field(default=False, metadata={"help": "report CIDEr during validation"})
    eval_args: str = field(default="{}", metadata={"help": 'generation args for validation, as JSON, e.g. {"beam": 4}'})
    eval_print_samples: bool = field(default=False, metadata={"help": "log a sample hypothesis during validation"})
    eval_cider_cached_tokens: Optional[str] = field(default=None, metadata={
        "help": "pickle of CIDEr-D document frequencies (used by SCST)"})
    scst: bool = field(default=False, metadata={"help": "self-critical sequence training (stage 2)"})
    scst_args: str = field(default="{}", metadata={"help": "generation args for SCST, as JSON"})


@register_task("caption", dataclass=CaptionConfig)
class CaptionTask(OFATask):
    cfg: CaptionConfig

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        parser.set_defaults(scoring="ofa_caption")  # fairseq-generate prints caption metrics

    def build_sample_builder(self, split: str, tsv_path: str) -> CaptionSampleBuilder:
        mean, std = self.image_mean_std()
        return CaptionSampleBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer,
            transform=square_resize_transform(self.cfg.patch_image_size, mean, std), tsv_path=tsv_path,
            max_tgt_length=self.cfg.max_tgt_length, is_training=(split == "train" and not self.cfg.scst),
        )

