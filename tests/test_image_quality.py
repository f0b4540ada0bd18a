"""Inception Score and FID (`ofa_plugin.metrics.image_quality`): the formulas against hand computations, the
commands end to end on toy PNGs with random Inception weights (checked against torch-fidelity's own folder
pipeline), and the errors for bad input."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id
from PIL import Image

from ofa_plugin.metrics import image_quality as iq
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def hand_frechet(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
    a = rng.normal(size=(dim, 2 * dim))
    return a @ a.T / (2 * dim)


def test_frechet_distance_matches_hand_computation():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = random_covariance(rng, 5), random_covariance(rng, 5)
    assert iq.frechet_distance(iq.Statistics(mu1, s1), iq.Statistics(mu2, s2)) == pytest.approx(
        hand_frechet(mu1, s1, mu2, s2), rel=1e-9)
    # identical statistics: 0; shifted mean, same covariance: the squared shift
    assert iq.frechet_distance(iq.Statistics(mu1, s1), iq.Statistics(mu1, s1)) == pytest.approx(0.0, abs=1e-9)
    shift = np.array([3.0, 0.0, -4.0, 0.0, 0.0])
    assert iq.frechet_distance(iq.Statistics(mu1, s1), iq.Statistics(mu1 + shift, s1)) == pytest.approx(25.0, rel=1e-9)
    # diagonal covariances: sum (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    zero = np.zeros(3)
    assert iq.frechet_distance(iq.Statistics(zero, np.diag(a)), iq.Statistics(zero, np.diag(b))) == pytest.approx(5.0)


def test_frechet_distance_rejects_different_dimensions():
    with pytest.raises(ValueError, match="different dimensions: 3 and 4"):
        iq.frechet_distance(iq.Statistics(np.zeros(3), np.eye(3)), iq.Statistics(np.zeros(4), np.eye(4)))


def hand_inception_score(p: np.ndarray) -> float:
    marginal = p.mean(0)
    return float(np.exp(np.mean((p * (np.log(p) - np.log(marginal))).sum(1))))


def test_inception_score_matches_hand_computation():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.25, 0.25]])
    mean, std = iq.score_from_logits(torch.tensor(np.log(p)), splits=1)
    assert mean == pytest.approx(hand_inception_score(p), rel=1e-9) and std == 0.0
    # uniform predictions: 1 in every split; K confident distinct classes: close to K
    assert iq.score_from_logits(torch.zeros(6, 10), splits=3) == pytest.approx((1.0, 0.0))
    confident = np.full((4, 4), 0.01) + np.eye(4) * 0.96
    assert iq.score_from_logits(torch.tensor(np.log(confident)), splits=1)[0] == pytest.approx(
        hand_inception_score(confident), rel=1e-9)
    # KL of every row to the uniform marginal: 0.97 ln(0.97 / 0.25) + 3 * 0.01 ln(0.01 / 0.25)
    assert hand_inception_score(confident) == pytest.approx(np.exp(0.97 * np.log(3.88) + 0.03 * np.log(0.04)))
    with pytest.raises(ValueError, match="10 splits needs at least 10 images, got 4"):
        iq.score_from_logits(torch.zeros(4, 3))


def write_pngs(folder: Path, colour: tuple, sizes: list, seed: int) -> Path:
    """Noisy images around one colour (one image per size)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i, size in enumerate(sizes):
        pixels = np.clip(np.array(colour) + rng.normal(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Random FID-layout weights written by the CLI, and two folders of five 64 px toy PNGs."""
    root = tmp_path_factory.mktemp("image_quality")
    iq.main(["random-weights", str(root / "fid.pth")])
    return {"weights": root / "fid.pth", "root": root,
            "red": write_pngs(root / "red", (200, 30, 30), [64] * 5, seed=0),
            "blue": write_pngs(root / "blue", (30, 30, 200), [64] * 5, seed=1)}


def cli(argv: list, capsys) -> str:
    """stdout of one in-process CLI call (the process stays: no ~7 s interpreter start per command)."""
    iq.main([str(arg) for arg in argv])
    return capsys.readouterr().out.strip()


def test_fid_end_to_end_and_statistics_round_trip(toy, capsys, caplog):
    red, blue, weights = toy["red"], toy["blue"], ["--weights", toy["weights"]]
    # result on stdout, progress logged (in process: a `python -m` start costs ~7 s of imports here)
    caplog.set_level(logging.INFO, logger=iq.__name__)
    iq.main(["stats", str(blue), str(toy["root"] / "blue.npz"), "--weights", str(toy["weights"])])
    assert capsys.readouterr().out.strip() == f"wrote FID statistics of {blue} to {toy['root'] / 'blue.npz'}"
    assert f"FID statistics of 5 images in {blue}" in caplog.text and "Inception features: 5/5 images" in caplog.text
    saved = iq.Statistics.load(toy["root"] / "blue.npz")
    assert saved.mu.shape == (2048,) and saved.sigma.shape == (2048, 2048)

    same = float(cli(["fid", red, red, *weights], capsys).removeprefix("FID: "))
    different = float(cli(["fid", red, toy["root"] / "blue.npz", *weights], capsys).removeprefix("FID: "))
    assert abs(same) < 1e-3 and different > 1.0
    # the saved statistics and the score are those of torch-fidelity's own folder pipeline (its file
    # listing, image reading and network)
    options = dict(cuda=False, save_cpu_ram=True, verbose=False, feature_extractor_weights_path=str(toy["weights"]))
    extractor = create_feature_extractor("inception-v3-compat", ["2048", "logits_unbiased"], **options)
    library = extract_featuresdict_from_input_id(1, extractor, input1=str(blue), **options)
    expected = iq.statistics_from_features(library["2048"])
    np.testing.assert_allclose(saved.mu, expected.mu, rtol=1e-6)
    np.testing.assert_allclose(saved.sigma, expected.sigma, rtol=1e-5, atol=1e-12)
    score = isc_features_to_metric(library["logits_unbiased"], splits=1)
    assert iq.inception_score(blue, toy["weights"], splits=1) == pytest.approx(
        (score["inception_score_mean"], score["inception_score_std"]), rel=1e-6)


def test_inception_score_of_both_layouts_and_mixed_sizes(toy, capsys, tmp_path):
    mixed = write_pngs(tmp_path / "mixed", (90, 160, 60), [64, 48, 64, 80], seed=2)
    pools, logits = iq.extract_features(iq.image_files(mixed), iq.load_inception(toy["weights"])[0], batch_size=3)
    assert pools.shape == (4, 2048) and logits.shape == (4, 1008)
    mean, std = iq.score_from_logits(logits, splits=2)
    assert cli(["is", mixed, "--splits", 2, "--weights", toy["weights"]], capsys) == \
        f"Inception Score: {mean:.4f} ± {std:.4f}"

    cli(["random-weights", tmp_path / "tv.pth", "--layout", "torchvision"], capsys)
    assert iq.load_inception(tmp_path / "tv.pth")[1] == "torchvision"
    mean, std = iq.inception_score(mixed, tmp_path / "tv.pth", splits=1)
    assert mean >= 1.0 - 1e-9 and std == 0.0  # KL >= 0
    with pytest.raises(ValueError, match="tv.pth: FID needs the FID Inception weights"):
        iq.fid(mixed, mixed, tmp_path / "tv.pth")


def cli_error(argv: list, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        iq.main([str(arg) for arg in argv])
    assert exit_info.value.code not in (0, None)
    return str(exit_info.value.code)


def test_bad_input_errors(toy, capsys, tmp_path):
    weights = ["--weights", toy["weights"]]
    missing = tmp_path / "pt_inception.pth"
    assert cli_error(["is", toy["red"], "--weights", missing], capsys) == \
        f"error: {missing}: no such Inception weights file (see the module doc for the official files)"
    assert "needs --weights" in cli_error(["fid", toy["red"], toy["blue"]], capsys)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    assert "garbage.pth: not a PyTorch state dict" in \
        cli_error(["is", toy["red"], "--weights", tmp_path / "garbage.pth"], capsys)
    torch.save({"fc.weight": torch.zeros(10, 2048)}, tmp_path / "other.pth")
    assert "other.pth: not an Inception v3 state dict" in \
        cli_error(["is", toy["red"], "--weights", tmp_path / "other.pth"], capsys)

    (tmp_path / "empty").mkdir()
    assert "empty: no images (.png, .jpg" in cli_error(["is", tmp_path / "empty", *weights], capsys)
    assert "nowhere: no such image folder" in \
        cli_error(["stats", tmp_path / "nowhere", tmp_path / "s.npz", *weights], capsys)
    bad = write_pngs(tmp_path / "bad", (0, 0, 0), [32, 32], seed=3)
    (bad / "1.png").write_bytes(b"\x89PNG truncated")
    assert f"{bad / '1.png'}: unreadable image" in cli_error(["fid", bad, toy["red"], *weights], capsys)
    assert "must end in .npz" in cli_error(["stats", toy["red"], tmp_path / "stats.txt", *weights], capsys)

    np.savez(tmp_path / "small.npz", mu=np.zeros(64), sigma=np.eye(64))
    assert "small.npz: statistics of dimension 64, FID uses the 2048 Inception pool features" in \
        cli_error(["fid", toy["red"], tmp_path / "small.npz", *weights], capsys)
    np.savez(tmp_path / "skew.npz", mu=np.zeros(4), sigma=np.eye(3))
    assert "skew.npz: statistics of wrong shape: mu (4,), sigma (3, 3)" in \
        cli_error(["fid", tmp_path / "skew.npz", tmp_path / "small.npz"], capsys)
    assert "gone.npz: no such statistics file" in \
        cli_error(["fid", tmp_path / "gone.npz", tmp_path / "small.npz"], capsys)
    np.savez(tmp_path / "keys.npz", mean=np.zeros(4))
    assert "keys.npz: statistics file without the arrays 'mu' and 'sigma'" in \
        cli_error(["fid", tmp_path / "keys.npz", tmp_path / "small.npz"], capsys)
