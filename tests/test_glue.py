"""The GLUE tasks (reference §5.10): samples, label mappings, last-token prediction, validation metrics,
and fairseq-train / fairseq-generate on toy data.

Sample ids are checked against the official GPT-2 vocabulary: the prompts are written out by hand, the
answer ids are literal (" yes" = 4420, " no" = 117, " maybe" = 2085, " positive" = 1313, " negative" = 2430
in the OFA dictionary).
"""
import functools
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils, metrics, options
from fairseq.tasks import TASK_REGISTRY
from fairseq_cli import generate

import ofa_plugin  # noqa: F401  (registers the tasks and scorers)
from ofa_plugin.data.glue import GLUE_SPECS
from ofa_plugin.data.toyworld import write_toy_world
from ofa_plugin.data.toyworld.tasks import OFFICIAL_SELECTED_COLS
from ofa_plugin.metrics.classification import f1_from_counts, mcc_from_counts
from ofa_plugin.tasks.glue import GlueConfig, MnliConfig, Sst2Config
from ofa_plugin.vocab import encode_text

from conftest import BPE_DIR

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GLUE_TASKS = tuple(GLUE_SPECS)
ANSWER_IDS = {"yes": 4420, "no": 117, "maybe": 2085, "positive": 1313, "negative": 2430}
PAD = 1

# task -> (a row of the task's selected columns, the hand-written prompt, the expected answer)
ROWS = {
    "cola": (["The  cat SAT.", "1"], ' is the text " the cat sat. " grammatically correct?', "yes"),
    "mnli": (["A dog runs.", "An animal moves.", "2"], ' can text1 " a dog runs. " imply text2 " an animal moves. "?',
             "no"),
    "mrpc": (["He left.", "He went away.", "0"],
             ' does text1 " he left. " and text2 " he went away. " have the same semantics?', "no"),
    "qnli": (["Who left?", "Tom left early.", "entailment"],
             ' does " tom left early. " contain the answer to question " who left? "?', "yes"),
    "qqp": (["How old is Tom?", "What is Tom's age?", "1"],
            ' is question " how old is tom? " and question " what is tom\'s age? " equivalent?', "yes"),
    "rte": (["Tom left.", "Tom stayed.", "not_entailment"], ' can text1 " tom left. " imply text2 " tom stayed. "?',
            "no"),
    "sst2": (["Good!", "1"], ' is the sentiment of text " good! " positive or negative?', "positive"),
}
CONFIGS = {"mnli": MnliConfig, "sst2": Sst2Config}


@functools.lru_cache(maxsize=None)
def _task(name: str, **options):
    """The task `name` (official GPT-2 vocabulary unless `bpe_dir` is given); one instance per argument set."""
    cfg = CONFIGS.get(name, GlueConfig)(**{"bpe_dir": str(BPE_DIR), **options})
    cfg._name = name
    return TASK_REGISTRY[name].setup_task(cfg)


@pytest.mark.parametrize("prompt_type", ["none", "src", "prev_output"])
@pytest.mark.parametrize("name", GLUE_TASKS)
def test_samples_of_every_task_and_prompt_type(name, prompt_type):
    task = _task(name, prompt_type=prompt_type)
    columns, prompt, answer = ROWS[name]
    sample = task.build_sample_builder("valid", "rows.tsv")(columns, 3)
    source = [0] + encode_text(task.tgt_dict, task.tokenizer, prompt).tolist() + [2]
    expected_prev = {"none": [0], "src": source, "prev_output": source[:-1]}[prompt_type]
    assert sample["source"].tolist() == source
    assert sample["prev_output_tokens"].tolist() == expected_prev
    assert sample["target"].tolist() == [PAD] * (len(expected_prev) - 1) + [ANSWER_IDS[answer]]
    mask = sample["constraint_mask"]
    assert mask.shape == (len(expected_prev), len(task.tgt_dict))
    assert not mask[:-1].any()
    candidates = {"mnli": ["maybe", "yes", "no"], "sst2": ["negative", "positive"]}.get(name, ["no", "yes"])
    assert mask[-1].nonzero().flatten().tolist() == sorted(ANSWER_IDS[c] for c in candidates)
    assert sample["batch_extras"] == {"decoder_prompts": expected_prev, "ref_labels": answer}
    assert sample["uniq_id"] == 3


def test_sst2_sample_ids_by_hand():
    """GPT-2 BPE ids of ' is the sentiment of text " good! " positive or negative?' written out."""
    task = _task("sst2", prompt_type="prev_output")
    sample = task.build_sample_builder("valid", "rows.tsv")(["Good!", "1"], 0)
    prompt = [0, 16, 5, 5702, 9, 2788, 22, 205, 328, 22, 1313, 50, 2430, 116]
    assert sample["source"].tolist() == prompt + [2]
    assert sample["prev_output_tokens"].tolist() == prompt
    assert sample["target"].tolist() == [PAD] * 13 + [1313]


@pytest.mark.parametrize("name, labels", [
    ("cola", {"0": "no", "1": "yes"}), ("mrpc", {"0": "no", "1": "yes"}), ("qqp", {"0": "no", "1": "yes"}),
    ("qnli", {"0": "no", "1": "yes", "not_entailment": "no", "entailment": "yes"}),
    ("rte", {"not_entailment": "no", "entailment": "yes"}), ("mnli", {"0": "maybe", "1": "yes", "2": "no"}),
    ("sst2", {"0": "negative", "1": "positive"}),
])
def test_label_mappings(name, labels):
    builder = _task(name).build_sample_builder("valid", "rows.tsv")
    sentences = ROWS[name][0][:-1]
    for label, answer in labels.items():
        assert builder(sentences + [label], 0)["batch_extras"]["ref_labels"] == answer
    with pytest.raises(ValueError, match=rf"rows.tsv: row 7: unknown {name} label 'maybe'"):
        builder(sentences + ["maybe"], 7)


def test_sentences_are_cut_to_max_src_length_words():
    task = _task("mrpc", max_src_length=2)
    sample = task.build_sample_builder("valid", "rows.tsv")(["He  LEFT the house.", "a b c", "1"], 0)
    expected = ' does text1 " he left " and text2 " a b " have the same semantics?'
    assert sample["source"][1:-1].tolist() == encode_text(task.tgt_dict, task.tokenizer, expected).tolist()


def test_bad_rows_name_file_and_row(tmp_path):
    tsv = tmp_path / "sst2.tsv"
    tsv.write_text("fine .\t1\nbad .\t3\nno label\n")
    task = _task("sst2", data=str(tsv), selected_cols="0,1")
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    assert dataset[0]["batch_extras"]["ref_labels"] == "positive"
    with pytest.raises(ValueError, match=rf"{re.escape(str(tsv))}: row 1: unknown sst2 label '3'"):
        dataset[1]
    with pytest.raises(ValueError, match=rf"{re.escape(str(tsv))}: row 2 has 1 columns, expected at least 2"):
        dataset[2]
    with pytest.raises(ValueError, match=r"rows.tsv: row 5: mnli rows need 3 selected columns \(sentence1, "
                                         r"sentence2, label\), got 2"):
        _task("mnli").build_sample_builder("valid", "rows.tsv")(["a", "1"], 5)


def test_answers_must_be_single_tokens_and_candidates():
    with pytest.raises(ValueError, match=r"cola: the answer 'grammatical' of --ans2label-dict is 2 tokens"):
        _task("cola", ans2label_dict='{"grammatical": 0, "yes": 1}').build_sample_builder("valid", "rows.tsv")
    builder = _task("cola", ans2label_dict='{"yes": 1}').build_sample_builder("valid", "rows.tsv")
    with pytest.raises(ValueError, match=r"row 4: label '0' means 'no', which is not among the candidate answers"):
        builder(["a b", "0"], 4)
    with pytest.raises(ValueError, match="--prompt-type must be one of none, src, prev_output"):
        _task("cola", prompt_type="prompt").build_sample_builder("valid", "rows.tsv")


@pytest.mark.parametrize("name, metric, value", [
    ("cola", "mcc", mcc_from_counts(5, 2, 6, 3)), ("mrpc", "F1", f1_from_counts(5, 2, 3)),
    ("qqp", "F1", f1_from_counts(5, 2, 3)), ("rte", None, None)])
@pytest.mark.parametrize("all_reduced", [False, True], ids=["one-process", "all-reduced"])
def test_validation_metrics_from_summed_counts(name, metric, value, all_reduced):
    """acc (and MCC / F1) from the counts of all batches, not averaged per batch; with several processes
    fairseq hands the sums over as tensors (round() on them used to crash every multi-process validation)."""
    sizes = {"ntokens": 8, "nsentences": 8, "sample_size": 8}
    logs = [{"_score_sum": 7, "_score_cnt": 10, "_tp": 3, "_fp": 2, "_tn": 4, "_fn": 1, **sizes},
            {"_score_sum": 4, "_score_cnt": 6, "_tp": 2, "_fp": 0, "_tn": 2, "_fn": 2, **sizes}]
    if all_reduced:
        logs = [{key: torch.tensor(float(count)) for key, count in log.items()} for log in logs]
    task = _task(name)
    with metrics.aggregate(new_root=True) as aggregator:
        task.reduce_metrics(logs, _NoLossCriterion())
        values = aggregator.get_smoothed_values()
    assert values["acc"] == round(11 / 16, 4)
    assert {"mcc", "F1"} & set(values) == ({metric} if metric else set())
    if metric:
        assert values[metric] == round(value, 4)


class _NoLossCriterion:
    @staticmethod
    def reduce_metrics(logging_outputs):
        pass


# ------------------------------------------------------------------------- toy world, CLIs, checkpoints

def _run(args, cwd=REPO) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert result.returncode == 0, "\n".join(result.stdout.splitlines()[-30:])
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A toy world with every GLUE task and an ofa_nano sst2 checkpoint after 3 updates (with validation)."""
    root = tmp_path_factory.mktemp("glue")
    world = root / "world"
    write_toy_world(world, seed=1, num_train=48, num_valid=16, num_test=16, tasks=GLUE_TASKS)
    log = _run([
        BIN / "fairseq-train", f"{world}/sst2_train.tsv,{world}/sst2_valid.tsv", "--user-dir", "ofa_plugin",
        "--task", "sst2", "--arch", "ofa_nano", "--resnet-type", "resnet18", "--bpe", "sentencepiece",
        "--bpe-dir", world / "vocab", "--selected-cols", "0,1", "--prompt-type", "src", "--max-src-length", "512",
        "--criterion", "adjust_label_smoothed_cross_entropy", "--optimizer", "adam", "--lr", "1e-3",
        "--max-update", "3", "--batch-size", "16", "--num-workers", "0", "--cpu", "--seed", "1",
        "--log-format", "simple", "--log-interval", "1", "--save-dir", root / "checkpoints", "--no-epoch-checkpoints",
        "--no-save-optimizer-state", "--best-checkpoint-metric", "acc", "--maximize-best-checkpoint-metric",
    ])
    return world, root / "checkpoints" / "checkpoint_last.pt", log


@pytest.mark.slow
def test_sst2_trains_validates_and_generates(trained):
    world, checkpoint, log = trained
    valid = re.search(r"\| valid on 'valid' subset \|.* \| acc ([0-9.]+) \|", log)
    assert valid, "no validation accuracy in the fairseq-train log"
    assert 0.0 <= float(valid.group(1)) <= 1.0
    output = _run([BIN / "fairseq-generate", world / "sst2_test.tsv", "--user-dir", "ofa_plugin", "--task", "sst2",
                   "--path", checkpoint, "--bpe", "sentencepiece", "--bpe-dir", world / "vocab",
                   "--selected-cols", "0,1", "--gen-subset", "test", "--batch-size", "8", "--cpu"])
    print(output.splitlines()[-1])
    assert re.search(r"^Generate test with beam=5: accuracy [0-9.]+ \(\d+/16\)$", output, re.M)
    hypotheses = re.findall(r"^D-\d+\t\S+\t(.*)$", output, re.M)
    assert len(hypotheses) == 16 and set(hypotheses) <= {"positive", "negative"}


@pytest.mark.slow
@pytest.mark.parametrize("name", GLUE_TASKS)
def test_fairseq_generate_prints_the_official_metrics(trained, tmp_path, name):
    """In-process fairseq-generate of every task with the (task-agnostic) sst2 checkpoint."""
    world, checkpoint, _ = trained
    parser = options.get_generation_parser()
    args = options.parse_args_and_arch(parser, [
        str(world / f"{name}_test.tsv"), "--user-dir", str(REPO / "ofa_plugin"), "--task", name,
        "--path", str(checkpoint), "--bpe", "sentencepiece", "--bpe-dir", str(world / "vocab"),
        "--selected-cols", OFFICIAL_SELECTED_COLS[name], "--prompt-type", "src", "--gen-subset", "test",
        "--batch-size", "8", "--cpu", "--results-path", str(tmp_path)])
    scorer = generate.main(args)
    line = (tmp_path / "generate-test.txt").read_text().splitlines()[-1]
    extra = {"cola": r" \| MCC -?[0-9.]+", "mrpc": r" \| F1 [0-9.]+", "qqp": r" \| F1 [0-9.]+"}.get(name, "")
    assert re.fullmatch(rf"Generate test with beam=5: accuracy [0-9.]+ \(\d+/16\){extra}", line), line
    assert len(scorer.predictions) == 16


@pytest.mark.slow
@pytest.mark.parametrize("prompt_type", ["none", "src", "prev_output"])
def test_prediction_is_the_official_last_token_argmax(trained, prompt_type):
    """task.choose == argmax of the constraint-masked logits at the last non-pad decoder position."""
    world, checkpoint, _ = trained
    task = _task("mnli", data=str(world / "mnli_valid.tsv"), selected_cols="0,1,2", bpe="sentencepiece",
                 bpe_dir=str(world / "vocab"), prompt_type=prompt_type)
    task.load_dataset("valid")
    models, _ = checkpoint_utils.load_model_ensemble([str(checkpoint)], task=task)
    model = models[0].eval()
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(8)])
    choice = task.choose([model], sample)
    with torch.no_grad():
        logits = model(**sample["net_input"])[0].masked_fill(~sample["constraint_masks"], -math.inf)
    last = sample["net_input"]["prev_output_tokens"].ne(PAD).sum(1) - 1
    log_probs = torch.log_softmax(logits[torch.arange(8), last], dim=-1)
    best, tokens = log_probs.max(dim=-1)
    assert [task.candidates.tokens[k].item() for k in choice.indices] == tokens.tolist()
    torch.testing.assert_close(choice.scores, best, atol=1e-5, rtol=1e-5)
    hypos = task.inference_step(None, [model], sample)
    assert [h[0]["tokens"].tolist() for h in hypos] == [[t, 2] for t in tokens.tolist()]
