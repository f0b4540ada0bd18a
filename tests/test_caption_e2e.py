"""End to end: captioning trains with the stock `fairseq-train`, is scored by `fairseq-generate`, and SCST
(stage 2) raises its CIDEr.

The session fixture `caption_stage1` (conftest) writes a toy world, trains `ofa_nano` from scratch with
run_scripts/caption/train_caption_toy.sh (CPU, 800 updates) and captions the test images with
evaluate_caption_toy.sh, which reloads the checkpoint through the safe checkpoint loader (no opt-out in
the environment). The training loss must fall by a clear margin, and the model's CIDEr must beat the
most-frequent-caption baseline by a clear margin, i.e. the model must actually look at the images. Then
run_scripts/caption/train_caption_scst_toy.sh continues the model for 40 SCST updates (CIDEr-D reward of
the 5 beam captions, leave-one-out baseline) and the test CIDEr must rise. About 7 minutes on one CPU
thread (stage 1: 800 updates at ~0.4 s; SCST: 40 updates at ~2.5 s). The baseline's own unit tests are fast.
"""
import re
from pathlib import Path

import pytest

from ofa_plugin.metrics.baseline import most_frequent_caption_baseline
from ofa_plugin.metrics.caption import caption_scores

from conftest import REPO, caption_cider, cli_env, run_cli

# What the tests demand. Measured with this recipe and world (Python tokenisation): CIDEr 0.86 against a
# baseline of 0.52 after 400 updates, 1.41 after 800; the demo's 1200 updates on 10000 images 1.92.
# SCST (40 updates) from the 800-update model: 1.63 on this world's stage-2 file, the mean training reward
# rising from 1.05 to 1.3-1.45; 1.54 / 1.47 / 1.43 on another 1500-image stage-2 file with --seed 1 (the
# script's) / 2 / 3. From the 400-update model, which misnames colours, SCST moved CIDEr by chance (0.91 /
# 0.85 / 0.82 from 0.86). Re-evaluating an unchanged model moves CIDEr by ~0.02.
MIN_LOSS_RATIO = 4.0  # first logged training loss / last logged one
MIN_CIDER_GAIN = 0.2  # model CIDEr - baseline CIDEr
MIN_SCST_GAIN = 0.02  # stage-2 CIDEr - stage-1 CIDEr

TRAIN_LOSS = re.compile(r"\| train_inner \|.* loss=([0-9.]+),.* num_updates=(\d+),")
SCST_REWARD = re.compile(r"\| train_inner \|.* score=([0-9.]+),.* num_updates=(\d+),")


def _write_tsv(path: Path, captions: list) -> Path:
    """Caption-layout rows (uniq-id, image-id, caption, objects, image) with the given captions."""
    path.write_text("".join(f"{i}\t{100 + i}\t{caption}\tcircle\timg\n" for i, caption in enumerate(captions)))
    return path


def test_baseline_predicts_the_most_frequent_training_caption(tmp_path: Path) -> None:
    train = _write_tsv(tmp_path / "train.tsv", ["A blue square", "a red circle.", "a red  circle", "a green circle"])
    test = _write_tsv(tmp_path / "test.tsv", ["a red circle&&a circle", "a blue square&&a square."])
    result = most_frequent_caption_baseline(train, test, tokenizer="python")
    assert (result.caption, result.count, result.num_train) == ("a red circle", 2, 4)
    expected = caption_scores({0: "a red circle", 1: "a red circle"},
                              {0: ["a red circle", "a circle"], 1: ["a blue square", "a square"]}, tokenizer="python")
    assert result.scores == expected


def test_baseline_names_file_and_row_of_an_empty_caption(tmp_path: Path) -> None:
    train = _write_tsv(tmp_path / "train.tsv", ["a red circle", "..."])
    test = _write_tsv(tmp_path / "test.tsv", ["a red circle"])
    with pytest.raises(ValueError, match=r"train\.tsv: row 1: empty caption"):
        most_frequent_caption_baseline(train, test)


@pytest.mark.slow
def test_caption_trains_and_beats_baseline(caption_stage1, record_property) -> None:
    losses = [(int(updates), float(loss)) for loss, updates in TRAIN_LOSS.findall(caption_stage1.train_log)]
    assert losses and losses[-1][0] == caption_stage1.updates, \
        f"no training loss logged up to update {caption_stage1.updates}: {losses}"
    (_, first_loss), (_, last_loss) = losses[0], losses[-1]
    record_property("train_loss_first", first_loss)
    record_property("train_loss_last", last_loss)

    cider, scored = caption_cider(caption_stage1.generate_log)
    world = caption_stage1.world
    baseline = most_frequent_caption_baseline(world / "caption_train.tsv", world / "caption_test.tsv")
    baseline_cider = baseline.scores["CIDEr"]
    record_property("cider", cider)
    record_property("baseline_cider", baseline_cider)
    summary = (f"training loss {first_loss:.3f} -> {last_loss:.3f}; CIDEr {cider:.4f} vs most-frequent-caption "
               f"baseline {baseline_cider:.4f} ({baseline.caption!r})")
    print(summary)

    assert scored == caption_stage1.num_test, \
        f"fairseq-generate scored {scored} of {caption_stage1.num_test} test images; {summary}"
    assert first_loss > MIN_LOSS_RATIO * last_loss, f"training loss did not fall clearly: {summary}"
    assert cider > baseline_cider + MIN_CIDER_GAIN, f"CIDEr does not beat the baseline clearly: {summary}"


@pytest.mark.slow
def test_scst_raises_cider_over_stage1(caption_stage1, tmp_path: Path, record_property) -> None:
    scripts, env, world = REPO / "run_scripts" / "caption", cli_env(), caption_stage1.world
    save = tmp_path / "stage2"
    train_log = run_cli(["bash", scripts / "train_caption_scst_toy.sh", world, caption_stage1.checkpoint, save],
                        tmp_path / "train.log", env)
    generate_log = run_cli(["bash", scripts / "evaluate_caption_toy.sh", world, save / "checkpoint_last.pt"],
                           tmp_path / "generate.log", env)
    rewards = [(int(updates), float(score)) for score, updates in SCST_REWARD.findall(train_log)]
    stage1_cider, _ = caption_cider(caption_stage1.generate_log)
    stage2_cider, scored = caption_cider(generate_log)
    record_property("stage1_cider", stage1_cider)
    record_property("stage2_cider", stage2_cider)
    summary = (f"test CIDEr {stage1_cider:.4f} after stage 1 ({caption_stage1.updates} updates) -> {stage2_cider:.4f} "
               f"after SCST; mean training reward (CIDEr-D of the beam captions) per 5 updates: {rewards}")
    print(summary)

    assert rewards and rewards[-1][0] == 40, f"no SCST reward logged up to update 40: {summary}"
    assert scored == caption_stage1.num_test, f"scored {scored} of {caption_stage1.num_test} test images; {summary}"
    assert (rewards[-1][1] + rewards[-2][1]) / 2 > rewards[0][1], f"the training reward did not rise: {summary}"
    assert stage2_cider > stage1_cider + MIN_SCST_GAIN, f"SCST did not raise CIDEr: {summary}"
