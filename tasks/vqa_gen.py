"""The `vqa_gen` task (reference §5.3, §7.2, §8.2); `fairseq-generate` prints the VQA accuracy at the end.

Answers are predicted in one of two ways (`--val-inference-type`, for validation and fairseq-generate):
- `allcand` (default): every candidate answer of `--ans2label-file` is scored by its trie-renormalised
  log-likelihood after the decoder prompt, and the best one is the answer. Nothing is generated, so
  fairseq-generate's beam options are ignored; `--valid-batch-size` candidates are scored per forward.
- `beamsearch`: beam search forced to start with the decoder prompt (the question for `prev_output`) and
  constrained to the candidates' trie (unconstrained with `--unconstrained-training`); the answer is
  what follows the prompt. Validation takes the beam options from `--eval-args`.
The official evaluate.py chooses with its own switch `--beam-search-vqa-eval`; with fairseq-generate pass
`--val-inference-type beamsearch` instead. As evaluate.py does, the command line's choice wins over the
one stored in a vqa_gen checkpoint (all other task options come from the checkpoint, as for every task).

fairseq-generate gets, per question, one hypothesis: the answer's tokens + eos (printed as the answer),
with `score` = the candidate's log-likelihood (allcand, its per-token terms as `positional_scores`) or
the beam score including the forced prompt's log-probs (beamsearch, as official). Each answer is published
for the `ofa_vqa` scorer, which prints the official score (confidence of the predicted answer) and writes
`{gen_subset}_predict.json` with `--results-path`.

With `--uses-ema` (and fairseq's `--store-ema`), validation scores the EMA model the trainer passes in
(ofa_plugin/compat.py makes fairseq's EMA copy integer buffers instead of averaging them).
"""
from dataclasses import dataclass, field
from typing import List, Optional

import torch
from fairseq.tasks import register_task

from ofa_plugin.data.answers import CandidateAnswers, load_ans2label
from ofa_plugin.data.closed_set import DECODER_PROMPTS
from ofa_plugin.data.transforms import square_resize_transform
from ofa_plugin.data.vqa import VqaSampleBuilder, prefix_tokens
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.vqa_scorer import VqaPrediction

from .closed_set import ClosedSetTaskMixin, Hypotheses
from .ofa_task import OFAConfig, OFATask

INFERENCE_TYPES = ("allcand", "beamsearch")


@dataclass
class VqaGenConfig(OFAConfig):
    max_object_length: int = field(default=30, metadata={"help": "number of detected objects appended to the question"})
    ans2label_dict: Optional[str] = field(default='{"no": 0, "yes":1}', metadata={
        "help": "candidate answers as a JSON answer->label dict (used without --ans2label-file)"})
    ans2label_file: Optional[str] = field(default=None, metadata={
        "help": "pickled answer->label dict: the candidate answers (trie, all-candidate scoring)"})
    unconstrained_training: bool = field(default=False, metadata={
        "help": "no candidate trie: no constraint masks in training, free beam search (needs beamsearch)"})
    add_object: bool = field(default=False, metadata={"help": 'append " object: <detected objects>" to the question'})
    valid_batch_size: int = field(default=20, metadata={"help": "candidate answers scored per forward (allcand)"})
    prompt_type: Optional[str] = field(default=None, metadata={
        "help": "decoder prompt before the answer: none ([bos]), src (the source), prev_output (source "
                "without eos; the official scripts)"})
    uses_ema: Optional[bool] = field(default=False, metadata={
        "help": "validate the EMA model (needs fairseq's --store-ema)"})
    val_inference_type: Optional[str] = field(default="allcand", metadata={
        "help": "how answers are predicted in validation and fairseq-generate: allcand or beamsearch"})
    eval_args: Optional[str] = field(default='{"beam":5,"unnormalized":true,"temperature":1.0}', metadata={
        "help": "generation args of beamsearch validation, as JSON"})


@register_task("vqa_gen", dataclass=VqaGenConfig)
class VqaGenTask(ClosedSetTaskMixin, OFATask):
    cfg: VqaGenConfig
    default_scoring = "ofa_vqa"
    metric_name, metric_sum_key, metric_count_key = "vqa_score", "_vqa_score_sum", "_vqa_cnt"

    @property
    def constrains_generation(self) -> bool:
        return not self.cfg.unconstrained_training

    def candidate_answers(self) -> List[str]:
        return list(load_ans2label(self.cfg.ans2label_file, self.cfg.ans2label_dict))

    def update_candidates(self) -> CandidateAnswers:
        """The mixin's, after checking that the inference options fit together."""
        if self.cfg.val_inference_type not in INFERENCE_TYPES:
            raise ValueError(f"--val-inference-type must be one of {', '.join(INFERENCE_TYPES)}, "
                             f"got {self.cfg.val_inference_type!r}")
        if self.cfg.unconstrained_training and self.cfg.val_inference_type != "beamsearch":
            raise ValueError("--unconstrained-training scores no candidates: use --val-inference-type beamsearch")
        return super().update_candidates()

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, task_cfg=None, **kwargs) -> None:
        if task_cfg is not None:  # evaluate.py never takes the inference type from the checkpoint
            task_cfg = {**task_cfg, "val_inference_type": self.cfg.val_inference_type}
        super().load_dataset(split, epoch, combine, task_cfg=task_cfg, **kwargs)

    def build_sample_builder(self, split: str, tsv_path: str) -> VqaSampleBuilder:
        self.update_candidates()
        mean, std = self.image_mean_std()
        return VqaSampleBuilder(
            dictionary=self.tgt_dict, tokenizer=self.tokenizer,
            transform=square_resize_transform(self.cfg.patch_image_size, mean, std), tsv_path=tsv_path,
            max_src_length=self.cfg.max_src_length, max_tgt_length=self.cfg.max_tgt_length,
            max_object_length=self.cfg.max_object_length, add_object=self.cfg.add_object,
            prompt_type=self.cfg.prompt_type, trie=self.constraint_trie,
        )

    def inference_step(self, generator, models, sample, prefix_tokens=None, constraints=None) -> Hypotheses:
        """Answers in the configured mode (fairseq-generate's own prefix/constraints do not apply); each is
        published for the `ofa_vqa` scorer."""
        if self.cfg.val_inference_type == "allcand":
            return super().inference_step(generator, models, sample)
        hypos = self.beam_search(generator, models, sample)
        publish_predictions(self.predictions(sample, self.best_answers(hypos)))
        return hypos

    def validation_predictions(self, model, sample) -> List[VqaPrediction]:
        """The configured mode's predictions; beam search takes its options from `--eval-args`."""
        if self.cfg.val_inference_type == "allcand":
            return super().validation_predictions(model, sample)
        self.build_validation_generator(model)  # for this very model: a generator keeps its models
        hypos = self.beam_search(self.validation_generator, [model], sample)
        return self.predictions(sample, self.best_answers(hypos))

    def predictions(self, sample, answers: List[str]) -> List[VqaPrediction]:
        return [VqaPrediction(question_id, answer, ref_dict) for question_id, answer, ref_dict
                in zip(sample["question_id"], answers, sample["ref_dict"])]

    def beam_search(self, generator, models, sample) -> Hypotheses:
        """Beam search after each sample's decoder prompt; hypotheses without the prompt."""
        device = sample["net_input"]["src_tokens"].device
        prefix = prefix_tokens(sample[DECODER_PROMPTS], self.tgt_dict.pad()).to(device)
        # OFATask's bos-started generation, not the mixin's candidate scoring
        hypos = OFATask.inference_step(self, generator, models, sample,
                                       prefix_tokens=prefix if prefix.size(1) else None)
        stripped = []
        for sample_hypos, length in zip(hypos, prefix.ne(self.tgt_dict.pad()).sum(1).tolist()):
            stripped.append([{**hypo, "tokens": hypo["tokens"][length:],
                              "positional_scores": hypo["positional_scores"][length:]} for hypo in sample_hypos])
        return stripped

    def best_answers(self, hypos: Hypotheses) -> List[str]:
        """The decoded best hypothesis of every sample."""
        return [self.decode(sample_hypos[0]["tokens"]) for sample_hypos in hypos]

    def decode(self, tokens: torch.Tensor) -> str:
        ignore = {self.tgt_dict.bos(), self.tgt_dict.eos()}
        return self.tokenizer.decode(self.tgt_dict.string(tokens.int().cpu(), extra_symbols_to_ignore=ignore)).strip()
