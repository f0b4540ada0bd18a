"""The `snli_ve` visual entailment task (reference §5.5, §8.2): yes / no / maybe by all-candidate scoring;
`fairseq-generate` prints the accuracy and, with --results-path, writes the official predict JSON."""
from dataclasses import dataclass, field
from typing import List, Optional

from fairseq.tasks import register_task

from ofa_plugin.data.answers import load_ans2label
from ofa_plugin.data.decoder_prompts import PROMPT_TYPES
from ofa_plugin.data.snli_ve import SnliVeSampleBuilder
from ofa_plugin.data.transforms import square_resize_transform

from .closed_set import ClosedSetTaskMixin
from .ofa_task import OFAConfig, OFATask


@dataclass
class SnliVeConfig(OFAConfig):
    ans2label_dict: str = field(default='{"no": 0, "yes":1, "maybe": 2}', metadata={
        "help": "candidate answers as a JSON answer->label dict (candidate order = insertion order)"})
    add_caption: bool = field(default=False, metadata={
        "help": "put the premise caption into the instruction besides the hypothesis"})
    valid_batch_size: int = field(default=20, metadata={"help": "candidate answers scored per decoder pass"})
    prompt_type: Optional[str] = field(default=None, metadata={
        "help": "decoder prompt before the answer: none ([bos]), src (the source), prev_output (the source "
                "without eos; the official scripts' choice); required"})


@register_task("snli_ve", dataclass=SnliVeConfig)
class SnliVeTask(ClosedSetTaskMixin, OFATask):
    cfg: SnliVeConfig
    default_scoring = "ofa_accuracy"
    metric_name, metric_sum_key, metric_count_key = "snli_score", "_snli_score_sum", "_snli_score_cnt"

    def candidate_answers(self) -> List[str]:
        return list(load_ans2label(None, self.cfg.ans2label_dict))

    def build_sample_builder(self, split: str, tsv_path: str) -> SnliVeSampleBuilder:
        if self.cfg.prompt_type not in PROMPT_TYPES:
            raise ValueError(f"snli_ve needs --prompt-type ({', '.join(PROMPT_TYPES)}; the official scripts use "
                             f"prev_output), got {self.cfg.prompt_type!r}")
        mean, std = self.image_mean_std()
        return SnliVeSampleBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer,
            transform=square_resize_transform(self.cfg.patch_image_size, mean, std), tsv_path=tsv_path,
            max_src_length=self.cfg.max_src_length, add_caption=self.cfg.add_caption,
            prompt_type=self.cfg.prompt_type, candidates=self.update_candidates(),
        )
