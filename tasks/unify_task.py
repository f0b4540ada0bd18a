"""The `unify_task`: OFA's multitask pretraining (reference §10) on the stock `fairseq-train`.

`--data` is the image-text file (`vision_language_examples.tsv`, columns 0-7; several comma-separated files
rotate, one per epoch, for every split); `--text-data`, `--image-data`, `--detection-data` are the side files
of the extra examples and `--neg-sample-dir` the negative pools of image-text matching. Each training batch is
the pair (v1, v2) that `adjust_label_smoothed_cross_entropy` normalises batch by batch (v1 alone when the
rows carry no extra examples). fairseq's trainer handles such a tuple as it is (moving to the device, fp16
casts and the empty-batch dummy all recurse into tuples); validation is off in the official recipe
(`--disable-validation`) and, if run, sees v1 alone (no extra examples outside training).
"""
import logging
from dataclasses import dataclass, field
from typing import Optional

from fairseq.tasks import register_task

from ofa_plugin.data.pretrain import (DetectionBuilder, ImageInfillingBuilder, NegativeSamples, PairBuilder,
                                      SideReader, SpanMasker, TextInfillingBuilder, UnifyDataset,
                                      UnifySampleBuilder, grounding_transform, pair_image_transform,
                                      word_start_mask)
from ofa_plugin.data.tsv import TSVFile
from ofa_plugin.vocab import MASK_SYMBOL

from .ofa_task import OFAConfig, OFATask

logger = logging.getLogger(__name__)


@dataclass
class UnifyConfig(OFAConfig):
    max_image_size: int = field(default=512, metadata={
        "help": "boxes are divided by this before quantisation into bins"})
    text_data: Optional[str] = field(default=None, metadata={"help": "text_examples.tsv (text infilling)"})
    image_data: Optional[str] = field(default=None, metadata={
        "help": "image_examples.tsv (image infilling: 2S x 2S image + codes of its centre)"})
    detection_data: Optional[str] = field(default=None, metadata={"help": "detection_examples.tsv"})
    text_selected_cols: Optional[str] = field(default="0,1", metadata={"help": "columns: uniq-id, text"})
    image_selected_cols: Optional[str] = field(default="0,1,2", metadata={"help": "columns: uniq-id, image, codes"})
    detection_selected_cols: Optional[str] = field(default="0,1,2", metadata={
        "help": "columns: uniq-id, image, boxes"})
    neg_sample_dir: Optional[str] = field(default=None, metadata={
        "help": "folder with all_captions.txt, object.txt, type2ans.json (negatives of image-text matching)"})
    code_image_size: int = field(default=128, metadata={
        "help": "S: side of the region the image codes describe; extra examples use 2S x 2S images"})
    pretrain_seed: int = field(default=7, metadata={"help": "seed of the examples' random choices"})
    mask_ratio: float = field(default=0.3, metadata={"help": "share of the words masked in text infilling"})
    random_ratio: float = field(default=0.0, metadata={"help": "share of the masks replaced by random tokens"})
    keep_ratio: float = field(default=0.0, metadata={"help": "accepted for compatibility, unused (official)"})
    mask_length: str = field(default="span-poisson", metadata={"help": "subword, word or span-poisson"})
    poisson_lambda: float = field(default=3.0, metadata={"help": "mean span length (words) of span-poisson"})
    replace_length: int = field(default=1, metadata={
        "help": "-1: mask every token of a span, 0: delete spans, 1: one <mask> per span"})


@register_task("unify_task", dataclass=UnifyConfig)
class UnifyTask(OFATask):
    cfg: UnifyConfig

    def split_path(self, split: str, epoch: int) -> str:
        """One image-text file per epoch, for every split (official)."""
        paths = self.data_paths()
        return paths[(epoch - 1) % len(paths)]

    def has_sharded_data(self, split: str) -> bool:
        return split == "train" and len(self.data_paths()) > 1

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, task_cfg=None, **kwargs) -> None:
        path = self.split_path(split, epoch)
        tsv = TSVFile(path, self.cfg.selected_cols)
        builder = self.build_unify_builder(split, str(tsv.path), len(tsv))
        builder.epoch = epoch
        self.datasets[split] = UnifyDataset(tsv, builder, self.src_dict.pad(), shuffle=(split == "train"),
                                            skip_malformed=self.cfg.skip_malformed_rows)
        logger.info("%s: %d image-text rows from %s", split, len(tsv), path)

    def build_unify_builder(self, split: str, tsv_path: str, num_rows: int) -> UnifySampleBuilder:
        cfg = self.cfg
        training = split == "train"
        mean, std = self.image_mean_std()
        if training and not cfg.neg_sample_dir:
            raise ValueError("unify_task training needs --neg-sample-dir (negatives of image-text matching)")
        pairs = PairBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer,
            image_transform=pair_image_transform(cfg.patch_image_size, mean, std, augment=training),
            grounding_transform=grounding_transform(cfg.patch_image_size, mean, std),
            negatives=NegativeSamples.load(cfg.neg_sample_dir) if training else None,
            max_src_length=cfg.max_src_length, max_tgt_length=cfg.max_tgt_length,
            max_image_size=cfg.max_image_size, num_bins=cfg.num_bins, is_training=training, tsv_path=tsv_path,
        )
        builder = UnifySampleBuilder(pairs, num_rows, cfg.pretrain_seed, is_training=training)
        if not training:
            return builder
        side = 2 * cfg.code_image_size
        if cfg.text_data:
            masker = SpanMasker(word_start_mask(self.tgt_dict, self.tokenizer), self.tgt_dict.index(MASK_SYMBOL),
                                len(self.tgt_dict), cfg.mask_ratio, cfg.random_ratio, cfg.mask_length,
                                cfg.poisson_lambda, cfg.replace_length)
            text = TSVFile(cfg.text_data, cfg.text_selected_cols)
            builder.text = SideReader(text, TextInfillingBuilder(self.tgt_dict, self.tokenizer, masker, side,
                                                                 str(text.path)))
        if cfg.image_data:
            image = TSVFile(cfg.image_data, cfg.image_selected_cols)
            builder.image = SideReader(image, ImageInfillingBuilder(
                self.tgt_dict, self.tokenizer, cfg.code_image_size, cfg.code_dict_size, mean, std, str(image.path)))
        if cfg.detection_data:
            detection = TSVFile(cfg.detection_data, cfg.detection_selected_cols)
            builder.detection = SideReader(detection, DetectionBuilder(
                self.tgt_dict, self.tokenizer, side, cfg.max_image_size, cfg.num_bins, mean, std,
                str(detection.path)))
        return builder
