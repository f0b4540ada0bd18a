"""Speed and memory of caption training and generation, eager vs SDPA attention, side by side.

What it measures: for one architecture (default ofa_tiny, official caption run-script flags, dropout 0.1)
on toy-world caption batches (default 8 images of 256 px), in fp32 on the CPU:
  - seconds per training update (forward + backward + Adam step, adjust_label_smoothed_cross_entropy,
    label smoothing 0.1), images/s and target tokens/s;
  - generation time per image (beam 5, max_len_b 16, no_repeat_ngram_size 3);
  - peak resident memory of each measurement, each run in a fresh process so peaks do not mix;
for each attention path, plus the eager/SDPA ratios (> 1: SDPA is faster or smaller).
Sized for: a 2-core CPU; ofa_tiny at batch 8 / 256 px takes a few minutes. Nothing is downloaded:
the data and the SentencePiece vocabulary come from a small toy world written to a temporary folder.

    python run_scripts/benchmark/benchmark_caption.py [--arch ofa_tiny] [--batch-size 8] [--image-size 256]
        [--updates 5] [--threads 2] [--paths eager,sdpa] [--json results.json]
"""
import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence

from ofa_plugin.data.toyworld import write_toy_world

logger = logging.getLogger("benchmark_caption")

WORKLOAD = Path(__file__).resolve().with_name("caption_workload.py")
PATHS = ("eager", "sdpa")
# (row label, key in the summary, format, ratio as eager/sdpa or sdpa/eager so that > 1 favours SDPA)
ROWS = (
    ("train s/update", "train_s_per_update", "{:.3f}", "eager/sdpa"),
    ("train s/update (min)", "train_s_per_update_min", "{:.3f}", "eager/sdpa"),
    ("train images/s", "train_images_per_s", "{:.2f}", "sdpa/eager"),
    ("train target tokens/s", "train_tokens_per_s", "{:.1f}", "sdpa/eager"),
    ("train peak RSS MiB", "train_peak_rss_mib", "{:.0f}", "eager/sdpa"),
    ("train RSS growth MiB", "train_rss_growth_mib", "{:.0f}", "eager/sdpa"),
    ("generate s/image", "generate_s_per_image", "{:.3f}", "eager/sdpa"),
    ("generate images/s", "generate_images_per_s", "{:.2f}", "sdpa/eager"),
    ("generate peak RSS MiB", "generate_peak_rss_mib", "{:.0f}", "eager/sdpa"),
    ("generate RSS growth MiB", "generate_rss_growth_mib", "{:.0f}", "eager/sdpa"),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--arch", default="ofa_tiny", help="model architecture (ofa_nano ... ofa_huge)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch")
    parser.add_argument("--image-size", type=int, default=256, help="side of the square input image (px)")
    parser.add_argument("--updates", type=int, default=5,
                        help="timed training updates, and timed generation batches, after one warm-up each")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads of every measurement")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated attention paths to compare")
    parser.add_argument("--json", type=Path, help="also write config, raw timings and summary to this file")
    args = parser.parse_args(argv)
    args.paths = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(args.paths) - set(PATHS))
    if unknown or not args.paths:
        parser.error(f"--paths must list some of {', '.join(PATHS)}; got {', '.join(unknown) or 'nothing'}")
    for name in ("batch_size", "image_size", "updates", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def run_measurement(world: Path, mode: str, path: str, args: argparse.Namespace, out_dir: Path) -> Dict:
    """Run one (mode, path) measurement in a fresh Python process and return its JSON result."""
    result = out_dir / f"{mode}_{path}.json"
    command = [
        sys.executable, str(WORKLOAD), "--world", str(world), "--mode", mode, "--path", path,
        "--result", str(result), "--arch", args.arch, "--batch-size", str(args.batch_size),
        "--image-size", str(args.image_size), "--iterations", str(args.updates), "--threads", str(args.threads),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    logger.info("measuring %s with %s attention", mode, path)
    completed = subprocess.run(command, env=env)
    if completed.returncode != 0:
        raise RuntimeError(f"measurement {mode}/{path} failed with exit code {completed.returncode}: "
                           f"{' '.join(command)}")
    return json.loads(result.read_text())


def summarize(train: Dict, generate: Dict) -> Dict[str, float]:
    """Per-path figures from the raw train and generate measurements."""
    train_mean = statistics.mean(train["seconds"])
    generate_mean = statistics.mean(generate["seconds"])
    return {
        "train_s_per_update": train_mean,
        "train_s_per_update_min": min(train["seconds"]),
        "train_images_per_s": train["batch_size"] / train_mean,
        "train_tokens_per_s": statistics.mean(train["target_tokens"]) / train_mean,
        "train_peak_rss_mib": train["peak_rss_mib"],
        "train_rss_growth_mib": train["peak_rss_mib"] - train["peak_rss_before_mib"],
        "generate_s_per_image": generate_mean / generate["batch_size"],
        "generate_images_per_s": generate["batch_size"] / generate_mean,
        "generate_peak_rss_mib": generate["peak_rss_mib"],
        "generate_rss_growth_mib": generate["peak_rss_mib"] - generate["peak_rss_before_mib"],
    }


def ratios(summary: Dict[str, Dict[str, float]]) -> Dict[str, Optional[float]]:
    """eager/SDPA ratios oriented so that > 1 means SDPA is faster or uses less memory (None: 0/0)."""
    out: Dict[str, Optional[float]] = {}
    for _, key, _, orientation in ROWS:
        eager, sdpa = summary["eager"][key], summary["sdpa"][key]
        numerator, denominator = (eager, sdpa) if orientation == "eager/sdpa" else (sdpa, eager)
        out[key] = numerator / denominator if denominator else None
    return out


def format_table(summary: Dict[str, Dict[str, float]], ratio: Dict[str, Optional[float]]) -> str:
    """The figures as a fixed-width text table: one row per figure, one column per path (+ ratio)."""
    paths = list(summary)
    header = ["figure", *paths] + (["ratio (>1: sdpa better)"] if ratio else [])
    lines = [header]
    for label, key, fmt, orientation in ROWS:
        row = [label, *(fmt.format(summary[p][key]) for p in paths)]
        if ratio:
            value = "n/a" if ratio[key] is None else f"{ratio[key]:.2f}"
            row.append(f"{value} ({orientation})")
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
                for line in lines]
    rendered.insert(1, "-" * len(rendered[0]))
    return "\n".join(rendered)


def environment() -> Dict[str, object]:
    """Machine facts that explain the figures (a busy machine inflates the times)."""
    return {"python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(name)s | %(message)s")
    env = environment()
    rows = args.batch_size * (args.updates + 1)
    raw: Dict[str, Dict[str, Dict]] = {}
    with tempfile.TemporaryDirectory(prefix="ofa_benchmark_") as tmp:
        world = Path(tmp) / "world"
        logger.info("writing a toy world (%d train and %d valid rows) to %s", rows, rows, world)
        write_toy_world(world, num_train=rows, num_valid=rows, num_test=1, tasks=["caption"])
        for path in args.paths:
            raw[path] = {mode: run_measurement(world, mode, path, args, Path(tmp)) for mode in ("train", "generate")}
    summary = {path: summarize(raw[path]["train"], raw[path]["generate"]) for path in args.paths}
    ratio = ratios(summary) if set(PATHS) <= set(args.paths) else {}
    config = {key: getattr(args, key) for key in ("arch", "batch_size", "image_size", "updates", "threads", "paths")}
    first = raw[args.paths[0]]["train"]
    print(f"caption benchmark: {args.arch}, batch {args.batch_size}, {args.image_size} px, fp32, "
          f"{args.threads} threads, {args.updates} timed steps after 1 warm-up, "
          f"{first['parameters'] / 1e6:.1f} M parameters, torch {first['torch']}, "
          f"load average at start {env['load_average_at_start']}")
    print(format_table(summary, ratio))
    if args.json:
        args.json.write_text(json.dumps({"config": config, "environment": env, "summary": summary,
                                         "ratios": ratio, "raw": raw}, indent=1))
        logger.info("wrote %s", args.json)


if __name__ == "__main__":
    main()
