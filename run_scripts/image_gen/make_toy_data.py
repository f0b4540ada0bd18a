"""Toy text-to-image data: one coloured shape on a plain background per image, captioned by its prompt.

    python run_scripts/image_gen/make_toy_data.py --out DIR [--num-train 4000] [--num-valid 32]
        [--num-test 64] [--image-size 64] [--seed 1]

writes DIR/toy_images_{train,valid,test}.tsv (uniq-id, image as base64 JPEG, caption "a red circle on a
blue background": `toy_caption` of ofa_plugin.metrics.toy_image_check, whose check reads the images back)
and the toy world's SentencePiece vocabulary DIR/vocab/{spm.model,dict.txt}. Shapes and colours are drawn
uniformly (ofa_plugin.data.toyworld: SHAPES x OBJECT_COLOURS, the background another colour); the shape is
big and near the centre (`centred_object_scene`). The image
TSVs become `coco_vqgan` code TSVs with `python -m ofa_plugin.vqgan.encode_tsv --code-image-size 64 ...`
(see run_scripts/image_gen/train_image_gen_toy.sh).
"""
from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import Iterator, Sequence

from ofa_plugin.data.toyworld import (BACKGROUND_COLOURS, OBJECT_COLOURS, SHAPES, Scene, ToyObject,
                                      encode_image_base64, render_scene, train_vocabulary)
from ofa_plugin.metrics.toy_image_check import toy_caption


def centred_object_scene(rng: random.Random, shape: str, colour: str, image_size: int) -> Scene:
    """One big shape (3/8 to 5/8 of the side; rectangles 3/5 as high) near the centre (jitter up to 1/16 of
    the side; the border stays background) on a background of another colour: a tiny model learns what to
    draw rather than where, and the object fills enough 8 x 8 code cells to survive the tokenizer."""
    width = rng.randint(image_size * 3 // 8, image_size * 5 // 8)
    height = width * 3 // 5 if shape == "rectangle" else width
    jitter = image_size // 16
    x0 = (image_size - width) // 2 + rng.randint(-jitter, jitter)
    y0 = (image_size - height) // 2 + rng.randint(-jitter, jitter)
    background = rng.choice([b for b in sorted(BACKGROUND_COLOURS) if b != colour])
    return Scene(image_size, image_size, background, (ToyObject(shape, colour, (x0, y0, x0 + width, y0 + height)),))


def toy_image_rows(split: str, count: int, image_size: int, seed: int) -> Iterator[list[str]]:
    """`count` rows (uniq-id, base64 JPEG, caption) of one split; each split has its own random stream."""
    rng = random.Random(f"toy-image-gen:{seed}:{split}")
    for index in range(count):
        scene = centred_object_scene(rng, rng.choice(SHAPES), rng.choice(sorted(OBJECT_COLOURS)), image_size)
        yield [f"{split}-{index}", encode_image_base64(render_scene(scene)), toy_caption(scene)]


def write_toy_images(out_dir: str | Path, counts: dict[str, int], image_size: int = 64, seed: int = 1,
                     vocabulary: bool = True) -> dict[str, Path]:
    """Write DIR/toy_images_{split}.tsv for every split of `counts` (and the vocabulary); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, count in counts.items():
        paths[split] = out / f"toy_images_{split}.tsv"
        with open(paths[split], "w", encoding="utf-8") as tsv:
            for row in toy_image_rows(split, count, image_size, seed):
                tsv.write("\t".join(row) + "\n")
    if vocabulary:
        paths["spm_model"], paths["dict"] = train_vocabulary(out / "vocab")
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--num-train", type=int, default=4000, help="training rows")
    parser.add_argument("--num-valid", type=int, default=32, help="validation rows")
    parser.add_argument("--num-test", type=int, default=64, help="test rows")
    parser.add_argument("--image-size", type=int, default=64, help="side of the square images (pixels)")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args(argv)
    counts = {"train": args.num_train, "valid": args.num_valid, "test": args.num_test}
    for name, path in write_toy_images(args.out, counts, args.image_size, args.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
