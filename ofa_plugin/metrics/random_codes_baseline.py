"""The trivial baseline of toy text-to-image generation: random image codes, whatever the caption says.

    python -m ofa_plugin.metrics.random_codes_baseline --vqgan-config-path DIR/model.yaml \
        --vqgan-model-path DIR/last.ckpt --captions coco_vqgan_test.tsv [--samples 4] [--seed 1]

draws `samples` code grids per caption, uniform over the tokenizer's codes (one torch generator seeded
with `seed`, so the figures repeat), decodes them with the same VQGAN as the model's codes and checks
them against the caption like the model's images (ofa_plugin.metrics.toy_image_check). Prints
"Random-codes baseline: toy check on N images: colour x, shape y, both z".
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

import torch

from ofa_plugin.data.tsv import TSVFile
from ofa_plugin.metrics.toy_image_check import ToyCheckSummary, check_image, summarise
from ofa_plugin.vqgan import GumbelVQ, decode_codes, load_vqgan

CAPTION_COLUMN = 2  # coco_vqgan TSVs: uniq-id, codes, caption
BATCH = 64  # code grids decoded at once


def random_codes_baseline(vqgan: GumbelVQ, captions: Sequence[str], size: int, samples: int = 4,
                          seed: int = 1) -> ToyCheckSummary:
    """The toy check of `samples` images of uniformly random codes per caption, `size` x `size` pixels."""
    generator = torch.Generator().manual_seed(seed)
    num_codes = (size // vqgan.factor) ** 2
    prompts = [caption for caption in captions for _ in range(samples)]
    checks = []
    for start in range(0, len(prompts), BATCH):
        batch = prompts[start:start + BATCH]
        codes = torch.randint(0, vqgan.n_embed, (len(batch), num_codes), generator=generator)
        checks += [check_image(image, caption) for image, caption in zip(decode_codes(vqgan, codes, size), batch)]
    return summarise(checks)


def read_captions(path: str | os.PathLike, column: int = CAPTION_COLUMN) -> list[str]:
    """The caption column of a TSV, in row order."""
    tsv = TSVFile(path, [column])
    return [tsv[row][0] for row in range(len(tsv))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vqgan-config-path", required=True, help="VQGAN config YAML (taming format)")
    parser.add_argument("--vqgan-model-path", required=True, help="VQGAN checkpoint (taming format)")
    parser.add_argument("--captions", required=True, help="TSV with the test captions")
    parser.add_argument("--caption-col", type=int, default=CAPTION_COLUMN, help="caption column of the TSV")
    parser.add_argument("--code-image-size", type=int, default=64, help="side of the decoded images (pixels)")
    parser.add_argument("--samples", type=int, default=4, help="images per caption")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random codes")
    args = parser.parse_args(argv)
    vqgan = load_vqgan(args.vqgan_config_path, args.vqgan_model_path)
    summary = random_codes_baseline(vqgan, read_captions(args.captions, args.caption_col), args.code_image_size,
                                    args.samples, args.seed)
    print(f"Random-codes baseline: {summary}")


if __name__ == "__main__":
    main()
