"""CLIP in image generation, with random weights: checkpoint loading (OpenAI state dict, JIT archive, open_clip
training checkpoint, wrong files), the similarities by hand, the image_gen task's CLIP score and re-ranking
(validation, generation, fairseq-generate's scorer), and the clip_scst_reward_criterion (a hand-computed
leave-one-out loss, and in-process SCST updates that raise the CLIP reward of a tiny model)."""
import argparse
import math

import numpy as np
import pytest
import torch
from fairseq import metrics
from omegaconf import OmegaConf
from PIL import Image

import ofa_plugin  # noqa: F401
from ofa_plugin.clip import ClipCheckpointError, ClipModel, TinyClipConfig, read_state_dict, write_random_checkpoint
from ofa_plugin.clip.loading import build_random_clip
from ofa_plugin.clip.scorer import ClipImagePrediction, ClipImageScorer
from ofa_plugin.data.toyworld import encode_image_base64
from ofa_plugin.metrics.published import PublishedScorerConfig, publish_predictions
from ofa_plugin.vqgan import build_model, save_checkpoint, write_config
from ofa_plugin.vqgan.train_toy import toy_config

from test_image_gen import TINY_MODEL, PaletteTokenizer, _criterion_cfg, _setup_task, small_world  # noqa: F401
from test_scst import _sequence_log_prob

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CAPTIONS = ["a red circle on a blue background", "a green square on a white background",
            "a yellow triangle on a black background"]


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory):
    return write_random_checkpoint(tmp_path_factory.mktemp("clip") / "clip.pt", seed=3)


@pytest.fixture(scope="module")
def clip(clip_file):
    return ClipModel.load(clip_file)


def _images():
    """A red and a blue square image and a non-square green one (preprocessing crops it)."""
    return [Image.new("RGB", (32, 32), (220, 40, 40)), Image.new("RGB", (48, 48), (40, 80, 220)),
            Image.new("RGB", (64, 40), (40, 170, 60))]


# ------------------------------------------------------------------------------------------ loading

def test_random_checkpoint_round_trip_in_every_format(clip_file, clip, tmp_path):
    reference = build_random_clip(TinyClipConfig(), seed=3)
    state = read_state_dict(clip_file)
    assert set(state) == set(reference.state_dict())
    assert clip.model.visual.conv1.weight.shape == (64, 3, 8, 8) and clip.model.context_length == 77
    assert clip.model.text_projection.shape == (64, 32)
    # OpenAI's loader passes the weights through fp16 (as in its released files)
    assert torch.equal(clip.model.visual.conv1.weight, reference.visual.conv1.weight.half().float())
    images, texts = _images(), CAPTIONS
    features = clip.image_features(images), clip.text_features(texts)
    again = ClipModel.load(clip_file)
    assert torch.equal(again.image_features(images), features[0])
    assert torch.equal(again.text_features(texts), features[1])
    assert features[0].shape == (3, 32) and torch.allclose(features[0].norm(dim=-1), torch.ones(3))
    assert (features[0][0] - features[0][1]).abs().max() > 1e-3  # different images, different features
    # the same weights as a JIT archive (OpenAI's file format) and as an open_clip training checkpoint
    jit = ClipModel.load(write_random_checkpoint(tmp_path / "jit.pt", seed=3, jit=True))
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}},
               tmp_path / "open_clip.pt")
    for other in (jit, ClipModel.load(tmp_path / "open_clip.pt")):
        torch.testing.assert_close(other.image_features(images), features[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(other.text_features(texts), features[1], rtol=0, atol=1e-6)


def test_wrong_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CLIP checkpoint not found: .*ViT-B-16.pt"):
        ClipModel.load(tmp_path / "ViT-B-16.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(ClipCheckpointError, match=r"notes.pt: not a CLIP checkpoint, cannot read it"):
        ClipModel.load(tmp_path / "notes.pt")
    torch.save({"weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ClipCheckpointError, match=r"other.pt: not a CLIP checkpoint \(no token_embedding.weight, "):
        ClipModel.load(tmp_path / "other.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ClipCheckpointError, match=r"list.pt: not a CLIP checkpoint \(holds a list"):
        ClipModel.load(tmp_path / "list.pt")
    state = build_random_clip().state_dict()
    state["visual.proj"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ClipCheckpointError, match=r"broken.pt: the CLIP weights do not fit the architecture"):
        ClipModel.load(tmp_path / "broken.pt")


def test_similarities_by_hand(clip):
    images = _images()
    pixels = torch.stack([clip.preprocess(image) for image in images])
    assert pixels.shape == (3, 3, 32, 32)
    with torch.no_grad():
        image_raw = clip.model.encode_image(pixels).numpy().astype(np.float64)
        text_raw = clip.model.encode_text(clip.tokenizer([CAPTIONS[1]])).numpy().astype(np.float64)[0]

    def cosine(a, b):
        return float(a @ b / math.sqrt(a @ a) / math.sqrt(b @ b))

    expected_ti = [cosine(row, text_raw) for row in image_raw]
    np.testing.assert_allclose(clip.ti_sim(images, CAPTIONS[1]).numpy(), expected_ti, atol=1e-6)
    expected_ii = [cosine(row, image_raw[2]) for row in image_raw]
    np.testing.assert_allclose(clip.ii_sim(images, images[2]).numpy(), expected_ii, atol=1e-6)
    assert clip.ii_sim(images, images[2])[2].item() == pytest.approx(1.0, abs=1e-6)


def test_random_checkpoint_command(tmp_path):
    from ofa_plugin.clip.__main__ import main

    main(["--write-random-checkpoint", str(tmp_path / "c.pt"), "--image-size", "64", "--seed", "1"])
    assert ClipModel.load(tmp_path / "c.pt").model.visual.positional_embedding.shape == (65, 64)  # 8 x 8 patches
    with pytest.raises(SystemExit):
        main(["--write-random-checkpoint", str(tmp_path / "d.pt"), "--image-size", "30"])


# --------------------------------------------------------------------------------- the image_gen task

@pytest.fixture(scope="module")
def clip_world(small_world, clip_file):
    """small_world (random 16-code VQGAN, 32 px) with the CLIP checkpoint and a 4-column TSV of 3 toy captions
    with reference images (uniq_id, image, caption, codes)."""
    rows = []
    for i, (caption, colour) in enumerate(zip(CAPTIONS, [(220, 40, 40), (40, 170, 60), (240, 220, 40)])):
        image = encode_image_base64(Image.new("RGB", (32, 32), colour))
        rows.append(f"{i}\t{image}\t{caption}\t{' '.join(str((3 * i + j) % 16) for j in range(16))}\n")
    (small_world / "with_images.tsv").write_text("".join(rows))
    return small_world


def _clip_task(world, clip_file, data="with_images.tsv", selected_cols="0,1,2,3", **options):
    return _setup_task(world, world / data, selected_cols=selected_cols, vqgan_config_path=str(world / "model.yaml"),
                       vqgan_model_path=str(world / "last.ckpt"), clip_model_path=str(clip_file),
                       eval_args='{"sampling": true, "sampling_topk": 8, "beam": 3}', **options)


def _tiny_model(task, seed=0):
    torch.manual_seed(seed)
    return task.build_model(argparse.Namespace(arch="ofa_nano", code_image_size=32, dropout=0.0, **TINY_MODEL))


def _valid_batch(task):
    task.load_dataset("valid")
    dataset = task.dataset("valid")
    return dataset.collater([dataset[i] for i in range(len(dataset))])


@pytest.mark.parametrize("method", ["ti_sim", "ii_sim"])
def test_validation_clip_score_is_the_best_similarity_per_caption(clip_world, clip_file, method):
    task = _clip_task(clip_world, clip_file, eval_clip_method=method, sampling_times=2)
    batch = _valid_batch(task)
    assert (method == "ii_sim") == ("reference_image" in batch)
    model = _tiny_model(task).eval()
    criterion = task.build_criterion(_criterion_cfg())
    torch.manual_seed(5)
    hypos, _ = task.generate_images(task.validation_generator, [model], batch)
    best = []
    for i, sample_hypos in enumerate(hypos):
        images = task.decode_images(sample_hypos)
        target = task.clip.text_features([CAPTIONS[i]]) if method == "ti_sim" else \
            task.clip.image_features([batch["reference_image"][i]])
        similarities = (task.clip.image_features(images) @ target[0]).tolist()
        assert len(similarities) == 6 and similarities == sorted(similarities, reverse=True)  # re-ranked
        best.append(similarities[0])
    torch.manual_seed(5)  # the same samples again
    with torch.no_grad():
        _, _, log = task.valid_step(batch, model, criterion)
    assert log["_clip_cnt"] == 3 and log["_clip_score_sum"] == pytest.approx(sum(best), abs=1e-6)
    with metrics.aggregate(new_root=True) as aggregated:
        task.reduce_metrics([log], criterion)
        values = aggregated.get_smoothed_values()
    assert values["score"] == round(sum(best) / 3, 4)
    assert values["toy_colour"] == round(log["_toy_colour_sum"] / log["_toy_cnt"], 4)


def test_generation_writes_clip_ranked_images_and_the_scorer_prints_the_clip_score(clip_world, clip_file, tmp_path):
    out = tmp_path / "images"
    task = _clip_task(clip_world, clip_file, gen_images_path=str(out))
    batch = _valid_batch(task)
    model = _tiny_model(task, seed=1).eval()
    scorer = ClipImageScorer(PublishedScorerConfig())
    hypos = task.inference_step(task.validation_generator, [model], batch)
    for i, sample_hypos in enumerate(hypos):
        similarities = task.clip.ti_sim(task.decode_images(sample_hypos), CAPTIONS[i]).tolist()
        assert similarities == sorted(similarities, reverse=True)
        top1 = np.asarray(Image.open(out / "top1" / f"{i}.png")).astype(int)
        # the best image (decoded in another batch: floats may round to the next uint8)
        assert np.abs(top1 - np.asarray(task.decode_images(sample_hypos[:1])[0])).max() <= 1
        scorer.add_string(task.target_text(batch["target"][i]), "")
    prediction = scorer.predictions[0]
    assert isinstance(prediction, ClipImagePrediction) and prediction.files[0] == "all_results/0_0.png"
    expected = np.mean([p.clip_scores[0] for p in scorer.predictions])
    assert scorer.score() == pytest.approx(expected)
    assert scorer.result_string().startswith(f"CLIP score {expected:.4f} (ti_sim, best image of each of 3 captions) "
                                             f"| toy check on 9 images: colour")
    assert prediction.record()["clip_scores"] == prediction.clip_scores
    publish_predictions([])  # nothing left queued for other scorers


def test_task_clip_errors(clip_world, clip_file, tmp_path):
    with pytest.raises(ValueError, match="--eval-clip-method must be one of ti_sim, ii_sim, got 'cosine'"):
        _clip_task(clip_world, clip_file, eval_clip_method="cosine")
    with pytest.raises(ValueError, match="--scst trains with a CLIP reward: give --clip-model-path"):
        _setup_task(clip_world, clip_world / "codes.tsv", scst=True)
    with pytest.raises(FileNotFoundError, match="CLIP checkpoint not found: .*missing.pt"):
        _clip_task(clip_world, tmp_path / "missing.pt")
    task = _clip_task(clip_world, clip_file, data="codes.tsv", selected_cols="0,2,1", eval_clip_method="ii_sim")
    task.load_dataset("valid")
    with pytest.raises(ValueError, match=r"codes.tsv: row 0: CLIP ii_sim needs the caption's reference image"):
        task.dataset("valid")[0]


# ------------------------------------------------------------------------------------------ the criterion

def _clip_criterion(task):
    return task.build_criterion(OmegaConf.create({"_name": "clip_scst_reward_criterion", "sentence_avg": False,
                                                  "ignore_prefix_size": 0, "constraint_range": None}))


def test_criterion_leave_one_out_loss_by_hand(clip_world, clip_file, monkeypatch):
    task = _clip_task(clip_world, clip_file, scst=True, scst_args='{"sampling": true, "beam": 3}')
    batch = _valid_batch(task)
    model = _tiny_model(task, seed=2).train()
    first, eos = task.code_range[0], task.tgt_dict.eos()
    codes = [[[(3 * i + k * j) % 16 for j in range(16)] for k in range(3)] for i in range(3)]  # 3 images per caption
    hypotheses = [[{"tokens": torch.tensor([first + c for c in image] + [eos])} for image in images]
                  for images in codes]
    monkeypatch.setattr(task, "scst_hypotheses", lambda m, s: hypotheses)
    criterion = _clip_criterion(task)
    loss, sample_size, log = criterion(model, batch)
    expected_loss, total_score = 0.0, 0.0
    for i, hyps in enumerate(hypotheses):
        images = task.decode_images(hyps)
        scores = [2.5 * float(task.clip.image_features([image])[0] @ task.clip.text_features([CAPTIONS[i]])[0])
                  for image in images]
        total_score += sum(scores)
        for j, hyp in enumerate(hyps):
            reward = scores[j] - (sum(scores) - scores[j]) / 2
            expected_loss -= reward * _sequence_log_prob(model, batch, i, hyp["tokens"])
    assert loss.item() == pytest.approx(expected_loss, rel=1e-4, abs=1e-6)
    assert log["score"] == pytest.approx(total_score, abs=1e-5)
    assert log["nsentences"] == 9 and sample_size == log["ntokens"] == 9 * 17
    with metrics.aggregate(new_root=True) as aggregated:
        criterion.reduce_metrics([log])
        values = aggregated.get_smoothed_values()
    assert values["clip_reward"] == pytest.approx(total_score / 9, abs=1e-3) and "score" not in values
    # the real generator: 3 samples of 16 codes + eos per caption
    model.eval()
    monkeypatch.undo()
    sampled = task.scst_hypotheses(model, batch)
    assert [len(h) for h in sampled] == [3, 3, 3] and {len(h["tokens"]) for s in sampled for h in s} == {17}


def test_criterion_needs_the_image_gen_task_with_clip(small_world):
    from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask

    task = _setup_task(small_world, small_world / "codes.tsv")
    with pytest.raises(ValueError, match="clip_scst_reward_criterion needs the image_gen task with --scst, --clip"):
        _clip_criterion(task)
    caption = CaptionTask.setup_task(CaptionConfig(data=str(small_world / "codes.tsv"), bpe="sentencepiece",
                                                   bpe_dir=str(small_world / "vocab"), scst=True))
    with pytest.raises(ValueError, match="clip_scst_reward_criterion needs the image_gen task"):
        _clip_criterion(caption)


# Random CLIP weights still define a reward: 2.5 cos(CLIP image, CLIP text). The images are the palette
# stand-in's colour mosaics (test_image_gen.PaletteTokenizer: distinct colours per code, so the reward varies
# between samples; a random VQGAN's blurry decodings vary much less). Measured (2 loaded cores): mean reward
# 0.38 -> 0.51 in 20 updates of Adam 1e-2, about 4 s.
SCST_UPDATES = 20


def test_scst_updates_raise_the_clip_reward(tmp_path, small_world, clip_file, monkeypatch):
    palette = PaletteTokenizer()
    config = toy_config(n_embed=palette.n_embed, ch=32, image_size=32)
    write_config(config, tmp_path / "model.yaml")
    save_checkpoint(build_model(config), tmp_path / "last.ckpt", 0)
    rows = [f"{i}\t{' '.join(str((i + j) % palette.n_embed) for j in range(16))}\t{caption}\n"
            for i, caption in enumerate(CAPTIONS)]
    (tmp_path / "codes.tsv").write_text("".join(rows))
    task = _setup_task(small_world, tmp_path / "codes.tsv", code_dict_size=palette.n_embed,
                       vqgan_config_path=str(tmp_path / "model.yaml"), vqgan_model_path=str(tmp_path / "last.ckpt"),
                       clip_model_path=str(clip_file), scst=True,
                       scst_args='{"sampling": true, "sampling_topk": 16, "beam": 5}')
    monkeypatch.setattr(task, "decode_images", lambda hypos: [
        palette.decode(task.hypothesis_codes(h["tokens"]).tolist(), 32) for h in hypos])
    task.load_dataset("train")
    dataset = task.dataset("train")
    batch = dataset.collater([dataset[i] for i in range(3)])
    model = _tiny_model(task)
    criterion = _clip_criterion(task)

    def mean_reward() -> float:
        torch.manual_seed(1)
        model.eval()
        scores = [s for _ in range(2) for s in criterion.hypothesis_scores(task.scst_hypotheses(model, batch), batch)]
        return float(np.mean(np.concatenate(scores)))

    before = mean_reward()
    weights = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(SCST_UPDATES):
        model.train()
        optimizer.zero_grad()
        loss, sample_size, _ = criterion(model, batch)
        (loss / sample_size).backward()
        optimizer.step()
    after = mean_reward()
    print(f"SCST mean CLIP reward {before:.3f} -> {after:.3f}")
    assert any(not torch.equal(w, p) for w, p in zip(weights, model.parameters()))
    assert after > before + 0.05
