"""The toy world's pretraining files (reference §10.2), in the official layouts:

    python -m ofa_plugin.data.toyworld.pretrain --out DIR [--seed 1] [--num-pairs 512] [--code-image-size 32]

writes DIR/vision_language_examples.tsv (caption, qa and visual_grounding rows, columns uniq-id, image, caption,
question, refs, gt_objects, dataset_name, type), DIR/text_examples.tsv (uniq-id, text: scene descriptions),
DIR/image_examples.tsv (uniq-id, 2S x 2S image, codes of its central S x S square), DIR/detection_examples.tsv
(uniq-id, image, "x0,y0,x1,y1,cat_id,cat_name&&..."), DIR/negative_sample/{all_captions.txt,object.txt,
type2ans.json} and the toy vocabulary DIR/vocab (the one every toy world shares, so a pretrained model
fine-tunes on any toy task).

The codes of image_examples.tsv are SYNTHETIC by default: each 8 x 8 pixel cell of the central square becomes
the code of its mean colour quantised to 4 levels per channel (codes 0-63), a stand-in that needs no VQGAN
and is learnable from the surrounding pixels. For real VQGAN codes, re-encode the file with a tokenizer:
    python -m ofa_plugin.vqgan.encode_tsv --vqgan-config-path M.yaml --vqgan-model-path M.ckpt \\
        --input DIR/image_examples.tsv --selected-cols 0,1 --layout image_examples --code-image-size S \\
        --output DIR/image_examples_vqgan.tsv
Fast and torch-free: PIL and NumPy only.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from .scene import SHAPES, Scene, draw_scene, encode_image_base64, render_scene
from .vision import VQA_ANSWERS, caption_candidates, referring_expressions, vqa_question
from .vocabulary import train_vocabulary

logger = logging.getLogger(__name__)

PAIR_TYPES = ("caption", "qa", "visual_grounding")
CODE_CELL = 8  # pixels per code side (a VQGAN f8 grid)
CODE_LEVELS = 4  # synthetic codes: levels per colour channel -> 64 codes
DATASET_NAME = "toyworld"
_COUNT_ANSWERS = ("0", "1", "2", "3")


def synthetic_codes(image: Image.Image, code_image_size: int) -> list[int]:
    """Codes of the central S x S square of a 2S x 2S image: per 8 x 8 cell (raster order) the mean colour,
    each channel quantised to 4 levels, as r * 16 + g * 4 + b."""
    start = code_image_size // 2
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)[start:start + code_image_size,
                                                                 start:start + code_image_size]
    cells = code_image_size // CODE_CELL
    means = pixels.reshape(cells, CODE_CELL, cells, CODE_CELL, 3).mean(axis=(1, 3))
    levels = np.minimum((means * CODE_LEVELS / 256).astype(int), CODE_LEVELS - 1)
    return (levels[..., 0] * CODE_LEVELS ** 2 + levels[..., 1] * CODE_LEVELS + levels[..., 2]).ravel().tolist()


def pair_type_cycle(pair_mix: Sequence[int]) -> list[str]:
    """The repeating sequence of row types for `pair_mix` = rows of (caption, qa, visual_grounding) per cycle,
    e.g. (4, 1, 1) -> 4 caption rows, 1 qa row, 1 grounding row, again and again."""
    if len(pair_mix) != len(PAIR_TYPES) or any(n < 0 for n in pair_mix) or not any(pair_mix):
        raise ValueError(f"pair mix must be {len(PAIR_TYPES)} non-negative row counts ({', '.join(PAIR_TYPES)}) "
                         f"with a positive sum, got {tuple(pair_mix)}")
    return [kind for kind, count in zip(PAIR_TYPES, pair_mix) for _ in range(count)]


def _pair_row(rng: random.Random, index: int, size_range: tuple[int, int], kind: str) -> list[str]:
    while True:
        scene = draw_scene(rng, size_range)
        named = [(obj, e) for obj in scene.objects if (e := referring_expressions(scene, obj))]
        if kind != "visual_grounding" or named:
            break
    caption, question, refs = rng.choice(caption_candidates(scene)), "", ""
    if kind == "qa":
        question, answers = vqa_question(scene, rng)
        refs = "&&".join(f"{conf:.1f}|!+{answer}" for answer, conf in answers.items())
    elif kind == "visual_grounding":
        obj, expressions = rng.choice(named)
        caption, refs = rng.choice(expressions), ",".join(str(float(v)) for v in obj.box)
    objects = "&&".join(dict.fromkeys(o.shape for o in scene.objects))
    return [f"p{index}", encode_image_base64(render_scene(scene)), caption, question, refs, objects, DATASET_NAME,
            kind]


def _text_row(rng: random.Random, index: int) -> list[str]:
    sentences = [rng.choice(caption_candidates(draw_scene(rng))) for _ in range(rng.randint(2, 4))]
    return [f"t{index}", ". ".join(sentences) + "."]


def _square_scene(rng: random.Random, side: int) -> Scene:
    return draw_scene(rng, (side, side))


def _image_row(rng: random.Random, index: int, code_image_size: int) -> list[str]:
    image = render_scene(_square_scene(rng, 2 * code_image_size)).convert("RGB")
    codes = synthetic_codes(image, code_image_size)
    return [f"i{index}", encode_image_base64(image), " ".join(map(str, codes))]


def _detection_row(rng: random.Random, index: int, size_range: tuple[int, int]) -> list[str]:
    scene = draw_scene(rng, size_range)
    boxes = "&&".join(",".join([*(str(float(v)) for v in o.box), str(SHAPES.index(o.shape) + 1), o.shape])
                      for o in scene.objects)
    return [f"d{index}", encode_image_base64(render_scene(scene)), boxes]


def _rows(name: str, seed: int, count: int, build) -> Iterator[list[str]]:
    rng = random.Random(f"toyworld:{seed}:pretrain:{name}")
    for index in range(count):
        yield build(rng, index)


def _write_tsv(path: Path, rows: Iterator[list[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for columns in rows:
            handle.write("\t".join(columns) + "\n")
    return path


def type2ans() -> dict[str, list[str]]:
    """Answer types of the toy VQA answers; "other" holds them all (the fallback pool)."""
    colours = [a for a in VQA_ANSWERS if a not in SHAPES and a not in ("yes", "no", "left", "right")
               and not a.isdigit() and a not in ("zero", "one", "two", "three")]
    return {"yes/no": ["yes", "no"], "color": colours, "shape": list(SHAPES), "how many": list(_COUNT_ANSWERS),
            "other": list(VQA_ANSWERS)}


def _write_negatives(folder: Path, seed: int, num_captions: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"toyworld:{seed}:pretrain:negatives")
    captions = dict.fromkeys(c for _ in range(num_captions) for c in caption_candidates(draw_scene(rng)))
    (folder / "all_captions.txt").write_text("\n".join(captions) + "\n", encoding="utf-8")
    (folder / "object.txt").write_text("\n".join(SHAPES) + "\n", encoding="utf-8")
    (folder / "type2ans.json").write_text(json.dumps(type2ans(), indent=1) + "\n", encoding="utf-8")


def write_pretrain_world(out_dir: str | Path, seed: int = 1, num_pairs: int = 512, num_text: int | None = None,
                         num_image: int | None = None, num_detection: int | None = None, code_image_size: int = 32,
                         image_size_range: tuple[int, int] = (48, 160),
                         pair_mix: Sequence[int] = (1, 1, 1)) -> dict[str, Path]:
    """Write the pretraining files into `out_dir`; side files default to num_pairs / 4 rows each (the
    official mix reads 2 text, 1 image, 1 detection row per 8 pair rows); image-text row types follow
    `pair_mix` (see pair_type_cycle). Returns {name: path}."""
    if code_image_size % CODE_CELL or code_image_size <= 0:
        raise ValueError(f"code_image_size must be a positive multiple of {CODE_CELL}, got {code_image_size}")
    kinds = pair_type_cycle(pair_mix)
    side_rows = max(1, num_pairs // 4)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "vision_language": _write_tsv(out / "vision_language_examples.tsv", _rows(
            "pairs", seed, num_pairs, lambda rng, i: _pair_row(rng, i, image_size_range, kinds[i % len(kinds)]))),
        "text": _write_tsv(out / "text_examples.tsv", _rows("text", seed, num_text or side_rows, _text_row)),
        "image": _write_tsv(out / "image_examples.tsv", _rows(
            "image", seed, num_image or side_rows, lambda rng, i: _image_row(rng, i, code_image_size))),
        "detection": _write_tsv(out / "detection_examples.tsv", _rows(
            "detection", seed, num_detection or side_rows, lambda rng, i: _detection_row(rng, i, image_size_range))),
    }
    _write_negatives(out / "negative_sample", seed, 300)
    written["negative_sample"] = out / "negative_sample"
    if not (out / "vocab" / "dict.txt").is_file():
        train_vocabulary(out / "vocab")
    written["vocab"] = out / "vocab"
    logger.info("wrote the toy pretraining files (%d image-text rows) to %s", num_pairs, out)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ofa_plugin.data.toyworld.pretrain",
                                     description="Write the toy world's pretraining TSVs (official layouts).")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same bytes")
    parser.add_argument("--num-pairs", type=int, default=512, help="image-text rows (side files: a quarter each)")
    parser.add_argument("--code-image-size", type=int, default=32,
                        help="S: image examples are 2S x 2S with (S/8)^2 codes (official 128)")
    parser.add_argument("--image-size-range", type=int, nargs=2, default=(48, 160), metavar=("MIN", "MAX"))
    parser.add_argument("--pair-mix", type=int, nargs=3, default=(1, 1, 1), metavar=("CAPTION", "QA", "GROUNDING"),
                        help="image-text rows of each type per repeating cycle (default 1 1 1: a third each)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    write_pretrain_world(args.out, args.seed, args.num_pairs, code_image_size=args.code_image_size,
                         image_size_range=tuple(args.image_size_range), pair_mix=args.pair_mix)


if __name__ == "__main__":
    main()
