"""`clip_scst_reward_criterion`: self-critical training of text-to-image with a CLIP reward (reference §6.4).

Per batch: the image_gen task's SCST generator (`--scst --scst-args`, official: sampling top-k 256, 5 samples
of exactly (code_image_size / 8)^2 codes) draws images for every caption with the model in eval mode and
without gradients; each sample's codes are decoded by the task's VQGAN, and its score is
`2.5 * cos(CLIP image features, CLIP text features of the caption)` (`--clip-model-path`). The leave-one-out
baseline and the REINFORCE loss on the teacher-forced samples are those of `scst_reward_criterion` (this
criterion is that one with another score); the mean score is logged as `clip_reward`, so that it does not
hide the task's validation `score` (the CLIP score of the best of the validation images).
"""
from typing import Dict, List

import numpy as np
from fairseq.criterions import register_criterion
from torch import Tensor

from .scst_reward_criterion import ScstRewardCriterion, ScstRewardCriterionConfig

CLIP_REWARD_WEIGHT = 2.5


@register_criterion("clip_scst_reward_criterion", dataclass=ScstRewardCriterionConfig)
class ClipScstRewardCriterion(ScstRewardCriterion):
    """SCST with the CLIP text-image reward (module docstring); needs the image_gen task with --scst."""

    criterion_name = "clip_scst_reward_criterion"
    required_task = ("the image_gen task with --scst, --clip-model-path and the VQGAN "
                     "(and the sampling in --scst-args, e.g. '{\"beam\": 5, \"sampling_topk\": 256}')")
    score_metric = "clip_reward"

    @staticmethod
    def supports_task(task) -> bool:
        """The image_gen task with a CLIP (and so a VQGAN) scores the sampled images."""
        return getattr(task, "uses_clip", False)

    def hypothesis_scores(self, hypotheses: List[List[Dict[str, Tensor]]], sample) -> List[np.ndarray]:
        """2.5 x the CLIP cosine similarity of every sampled image with its caption."""
        self.task.frozen_models_to(sample["net_input"]["src_tokens"].device)
        similarities = [self.task.clip.ti_sim(self.task.decode_images(hyps), caption)
                        for hyps, caption in zip(hypotheses, sample["caption"])]
        return [CLIP_REWARD_WEIGHT * s.double().cpu().numpy() for s in similarities]
