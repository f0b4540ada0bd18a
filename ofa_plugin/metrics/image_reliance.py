"""How much a model looks at the image when it captions: its caption loss (nats per target token) on rows with
their own images, and on the same rows with every image moved one row down the batch (the last to the first).

    python -m ofa_plugin.metrics.image_reliance --path CHECKPOINT --data caption_train.tsv --bpe-dir VOCAB_DIR \\
        [--bpe sentencepiece] [--selected-cols 0,4,2] [--patch-image-size 32] [--rows 256] [--batch-size 32]

A model that ignores the image scores the same on both; the difference, the "image gain", grows as it learns
to read the image (toy captioning from scratch: 0.03 / 0.10 / 0.16 nats after 200 / 300 / 400 updates). Any
OFA checkpoint loads (captioning, pretraining or another task's); the rows are read as the caption task's
training samples (uniq-id, image, one caption), in file order.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable, Sequence, Tuple

import torch
from fairseq import checkpoint_utils, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from torch import nn

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@torch.no_grad()
def caption_losses(model: nn.Module, batches: Iterable[dict], pad: int) -> Tuple[float, float]:
    """(loss with the true images, loss with the images rolled by one row), in nats per target token."""
    sums, num_tokens = [0.0, 0.0], 0
    for batch in batches:
        net_input, target = batch["net_input"], batch["target"]
        keep = target.ne(pad)
        images = net_input["patch_images"]
        for which, patch_images in enumerate((images, images.roll(1, dims=0))):
            logits = model(**{**net_input, "patch_images": patch_images})[0]
            lprobs = torch.log_softmax(logits.float(), dim=-1)
            sums[which] -= lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)[keep].sum().item()
        num_tokens += int(keep.sum())
    if not num_tokens:
        raise ValueError("no target tokens to score")
    return sums[0] / num_tokens, sums[1] / num_tokens


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ofa_plugin.metrics.image_reliance",
                                     description="Caption loss with the true images and with shuffled images.")
    parser.add_argument("--path", required=True, help="OFA checkpoint")
    parser.add_argument("--data", required=True, help="caption TSV (official layout; one caption per row)")
    parser.add_argument("--bpe-dir", required=True, help="the vocabulary's folder")
    parser.add_argument("--bpe", default="sentencepiece", help="gpt2 for the official vocabulary")
    parser.add_argument("--selected-cols", default="0,4,2", help="uniq-id, image, caption columns")
    parser.add_argument("--patch-image-size", type=int, default=32)
    parser.add_argument("--rows", type=int, default=256, help="first rows of the file to score")
    parser.add_argument("--batch-size", type=int, default=32, help="rows per batch (images roll within a batch)")
    args = parser.parse_args(argv)
    if args.batch_size < 2:
        parser.error("--batch-size must be at least 2: images are exchanged between the rows of a batch")
    if not Path(args.path).is_file():
        parser.error(f"no checkpoint file {args.path}")
    fairseq_args = options.parse_args_and_arch(options.get_generation_parser(), [
        args.data, "--user-dir", str(PLUGIN_DIR), "--task", "caption", "--bpe", args.bpe, "--bpe-dir", args.bpe_dir,
        "--selected-cols", args.selected_cols, "--patch-image-size", str(args.patch_image_size), "--cpu"])
    task = tasks.setup_task(convert_namespace_to_omegaconf(fairseq_args).task)
    models, _ = checkpoint_utils.load_model_ensemble(
        [args.path], arg_overrides={"bpe_dir": args.bpe_dir, "patch_image_size": args.patch_image_size}, task=task)
    model = models[0].eval()
    task.load_dataset("train")
    dataset = task.datasets["train"]
    rows = min(args.rows, len(dataset))
    batches = (dataset.collater([dataset[i] for i in range(start, min(start + args.batch_size, rows))])
               for start in range(0, rows, args.batch_size))
    true_loss, rolled_loss = caption_losses(model, batches, task.tgt_dict.pad())
    print(f"caption loss on {rows} rows of {args.data}: {true_loss:.4f} with their images, {rolled_loss:.4f} "
          f"with the images rolled by one row; image gain {rolled_loss - true_loss:.4f} nats per token")


if __name__ == "__main__":
    main()
