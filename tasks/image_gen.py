"""The `image_gen` task: text-to-image as image-code generation (reference §5.6, §7.3, §3.5).

Training: caption instruction -> the caption image's VQGAN codes (`coco_vqgan` TSVs, `--selected-cols 0,2,1`).
Generation (`fairseq-generate --task image_gen`, or validation with `--eval-args`): sampling (`--sampling
--sampling-topk/--sampling-topp --temperature`) or beam search over the `<code_*>` tokens only, exactly
(code_image_size / 8)^2 of them (min_len = max_len, whatever the command line says), repeated
`--sampling-times` times (a top-k or top-p setting alone means sampling, as the official task always samples).
With `--vqgan-config-path` and `--vqgan-model-path` the codes are decoded to images:
written as PNGs under `--gen-images-path` (`all_results/{uniq_id}_{j}.png`, `top1/{uniq_id}.png` and the
index `images.tsv`: uniq_id, j, file, caption) and checked against toy prompts (ofa_plugin.metrics.
toy_image_check): validation logs `toy_colour` and `toy_shape`, fairseq-generate prints them.

With `--clip-model-path` (a CLIP checkpoint, official: OpenAI's ViT-B-16.pt; see ofa_plugin.clip) every
caption's images are ranked by CLIP similarity, best first (the printed hypotheses, all_results/{uniq_id}_{j}.png
with j the rank, and top1 = CLIP's best, as official): `--eval-clip-method ti_sim` with the caption, `ii_sim`
with the row's reference image (4-column rows). Validation logs the official `score` = mean over captions of
the best image's similarity (without CLIP, `score` is the toy colour check); fairseq-generate prints it
(scorer ofa_clip_image). With `--scst` (stage 2, criterion clip_scst_reward_criterion) the task builds the
SCST generator from `--scst-args` (official: sampling top-k 256, 5 samples) and scores its images for the
CLIP reward. The VQGAN and CLIP models are frozen and follow the batch to its device.
"""
import functools
import logging
import re
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import torch
from fairseq.tasks import register_task
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from ofa_plugin.clip import ClipModel
from ofa_plugin.clip.scorer import ClipImagePrediction
from ofa_plugin.data.image_gen import ImageGenDataset, ImageGenSampleBuilder, num_image_codes
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.toy_image_check import check_image, prompt_object
from ofa_plugin.vocab import code_token_range
from ofa_plugin.vqgan import decode_codes, load_vqgan

from .ofa_task import GenerativeTaskConfig, OFATask

logger = logging.getLogger(__name__)

TOY_METRICS = {"toy_colour": "_toy_colour_sum", "toy_shape": "_toy_shape_sum"}
CLIP_METHODS = ("ti_sim", "ii_sim")
INDEX_FILE = "images.tsv"
# Options that a fairseq-generate command line gives for this run: they win over the checkpoint's task config.
GENERATION_OPTIONS = ("vqgan_model_path", "vqgan_config_path", "clip_model_path", "gen_images_path")


@dataclass
class ImageGenConfig(GenerativeTaskConfig):
    sampling_times: int = field(default=1, metadata={"help": "generation rounds per caption (each gives --beam images)"})
    code_image_size: int = field(default=256, metadata={
        "help": "image size of the codes: (size / 8)^2 codes per image (also the model's code grid)"})
    eval_clip_method: str = field(default="ti_sim", metadata={
        "help": "CLIP score and ranking of generated images: ti_sim (with the caption) or ii_sim (with the "
                "reference image of 4-column rows)"})
    vqgan_model_path: Optional[str] = field(default=None, metadata={"help": "VQGAN checkpoint (taming format)"})
    vqgan_config_path: Optional[str] = field(default=None, metadata={"help": "VQGAN config YAML (taming format)"})
    clip_model_path: Optional[str] = field(default=None, metadata={
        "help": "CLIP checkpoint (OpenAI JIT archive such as ViT-B-16.pt, or an OpenAI/open_clip state dict): "
                "CLIP score, ranking of the generated images, SCST reward"})
    gen_images_path: str = field(default="", metadata={
        "help": "folder for the generated images (PNG) and their index images.tsv; empty: not written"})


@register_task("image_gen", dataclass=ImageGenConfig)
class ImageGenTask(OFATask):
    cfg: ImageGenConfig
    default_scoring = "ofa_clip_image"  # the CLIP score (with --clip-model-path) and the toy check
    dataset_class = ImageGenDataset

    def __init__(self, cfg: ImageGenConfig, src_dict, tgt_dict):
        check_image_model_options(cfg)
        super().__init__(cfg, src_dict, tgt_dict)
        self.default_constraint_range()
        self._index_started = False
        if self.validation_generates:
            self.vqgan  # noqa: B018  (load now: a missing or mismatched tokenizer fails at setup)
        if self.uses_clip:
            self.clip  # noqa: B018  (likewise for a missing or unreadable CLIP file)

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, task_cfg=None, **kwargs) -> None:
        """OFATask's, keeping the VQGAN, CLIP and image paths of this command line over the checkpoint's."""
        given = {key: getattr(self.cfg, key) for key in GENERATION_OPTIONS if getattr(self.cfg, key)}
        super().load_dataset(split, epoch, combine, task_cfg=task_cfg, **kwargs)
        for key, value in given.items():
            setattr(self.cfg, key, value)
        self.default_constraint_range()

    @property
    def num_codes(self) -> int:
        return num_image_codes(self.cfg.code_image_size)

    @property
    def code_range(self) -> tuple:
        """[start, end) token ids of the `<code_*>` block."""
        return code_token_range(len(self.tgt_dict), self.cfg.code_dict_size, self.cfg.num_bins)

    def default_constraint_range(self) -> None:
        """Without --constraint-range, the code block (the official scripts' 50265,58457)."""
        if self.cfg.constraint_range is None:
            self.cfg.constraint_range = "{},{}".format(*self.code_range)

    def build_sample_builder(self, split: str, tsv_path: str) -> ImageGenSampleBuilder:
        return ImageGenSampleBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer, tsv_path=tsv_path,
            max_src_length=self.cfg.max_src_length, max_source_positions=self.cfg.max_source_positions,
            num_codes=self.num_codes, code_dict_size=self.cfg.code_dict_size, num_bins=self.cfg.num_bins,
            keep_reference_image=split != "train" and self.uses_clip and self.cfg.eval_clip_method == "ii_sim",
        )

    @property
    def validation_generates(self) -> bool:
        return bool(self.cfg.vqgan_model_path)

    @property
    def uses_clip(self) -> bool:
        return bool(self.cfg.clip_model_path)

    @functools.cached_property
    def vqgan(self):
        """The frozen VQGAN decoder of generated codes (from --vqgan-config-path/--vqgan-model-path)."""
        model = load_vqgan(self.cfg.vqgan_config_path, self.cfg.vqgan_model_path)
        if model.n_embed != self.cfg.code_dict_size:
            raise ValueError(f"the VQGAN has {model.n_embed} codes but --code-dict-size is {self.cfg.code_dict_size}")
        return model.eval().requires_grad_(False)

    @functools.cached_property
    def clip(self) -> ClipModel:
        """The frozen CLIP of --clip-model-path."""
        return ClipModel.load(self.cfg.clip_model_path)

    def frozen_models_to(self, device: torch.device) -> None:
        """Move the VQGAN and CLIP to the device of the batches (a no-op once they are there)."""
        self.vqgan.to(device)
        if self.uses_clip:
            self.clip.to(device)

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        """fairseq's choice of search (sampling or beam), always exactly `num_codes` code tokens and eos. A top-k
        or top-p setting means sampling even without `sampling` (the official task always samples; its
        --eval-args/--scst-args give only `sampling_topk`)."""
        values = OmegaConf.to_container(args, resolve=True) if isinstance(args, DictConfig) else dict(vars(args))
        values.update(min_len=self.num_codes, max_len_a=0, max_len_b=self.num_codes)
        if values.get("sampling_topk", -1) > 0 or values.get("sampling_topp", -1.0) > 0:
            values["sampling"] = True
        logger.info("image generation: %d code tokens per image, tokens %s only", self.num_codes,
                    self.cfg.constraint_range)
        extra = dict(extra_gen_cls_kwargs or {}, gen_code=True, max_len=self.num_codes + 1)
        return super().build_generator(models, Namespace(**values), seq_gen_cls=seq_gen_cls,
                                       extra_gen_cls_kwargs=extra, **kwargs)

    def generate_images(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """`--sampling-times` rounds of generation (hypotheses of all rounds per sample) and, with a VQGAN,
        every sample's decoded images: written (--gen-images-path) and toy-checked. The models' code grid
        must be the task's (--code-image-size is shared by both)."""
        for model in models:
            model_size = getattr(model.decoder.args, "code_image_size", None)
            if model_size != self.cfg.code_image_size:
                raise ValueError(f"image_gen: the model's --code-image-size is {model_size}, the task's "
                                 f"{self.cfg.code_image_size}: the code positions would not match")
        hypos = [[] for _ in range(len(sample["id"]))]
        for _ in range(self.cfg.sampling_times):
            for mine, new in zip(hypos, super().inference_step(generator, models, sample, prefix_tokens, constraints)):
                mine.extend(new)
        for mine in hypos:  # best model score first, over all rounds (with CLIP, `predictions` re-ranks)
            mine.sort(key=lambda hypo: float(hypo["score"]), reverse=True)
        if self.validation_generates:
            self.frozen_models_to(sample["net_input"]["src_tokens"].device)
        return hypos, self.predictions(hypos, sample)

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """The hypotheses of `generate_images`; its predictions are published for the scorer."""
        hypos, predictions = self.generate_images(generator, models, sample, prefix_tokens, constraints)
        publish_predictions(predictions)
        return hypos

    def valid_step(self, sample, model, criterion, **extra_kwargs):
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.validation_generates:
            _, predictions = self.generate_images(self.validation_generator, [model], sample)
            checks = [check for p in predictions for check in p.checks]
            logging_output["_toy_cnt"] = len(checks)
            logging_output["_toy_colour_sum"] = sum(c.colour_ok for c in checks)
            logging_output["_toy_shape_sum"] = sum(c.shape_ok for c in checks)
            best = [p.clip_scores[0] for p in predictions if p.clip_scores]
            logging_output["_clip_cnt"] = len(best)
            logging_output["_clip_score_sum"] = sum(best)
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        """`score`: the CLIP score if CLIP scored the images, else the toy colour check."""
        super().reduce_metrics(logging_outputs, criterion)
        clip = self.log_mean_metrics(logging_outputs, "_clip_cnt", {"score": "_clip_score_sum"})
        toy = TOY_METRICS if clip else {"score": TOY_METRICS["toy_colour"], **TOY_METRICS}
        self.log_mean_metrics(logging_outputs, "_toy_cnt", toy)

    def hypothesis_codes(self, tokens: torch.Tensor) -> torch.Tensor:
        """A generated hypothesis (code tokens + eos) as its `num_codes` codes."""
        tokens = tokens[:-1] if len(tokens) and int(tokens[-1]) == self.tgt_dict.eos() else tokens
        if len(tokens) != self.num_codes:
            raise ValueError(f"a generated image has {len(tokens)} code tokens, expected {self.num_codes}")
        return tokens.long().cpu() - self.code_range[0]

    def decode_images(self, hypos: List[dict]) -> List[Image.Image]:
        """The images of one sample's hypotheses (VQGAN decoding)."""
        codes = torch.stack([self.hypothesis_codes(h["tokens"]) for h in hypos])
        return decode_codes(self.vqgan, codes, self.cfg.code_image_size)

    def clip_similarities(self, images: List[Image.Image], sample, index: int) -> torch.Tensor:
        """(N,) CLIP similarity of each image of sample `index` by --eval-clip-method: with its caption
        (ti_sim) or its reference image (ii_sim)."""
        if self.cfg.eval_clip_method == "ii_sim":
            return self.clip.ii_sim(images, sample["reference_image"][index])
        return self.clip.ti_sim(images, sample["caption"][index])

    def predictions(self, hypos, sample) -> List[ClipImagePrediction]:
        """Every sample's decoded images (with CLIP: ranked, best first, `hypos` re-ordered in place), written
        under --gen-images-path, and toy-checked."""
        predictions = []
        for index, (uniq_id, caption, target, sample_hypos) in enumerate(zip(
                sample["uniq_id"], sample["caption"], sample["target"], hypos)):
            images = self.decode_images(sample_hypos) if self.validation_generates and sample_hypos else []
            scores = []
            if self.uses_clip and images:
                similarities = self.clip_similarities(images, sample, index)
                order = similarities.argsort(descending=True).tolist()
                sample_hypos[:] = [sample_hypos[j] for j in order]
                images, scores = [images[j] for j in order], [float(similarities[j]) for j in order]
            files = self.write_images(uniq_id, caption, images) if self.cfg.gen_images_path else []
            checks = [check_image(image, caption) for image in images] if prompt_object(caption) else []
            predictions.append(ClipImagePrediction(str(uniq_id), caption, self.target_text(target), files, checks,
                                                   scores, self.cfg.eval_clip_method))
        return predictions

    def write_images(self, uniq_id: str, caption: str, images: List[Image.Image]) -> List[str]:
        """all_results/{uniq_id}_{j}.png for every image, top1/{uniq_id}.png for the first (CLIP's best with
        --clip-model-path, as official; else the best model score), and their rows in images.tsv (started afresh
        by each process); returns the files written."""
        root = Path(self.cfg.gen_images_path)
        name = re.sub(r"[^\w.-]", "_", str(uniq_id))
        files = []
        for j, image in enumerate(images):
            path = root / "all_results" / f"{name}_{j}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
            files.append(str(path.relative_to(root)))
        if images:
            (root / "top1").mkdir(parents=True, exist_ok=True)
            images[0].save(root / "top1" / f"{name}.png")
        with open(root / INDEX_FILE, "a" if self._index_started else "w", encoding="utf-8") as index:
            for j, file in enumerate(files):
                index.write(f"{uniq_id}\t{j}\t{file}\t{caption}\n")
        self._index_started = True
        return files


def check_image_model_options(cfg: ImageGenConfig) -> None:
    """The VQGAN / CLIP / SCST options must come together: CLIP scores the VQGAN's images, SCST's reward is CLIP's."""
    if bool(cfg.vqgan_model_path) != bool(cfg.vqgan_config_path):
        raise ValueError("image_gen: give both --vqgan-model-path and --vqgan-config-path (or neither)")
    if cfg.eval_clip_method not in CLIP_METHODS:
        raise ValueError(f"image_gen: --eval-clip-method must be one of {', '.join(CLIP_METHODS)}, "
                         f"got {cfg.eval_clip_method!r}")
    if cfg.clip_model_path and not cfg.vqgan_model_path:
        raise ValueError("image_gen: --clip-model-path scores decoded images: give the VQGAN too "
                         "(--vqgan-config-path, --vqgan-model-path)")
    if cfg.scst and not cfg.clip_model_path:
        raise ValueError("image_gen: --scst trains with a CLIP reward: give --clip-model-path (and the VQGAN)")
