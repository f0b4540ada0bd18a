"""The base OFA task: vocabulary, TSV datasets, bos-started generation (reference §4, §7.1)."""
import ast
import json
import logging
import os
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Sequence

import torch
from fairseq import metrics
from fairseq import utils
from fairseq.data import Dictionary
from fairseq.dataclass import FairseqDataclass
from fairseq.tasks import FairseqTask, register_task
from omegaconf import DictConfig, OmegaConf

from ofa_plugin.data.dataset import SampleBuilder, TSVTaskDataset
from ofa_plugin.data.transforms import IMAGENET_MEAN, IMAGENET_STD, OFA_MEAN, OFA_STD
from ofa_plugin.data.tsv import TSVFile
from ofa_plugin.generate import OFASequenceGenerator
from ofa_plugin.lr_scheduler import forget_train_batches, record_train_batches
from ofa_plugin.trie import AnswerTrie
from ofa_plugin.vocab import build_ofa_dictionary, build_tokenizer

logger = logging.getLogger(__name__)


@dataclass
class OFAConfig(FairseqDataclass):
    data: Optional[str] = field(default=None, metadata={
        "help": "comma-separated TSV files: training rotates over all but the last (one per epoch), "
                "every other split reads the last; a single file serves every split"})
    selected_cols: Optional[str] = field(default=None, metadata={
        "help": "TSV columns to read, in the task's order (e.g. 0,4,2); default: all"})
    bpe: Optional[str] = field(default="gpt2", metadata={
        "help": "text tokenizer: gpt2 (official vocabulary) or sentencepiece (spm.model in --bpe-dir)"})
    bpe_dir: Optional[str] = field(default=None, metadata={
        "help": "folder with dict.txt and the tokenizer files (encoder.json + vocab.bpe, or spm.model)"})
    max_source_positions: int = field(default=1024, metadata={"help": "max number of tokens in the source"})
    max_target_positions: int = field(default=1024, metadata={"help": "max number of tokens in the target"})
    max_src_length: int = field(default=128, metadata={"help": "max source length (words or tokens, per task)"})
    max_tgt_length: int = field(default=30, metadata={"help": "max target length (words or tokens, per task)"})
    code_dict_size: int = field(default=8192, metadata={"help": "number of <code_i> image-code tokens"})
    patch_image_size: int = field(default=480, metadata={"help": "side of the square input image"})
    orig_patch_image_size: int = field(default=256, metadata={"help": "image size of pretraining (for --interpolate-position)"})
    num_bins: int = field(default=1000, metadata={"help": "number of <bin_i> location tokens"})
    imagenet_default_mean_and_std: bool = field(default=False, metadata={
        "help": "normalise images with ImageNet mean/std instead of 0.5/0.5"})
    constraint_range: Optional[str] = field(default=None, metadata={
        "help": "start,end: restrict the criterion (and generation) to this token range plus specials"})
    skip_malformed_rows: bool = field(default=False, metadata={
        "help": "skip (count and log) TSV rows that cannot be read instead of stopping with an error"})
    # options of the official vendored fairseq's checkpoint group; ofa_plugin.compat acts on them
    use_ema_weights_to_init_param: bool = field(default=False, metadata={
        "help": "--restore-file: start from the checkpoint's EMA weights (extra_state['ema']), if it has any"})
    use_latest_weights_to_init_ema: bool = field(default=False, metadata={
        "help": "--store-ema with --restore-file: start the EMA from the restored model weights even if the "
                "checkpoint has EMA weights"})


@dataclass
class GenerativeTaskConfig(OFAConfig):
    """Options of the tasks whose validation generates (caption, refcoco, ...); official names."""

    eval_args: str = field(default="{}", metadata={
        "help": 'generation args for validation, as JSON, e.g. {"beam": 5, "max_len_b": 16}'})
    eval_print_samples: bool = field(default=False, metadata={"help": "log a sample prediction during validation"})
    scst: bool = field(default=False, metadata={"help": "self-critical sequence training (stage 2)"})
    scst_args: str = field(default="{}", metadata={"help": "generation args for SCST, as JSON"})


@register_task("ofa", dataclass=OFAConfig)
class OFATask(FairseqTask):
    """Shared machinery of every OFA task; subclasses provide `build_sample_builder`."""

    cfg: OFAConfig
    # Closed-set tasks set the trie of their candidate answers; generation then only produces candidates.
    constraint_trie: Optional[AnswerTrie] = None
    # The `--scoring` that fairseq-generate uses by default: the scorer printing the task's official metric.
    default_scoring: ClassVar[Optional[str]] = None
    # The dataset over a TSV file; a task whose batches need more than the generic collate subclasses it.
    dataset_class: ClassVar[type] = TSVTaskDataset
    # With --scst (stage 2): the generator of the hypotheses that the SCST criteria score, built with the model.
    scst_generator = None

    def __init__(self, cfg: OFAConfig, src_dict: Dictionary, tgt_dict: Dictionary):
        super().__init__(cfg)
        self.src_dict, self.tgt_dict = src_dict, tgt_dict
        self.tokenizer = build_tokenizer(cfg.bpe or "gpt2", cfg.bpe_dir)

    @classmethod
    def add_args(cls, parser) -> None:
        super().add_args(parser)
        if cls.default_scoring:
            parser.set_defaults(scoring=cls.default_scoring)

    @classmethod
    def setup_task(cls, cfg: OFAConfig, **kwargs) -> "OFATask":
        if not cfg.bpe_dir:
            # official evaluation command lines give it only in --model-overrides
            cfg.bpe_dir = _model_overrides(cfg).get("bpe_dir")
        if not cfg.bpe_dir:
            raise ValueError("--bpe-dir is required: the folder with dict.txt and the tokenizer files")
        dictionary = build_ofa_dictionary(os.path.join(cfg.bpe_dir, "dict.txt"), cfg.code_dict_size, cfg.num_bins)
        logger.info("dictionary: %d types (text + <mask> + %d codes + %d bins)", len(dictionary),
                    cfg.code_dict_size, cfg.num_bins)
        forget_train_batches()
        return cls(cfg, dictionary, dictionary)

    @property
    def source_dictionary(self) -> Dictionary:
        return self.src_dict

    @property
    def target_dictionary(self) -> Dictionary:
        return self.tgt_dict

    def data_paths(self) -> List[str]:
        if not self.cfg.data:
            raise ValueError("no data given: pass the TSV file(s) as the first positional argument")
        return [path for path in self.cfg.data.split(",") if path]

    def split_path(self, split: str, epoch: int) -> str:
        """Training rotates over all paths but the last, one per epoch; other splits use the last."""
        paths = self.data_paths()
        if split == "train" and len(paths) > 1:
            return paths[(epoch - 1) % (len(paths) - 1)]
        return paths[-1]

    def has_sharded_data(self, split: str) -> bool:
        return split == "train" and len(self.data_paths()) > 2  # reload the next file every epoch

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, task_cfg=None, **kwargs) -> None:
        """`task_cfg` (fairseq-generate passes the checkpoint's task config + --model-overrides) is used
        when it belongs to this task, as the official evaluate.py does; otherwise the command line's.
        Data files and columns given on the command line win over the checkpoint's."""
        if task_cfg is not None and task_cfg.get("_name") == self.cfg._name:
            self.cfg = _merge_checkpoint_task_cfg(self.cfg, task_cfg, split)
        path = self.split_path(split, epoch)
        tsv = TSVFile(path, self.cfg.selected_cols)
        builder = self.build_sample_builder(split, str(tsv.path))
        self.datasets[split] = self.dataset_class(
            tsv, builder, self.src_dict.pad(), shuffle=(split == "train"),
            skip_malformed=self.cfg.skip_malformed_rows,
        )
        logger.info("%s: %d rows from %s", split, len(tsv), path)

    def get_batch_iterator(self, dataset, *args, **kwargs):
        """fairseq's; the size of a training iterator is recorded for `--warmup-ratio` (ofa_plugin.lr_scheduler)."""
        iterator = super().get_batch_iterator(dataset, *args, **kwargs)
        if dataset is self.datasets.get("train"):
            record_train_batches(len(iterator))
        return iterator

    def build_sample_builder(self, split: str, tsv_path: str) -> SampleBuilder:
        raise NotImplementedError(f"task {type(self).__name__} does not define its samples")

    def image_mean_std(self):
        if self.cfg.imagenet_default_mean_and_std:
            return IMAGENET_MEAN, IMAGENET_STD
        return OFA_MEAN, OFA_STD

    def max_positions(self):
        return self.cfg.max_source_positions, self.cfg.max_target_positions

    def build_bpe(self, args=None):
        """fairseq-generate decodes with this; it keeps <bin_*>/<code_*> tokens as text."""
        return self.tokenizer

    def build_tokenizer(self, args=None):
        return None

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **kwargs):
        """fairseq's generator choice, with our beam search, the task's `--constraint-range` and answer trie."""
        extra = dict(extra_gen_cls_kwargs or {}, constraint_range=self.cfg.constraint_range,
                     constraint_trie=self.constraint_trie)
        return super().build_generator(models, args, seq_gen_cls=seq_gen_cls or OFASequenceGenerator,
                                       extra_gen_cls_kwargs=extra, **kwargs)

    @property
    def validation_generates(self) -> bool:
        """Whether validation generates (with `--eval-args`) for its metrics; the tasks' `--eval-*` flags say."""
        return False

    def build_model(self, cfg, from_checkpoint: bool = False):
        """fairseq's, then the validation generator for this model when validation generates, and with --scst
        (stage 2) the generator of the SCST hypotheses (`--scst-args`)."""
        model = super().build_model(cfg, from_checkpoint)
        if self.validation_generates:
            self.build_validation_generator(model)
        if getattr(self.cfg, "scst", False):
            self.scst_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.scst_args)))
        return model

    def scst_hypotheses(self, model, sample) -> List[List[dict]]:
        """All hypotheses of every sample from the SCST generator (from bos, without gradients), before any
        task-specific post-processing of `inference_step`."""
        if self.scst_generator is None:
            raise RuntimeError(f"{type(self).__name__} has no SCST generator: train with --scst (and --scst-args)")
        return OFATask.inference_step(self, self.scst_generator, [model], sample)

    def build_validation_generator(self, model) -> None:
        """The generator that validation uses, from the task's `--eval-args` JSON."""
        self.validation_generator = self.build_generator([model], Namespace(**json.loads(self.cfg.eval_args)))

    def target_text(self, target: torch.Tensor) -> str:
        """A sample's target as fairseq-generate prints it and hands it to the scorer (pads stripped,
        unknowns escaped, BPE decoded): what a published prediction checks itself against."""
        return self.tokenizer.decode(self.tgt_dict.string(utils.strip_pad(target, self.tgt_dict.pad()).cpu(),
                                                          escape_unk=True))

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None):
        """Generation starts from bos, as the decoder saw in training (stock fairseq starts from eos)."""
        with torch.no_grad():
            return generator.generate(models, sample, prefix_tokens=prefix_tokens, constraints=constraints,
                                      bos_token=self.tgt_dict.bos())

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **extra_kwargs):
        """As fairseq's, but the criterion gets `update_num` (drop-worst starts after N updates). The
        trainer adds `ema_model` for tasks with `uses_ema`; training ignores it."""
        model.train()
        model.set_num_updates(update_num)
        loss, sample_size, logging_output = criterion(model, sample, update_num=update_num)
        if ignore_grad:
            loss *= 0
        optimizer.backward(loss)
        return loss, sample_size, logging_output

    def valid_step(self, sample, model, criterion, **extra_kwargs):
        """The criterion's loss, as fairseq's; tasks that validate the EMA model take `ema_model`."""
        return super().valid_step(sample, model, criterion)

    @staticmethod
    def log_sums(logging_outputs: Sequence[Dict[str, Any]], keys: Iterable[str]) -> bool:
        """Log each key's sum over the batches' logging outputs (hidden `_` meters); False, logging nothing,
        when no output has any of the keys (e.g. training batches)."""
        keys = list(keys)
        if not any(key in log for log in logging_outputs for key in keys):
            return False
        for key in keys:
            metrics.log_scalar(key, sum(log.get(key, 0) for log in logging_outputs))
        return True

    @classmethod
    def log_mean_metrics(cls, logging_outputs: Sequence[Dict[str, Any]], count_key: str,
                         sum_keys: Mapping[str, str], decimals: int = 4) -> bool:
        """Validation metrics of the whole set, not averaged per batch: the count and the sums of all batches
        are logged and each metric `name` of `sum_keys` (name -> sum key) is derived as its sum / count,
        rounded to `decimals`. False, logging nothing, when no batch counted anything."""
        if sum(log.get(count_key, 0) for log in logging_outputs) == 0:
            return False
        cls.log_sums(logging_outputs, [count_key, *sum_keys.values()])
        for name, sum_key in sum_keys.items():
            metrics.log_derived(name, _rounded_ratio(sum_key, count_key, decimals))
        return True


def _rounded_ratio(sum_key: str, count_key: str, decimals: int):
    """A derived meter: the summed `sum_key` over the summed `count_key`, rounded (the sums are tensors
    after fairseq's all-reduce across processes, and tensors cannot be `round`ed)."""
    def derived(meters) -> float:
        return round(float(meters[sum_key].sum) / float(meters[count_key].sum), decimals)
    return derived


def _model_overrides(cfg) -> dict:
    """The `--model-overrides` dict of the run this task config belongs to ({} if none)."""
    root = cfg._get_parent() if isinstance(cfg, DictConfig) else None
    overrides = root.get("common_eval", {}).get("model_overrides") if root is not None else None
    return ast.literal_eval(overrides) if overrides else {}


# Options with no default: a value on the command line was given on purpose and wins over the checkpoint.
EXPLICIT_DATA_OPTIONS = ("data", "selected_cols")


def _merge_checkpoint_task_cfg(cli_cfg, task_cfg, split: str):
    """The checkpoint's task options (with --model-overrides) over ours, except explicit data options."""
    known = {key: value for key, value in task_cfg.items() if key in cli_cfg}
    for key in EXPLICIT_DATA_OPTIONS:
        if cli_cfg.get(key) is not None:
            if known.get(key) not in (None, cli_cfg[key]):
                logger.info("%s: --%s %s from the command line (the checkpoint has %s)", split,
                            key.replace("_", "-"), cli_cfg[key], known[key])
            known[key] = cli_cfg[key]
    logger.info("%s: other task options from the checkpoint's task config (+ --model-overrides)", split)
    return OmegaConf.merge(cli_cfg, known)
