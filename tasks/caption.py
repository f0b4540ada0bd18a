"""The `caption` task (reference §5.2); `fairseq-generate` prints CIDEr and BLEU at the end.

With `--scst` (stage 2, criterion `scst_reward_criterion`) training rows keep all their references
("&&"-joined in the target, which decodes back to them exactly), the task builds the SCST beam search
from `--scst-args`, and the CIDEr-D reward uses document frequencies of the training references:
those of `--scst-cider-cached-tokens` (official pickle) or, without it, counted once from the training
TSV files and cached in the user cache dir (keyed by path, size and mtime of each file).
"""
import functools
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from fairseq.tasks import register_task

from ofa_plugin.data.caption import CaptionSampleBuilder
from ofa_plugin.data.text import caption_references, strip_punctuation
from ofa_plugin.data.transforms import square_resize_transform
from ofa_plugin.data.tsv import TSVFile, user_cache_dir
from ofa_plugin.metrics.caption import caption_scores
from ofa_plugin.metrics.cider_d import CiderD, DocumentFrequency, scst_wrap
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.scorer import CaptionPrediction, split_references

from .ofa_task import GenerativeTaskConfig, OFATask

logger = logging.getLogger(__name__)

VALIDATION_METRICS = {"cider": "CIDEr", "bleu4": "BLEU-4"}
CAPTION_FIELD = 2  # uniq_id, image, caption(s): the selected columns of a caption row
_DF_CACHE_VERSION = 1


@dataclass
class CaptionConfig(GenerativeTaskConfig):
    eval_bleu: bool = field(default=False, metadata={"help": "report BLEU-4 during validation (generates captions)"})
    eval_cider: bool = field(default=False, metadata={
        "help": "report CIDEr during validation (generates captions; document frequencies per batch, as official)"})
    eval_cider_cached_tokens: Optional[str] = field(default=None, metadata={
        "help": "official option (CIDEr-D frequencies for validation); accepted, validation CIDEr uses the "
                "batch's references"})
    scst_cider_cached_tokens: Optional[str] = field(default=None, metadata={
        "help": "SCST: pickle of the training references' CIDEr-D document frequencies (official format, "
                "e.g. coco-train-words.p); default: counted from the training TSV files and cached"})


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

    @functools.cached_property
    def scst_cider(self) -> CiderD:
        """CIDEr-D with the training references' document frequencies (see the module docstring)."""
        if self.cfg.scst_cider_cached_tokens:
            return CiderD(DocumentFrequency.load(self.cfg.scst_cider_cached_tokens))
        return CiderD(self._training_document_frequency())

    def training_paths(self) -> List[str]:
        """The training TSV files: all data paths but the last (validation), or the only one."""
        paths = self.data_paths()
        return paths[:-1] if len(paths) > 1 else paths

    def _training_document_frequency(self) -> DocumentFrequency:
        """Document frequencies of the SCST-wrapped training references, from the cache or counted."""
        files = [Path(path).resolve() for path in self.training_paths()]
        key = json.dumps([_DF_CACHE_VERSION, self.cfg.selected_cols,
                          [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]])
        cache = user_cache_dir() / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.cider_df.p"
        if cache.is_file():
            try:
                return DocumentFrequency.load(cache)
            except ValueError as err:
                logger.warning("SCST: ignoring the unreadable cache %s: %s", cache, err)
        logger.info("SCST: counting CIDEr-D document frequencies of the references in %s", ", ".join(map(str, files)))
        df = DocumentFrequency.from_references(self._training_references(files))
        try:
            df.save(cache)
            logger.info("SCST: document frequencies cached in %s", cache)
        except OSError as err:
            logger.warning("SCST: cannot cache the document frequencies in %s: %s", cache, err)
        return df

    def _training_references(self, files: Sequence[Path]) -> Iterator[List[str]]:
        """Each training row's references ("&&"-separated), in the SCST-wrapped form; a malformed row
        raises an error naming file and row, or is left out with --skip-malformed-rows."""
        for path in files:
            tsv = TSVFile(path, self.cfg.selected_cols)
            for row in range(len(tsv)):
                try:
                    columns = tsv[row]  # its errors name file and row
                    references = caption_references(columns[CAPTION_FIELD] if len(columns) > CAPTION_FIELD else "")
                except ValueError as err:
                    if self.cfg.skip_malformed_rows:
                        continue
                    if str(path) in str(err):
                        raise
                    raise ValueError(f"{path}: row {row}: {err}") from err
                yield [scst_wrap(ref) for ref in references]

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
        return [CaptionPrediction(str(uniq_id), self.caption_text(h[0]["tokens"]), references)
                for uniq_id, h, references in zip(sample["uniq_id"], hypos, self.sample_references(sample))]

    def caption_text(self, tokens: torch.Tensor) -> str:
        """A generated caption as the official evaluation reads it: decoded, punctuation removed."""
        ignore = {self.tgt_dict.bos(), self.tgt_dict.eos()}
        text = self.tokenizer.decode(self.tgt_dict.string(tokens.int().cpu(), extra_symbols_to_ignore=ignore))
        return strip_punctuation(text).strip()

    def sample_references(self, sample) -> List[List[str]]:
        """Every sample's references: its target decoded and split on "&&" (punctuation removed). The
        evaluation and SCST rows keep all references in the target, so nothing else has to carry them."""
        return [split_references(self.target_text(target)) for target in sample["target"]]

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        for name in VALIDATION_METRICS:
            self.log_mean_metrics(logging_outputs, f"_{name}_cnt", {name: f"_{name}_sum"})
