"""The caption task: samples in the official layout, validation-time generation and metrics."""
import json

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils, metrics

import ofa_plugin  # noqa: F401
from ofa_plugin.data.text import caption_references
from ofa_plugin.data.tsv import TSVFile

from conftest import BPE_DIR, OFFICIAL_MINI

CAPTION_TSV = OFFICIAL_MINI / "data" / "caption_test.tsv"
EVAL_ARGS = '{"beam": 5, "max_len_b": 16, "no_repeat_ngram_size": 3}'


@pytest.fixture(scope="module")
def validating_task():
    overrides = {"bpe_dir": str(BPE_DIR), "data": str(CAPTION_TSV), "selected_cols": "1,4,2",
                 "eval_cider": True, "eval_bleu": True, "eval_args": EVAL_ARGS}
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(OFFICIAL_MINI / "checkpoint.pt")],
                                                                      arg_overrides=overrides)
    task.load_dataset("valid", task_cfg=cfg.task)
    return models[0].eval(), task


def test_training_sample_layout():
    """Official layout: source = bos + prompt + eos; target = caption + eos; prev = bos + caption."""
    from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask

    task = CaptionTask.setup_task(CaptionConfig(data=str(OFFICIAL_MINI / "data" / "caption_train.tsv"),
                                                bpe_dir=str(BPE_DIR), selected_cols="0,4,2", patch_image_size=256))
    task.load_dataset("train")
    dataset = task.dataset("train")
    batch = dataset.collater([dataset[i] for i in range(3)])
    arrays = np.load(OFFICIAL_MINI / "golden" / "teacher_forced.npz")
    for key in ("src_tokens", "src_lengths", "prev_output_tokens", "patch_images", "patch_masks"):
        assert torch.equal(batch["net_input"][key], torch.from_numpy(arrays[f"caption.net_input.{key}"])), key
    assert torch.equal(batch["target"], torch.from_numpy(arrays["caption.target"]))
    assert batch["ntokens"] == 28 and batch["nsentences"] == 3


def test_validation_generates_official_captions_and_logs_metrics(validating_task):
    model, task = validating_task
    dataset = task.dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(len(dataset))])
    golden = json.loads((OFFICIAL_MINI / "golden" / "caption.json").read_text())
    expected = [p["caption"] for p in golden["official_predict_json"]]
    with torch.no_grad():
        hypotheses, references = task.generate_captions(model, sample)
    assert hypotheses == expected
    tsv = TSVFile(CAPTION_TSV, "1,4,2")
    assert references == [caption_references(tsv[i][2]) for i in range(len(tsv))]

    criterion = task.build_criterion(_criterion_cfg())
    with torch.no_grad():
        _, _, log = task.valid_step(sample, model, criterion)
    assert log["_cider_cnt"] == len(expected)
    with metrics.aggregate(new_root=True) as aggregated:
        task.reduce_metrics([log], criterion)
        values = aggregated.get_smoothed_values()
    assert values["cider"] == pytest.approx(log["_cider_sum"] / len(expected), abs=1e-4)
    assert 0.0 <= values["bleu4"] <= 1.0


def _criterion_cfg():
    from omegaconf import OmegaConf

    from ofa_plugin.criterions.label_smoothed_cross_entropy import AdjustLabelSmoothedCrossEntropyConfig

    cfg = OmegaConf.structured(AdjustLabelSmoothedCrossEntropyConfig(sentence_avg=False))
    cfg._name = "adjust_label_smoothed_cross_entropy"
    return cfg


def test_every_row_is_batched_even_when_not_a_multiple_of_8():
    """fairseq's --required-batch-size-multiple (default 8) must not drop evaluation rows."""
    from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask

    task = CaptionTask.setup_task(CaptionConfig(data=str(CAPTION_TSV), bpe_dir=str(BPE_DIR), selected_cols="1,4,2"))
    task.load_dataset("test")
    iterator = task.get_batch_iterator(task.dataset("test"), max_sentences=3, required_batch_size_multiple=8)
    batches = list(iterator.next_epoch_itr(shuffle=False))
    assert [len(b["id"]) for b in batches] == [3, 3, 2]
    assert sorted(i for b in batches for i in b["id"].tolist()) == list(range(8))
    with pytest.raises(ValueError, match="--batch-size"):
        task.dataset("test").batch_by_size(np.arange(8), max_tokens=12000)
