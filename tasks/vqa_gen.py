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
with `score` = the candidate's log-likelihood (allcand, spread evenly over `positional_scores`) or the
beam score including the forced prompt's log-probs (beamsearch, as official). Each answer is published
for the `ofa_vqa` scorer, which prints the official score (confidence of the predicted answer) and writes
`{gen_subset}_predict.json` with `--results-path`.

With `--uses-ema` (and fairseq's `--store-ema`), validation scores the EMA model the trainer passes in.
Stock fairseq's EMA cannot average the model's int64 buffers yet, so `--store-ema` training fails until
issue 4 fixes that; the option is accepted and wired.
"""
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from fairseq import metrics
from fairseq.tasks import register_task

from ofa_plugin.candidate_scoring import score_candidates
from ofa_plugin.data.answers import CandidateAnswers, load_ans2label
from ofa_plugin.data.transforms import square_resize_transform
from ofa_plugin.data.vqa import VqaSampleBuilder, prefix_tokens
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.vqa_scorer import VqaPrediction

from .ofa_task import OFAConfig, OFATask

logger = logging.getLogger(__name__)

INFERENCE_TYPES = ("allcand", "beamsearch")
Hypotheses = List[List[Dict]]


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
class VqaGenTask(OFATask):
    cfg: VqaGenConfig

    def __init__(self, cfg: VqaGenConfig, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.uses_ema = cfg.uses_ema  # fairseq's trainer then passes the EMA model to valid_step
        self.candidates: Optional[CandidateAnswers] = None
        self._candidates_from: Optional[Tuple] = None
        self.load_candidates()

    @classmethod
    def add_args(cls, parser):
        super().add_args(parser)
        parser.set_defaults(scoring="ofa_vqa")  # fairseq-generate prints the VQA accuracy

    def load_candidates(self) -> None:
        """Candidate answers and the generation trie from the current options (again only if they changed,
        e.g. after fairseq-generate merged a checkpoint's task options)."""
        if self.cfg.val_inference_type not in INFERENCE_TYPES:
            raise ValueError(f"--val-inference-type must be one of {', '.join(INFERENCE_TYPES)}, "
                             f"got {self.cfg.val_inference_type!r}")
        if self.cfg.unconstrained_training and self.cfg.val_inference_type != "beamsearch":
            raise ValueError("--unconstrained-training scores no candidates: use --val-inference-type beamsearch")
        source = (self.cfg.ans2label_file, self.cfg.ans2label_dict, self.cfg.unconstrained_training)
        if source == self._candidates_from:
            return
        answers = list(load_ans2label(self.cfg.ans2label_file, self.cfg.ans2label_dict))
        self.candidates = CandidateAnswers.build(answers, self.tgt_dict, self.tokenizer)
        self.constraint_trie = None if self.cfg.unconstrained_training else self.candidates.trie
        self._candidates_from = source
        logger.info("%d candidate answers%s", len(answers), "" if self.constraint_trie else " (unconstrained)")

    def load_dataset(self, split: str, epoch: int = 1, combine: bool = False, task_cfg=None, **kwargs) -> None:
        if task_cfg is not None:  # evaluate.py never takes the inference type from the checkpoint
            task_cfg = {**task_cfg, "val_inference_type": self.cfg.val_inference_type}
        super().load_dataset(split, epoch, combine, task_cfg=task_cfg, **kwargs)

    def build_sample_builder(self, split: str, tsv_path: str) -> VqaSampleBuilder:
        self.load_candidates()
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
        hypos, predictions = self.answer(generator, models, sample)
        publish_predictions(predictions)
        return hypos

    def answer(self, generator, models, sample) -> Tuple[Hypotheses, List[VqaPrediction]]:
        """fairseq-style hypotheses (answer tokens + eos) and the official predictions of a batch."""
        if self.cfg.val_inference_type == "allcand":
            hypos, answers = self.best_candidates(models[0], sample)  # the official scores the first model only
        else:
            hypos, answers = self.beam_search(generator, models, sample)
        predictions = [VqaPrediction(question_id, answer, ref_dict) for question_id, answer, ref_dict
                       in zip(sample["question_id"], answers, sample["ref_dict"])]
        return hypos, predictions

    def best_candidates(self, model, sample) -> Tuple[Hypotheses, List[str]]:
        """The highest-scoring candidate of every sample (all-candidate mode)."""
        prompts = [torch.LongTensor(prompt) for prompt in sample["decoder_prompts"]]
        with torch.no_grad():
            scores = score_candidates(model, sample, self.candidates, prompts, chunk_size=self.cfg.valid_batch_size)
        eos = torch.LongTensor([self.tgt_dict.eos()])
        hypos, answers = [], []
        for row, best in zip(scores, scores.argmax(1).tolist()):
            tokens = torch.cat([self.candidates.tokens[best], eos]).to(scores.device)
            positional = torch.full((len(tokens),), row[best].item() / len(tokens), device=scores.device)
            hypos.append([{"tokens": tokens, "score": row[best], "positional_scores": positional, "alignment": None}])
            answers.append(self.candidates.answers[best])
        return hypos, answers

    def beam_search(self, generator, models, sample) -> Tuple[Hypotheses, List[str]]:
        """Beam search after each sample's decoder prompt; hypotheses without the prompt."""
        device = sample["net_input"]["src_tokens"].device
        prefix = prefix_tokens(sample["decoder_prompts"], self.tgt_dict.pad()).to(device)
        hypos = super().inference_step(generator, models, sample, prefix_tokens=prefix if prefix.size(1) else None)
        stripped = []
        for sample_hypos, length in zip(hypos, prefix.ne(self.tgt_dict.pad()).sum(1).tolist()):
            stripped.append([{**hypo, "tokens": hypo["tokens"][length:],
                              "positional_scores": hypo["positional_scores"][length:]} for hypo in sample_hypos])
        return stripped, [self.decode(sample_hypos[0]["tokens"]) for sample_hypos in stripped]

    def decode(self, tokens: torch.Tensor) -> str:
        ignore = {self.tgt_dict.bos(), self.tgt_dict.eos()}
        return self.tokenizer.decode(self.tgt_dict.string(tokens.int().cpu(), extra_symbols_to_ignore=ignore)).strip()

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, **extra_kwargs):
        """With --uses-ema the trainer also passes the EMA model, which only validation uses."""
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    def valid_step(self, sample, model, criterion, ema_model=None, **extra_kwargs):
        """Criterion loss, then the official VQA score of the configured mode (of the EMA model with --uses-ema)."""
        loss, sample_size, logging_output = super().valid_step(sample, model, criterion)
        if self.cfg.uses_ema:
            if ema_model is None:
                raise ValueError("--uses-ema validates the EMA model: train with --store-ema")
            model = ema_model
        model.eval()
        generator = None
        if self.cfg.val_inference_type == "beamsearch":
            self.build_validation_generator(model)  # for this very model: a generator keeps its models
            generator = self.validation_generator
        _, predictions = self.answer(generator, [model], sample)
        logging_output["_vqa_score_sum"] = sum(p.score for p in predictions)
        logging_output["_vqa_cnt"] = len(predictions)
        return loss, sample_size, logging_output

    def reduce_metrics(self, logging_outputs, criterion) -> None:
        super().reduce_metrics(logging_outputs, criterion)
        count = sum(log.get("_vqa_cnt", 0) for log in logging_outputs)
        if count == 0:
            return
        metrics.log_scalar("_vqa_score_sum", sum(log.get("_vqa_score_sum", 0) for log in logging_outputs))
        metrics.log_scalar("_vqa_cnt", count)
        metrics.log_derived("vqa_score",
                            lambda meters: round(meters["_vqa_score_sum"].sum / meters["_vqa_cnt"].sum, 4))
