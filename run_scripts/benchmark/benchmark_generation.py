"""Generation throughput of the closed-set and grounding tasks, side by side in one run.

What it measures: images per second of `task.inference_step` (what fairseq-generate calls per batch) for
  - vqa_gen all-candidate scoring (every candidate answer scored, --valid-batch-size 20 per forward),
  - vqa_gen trie-constrained beam search (beam 5, unnormalised, the question forced as decoder prompt),
  - refcoco box generation (beam 5, min/max length 4, no_repeat_ngram_size 3),
for one architecture (default ofa_tiny, official run-script model flags, random weights, eval mode) on
toy-world batches (default 8 images of 256 px), fp32 on the CPU, with the official task flags
(prompt_type prev_output, add_object). The toy VQA candidate set is small; `--num-candidates 3129`
pads it with synthetic answers to the size of the VQAv2 candidate list, which is what makes the
all-candidate mode expensive. Sized for a 2-core CPU: a few minutes with the defaults.

    python run_scripts/benchmark/benchmark_generation.py [--arch ofa_tiny] [--batch-size 8] [--image-size 256]
        [--batches 4] [--threads 2] [--num-candidates N] [--json results.json]
"""
import argparse
import json
import logging
import pickle
import statistics
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import torch
from fairseq.models import ARCH_MODEL_REGISTRY

sys.path.insert(0, str(Path(__file__).resolve().parent))
from caption_workload import batches, model_args  # noqa: E402  (sibling script)

from ofa_plugin.data.toyworld import write_toy_world  # noqa: E402
from ofa_plugin.tasks.refcoco import RefcocoConfig, RefcocoTask  # noqa: E402
from ofa_plugin.tasks.vqa_gen import VqaGenConfig, VqaGenTask  # noqa: E402

logger = logging.getLogger("benchmark_generation")
SEED = 1
REFCOCO_GENERATION = dict(beam=5, min_len=4, max_len_a=0, max_len_b=4, no_repeat_ngram_size=3)
VQA_BEAM_GENERATION = dict(beam=5, unnormalized=True, temperature=1.0)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--arch", default="ofa_tiny", help="model architecture (ofa_nano ... ofa_huge)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch")
    parser.add_argument("--image-size", type=int, default=256, help="side of the square input image (px)")
    parser.add_argument("--batches", type=int, default=4, help="timed batches per workload, after one warm-up")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--num-candidates", type=int, default=0,
                        help="pad the VQA candidate answers to this many with synthetic answers (0: toy set only)")
    parser.add_argument("--json", type=Path, help="also write config and raw timings to this file")
    return parser.parse_args(argv)


def candidate_file(world: Path, num_candidates: int) -> Path:
    """The toy answer->label pickle, padded with synthetic answers to `num_candidates` if asked."""
    answers = pickle.loads((world / "vqa_ans2label.pkl").read_bytes())
    if num_candidates <= len(answers):
        return world / "vqa_ans2label.pkl"
    padded = dict(answers)
    for index in range(num_candidates - len(answers)):
        padded[f"synthetic answer {index}"] = len(padded)
    path = world / f"vqa_ans2label_{num_candidates}.pkl"
    path.write_bytes(pickle.dumps(padded))
    return path


def vqa_task(world: Path, image_size: int, inference_type: str, ans2label: Path) -> VqaGenTask:
    cfg = VqaGenConfig(
        data=str(world / "vqa_valid.tsv"), selected_cols="0,5,2,3,4", bpe="sentencepiece",
        bpe_dir=str(world / "vocab"), patch_image_size=image_size, max_src_length=80, max_tgt_length=30,
        max_object_length=30, add_object=True, prompt_type="prev_output", ans2label_file=str(ans2label),
        valid_batch_size=20, val_inference_type=inference_type,
    )
    task = VqaGenTask.setup_task(cfg)
    task.load_dataset("valid")
    return task


def refcoco_task(world: Path, image_size: int) -> RefcocoTask:
    cfg = RefcocoConfig(
        data=str(world / "refcoco_valid.tsv"), selected_cols="0,4,2,3", bpe="sentencepiece",
        bpe_dir=str(world / "vocab"), patch_image_size=image_size, max_src_length=80, max_tgt_length=20,
    )
    task = RefcocoTask.setup_task(cfg)
    task.load_dataset("valid")
    return task


def time_inference(task, arch: str, generation: Dict, batch_size: int, count: int) -> List[float]:
    """Seconds of each batch's `inference_step` after one untimed warm-up batch."""
    torch.manual_seed(SEED)  # the same random weights for every workload
    model = ARCH_MODEL_REGISTRY[arch].build_model(model_args(arch), task).eval()
    generator = task.build_generator([model], Namespace(**generation))
    samples = batches(task, "valid", batch_size, count + 1)
    seconds = []
    with torch.no_grad():
        for sample in samples:
            start = time.perf_counter()
            task.inference_step(generator, [model], sample)
            seconds.append(time.perf_counter() - start)
    return seconds[1:]


def workloads(world: Path, args: argparse.Namespace) -> Dict[str, Callable[[], List[float]]]:
    ans2label = candidate_file(world, args.num_candidates)
    run = lambda task, generation: time_inference(task, args.arch, generation, args.batch_size, args.batches)  # noqa: E731
    return {
        "vqa_gen allcand": lambda: run(vqa_task(world, args.image_size, "allcand", ans2label), {}),
        "vqa_gen beamsearch": lambda: run(vqa_task(world, args.image_size, "beamsearch", ans2label),
                                          VQA_BEAM_GENERATION),
        "refcoco beam": lambda: run(refcoco_task(world, args.image_size), REFCOCO_GENERATION),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s")
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    logging.getLogger("ofa_plugin").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    results = {}
    with tempfile.TemporaryDirectory(prefix="ofa_benchmark_") as tmp:
        world = Path(tmp)
        num_rows = args.batch_size * (args.batches + 1)
        write_toy_world(world, seed=SEED, num_train=1, num_valid=num_rows, num_test=1,
                        image_size_range=(48, 160), tasks=["vqa", "refcoco"])
        args.candidates_used = len(pickle.loads(candidate_file(world, args.num_candidates).read_bytes()))
        for name, measure in workloads(world, args).items():
            logger.info("timing %s ...", name)
            results[name] = measure()
    print(format_table(results, args))
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": str(args.json)}, "seconds": results}, indent=1))


def format_table(results: Dict[str, List[float]], args: argparse.Namespace) -> str:
    """Images/s per workload (mean over batches) and the all-candidate / beam-search ratio."""
    lines = [f"{args.arch}, batch {args.batch_size}, {args.image_size} px, {args.threads} threads, "
             f"{args.batches} timed batches each, {args.candidates_used} VQA candidate answers",
             f"{'workload':<22}{'s/batch':>10}{'images/s':>10}"]
    rate = {}
    for name, seconds in results.items():
        mean = statistics.mean(seconds)
        rate[name] = args.batch_size / mean
        lines.append(f"{name:<22}{mean:>10.3f}{rate[name]:>10.2f}")
    lines.append(f"allcand / beamsearch images/s: {rate['vqa_gen allcand'] / rate['vqa_gen beamsearch']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
