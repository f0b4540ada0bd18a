"""The vqa_gen task against the official goldens in ../shared/fixtures/official_mini (reference §5.3, §7.2, §8.2),
plus a short fairseq-train / fairseq-generate run on the toy world."""
import json
import math
import re
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils, metrics

import ofa_plugin  # noqa: F401  (registers the plugin's tasks and scorers)
from ofa_plugin.candidate_scoring import score_candidates
from ofa_plugin.criterions.label_smoothed_cross_entropy import AdjustLabelSmoothedCrossEntropyCriterion
from ofa_plugin.data.answers import CandidateAnswers
from ofa_plugin.data.toyworld import write_toy_world
from ofa_plugin.data.transforms import square_resize_transform
from ofa_plugin.data.vqa import VqaSampleBuilder, prefix_tokens
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.vqa_scorer import VqaPrediction, VqaScorer
from ofa_plugin.tasks.vqa_gen import VqaGenConfig, VqaGenTask
from ofa_plugin.vocab import build_tokenizer

from conftest import BPE_DIR, OFFICIAL_MINI, official_command_as_fairseq_generate

REPO = Path(__file__).resolve().parents[1]
GOLDEN = OFFICIAL_MINI / "golden"
VQA_TSV = OFFICIAL_MINI / "data" / "vqa_test.tsv"
ANS2LABEL = OFFICIAL_MINI / "data" / "trainval_ans2label.pkl"
CLI = Path(sys.executable).parent


def _vqa_task(**options) -> VqaGenTask:
    """The task with the task options of the golden command lines (plus `options`)."""
    settings = dict(data=str(VQA_TSV), selected_cols="0,5,2,3,4", bpe_dir=str(BPE_DIR), patch_image_size=256,
                    prompt_type="prev_output", add_object=True, max_src_length=80, max_object_length=30,
                    max_tgt_length=30, ans2label_file=str(ANS2LABEL), valid_batch_size=20)
    return VqaGenTask.setup_task(VqaGenConfig(**{**settings, **options}))


def _golden(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text())


@pytest.fixture(scope="module")
def golden_run():
    """The task in beam mode, the fixture checkpoint, the batch of all 8 golden questions and the dataset."""
    task = _vqa_task(val_inference_type="beamsearch")
    models, _ = checkpoint_utils.load_model_ensemble([str(OFFICIAL_MINI / "checkpoint.pt")], task=task)
    task.load_dataset("test")
    dataset = task.dataset("test")
    return task, models[0].eval(), dataset.collater([dataset[i] for i in range(len(dataset))]), dataset


def test_batch_matches_golden_sources_and_prompts(golden_run):
    task, _, batch, _ = golden_run
    samples = _golden("vqa_beam.json")["samples"]
    pad = task.tgt_dict.pad()
    for i, sample in enumerate(samples):
        src = batch["net_input"]["src_tokens"][i]
        assert src[src.ne(pad)].tolist() == sample["src_tokens"], sample["id"]
        assert batch["ref_dict"][i] == sample["ref_dict"]
        assert batch["question_id"][i] == int(sample["id"])
        assert batch["decoder_prompts"][i] == sample["src_tokens"][:-1]  # prev_output: source without eos
    assert prefix_tokens(batch["decoder_prompts"], pad).tolist() == [s["prefix_tokens"] for s in samples]
    assert batch["conf"].tolist() == [1.0] * 8
    assert batch["constraint_masks"].shape[:2] == batch["target"].shape


def test_beam_search_reproduces_every_golden_hypothesis(golden_run):
    """All 5 beams of every question: tokens (with the forced prompt) exact, scores within 1e-4."""
    task, model, batch, _ = golden_run
    generator = task.build_generator([model], Namespace(beam=5, unnormalized=True, temperature=1.0))
    hypos = task.inference_step(generator, [model], batch)
    for i, sample in enumerate(_golden("vqa_beam.json")["samples"]):
        prompt = sample["src_tokens"][1:-1]
        assert len(hypos[i]) == len(sample["nbest"]) == 5
        for ours, golden in zip(hypos[i], sample["nbest"]):
            assert prompt + ours["tokens"].tolist() == golden["tokens"], sample["id"]
            assert float(ours["score"]) == pytest.approx(golden["score"], abs=1e-4)
            torch.testing.assert_close(ours["positional_scores"],
                                       torch.tensor(golden["positional_scores"][len(prompt):]), atol=1e-4, rtol=0)
        assert task.decode(hypos[i][0]["tokens"]) == sample["result"]["answer"]


def test_beamsearch_validation_scores_the_golden_answers(golden_run):
    """valid_step beam-searches with the default --eval-args (the golden's settings); of the first three
    questions only the third is answered right (score 1.0)."""
    task, model, _, dataset = golden_run
    criterion = AdjustLabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1)
    _, _, log = task.valid_step(dataset.collater([dataset[i] for i in range(3)]), model, criterion)
    assert (log["_vqa_score_sum"], log["_vqa_cnt"]) == (1.0, 3)


def test_all_candidate_scores_match_golden(golden_run):
    task, model, batch, _ = golden_run
    prompts = [torch.LongTensor(p) for p in batch["decoder_prompts"]]
    with torch.no_grad():
        scores = score_candidates(model, batch, task.candidates, prompts, chunk_size=task.cfg.valid_batch_size)
    golden = _golden("vqa_allcand.json")["samples"]
    torch.testing.assert_close(scores, torch.tensor([s["candidate_scores"] for s in golden]), atol=1e-4, rtol=0)
    choice = task.choose([model], batch)
    hypos, answers = task.hypotheses(choice), choice.answers
    assert answers == [s["result"]["answer"] for s in golden]
    best = scores.argmax(1)
    for i, sample_hypos in enumerate(hypos):
        assert sample_hypos[0]["tokens"].tolist() == task.candidates.tokens[best[i]].tolist() + [task.tgt_dict.eos()]
        assert float(sample_hypos[0]["score"]) == pytest.approx(float(sample_hypos[0]["positional_scores"].sum()))


def _generated(output: str, kind: str) -> dict:
    """{sample id: (score, text)} of the H- or D- lines of a fairseq-generate output."""
    lines = re.findall(rf"^{kind}-(\d+)\t(\S+)\t(.*)$", output, re.M)
    return {int(i): (float(score), text) for i, score, text in lines}


@pytest.mark.slow
@pytest.mark.parametrize("golden_name", ["vqa_beam.json", "vqa_allcand.json"])
def test_golden_reproduced_by_fairseq_generate(tmp_path, ofa_dictionary, golden_name):
    golden = _golden(golden_name)
    command = official_command_as_fairseq_generate(golden, VQA_TSV, tmp_path, {"--ans2label-file": str(ANS2LABEL)})
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    output = (tmp_path / "generate-test.txt").read_text()
    answers = {i: text.strip() for i, (_, text) in _generated(output, "D").items()}
    assert [answers[i] for i in range(8)] == [r["answer"] for r in golden["official_predict_json"]]
    assert json.loads((tmp_path / "test_predict.json").read_text()) == golden["official_predict_json"]
    accuracy = re.search(r"^Generate test with beam=5: VQA accuracy (\S+) ", output, re.M).group(1)
    assert float(accuracy) == golden["score_sum"] / golden["score_cnt"] == 0.125
    if golden_name == "vqa_beam.json":  # the printed hypothesis is the answer; its score includes the prompt's
        for i, (score, symbols) in _generated(output, "H").items():
            best = golden["samples"][i]["nbest"][0]
            tokens = [ofa_dictionary.index(symbol) for symbol in symbols.split()] + [ofa_dictionary.eos()]
            assert tokens == best["tokens"][len(golden["samples"][i]["src_tokens"]) - 2:]
            assert score * math.log(2) == pytest.approx(best["score"], abs=1e-4)


# ----------------------------------------------------------------------------------------------------------
# Samples, options and bad input


@pytest.fixture(scope="module")
def image_field() -> str:
    return VQA_TSV.read_text().splitlines()[0].split("\t")[5]


def _builder(ofa_dictionary, prompt_type="prev_output", **options) -> VqaSampleBuilder:
    tokenizer = build_tokenizer("gpt2", str(BPE_DIR))
    candidates = CandidateAnswers.build(["no", "yes"], ofa_dictionary, tokenizer)
    settings = dict(max_src_length=80, max_tgt_length=30, max_object_length=2, add_object=True,
                    prompt_type=prompt_type, trie=candidates.trie)
    return VqaSampleBuilder(ofa_dictionary, tokenizer, square_resize_transform(32), "rows.tsv",
                            **{**settings, **options})


# " what color?" = 99 3195 116, " object: a b" = 7626 35 10 741, " yes" = 4420, " no" = 117; pad 1, eos 2
SOURCE = [0, 99, 3195, 116, 7626, 35, 10, 741, 2]
PROMPT_CASES = {
    "prev_output": (SOURCE[:-1], SOURCE[:-1] + [4420], [1] * 7 + [4420, 2]),
    "src": (SOURCE, SOURCE + [4420], [1] * 8 + [4420, 2]),
    "none": ([0], [0, 4420], [4420, 2]),
}


@pytest.mark.parametrize("prompt_type", sorted(PROMPT_CASES))
def test_sample_of_each_prompt_type(ofa_dictionary, image_field, prompt_type):
    row = ["7", image_field, "  What/color", "0.6|!+no&&1.0|!+yes", "a&&b&&c"]
    sample = _builder(ofa_dictionary, prompt_type)(row, 3)
    prompt, prev_output, target = PROMPT_CASES[prompt_type]
    assert sample["source"].tolist() == SOURCE
    assert sample["prev_output_tokens"].tolist() == prev_output
    assert sample["target"].tolist() == target
    extras = sample["batch_extras"]
    assert (extras["question_id"], float(extras["conf"]), extras["ref_dict"]) == (7, 1.0, {"no": 0.6, "yes": 1.0})
    assert extras["decoder_prompts"] == prompt
    mask = sample["constraint_mask"]
    assert mask.shape == (len(target), len(ofa_dictionary))
    assert not mask[:-2].any()  # prompt positions
    assert mask[-2].nonzero().flatten().tolist() == [117, 4420]  # first answer token: a candidate's
    assert mask[-1].nonzero().flatten().tolist() == [2]  # after " yes": eos


def test_best_answer_truncation_and_no_objects(ofa_dictionary, image_field):
    builder = _builder(ofa_dictionary, max_tgt_length=1, add_object=False, trie=None)
    sample = builder(["8", image_field, "what color?", "0.3|!+red&&0.9|!+light blue&&0.9|!+blue", "a", "caption"], 0)
    assert sample["source"].tolist() == [0, 99, 3195, 116, 2]
    assert sample["target"].tolist() == [1, 1, 1, 1109, 2]  # " light blue" = 1109 2440, cut to 1 token
    assert float(sample["batch_extras"]["conf"]) == pytest.approx(0.9)
    assert "constraint_mask" not in sample


@pytest.mark.parametrize("answers", ["yes", "1.0|yes", "high|!+yes", "1.0|!+yes&&", "1.0|!+"])
def test_malformed_answers_name_file_and_row(ofa_dictionary, image_field, answers):
    with pytest.raises(ValueError, match=r"rows\.tsv: row 3: answers must be 'conf\|!\+answer'"):
        _builder(ofa_dictionary)(["7", image_field, "what?", answers, "a"], 3)


@pytest.mark.parametrize("columns, message", [
    (["7", "img", "what?", "1.0|!+yes"], "vqa_gen rows need 5 or 6 selected columns"),
    (["q7", "img", "what?", "1.0|!+yes", "a"], "question id must be an integer"),
    (["7", "img", "?!", "1.0|!+yes", "a"], "empty question"),
])
def test_malformed_rows_name_file_and_row(ofa_dictionary, columns, message):
    with pytest.raises(ValueError, match=rf"rows\.tsv: row 4: {message}"):
        _builder(ofa_dictionary)(columns, 4)


def test_malformed_row_in_a_dataset_names_file_and_row(tmp_path, image_field):
    tsv = tmp_path / "bad.tsv"
    tsv.write_text(f"1\t10\tis it?\t1.0|!+yes\ta\t{image_field}\n2\t10\tis it?\tyes\ta\t{image_field}\n")
    task = _vqa_task(data=str(tsv))
    task.load_dataset("test")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tsv))}: row 1: answers must be"):
        task.dataset("test")[1]


def test_missing_prompt_type_is_a_clear_error():
    task = _vqa_task(prompt_type=None)
    with pytest.raises(ValueError, match="vqa_gen needs --prompt-type, one of none, src, prev_output"):
        task.load_dataset("test")


def test_missing_ans2label_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--ans2label-file .*missing\.pkl does not exist"):
        _vqa_task(ans2label_file=str(tmp_path / "missing.pkl"))


@pytest.mark.parametrize("options, message", [
    ({"val_inference_type": "greedy"}, "--val-inference-type must be one of allcand, beamsearch"),
    ({"unconstrained_training": True}, "--unconstrained-training scores no candidates"),
])
def test_inconsistent_inference_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        _vqa_task(**options)


def test_candidates_and_trie_follow_the_options():
    task = _vqa_task(ans2label_file=None)
    assert task.candidates.answers == ["no", "yes"]
    assert task.constraint_trie is task.candidates.trie
    assert len(_vqa_task().candidates) == 20
    assert _vqa_task(unconstrained_training=True, val_inference_type="beamsearch").constraint_trie is None


def test_scorer_scores_official_soft_accuracy_and_checks_targets():
    scorer = VqaScorer(None)
    publish_predictions([VqaPrediction(1, "two", {"2": 1.0, "two": 0.6}), VqaPrediction(2, "yes", {"no": 1.0}),
                         VqaPrediction(3, "no", {"no": 1.0})])
    scorer.add_string(" 2", "two")
    scorer.add_string(" no", "yes")
    with pytest.raises(ValueError, match=r"does not belong to the published sample \{'question_id': 3"):
        scorer.add_string(" yes", "no")
    assert scorer.score() == pytest.approx(0.3)
    assert scorer.result_string() == "VQA accuracy 0.3000 (score sum 0.6 over 2 questions)"
    assert [p.record() for p in scorer.predictions] == [{"question_id": 1, "answer": "two"},
                                                       {"question_id": 2, "answer": "yes"}]
    with pytest.raises(RuntimeError, match="only works with the vqa_gen task"):
        scorer.add_string(" no", "no")


def test_validation_metric_is_the_mean_score():
    task = _vqa_task(ans2label_file=None)
    criterion = AdjustLabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1)
    with metrics.aggregate(new_root=True) as aggregator:
        task.reduce_metrics([{"_vqa_score_sum": 1.6, "_vqa_cnt": 3}, {"_vqa_score_sum": 0.3, "_vqa_cnt": 2}],
                            criterion)
        assert aggregator.get_smoothed_values()["vqa_score"] == 0.38


# ----------------------------------------------------------------------------------------------------------
# fairseq-train and fairseq-generate on the toy world


def _run(args: list) -> str:
    result = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    tail = "\n".join(result.stdout.splitlines()[-30:])
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed ({result.returncode}):\n{tail}"
    return result.stdout


@pytest.mark.slow
def test_toy_vqa_trains_validates_and_generates(tmp_path):
    world, save = tmp_path / "world", tmp_path / "checkpoints"
    write_toy_world(world, seed=1, num_train=32, num_valid=16, num_test=16, tasks=["vqa"])
    task_flags = ["--user-dir", "ofa_plugin", "--task", "vqa_gen", "--bpe", "sentencepiece", "--bpe-dir",
                  world / "vocab", "--selected-cols", "0,5,2,3,4", "--num-workers", "0", "--cpu"]
    train_log = _run([
        CLI / "fairseq-train", f"{world / 'vqa_train.tsv'},{world / 'vqa_valid.tsv'}", *task_flags,
        "--arch", "ofa_nano", "--resnet-type", "resnet18", "--patch-image-size", "32", "--prompt-type", "prev_output",
        "--add-object", "--ans2label-file", world / "vqa_ans2label.pkl", "--val-inference-type", "beamsearch",
        "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "1",
        "--total-num-update", "2", "--max-update", "2", "--batch-size", "16", "--seed", "1",
        "--log-format", "simple", "--log-interval", "1", "--save-dir", save, "--no-epoch-checkpoints",
        "--best-checkpoint-metric", "vqa_score", "--maximize-best-checkpoint-metric",
    ])
    valid = re.search(r"\| valid on 'valid' subset \|.* vqa_score ([0-9.]+) \|", train_log)
    assert valid, "no vqa_score in the validation log"
    assert 0.0 <= float(valid.group(1)) <= 1.0

    # The checkpoint says beamsearch; the command line's inference type wins, as with evaluate.py.
    predictions = {}
    for mode in ("allcand", "beamsearch"):
        results = tmp_path / mode
        _run([CLI / "fairseq-generate", world / "vqa_test.tsv", "--path", save / "checkpoint_last.pt", *task_flags,
              "--gen-subset", "test", "--val-inference-type", mode, "--beam", "5", "--unnormalized",
              "--batch-size", "8", "--results-path", results])
        output = (results / "generate-test.txt").read_text()
        assert re.search(r"^Generate test with beam=5: VQA accuracy [0-9.]+ \(score sum \S+ over 16 questions\)",
                         output, re.M)
        predictions[mode] = json.loads((results / "test_predict.json").read_text())
        hypotheses = _generated(output, "H")
        positional = {int(i): [float(x) for x in values.split()]
                      for i, values in re.findall(r"^P-(\d+)\t(.*)$", output, re.M)}
        for i, (score, _) in hypotheses.items():
            if mode == "allcand":  # the candidate's log-likelihood, the sum of its per-token terms
                assert score == pytest.approx(sum(positional[i]), abs=1e-3)
            else:  # the beam score also counts the forced prompt
                assert score < sum(positional[i]) - 1.0
    assert len(predictions["allcand"]) == 16
    # every toy answer is one token, so the trie-constrained beam finds the best candidate exactly
    assert predictions["beamsearch"] == predictions["allcand"]
