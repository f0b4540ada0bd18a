"""The `image_classify` task (reference §5.7, §8.2): the class name by all-candidate scoring over the
classes of --ans2label-file; `fairseq-generate` prints the accuracy."""
from dataclasses import dataclass, field
from typing import List, Optional

from fairseq.tasks import register_task

from ofa_plugin.data.answers import load_ans2label
from ofa_plugin.data.image_classify import ImageClassifySampleBuilder, classify_train_transform
from ofa_plugin.data.transforms import square_resize_transform

from .closed_set import ClosedSetTaskMixin
from .ofa_task import OFAConfig, OFATask


@dataclass
class ImageClassifyConfig(OFAConfig):
    ans2label_dict: str = field(default='{"no": 0, "yes":1}', metadata={
        "help": "classes as a JSON name->label dict, used without --ans2label-file"})
    ans2label_file: Optional[str] = field(default=None, metadata={
        "help": "pickle (or .json) of the class name->label dict (official: class2label_new.pkl); "
                "candidate order = insertion order"})
    valid_batch_size: int = field(default=20, metadata={"help": "candidate classes scored per decoder pass"})
    uses_ema: bool = field(default=False, metadata={
        "help": "validate with the EMA model (needs --store-ema)"})


@register_task("image_classify", dataclass=ImageClassifyConfig)
class ImageClassifyTask(ClosedSetTaskMixin, OFATask):
    cfg: ImageClassifyConfig
    default_scoring = "ofa_accuracy"
    metric_decimals = 3  # the official "score" has 3 decimals

    def candidate_answers(self) -> List[str]:
        return list(load_ans2label(self.cfg.ans2label_file, self.cfg.ans2label_dict))

    def build_sample_builder(self, split: str, tsv_path: str) -> ImageClassifySampleBuilder:
        """Training images are augmented (official timm recipe), all others only resized."""
        mean, std = self.image_mean_std()
        size = self.cfg.patch_image_size
        transform = (classify_train_transform(size, mean, std) if split == "train"
                     else square_resize_transform(size, mean, std))
        return ImageClassifySampleBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer, transform=transform, tsv_path=tsv_path,
            candidates=self.update_candidates(),
        )
