"""One benchmark measurement of the caption task, run in its own process so its memory peak is its own.

`benchmark_caption.py` starts this script once per (attention path, mode) and reads the JSON it writes:

    python caption_workload.py --world DIR --mode train|generate --path eager|sdpa --result OUT.json ...

`train` times forward + backward + Adam step with `adjust_label_smoothed_cross_entropy` (label
smoothing 0.1); `generate` times beam search (beam 5, max_len_b 16, no_repeat_ngram_size 3). Both
record the process's peak resident memory (getrusage's ru_maxrss).
"""
import argparse
import json
import logging
import resource
import sys
import time
from argparse import Namespace
from pathlib import Path
from typing import Dict, List, Sequence

import torch
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY

import ofa_plugin  # noqa: F401  (registers the model, task and criterion)
from ofa_plugin.criterions.label_smoothed_cross_entropy import AdjustLabelSmoothedCrossEntropyCriterion
from ofa_plugin.models import set_attention_impl
from ofa_plugin.tasks.caption import CaptionConfig, CaptionTask

logger = logging.getLogger(__name__)

# Model flags of the official caption run script (fixtures/state_dict_manifests/ofa_tiny.json,
# variants.caption_runscript_flags); --arch is chosen on our command line, and the task flags of that
# list (--max-src-length 80, --max-tgt-length 20, --num-bins 1000, --patch-image-size) go to the task.
RUNSCRIPT_MODEL_FLAGS = (
    "--encoder-normalize-before", "--decoder-normalize-before", "--share-decoder-input-output-embed",
    "--share-all-embeddings", "--layernorm-embedding", "--patch-layernorm-embedding",
    "--code-layernorm-embedding", "--resnet-drop-path-rate=0.0", "--encoder-drop-path-rate=0.1",
    "--decoder-drop-path-rate=0.1", "--dropout=0.1", "--attention-dropout=0.0",
    "--freeze-encoder-embedding", "--freeze-decoder-embedding", "--add-type-embedding", "--scale-attn",
    "--scale-fc", "--scale-heads", "--disable-entangle",
)
LABEL_SMOOTHING = 0.1
GENERATION_ARGS = dict(beam=5, max_len_b=16, max_len_a=0, min_len=1, no_repeat_ngram_size=3)
MODES = ("train", "generate")
SEED = 1


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB.

    torch allocates outside Python's allocator, so tracemalloc misses it; psutil only reports the
    current RSS on Linux, so the kernel's high-water mark (ru_maxrss) is the one source of the peak.
    """
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max_rss / 2**20 if sys.platform == "darwin" else max_rss / 2**10  # bytes on macOS, KiB on Linux


def model_args(arch: str, flags: Sequence[str] = RUNSCRIPT_MODEL_FLAGS) -> Namespace:
    """Model args as fairseq parses `--arch ARCH FLAGS`: the given flags set, the arch fills the rest."""
    if arch not in ARCH_CONFIG_REGISTRY:
        raise ValueError(f"unknown --arch {arch!r}; registered: {', '.join(sorted(ARCH_CONFIG_REGISTRY))}")
    args = Namespace(arch=arch)
    for flag in flags:
        name, _, value = flag.lstrip("-").partition("=")
        setattr(args, name.replace("-", "_"), float(value) if value else True)
    ARCH_CONFIG_REGISTRY[arch](args)
    return args


def build_task(world: Path, image_size: int) -> CaptionTask:
    """The caption task over the toy world's TSVs and SentencePiece vocabulary."""
    cfg = CaptionConfig(
        data=f"{world / 'caption_train.tsv'},{world / 'caption_valid.tsv'}", selected_cols="0,4,2",
        bpe="sentencepiece", bpe_dir=str(world / "vocab"), patch_image_size=image_size,
        max_src_length=80, max_tgt_length=20,
    )
    task = CaptionTask.setup_task(cfg)
    for split in ("train", "valid"):
        task.load_dataset(split)
    return task


def batches(task: CaptionTask, split: str, batch_size: int, count: int) -> List[Dict]:
    """`count` consecutive batches of the split, collated in advance so loading is not timed."""
    dataset = task.dataset(split)
    if len(dataset) < batch_size * count:
        raise ValueError(f"{split} split has {len(dataset)} rows, need {batch_size * count}")
    return [dataset.collater([dataset[i] for i in range(start, start + batch_size)])
            for start in range(0, batch_size * count, batch_size)]


def time_training(task: CaptionTask, model, samples: Sequence[Dict]) -> List[float]:
    """Seconds of each update (forward, backward, Adam step); the first sample is an untimed warm-up."""
    criterion = AdjustLabelSmoothedCrossEntropyCriterion(task, sentence_avg=False, label_smoothing=LABEL_SMOOTHING)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    seconds = []
    for update, sample in enumerate(samples):
        start = time.perf_counter()
        loss, sample_size, _ = criterion(model, sample, update_num=update)
        (loss / sample_size).backward()  # fairseq's trainer also divides the gradients by sample_size
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
        logger.info("update %d/%d: %.3f s, loss %.3f", update, len(samples) - 1, seconds[-1],
                    loss.item() / sample_size)
    return seconds[1:]


def time_generation(task: CaptionTask, model, samples: Sequence[Dict]) -> List[float]:
    """Seconds of each batch's beam search; the first sample is an untimed warm-up."""
    generator = task.build_generator([model], Namespace(**GENERATION_ARGS))
    model.eval()
    seconds = []
    for index, sample in enumerate(samples):
        start = time.perf_counter()
        hypos = task.inference_step(generator, [model], sample)
        seconds.append(time.perf_counter() - start)
        logger.info("batch %d/%d: %.3f s, first hypothesis %d tokens", index, len(samples) - 1,
                    seconds[-1], len(hypos[0][0]["tokens"]))
    return seconds[1:]


def measure(world: Path, mode: str, path: str, arch: str, batch_size: int, image_size: int,
            iterations: int, threads: int) -> Dict[str, object]:
    """Build task, model and batches, then time `iterations` steps of `mode` after one warm-up."""
    torch.set_num_threads(threads)
    torch.manual_seed(SEED)  # the same weights and dropout masks for both attention paths
    task = build_task(world, image_size)
    model = ARCH_MODEL_REGISTRY[arch].build_model(model_args(arch), task)
    set_attention_impl(model, path)
    split = "train" if mode == "train" else "valid"
    samples = batches(task, split, batch_size, iterations + 1)
    rss_before = peak_rss_mib()
    timer = time_training if mode == "train" else time_generation
    seconds = timer(task, model, samples)
    return {
        "mode": mode, "path": path, "seconds": seconds, "batch_size": batch_size,
        "target_tokens": [int(s["ntokens"]) for s in samples[1:]],
        "peak_rss_mib": peak_rss_mib(), "peak_rss_before_mib": rss_before,
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--world", type=Path, required=True, help="toy world folder (TSVs + vocab/)")
    parser.add_argument("--mode", choices=MODES, required=True, help="what to time")
    parser.add_argument("--path", choices=("eager", "sdpa"), required=True, help="attention path")
    parser.add_argument("--result", type=Path, required=True, help="JSON file to write the figures to")
    parser.add_argument("--arch", default="ofa_tiny", help="model architecture")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch")
    parser.add_argument("--image-size", type=int, default=256, help="side of the square input image")
    parser.add_argument("--iterations", type=int, default=5, help="timed steps after one warm-up")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s | {args.mode}/{args.path} | %(message)s")
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    logging.getLogger("ofa_plugin").setLevel(logging.WARNING)
    result = measure(args.world, args.mode, args.path, args.arch, args.batch_size, args.image_size,
                     args.iterations, args.threads)
    args.result.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
