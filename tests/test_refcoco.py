"""The refcoco task against the official goldens in ../shared/fixtures/official_mini (reference §5.4, §7.2)."""
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils, metrics
from torch import nn

import ofa_plugin  # noqa: F401  (registers the plugin's tasks and scorers)
from ofa_plugin.criterions.label_smoothed_cross_entropy import AdjustLabelSmoothedCrossEntropyCriterion
from ofa_plugin.data.refcoco import RefcocoSampleBuilder
from ofa_plugin.data.transforms import box_resize_transform
from ofa_plugin.generate import ConstrainedEnsemble, parse_constraint_range
from ofa_plugin.metrics.grounding_scorer import GroundingPrediction, GroundingScorer
from ofa_plugin.metrics.published import publish_predictions
from ofa_plugin.tasks.refcoco import RefcocoConfig, RefcocoTask
from ofa_plugin.vocab import build_tokenizer

from conftest import BPE_DIR, OFFICIAL_MINI, assert_top_hypotheses_match, official_command_as_fairseq_generate

REPO = Path(__file__).resolve().parents[1]
GOLDEN = OFFICIAL_MINI / "golden"
REFCOCO_TSV = OFFICIAL_MINI / "data" / "refcoco_test.tsv"


def _refcoco_task(**options) -> RefcocoTask:
    """The task with the options of the golden command lines (plus `options`)."""
    cfg = RefcocoConfig(data=str(REFCOCO_TSV), selected_cols="0,4,2,3", bpe_dir=str(BPE_DIR), patch_image_size=256,
                        max_src_length=80, max_tgt_length=20, **options)
    return RefcocoTask.setup_task(cfg)


@pytest.fixture(scope="module")
def task() -> RefcocoTask:
    return _refcoco_task()


def test_teacher_forced_batch_is_reproduced(task):
    arrays = np.load(GOLDEN / "teacher_forced.npz")
    task.load_dataset("test")
    dataset = task.dataset("test")
    batch = dataset.collater([dataset[i] for i in range(3)])
    ours = {f"net_input.{k}": v for k, v in batch["net_input"].items()}
    ours.update({k: batch[k] for k in ("target", "w_resize_ratios", "h_resize_ratios", "region_coords")})
    expected = {k[len("refcoco."):] for k in arrays.files if k.startswith("refcoco.net_input.")}
    assert expected | {"target", "w_resize_ratios", "h_resize_ratios", "region_coords"} == set(ours)
    for name, tensor in ours.items():
        golden = arrays[f"refcoco.{name}"]
        assert tensor.numpy().dtype == golden.dtype, name
        assert np.array_equal(tensor.numpy(), golden), name
    assert batch["uniq_id"] == ["301_1", "301_2", "302_1"]


def test_official_box_decoding_of_non_bin_tokens(task):
    """The official decoding reads any token as a bin: the golden's large negative boxes, bit for bit."""
    golden = json.loads((GOLDEN / "refcoco.json").read_text())
    for sample in golden["samples"]:
        tokens = torch.tensor([sample["nbest"][0]["tokens"][:4]])
        boxes = task.tokens_to_boxes(tokens, torch.tensor([sample["w_resize_ratio"]], dtype=torch.float32),
                                     torch.tensor([sample["h_resize_ratio"]], dtype=torch.float32))
        assert boxes[0].tolist() == sample["result"]["box"], sample["id"]


@pytest.mark.parametrize("region", ["30,60,130", "a,b,c,d", "30;60;130;160"])
def test_bad_region_names_file_and_row(task, region):
    builder = task.build_sample_builder("test", "rows.tsv")
    with pytest.raises(ValueError, match=r"rows.tsv: row 5: region"):
        builder(["1", "unused", "text", region], 5)


def test_box_outside_the_bin_grid_is_rejected(ofa_dictionary):
    builder = RefcocoSampleBuilder(ofa_dictionary, build_tokenizer("gpt2", str(BPE_DIR)), box_resize_transform(64),
                                   "rows.tsv", max_src_length=80, max_image_size=64, num_bins=1000)
    with pytest.raises(ValueError, match=r"rows.tsv: row 2: box .* outside \[0, 999\]"):
        builder.quantise(torch.tensor([0.0, 0.0, 70.0, 10.0]), 2)


class _FixedLogitsDecoder(nn.Module):
    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, tokens, encoder_out=None, incremental_state=None):
        return self.logits.expand(tokens.size(0), tokens.size(1), -1).clone(), None


class _FixedLogitsModel(nn.Module):
    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.decoder = _FixedLogitsDecoder(logits)

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        return torch.log_softmax(net_output[0], dim=-1)


def test_constraint_range_renormalises_over_range_and_specials():
    logits = torch.randn(12)
    ensemble = ConstrainedEnsemble([_FixedLogitsModel(logits)], token_range=(6, 9))
    lprobs, _ = ensemble.forward_decoder(torch.zeros(2, 3, dtype=torch.long), [None], [{}], temperature=2.0)
    allowed = torch.tensor([0, 1, 2, 3, 6, 7, 8])
    expected = torch.log_softmax(logits[allowed] / 2.0, dim=-1)
    for row in lprobs:
        torch.testing.assert_close(row[allowed], expected)
        assert torch.isinf(row[[4, 5, 9, 10, 11]]).all()


@pytest.mark.parametrize("value", ["58457", "a,b", "10,5", "2,10"])
def test_bad_constraint_range_is_rejected(value):
    with pytest.raises(ValueError, match="constraint-range"):
        parse_constraint_range(value)


def test_grounding_scorer_scores_published_boxes_in_order():
    scorer = GroundingScorer(None)
    publish_predictions([GroundingPrediction("a", [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 12.0], [1, 2, 3, 4]),
                         GroundingPrediction("b", [-5.0, 0.0, -1.0, 10.0], [0.0, 0.0, 10.0, 12.0], [5, 6, 7, 8])])
    scorer.add_string("<bin_1><bin_2><bin_3><bin_4>", "ignored")
    with pytest.raises(ValueError, match=r"does not belong to the published sample \{'uniq_id': 'b'"):
        scorer.add_string("<bin_1><bin_2><bin_3><bin_4>", "ignored")
    assert scorer.score() == 1.0
    assert scorer.result_string().startswith("Acc@0.5 1.0000 (1/1 hits)")
    with pytest.raises(RuntimeError, match="only works with the refcoco task"):
        scorer.add_string("<bin_1><bin_2><bin_3><bin_4>", "ignored")


@pytest.mark.slow
@pytest.mark.parametrize("golden_name", ["refcoco.json", "refcoco_binconstrained.json"])
def test_golden_reproduced_by_fairseq_generate(tmp_path, ofa_dictionary, golden_name):
    golden = json.loads((GOLDEN / golden_name).read_text())
    subprocess.run(official_command_as_fairseq_generate(golden, REFCOCO_TSV, tmp_path), check=True, capture_output=True,
                   cwd=REPO)
    output = (tmp_path / "generate-test.txt").read_text()
    assert len(golden["samples"]) == 8
    assert_top_hypotheses_match(output, golden, ofa_dictionary)
    predicted = json.loads((tmp_path / "test_predict.json").read_text())
    for index, sample in enumerate(golden["samples"]):
        assert predicted[index]["uniq_id"] == sample["id"]
        np.testing.assert_allclose(predicted[index]["box"], sample["result"]["box"], atol=1.0)
    accuracy = float(re.search(r"Generate test with beam=5: Acc@0\.5 (\S+)", output).group(1))
    assert accuracy == golden["score_sum"] / golden["score_cnt"]


def test_validation_reports_official_acc():
    """`--eval-acc` validation: boxes from the eval_args beam search, hits of the golden (none here)."""
    eval_args = '{"beam": 5, "min_len": 4, "max_len_a": 0, "max_len_b": 4, "no_repeat_ngram_size": 3}'
    task = _refcoco_task(eval_acc=True, eval_args=eval_args)
    models, _ = checkpoint_utils.load_model_ensemble([str(OFFICIAL_MINI / "checkpoint.pt")], task=task)
    task.load_dataset("test")
    dataset = task.dataset("test")
    batch = dataset.collater([dataset[i] for i in range(3)])
    criterion = AdjustLabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=0.1)
    _, _, log = task.valid_step(batch, models[0], criterion)
    assert (log["_score_sum"], log["_score_cnt"]) == (0, 3)
    with metrics.aggregate(new_root=True) as aggregator:
        task.reduce_metrics([log, {"_score_sum": 1, "_score_cnt": 1}], criterion)
        assert aggregator.get_smoothed_values()["score"] == 0.25
