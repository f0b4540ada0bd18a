"""Write a tiny random-weight CLIP checkpoint for tests and toy runs:

    python -m ofa_plugin.clip --write-random-checkpoint OUT.pt [--jit] [--seed 0] [--image-size 32]

OUT.pt is an OpenAI-format state dict (with --jit: a TorchScript archive, the format of OpenAI's ViT-B-16.pt)
of a ViT CLIP with 64-wide, 2-layer image and text towers, 8 px patches and OpenAI's text vocabulary
(about 13 MB); `--clip-model-path OUT.pt` reads it like the official file.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from .loading import TinyClipConfig, write_random_checkpoint


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ofa_plugin.clip", description=__doc__.split("\n")[0])
    parser.add_argument("--write-random-checkpoint", required=True, metavar="OUT.pt", help="file to write")
    parser.add_argument("--jit", action="store_true", help="write a TorchScript archive instead of a state dict")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    parser.add_argument("--image-size", type=int, default=TinyClipConfig.image_size,
                        help="input image side (a multiple of the 8 px patch)")
    args = parser.parse_args(argv)
    if args.image_size <= 0 or args.image_size % TinyClipConfig.patch_size:
        parser.error(f"--image-size must be a positive multiple of {TinyClipConfig.patch_size}")
    path = write_random_checkpoint(args.write_random_checkpoint, TinyClipConfig(image_size=args.image_size),
                                  seed=args.seed, jit=args.jit)
    print(f"random CLIP written to {path}")


if __name__ == "__main__":
    main()
