"""The gigaword task (reference §5.9, §8.2): samples, noise, hypothesis post-processing, the `ofa_rouge`
scorer against the `rouge_score` package, and fairseq-train / fairseq-generate on toy data.

Sample ids are checked against the official GPT-2 vocabulary, written out by hand (e.g. the summary
starts with "u" = 257, not " u" = 1717: Gigaword targets have no leading space).
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq import metrics
from rouge_score import rouge_scorer

import ofa_plugin  # noqa: F401  (registers the tasks and scorers)
from ofa_plugin.data.toyworld import write_toy_world
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.metrics.summary_scorer import SummaryPrediction, SummaryScorer
from ofa_plugin.tasks.gigaword import GigawordConfig, GigawordTask, official_hypothesis

from conftest import BPE_DIR

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ROW = ["The U.S. economy grew 3.5 percent <unk> in March", "U.S. economy <unk> grows"]
# ' what is the summary of article " the u.s. economy grew 3.5 percent unk in march "?'
PROMPT_IDS = [99, 16, 5, 4819, 9, 1566, 22, 5, 1717, 4, 29, 4, 866, 2307, 155, 4, 245, 135, 542, 330, 11, 6674, 22, 116]
SUMMARY_IDS = [257, 4, 29, 4, 866, 542, 330, 11461]  # "u.s. economy unk grows"


def _task(**options) -> GigawordTask:
    return GigawordTask.setup_task(GigawordConfig(**{"bpe_dir": str(BPE_DIR), **options}))


@pytest.fixture(scope="module")
def task() -> GigawordTask:
    return _task(max_src_length=512, max_tgt_length=64)


def test_sample_ids_by_hand(task):
    sample = task.build_sample_builder("valid", "rows.tsv")(ROW, 0)
    assert sample["source"].tolist() == [0] + PROMPT_IDS + [2]
    assert sample["target"].tolist() == SUMMARY_IDS + [2]
    assert sample["prev_output_tokens"].tolist() == [0] + SUMMARY_IDS
    assert sample["batch_extras"] == {"target_strs": "u.s. economy <unk> grows"}


def test_whole_prompt_is_cut_to_max_src_length_tokens_and_summary_to_max_tgt_length_words():
    sample = _task(max_src_length=10, max_tgt_length=2).build_sample_builder("valid", "rows.tsv")(ROW, 0)
    assert sample["source"].tolist() == [0] + PROMPT_IDS[:10] + [2]  # the closing '"?' is lost, as official
    assert sample["target"].tolist() == [257, 4, 29, 4, 866, 2]  # "u.s. economy"
    assert sample["batch_extras"]["target_strs"] == "u.s. economy <unk> grows"  # the reference stays whole


def test_noise_replaces_decoder_inputs_of_training_rows_only():
    noisy_task = _task(noise_ratio=1.0)
    assert noisy_task.build_sample_builder("valid", "rows.tsv").noise_ratio == 0.0
    builder = noisy_task.build_sample_builder("train", "rows.tsv")
    assert builder.num_text_tokens == 50265  # [4, 50265): text tokens and <mask>, no codes or bins
    torch.manual_seed(0)
    for _ in range(20):
        sample = builder(ROW, 0)
        noisy = sample["prev_output_tokens"][1:]
        assert sample["prev_output_tokens"][0] == 0 and sample["target"].tolist() == SUMMARY_IDS + [2]
        assert ((noisy >= 4) & (noisy < 50265)).all() and not noisy.eq(torch.tensor(SUMMARY_IDS)).all()
    half = _task(noise_ratio=0.5).build_sample_builder("train", "rows.tsv")
    kept = sum(int(t == s) for _ in range(50) for t, s in zip(half(ROW, 0)["prev_output_tokens"][1:], SUMMARY_IDS))
    assert 150 < kept < 250  # about half of 400 tokens kept


@pytest.mark.parametrize("columns, message", [
    (["only one column"], r"rows.tsv: row 4: gigaword rows need 2 selected columns \(source, target\), got 1"),
    (["an article", "..."], r"rows.tsv: row 4: empty summary"),
    (["", "a summary"], r"rows.tsv: row 4: empty article"),
])
def test_bad_rows_name_file_and_row(task, columns, message):
    with pytest.raises(ValueError, match=message):
        task.build_sample_builder("valid", "rows.tsv")(columns, 4)


@pytest.mark.parametrize("text, expected", [
    ("The U . S . ( economy ) grew 1 % <unk> in 2011 ", "the u.s. -lrb- economy -rrb- grew # %  unk in 20##"),
    ('Obama says " we don \' t know "', "obama says `` we do n't know ''"),
    ("  Stocks rise 3 , 000 points", "stocks rise 3,000 points"),
])
def test_official_hypothesis_post_processing(text, expected):
    assert official_hypothesis(text) == expected


def _published_scorer(pairs):
    scorer = SummaryScorer(None)
    publish_predictions(SummaryPrediction(hyp, ref, f"target {i}") for i, (hyp, ref) in enumerate(pairs))
    for i in range(len(pairs)):
        scorer.add_string(f"target {i}", "ignored")
    return scorer


def test_rouge_scorer_by_hand():
    scorer = _published_scorer([("the cat sat", "the cat sat on the mat")])
    # ROUGE-1: P 3/3, R 3/6 -> F1 2/3; ROUGE-2: P 2/2, R 2/5 -> F1 4/7; ROUGE-L: LCS 3 -> F1 2/3
    assert scorer.result_string() == "ROUGE-1 66.67 | ROUGE-2 57.14 | ROUGE-L 66.67 (F1 x100, n=1)"
    assert scorer.score() == pytest.approx(200 / 3)


def test_rouge_scorer_equals_rouge_score_package():
    pairs = [
        ("police kill the gunman", "police killed the gunman"),
        ("us stocks rise on strong jobs data", "u.s. stocks rose sharply on jobs data"),
        ("the running dogs run", "dogs running in the park -lrb- file -rrb-"),
        ("## people hurt in blast", "#,### people injured in bus blast in southern city"),
        ("", "an empty hypothesis"),
        ("a b a b a b", "a b a b"),
    ]
    scorer = _published_scorer(pairs)
    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [reference.score(ref, hyp) for hyp, ref in pairs]
    expected = {kind: 100 * sum(s[kind].fmeasure for s in scores) / len(pairs)
                for kind in ("rouge1", "rouge2", "rougeL")}
    assert scorer.f1_scores() == pytest.approx(expected, abs=1e-9)


def test_rouge_scorer_refuses_a_target_of_another_sample():
    scorer = SummaryScorer(None)
    publish_predictions([SummaryPrediction("a", "b", "target 0")])
    with pytest.raises(ValueError, match=r"does not belong to the published sample \{'hyp': 'a', 'ref': 'b'\}"):
        scorer.add_string("target 1", "a")


def test_validation_rouge_from_summed_scores(task):
    sizes = {"ntokens": 8, "nsentences": 2, "sample_size": 8}
    logs = [{"_rouge_cnt": 2, "_rouge1_f1_sum": 120.0, "_rougeL_recall_sum": 50.0, **sizes},
            {"_rouge_cnt": 3, "_rouge1_f1_sum": 30.0, "_rougeL_recall_sum": 100.0, **sizes}]
    with metrics.aggregate(new_root=True) as aggregator:
        task.reduce_metrics(logs, _NoLossCriterion())
        values = aggregator.get_smoothed_values()
    assert values["rouge1_f1"] == 30.0 and values["rougeL_recall"] == 30.0 and values["rouge2_f1"] == 0.0
    assert {f"rouge{k}_{p}" for k in ("1", "2", "L") for p in ("recall", "f1")} <= set(values)


class _NoLossCriterion:
    @staticmethod
    def reduce_metrics(logging_outputs):
        pass


def _run(args) -> str:
    result = subprocess.run([str(a) for a in args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert result.returncode == 0, "\n".join(result.stdout.splitlines()[-30:])
    return result.stdout


@pytest.mark.slow
def test_gigaword_trains_validates_rouge_and_generates(tmp_path):
    """fairseq-train (2 updates, --eval-rouge validation), then fairseq-generate with the recipe's beam search;
    the printed ROUGE equals rouge_score's on the written predictions."""
    world = tmp_path / "world"
    write_toy_world(world, seed=1, num_train=32, num_valid=8, num_test=8, tasks=["gigaword"])
    common = ["--user-dir", "ofa_plugin", "--task", "gigaword", "--bpe", "sentencepiece", "--bpe-dir", world / "vocab",
              "--selected-cols", "0,1", "--num-workers", "0", "--cpu"]
    log = _run([
        BIN / "fairseq-train", f"{world}/gigaword_train.tsv,{world}/gigaword_valid.tsv", *common, "--arch", "ofa_nano",
        "--resnet-type", "resnet18", "--max-src-length", "512", "--max-tgt-length", "64", "--noise-ratio", "0.2",
        "--eval-rouge", "--eval-print-samples", "--eval-args", '{"beam": 2, "max_len_b": 8, "no_repeat_ngram_size": 3}',
        "--criterion", "adjust_label_smoothed_cross_entropy", "--label-smoothing", "0.1", "--optimizer", "adam",
        "--lr", "1e-3", "--max-update", "2", "--batch-size", "16", "--seed", "1", "--log-format", "simple",
        "--save-dir", tmp_path / "checkpoints", "--no-epoch-checkpoints", "--no-save-optimizer-state",
        "--best-checkpoint-metric", "rougeL_f1", "--maximize-best-checkpoint-metric",
    ])
    valid = re.search(r"\| valid on 'valid' subset \|(.*)$", log, re.M)
    assert valid, "no validation line in the fairseq-train log"
    for name in ("rouge1_f1", "rouge2_f1", "rougeL_f1", "rouge1_recall", "rougeL_recall"):
        assert re.search(rf"\| {name} [0-9.]+ ", valid.group(1)), f"{name} not logged: {valid.group(1)}"
    assert "example hypothesis:" in log

    results = tmp_path / "results"
    _run([BIN / "fairseq-generate", world / "gigaword_test.tsv", *common,
                   "--path", tmp_path / "checkpoints" / "checkpoint_last.pt", "--gen-subset", "test",
                   "--batch-size", "4", "--beam", "6", "--lenpen", "0.7", "--max-len-b", "32",
                   "--no-repeat-ngram-size", "3", "--results-path", results])
    generated = (results / "generate-test.txt").read_text()
    line = generated.splitlines()[-1]
    print(line)
    match = re.fullmatch(r"Generate test with beam=6: ROUGE-1 ([0-9.]+) \| ROUGE-2 ([0-9.]+) \| ROUGE-L ([0-9.]+) "
                         r"\(F1 x100, n=8\)", line)
    assert match, line
    records = json.loads((results / "test_predict.json").read_text())
    targets = [row.split("\t")[1] for row in (world / "gigaword_test.tsv").read_text().splitlines()]
    assert [r["ref"] for r in records] == [t.lower() for t in targets]
    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [reference.score(r["ref"], r["hyp"]) for r in records]
    for kind, printed in zip(("rouge1", "rouge2", "rougeL"), match.groups()):
        assert float(printed) == pytest.approx(100 * sum(s[kind].fmeasure for s in scores) / 8, abs=0.006)
    assert len(re.findall(r"^H-\d+\t", generated, re.M)) == 8
