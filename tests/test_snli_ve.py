"""The snli_ve task (reference §5.5, §8.2): samples by hand, golden parity with the official evaluation on
../shared/fixtures/official_mini, and fairseq-train / fairseq-generate on the toy world."""
import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils, metrics
from PIL import Image

import ofa_plugin  # noqa: F401  (registers the plugin's tasks and scorers)
from ofa_plugin.criterions.label_smoothed_cross_entropy import AdjustLabelSmoothedCrossEntropyCriterion
from ofa_plugin.data.answers import CandidateAnswers
from ofa_plugin.data.collate import BATCH_EXTRAS
from ofa_plugin.data.snli_ve import SnliVeSampleBuilder
from ofa_plugin.data.toyworld import write_toy_world
from ofa_plugin.data.transforms import square_resize_transform
from ofa_plugin.tasks.snli_ve import SnliVeConfig, SnliVeTask
from ofa_plugin.vocab import build_tokenizer, encode_text

from conftest import BPE_DIR, OFFICIAL_MINI, official_command_as_fairseq_generate

REPO = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((OFFICIAL_MINI / "golden" / "snli_ve.json").read_text())
SNLI_TSV = OFFICIAL_MINI / "data" / "snli_ve_test.tsv"
GOLDEN_OPTIONS = dict(selected_cols="0,2,3,4,5", patch_image_size=256, max_src_length=80, max_tgt_length=20,
                      prompt_type="prev_output", add_caption=True)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def image_field(size=(8, 6)) -> str:
    """A base64 PNG, as the TSV image column holds."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer("gpt2", str(BPE_DIR))


def _builder(dictionary, tokenizer, prompt_type="prev_output", add_caption=True, max_src_length=80,
             answers=("no", "yes", "maybe")) -> SnliVeSampleBuilder:
    return SnliVeSampleBuilder(dictionary, tokenizer, square_resize_transform(16), "rows.tsv", max_src_length,
                               add_caption, prompt_type, CandidateAnswers.build(list(answers), dictionary, tokenizer))


def _text(dictionary, tokenizer, tokens: torch.Tensor) -> str:
    return tokenizer.decode(dictionary.string(tokens))


ROW = ["u1", image_field(), "There are Two-Shapes.", "#A red circle  on a blue background.", "entailment"]


def test_instruction_texts(ofa_dictionary, tokenizer):
    """pre_caption on hypothesis and premise, the two official templates, max_src_length in words."""
    with_caption = _builder(ofa_dictionary, tokenizer)(ROW, 0)["source"]
    assert with_caption[0] == ofa_dictionary.bos() and with_caption[-1] == ofa_dictionary.eos()
    assert _text(ofa_dictionary, tokenizer, with_caption[1:-1]) == \
        ' can image and text1 " a red circle on a blue background. " imply text2 " there are two shapes. "?'
    without = _builder(ofa_dictionary, tokenizer, add_caption=False, max_src_length=3)(ROW, 0)["source"]
    assert _text(ofa_dictionary, tokenizer, without[1:-1]) == ' does the image describe " there are two "?'


@pytest.mark.parametrize("prompt_type", ["none", "src", "prev_output"])
def test_target_prev_output_and_constraint_mask(ofa_dictionary, tokenizer, prompt_type):
    bos, pad, eos = ofa_dictionary.bos(), ofa_dictionary.pad(), ofa_dictionary.eos()
    no, yes, maybe = (encode_text(ofa_dictionary, tokenizer, f" {a}").tolist() for a in ("no", "yes", "maybe"))
    assert (no, yes) == ([117], [4420])  # the golden's answer tokens; each answer is one GPT-2 token
    assert len(maybe) == 1
    sample = _builder(ofa_dictionary, tokenizer, prompt_type=prompt_type)(ROW, 0)
    source = sample["source"].tolist()
    prompt = {"none": [bos], "src": source, "prev_output": source[:-1]}[prompt_type]
    assert sample["prev_output_tokens"].tolist() == prompt + yes
    assert sample["target"].tolist() == [pad] * (len(prompt) - 1) + yes + [eos]
    assert sample[BATCH_EXTRAS] == {"decoder_prompts": prompt, "ref_labels": "yes"}
    mask = sample["constraint_mask"]
    assert mask.shape == (len(prompt) + 1, len(ofa_dictionary)) and mask.dtype == torch.bool
    assert not mask[: len(prompt) - 1].any()  # no loss (and nothing allowed) on the prompt
    assert mask[len(prompt) - 1].nonzero().flatten().tolist() == sorted(no + yes + maybe)
    assert mask[len(prompt)].nonzero().flatten().tolist() == [eos]


@pytest.mark.parametrize("label, answer", [("contradiction", "no"), ("neutral", "maybe")])
def test_label_mapping(ofa_dictionary, tokenizer, label, answer):
    sample = _builder(ofa_dictionary, tokenizer)(ROW[:4] + [label], 0)
    assert sample[BATCH_EXTRAS]["ref_labels"] == answer
    assert _text(ofa_dictionary, tokenizer, sample["target"][-2:-1]) == f" {answer}"


@pytest.mark.parametrize("columns, message", [
    (ROW[:4] + ["Entailment"], r"rows.tsv: row 7: label must be one of contradiction, entailment, neutral, "
                               r"got 'Entailment'"),
    (ROW[:4], r"rows.tsv: row 7: snli_ve rows need 5 selected columns .* got 4"),
    (ROW + ["extra"], r"rows.tsv: row 7: snli_ve rows need 5 selected columns .* got 6"),
    (ROW[:2] + ["...", *ROW[3:]], r"rows.tsv: row 7: empty hypothesis"),
])
def test_bad_rows_name_file_and_row(ofa_dictionary, tokenizer, columns, message):
    with pytest.raises(ValueError, match=message):
        _builder(ofa_dictionary, tokenizer)(columns, 7)


def test_answer_outside_the_candidates_is_rejected(ofa_dictionary, tokenizer):
    builder = _builder(ofa_dictionary, tokenizer, answers=("no", "yes"))
    with pytest.raises(ValueError, match=r"rows.tsv: row 2: answer 'maybe' is not one of the 2 candidate answers"):
        builder(ROW[:4] + ["neutral"], 2)


def test_prompt_type_is_required():
    task = SnliVeTask.setup_task(SnliVeConfig(data=str(SNLI_TSV), selected_cols="0,2,3,4,5", bpe_dir=str(BPE_DIR)))
    with pytest.raises(ValueError, match=r"snli_ve needs --prompt-type \(none, src, prev_output; .*got None"):
        task.load_dataset("test")


# ------------------------------------------------------------------------------ official golden


@pytest.fixture(scope="module")
def golden_setup():
    """The task of the golden command line, the fixture checkpoint and the whole test set as one batch."""
    task = SnliVeTask.setup_task(SnliVeConfig(data=str(SNLI_TSV), bpe_dir=str(BPE_DIR), **GOLDEN_OPTIONS))
    models, _ = checkpoint_utils.load_model_ensemble([str(OFFICIAL_MINI / "checkpoint.pt")], task=task)
    task.load_dataset("test")
    dataset = task.dataset("test")
    return task, models[0].eval(), dataset.collater([dataset[i] for i in range(len(dataset))])


def test_golden_sources_and_candidate_scores(golden_setup):
    task, model, batch = golden_setup
    samples = GOLDEN["samples"]
    assert batch["uniq_id"] == [s["id"] for s in samples]
    for row, sample in zip(batch["net_input"]["src_tokens"], samples):
        assert row[row.ne(task.tgt_dict.pad())].tolist() == sample["src_tokens"]
    scores, _ = task.score_batch([model], batch)
    torch.testing.assert_close(scores, torch.tensor([s["candidate_scores"] for s in samples]), atol=1e-4, rtol=0)


def test_golden_hypotheses(golden_setup):
    """One hypothesis per sample: the chosen answer + eos, its score, per-token scores adding up to it."""
    task, model, batch = golden_setup
    hypos = task.inference_step(None, [model], batch)
    eos = task.tgt_dict.eos()
    for sample_hypos, sample in zip(hypos, GOLDEN["samples"]):
        (hypo,) = sample_hypos
        assert sample["result"]["answer"] == "no"
        assert hypo["tokens"].tolist() == [117, eos]  # " no"
        assert hypo["score"] == pytest.approx(max(sample["candidate_scores"]), abs=1e-4)
        assert hypo["positional_scores"].shape == (2,) and hypo["alignment"] is None
        assert float(hypo["positional_scores"].sum()) == pytest.approx(float(hypo["score"]), abs=1e-5)
        assert float(hypo["positional_scores"][1]) == 0.0  # eos is the only continuation of an answer


def test_validation_logs_official_snli_score(golden_setup):
    task, model, batch = golden_setup
    criterion = AdjustLabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1)
    _, _, log = task.valid_step(batch, model, criterion)
    assert (log["_snli_score_sum"], log["_snli_score_cnt"]) == (GOLDEN["score_sum"], GOLDEN["score_cnt"]) == (3, 8)
    with metrics.aggregate(new_root=True) as aggregator:
        task.reduce_metrics([log, {"_snli_score_sum": 1, "_snli_score_cnt": 2}], criterion)
        assert aggregator.get_smoothed_values()["snli_score"] == 0.4


def run_cli(args: list, log: Path) -> str:
    """Run a fairseq CLI of this interpreter, keep its output in `log`, fail with its tail if it fails.
    One intra-op thread, as in-process (twice as fast on a loaded 2-core machine)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(a) for a in args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    log.write_text(result.stdout)
    tail = "\n".join(result.stdout.splitlines()[-30:])
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed ({result.returncode}):\n{tail}"
    return result.stdout


@pytest.mark.slow
def test_golden_reproduced_by_fairseq_generate(tmp_path):
    run_cli(official_command_as_fairseq_generate(GOLDEN, SNLI_TSV, tmp_path), tmp_path / "generate.log")
    output = (tmp_path / "generate-test.txt").read_text()
    accuracy = re.search(r"^Generate test with beam=5: accuracy (\S+) \((\d+)/(\d+)\)", output, re.M)
    assert float(accuracy.group(1)) == 0.375 == GOLDEN["score_sum"] / GOLDEN["score_cnt"]
    assert (int(accuracy.group(2)), int(accuracy.group(3))) == (3, 8)
    assert json.loads((tmp_path / "test_predict.json").read_text()) == GOLDEN["official_predict_json"]
    assert re.findall(r"^D-\d+\t\S+\t(.*)$", output, re.M) == [" no"] * 8


# ------------------------------------------------------------------------------ toy world end to end


def train_and_generate(tmp_path: Path, toy_task: str, task_flags: list, metric: str) -> tuple:
    """Write a small toy world for `toy_task`, train `ofa_nano` 4 updates with validation (best checkpoint
    by `metric`), reload it with fairseq-generate on the test split; returns (world, train log, generate
    output, predict JSON)."""
    world = tmp_path / "world"
    write_toy_world(world, seed=1, num_train=32, num_valid=8, num_test=8, image_size_range=(32, 48),
                    tasks=[toy_task])
    save, results = tmp_path / "checkpoints", tmp_path / "results"
    common = ["--user-dir", "ofa_plugin", "--bpe", "sentencepiece", "--bpe-dir", world / "vocab", "--cpu",
              "--num-workers", "0"]
    train_log = run_cli([
        "fairseq-train", f"{world}/{toy_task}_train.tsv,{world}/{toy_task}_valid.tsv", *common, *task_flags,
        "--arch", "ofa_nano", "--resnet-type", "resnet18", "--patch-image-size", "32",
        "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1",
        "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "polynomial_decay", "--warmup-updates", "1",
        "--total-num-update", "4", "--max-update", "4", "--batch-size", "8", "--seed", "1",
        "--log-format", "simple", "--log-interval", "1", "--save-dir", save, "--no-epoch-checkpoints",
        "--best-checkpoint-metric", metric, "--maximize-best-checkpoint-metric",
    ], tmp_path / "train.log")
    output = run_cli(["fairseq-generate", world / f"{toy_task}_test.tsv", "--path", save / "checkpoint_best.pt",
                      *common, *task_flags, "--gen-subset", "test", "--batch-size", "4",
                      "--results-path", results], tmp_path / "generate.log")
    output += (results / "generate-test.txt").read_text()
    return world, train_log, output, json.loads((results / "test_predict.json").read_text())


def accuracy_line(output: str) -> tuple:
    """(accuracy, correct, total) of fairseq-generate's final line."""
    match = re.search(r"^Generate test with beam=5: accuracy ([0-9.]+) \((\d+)/(\d+)\)$", output, re.M)
    assert match, "no accuracy line in the fairseq-generate output"
    return float(match.group(1)), int(match.group(2)), int(match.group(3))


@pytest.mark.slow
def test_toy_snli_ve_trains_and_generates(tmp_path):
    flags = ["--task", "snli_ve", "--selected-cols", "0,2,3,4,5", "--prompt-type", "prev_output", "--add-caption"]
    world, train_log, output, predictions = train_and_generate(tmp_path, "snli_ve", flags, "snli_score")
    scores = [float(s) for s in re.findall(r"\| valid on 'valid' subset \|.* snli_score ([0-9.]+)", train_log)]
    assert scores and all(0.0 <= s <= 1.0 for s in scores)
    accuracy, correct, total = accuracy_line(output)
    rows = [line.split("\t") for line in (world / "snli_ve_test.tsv").read_text().splitlines()]
    references = [{"contradiction": "no", "entailment": "yes", "neutral": "maybe"}[row[5]] for row in rows]
    assert [p["uniq_id"] for p in predictions] == [row[0] for row in rows]
    assert total == 8 and correct == sum(p["answer"] == r for p, r in zip(predictions, references))
    assert accuracy == pytest.approx(correct / total, abs=1e-4)
    assert {p["answer"] for p in predictions} <= {"no", "yes", "maybe"}
