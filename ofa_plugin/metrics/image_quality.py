"""Inception Score and FID of image folders, with an Inception v3 checkpoint the user supplies (no downloads).

Reference §8 (image_gen): the generated `top1/` images are scored afterwards with the Inception Score and
with the FID against precomputed statistics `gt_stat.npz` of the real images. The network and the
statistics come from torch-fidelity (`FeatureExtractorInceptionV3`, `isc_features_to_metric`,
`fid_features_to_statistics`, `fid_statistics_to_metric`), which takes a local weights file; this module
adds reading image folders with clear errors, the `.npz` statistics files and the command line.

Two checkpoint layouts are accepted, told apart by the classifier size:
- "fid" (fc with 1008 classes): the TensorFlow Inception of 2015-12-05 used by FID, i.e. pytorch-fid's
  `pt_inception-2015-12-05-6726825d.pth` or torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`
  (same tensor names). FID needs this layout; the Inception Score from it is the original (TF) one
  (softmax of the pool features times the fc weight, without its bias, as torch-fidelity computes it).
  torch-fidelity feeds the network as TensorFlow's FID code does (TF1 bilinear resize to 299, (x - 128) / 128);
  pytorch-fid, which made the official `gt_stat.npz`, resizes with torch's bilinear and scales x / 127.5 - 1.
  FID against that file is therefore slightly off; statistics of the real images written by `stats` use the
  same pipeline on both sides.
- "torchvision" (fc with 1000 classes): torchvision's ImageNet `inception_v3_google-0cc3c7bd.pth`, the
  network of the official OFA `inception_score.py` (pixels scaled to [-1, 1], bilinear resize to 299,
  softmax of the logits). Inception Score only: its pool features are not the ones FID statistics use.

Statistics files hold `mu` (D,) and `sigma` (D, D), as pytorch-fid writes them (official `gt_stat.npz`),
so real-image statistics are computed once (`stats`) and reused.

    python -m ofa_plugin.metrics.image_quality is FOLDER --weights W.pth [--splits 10]
    python -m ofa_plugin.metrics.image_quality fid FOLDER_OR_NPZ FOLDER_OR_NPZ --weights W.pth
    python -m ofa_plugin.metrics.image_quality stats FOLDER OUT.npz --weights W.pth
    python -m ofa_plugin.metrics.image_quality random-weights OUT.pth [--layout fid|torchvision]

`random-weights` writes a randomly initialised checkpoint of either layout (variance-preserving init, so
features neither vanish nor overflow through the ~95 convolutions): it tests the whole pipeline without the real
files and gives meaningless scores.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

from ofa_plugin.data.images import to_rgb

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FEATURE_DIM = 2048  # Inception pool features, the FID space
LAYOUT_CLASSES = {"fid": 1008, "torchvision": 1000}
INPUT_SIZE = 299
IS_SPLITS = 10  # the usual Inception Score protocol (torch-fidelity's default)
IS_SHUFFLE_SEED = 2020  # torch-fidelity's: images are shuffled before the splits

# (B, 3, H, W) uint8 images -> (pool features (B, 2048), class logits (B, C))
InceptionNet = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Statistics:
    """Mean and covariance of the Inception pool features of a set of images (float64)."""

    mu: np.ndarray
    sigma: np.ndarray

    def save(self, path: str | Path) -> None:
        """Write `mu` and `sigma` to an .npz file (pytorch-fid's layout)."""
        np.savez(path, mu=self.mu, sigma=self.sigma)

    @classmethod
    def load(cls, path: str | Path) -> "Statistics":
        """Read an .npz statistics file; ValueError naming the file if it is not (mu (D,), sigma (D, D))."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such statistics file")
        try:
            with np.load(path) as data:
                mu, sigma = data["mu"], data["sigma"]
        except KeyError as err:
            raise ValueError(f"{path}: statistics file without the arrays 'mu' and 'sigma' ({err})") from err
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not an .npz statistics file ({err})") from err
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f"{path}: statistics of wrong shape: mu {mu.shape}, sigma {sigma.shape} "
                             f"(expected ({FEATURE_DIM},) and ({FEATURE_DIM}, {FEATURE_DIM}))")
        return cls(mu.astype(np.float64), sigma.astype(np.float64))


def image_files(folder: str | Path) -> list[Path]:
    """The image files directly in `folder`, sorted; error if the folder is missing or holds no image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such image folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def read_image(path: Path) -> torch.Tensor:
    """(3, H, W) uint8 RGB tensor of an image file; ValueError naming the file if it cannot be decoded."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(to_rgb(image))  # the TSV reader's conversion (16-bit grey keeps its high byte)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: unreadable image ({err})") from err
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def read_state_dict(weights: str | Path) -> Tuple[Dict[str, torch.Tensor], str]:
    """The Inception state dict of a weights file (loaded with `weights_only=True`) and its layout name."""
    if not Path(weights).is_file():
        raise FileNotFoundError(f"{weights}: no such Inception weights file "
                                "(see the module doc for the official files)")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or non-tensor file
        raise ValueError(f"{weights}: not a PyTorch state dict ({type(err).__name__}: {err})") from err
    fc = state.get("fc.weight") if isinstance(state, dict) else None
    layouts = {classes: name for name, classes in LAYOUT_CLASSES.items()}
    if fc is None or fc.dim() != 2 or fc.shape[1] != FEATURE_DIM or fc.shape[0] not in layouts:
        raise ValueError(f"{weights}: not an Inception v3 state dict with a 1008-class (FID) or 1000-class "
                         f"(torchvision ImageNet) 'fc.weight'")
    return state, layouts[fc.shape[0]]


def _fid_inception(weights: str | Path, device: str) -> InceptionNet:
    """torch-fidelity's TF-compatible Inception (resize and scaling inside) with the file's weights.

    torch-fidelity loads the file again with `weights_only=False`; `read_state_dict` has checked it is a plain
    state dict first."""
    extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                            feature_extractor_weights_path=str(weights)).to(device)
    return lambda images: extractor(images.to(device))


def _torchvision_inception(state: Dict[str, torch.Tensor], device: str) -> InceptionNet:
    """torchvision's Inception v3 as the official OFA inception_score.py feeds it: [-1, 1] pixels at 299 px."""
    model = torchvision.models.inception_v3(weights=None, aux_logits=any(k.startswith("AuxLogits.") for k in state),
                                            init_weights=False, transform_input=False)
    model.load_state_dict(state)
    classifier, model.fc = model.fc, torch.nn.Identity()
    model.eval().requires_grad_(False).to(device)
    classifier.to(device)

    def forward(images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        pixels = images.to(device, torch.float32) / 255.0
        pixels = F.interpolate(pixels, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        pool = model(pixels * 2.0 - 1.0)
        return pool, classifier(pool)

    return forward


def load_inception(weights: str | Path, device: str = "cpu") -> Tuple[InceptionNet, str]:
    """The Inception network of a weights file and its layout ("fid" or "torchvision")."""
    state, layout = read_state_dict(weights)
    if layout == "fid":
        return _fid_inception(weights, device), layout
    return _torchvision_inception(state, device), layout


@torch.no_grad()
def extract_features(files: Sequence[Path], net: InceptionNet,
                     batch_size: int = 50) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pool features (N, 2048) and logits (N, C) of image files, logging progress per batch.

    A batch of equal-sized images runs as one tensor; images of different sizes run one by one (the
    network resizes each to 299 px itself)."""
    pools, logits = [], []
    for start in range(0, len(files), batch_size):
        images = [read_image(path) for path in files[start:start + batch_size]]
        batches = [torch.stack(images)] if len({im.shape for im in images}) == 1 else [im[None] for im in images]
        for batch in batches:
            pool, logit = net(batch)
            pools.append(pool.float().cpu())
            logits.append(logit.float().cpu())
        logger.info("Inception features: %d/%d images", start + len(images), len(files))
    return torch.cat(pools), torch.cat(logits)


def score_from_logits(logits: torch.Tensor, splits: int = IS_SPLITS) -> Tuple[float, float]:
    """Inception Score (mean, std over `splits` chunks): exp(mean_x KL(p(y|x) || p(y))) with p = softmax(logits)."""
    if logits.shape[0] < splits:
        raise ValueError(f"the Inception Score with {splits} splits needs at least {splits} images, "
                         f"got {logits.shape[0]}")
    score = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=IS_SHUFFLE_SEED)
    return score[KEY_METRIC_ISC_MEAN], score[KEY_METRIC_ISC_STD]


def statistics_from_features(features: torch.Tensor) -> Statistics:
    """Mean and covariance (float64) of (N, D) features."""
    if features.shape[0] < 2:
        raise ValueError(f"FID statistics need at least 2 images, got {features.shape[0]}")
    stats = fid_features_to_statistics(features.double().cpu())
    return Statistics(stats["mu"], stats["sigma"])


def frechet_distance(a: Statistics, b: Statistics) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two Gaussians (torch-fidelity's computation)."""
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"statistics of different dimensions: {a.mu.shape[0]} and {b.mu.shape[0]}")
    return fid_statistics_to_metric({"mu": a.mu, "sigma": a.sigma}, {"mu": b.mu, "sigma": b.sigma},
                                    verbose=False)[KEY_METRIC_FID]


def inception_score(folder: str | Path, weights: Optional[str | Path], splits: int = IS_SPLITS, batch_size: int = 50,
                    device: str = "cpu") -> Tuple[float, float]:
    """Inception Score (mean, std over splits) of the images in `folder`."""
    files = image_files(folder)
    if weights is None:
        raise ValueError("the Inception Score needs --weights (an Inception weights file)")
    net, layout = load_inception(weights, device)
    logger.info("Inception Score of %d images in %s (%s weights %s, %d splits)",
                len(files), folder, layout, weights, splits)
    return score_from_logits(extract_features(files, net, batch_size)[1], splits)


def fid_network(weights: Optional[str | Path], device: str = "cpu") -> InceptionNet:
    """The Inception network of a FID weights file ("fid" layout; torchvision's ImageNet weights are refused)."""
    if weights is None:
        raise ValueError("FID of an image folder needs --weights (the FID Inception weights file)")
    net, layout = load_inception(weights, device)
    if layout != "fid":
        raise ValueError(f"{weights}: FID needs the FID Inception weights (1008 classes, e.g. "
                         f"pt_inception-2015-12-05-6726825d.pth), not torchvision's ImageNet Inception")
    return net


def folder_statistics(folder: str | Path, net: InceptionNet, batch_size: int = 50) -> Statistics:
    """FID statistics of the images in `folder` (`net` from `fid_network`)."""
    files = image_files(folder)
    logger.info("FID statistics of %d images in %s", len(files), folder)
    return statistics_from_features(extract_features(files, net, batch_size)[0])


def read_fid_statistics(path: str | Path) -> Statistics:
    """Statistics of an .npz file, checked to be of the Inception pool features' dimension."""
    stats = Statistics.load(path)
    if stats.mu.shape[0] != FEATURE_DIM:
        raise ValueError(f"{path}: statistics of dimension {stats.mu.shape[0]}, "
                         f"FID uses the {FEATURE_DIM} Inception pool features")
    return stats


def fid(folder_a: str | Path, folder_or_npz_b: str | Path, weights: Optional[str | Path], batch_size: int = 50,
        device: str = "cpu") -> float:
    """FID between two image sets, each an image folder or an .npz statistics file (no weights needed for two)."""
    sources = [Path(folder_a), Path(folder_or_npz_b)]
    net = None if all(source.suffix == ".npz" for source in sources) else fid_network(weights, device)
    stats = [read_fid_statistics(s) if s.suffix == ".npz" else folder_statistics(s, net, batch_size) for s in sources]
    return frechet_distance(*stats)


def random_weights(layout: str = "fid", seed: int = 0) -> Dict[str, torch.Tensor]:
    """A random Inception v3 state dict in the layout `load_inception` reads (for tests, not for scores).

    Convolutions get He-normal weights and BatchNorms identity statistics, so activations keep their
    scale through the network (torchvision's init, meant to be trained, blows up or vanishes there)."""
    generator = torch.Generator().manual_seed(seed)
    model = torchvision.models.inception_v3(weights=None, num_classes=LAYOUT_CLASSES[layout],
                                            aux_logits=layout == "torchvision", init_weights=False)
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = module.weight[0].numel()
            gain = 2.0 if isinstance(module, torch.nn.Conv2d) else 1.0
            with torch.no_grad():
                module.weight.normal_(0.0, math.sqrt(gain / fan_in), generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
    return model.state_dict()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ofa_plugin.metrics.image_quality",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_options = argparse.ArgumentParser(add_help=False)
    run_options.add_argument("--weights", help="Inception v3 weights file (.pth state dict, see the module doc)")
    run_options.add_argument("--batch-size", type=int, default=50, help="images per forward pass")
    run_options.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    score = commands.add_parser("is", parents=[run_options], help="Inception Score of an image folder")
    score.add_argument("folder", help="image folder (e.g. gen_images_path/top1)")
    score.add_argument("--splits", type=int, default=IS_SPLITS, help="chunks for the mean/std of the score")
    distance = commands.add_parser("fid", parents=[run_options], help="FID between two image folders / .npz files")
    distance.add_argument("a", help="image folder or .npz statistics")
    distance.add_argument("b", help="image folder or .npz statistics (e.g. gt_stat.npz)")
    stats = commands.add_parser("stats", parents=[run_options], help="write FID statistics of an image folder")
    stats.add_argument("folder", help="image folder (e.g. the real test images)")
    stats.add_argument("output", help=".npz file to write (mu, sigma)")
    random = commands.add_parser("random-weights", help="write a random Inception checkpoint (tests only)")
    random.add_argument("output", help=".pth file to write")
    random.add_argument("--layout", choices=sorted(LAYOUT_CLASSES), default="fid", help="checkpoint layout")
    random.add_argument("--seed", type=int, default=0, help="random seed")
    return parser


def _run(args: argparse.Namespace) -> str:
    """Run one command; the result line to print."""
    if args.command == "random-weights":
        torch.save(random_weights(args.layout, args.seed), args.output)
        return f"wrote random {args.layout} Inception weights to {args.output}"
    if args.command == "is":
        mean, std = inception_score(args.folder, args.weights, args.splits, args.batch_size, args.device)
        return f"Inception Score: {mean:.4f} ± {std:.4f}"
    if args.command == "fid":
        return f"FID: {fid(args.a, args.b, args.weights, args.batch_size, args.device):.4f}"
    if not args.output.endswith(".npz"):
        raise ValueError(f"{args.output}: the statistics file name must end in .npz")
    folder_statistics(args.folder, fid_network(args.weights, args.device), args.batch_size).save(args.output)
    return f"wrote FID statistics of {args.folder} to {args.output}"


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: `python -m ofa_plugin.metrics.image_quality {is,fid,stats,random-weights} ...`."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    try:
        print(_run(args))
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
