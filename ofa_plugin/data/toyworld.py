"""The toy world: random scenes of coloured shapes, written as official-layout OFA TSVs plus a vocabulary.

A `Scene` (background, 1-3 shapes with colours and pixel boxes) is the single source of truth; each task
split is a view of scenes (captions now; VQA, grounding and entailment can be derived from the same
scenes). Everything is deterministic given the seed, and fast enough to write thousands of rows in seconds.

    python -m ofa_plugin.data.toyworld --out DIR [--seed 1] [--num-train 2000] [--num-valid 100] ...

writes DIR/caption_{train,valid,test}.tsv and DIR/vocab/{spm.model,dict.txt}.
"""
from __future__ import annotations

import argparse
import base64
import collections
import io
import logging
import math
import random
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import sentencepiece as spm
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)

SHAPES = ("circle", "square", "rectangle", "triangle", "diamond")
OBJECT_COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 180),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}
BACKGROUND_COLOURS = {
    "white": (250, 250, 250),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
    "yellow": (240, 220, 40),
    "blue": (40, 80, 220),
    "green": (40, 170, 60),
    "pink": (250, 170, 200),
    "brown": (130, 80, 40),
}
GRAYSCALE_FRACTION = 0.1  # share of scenes saved as single-channel (mode L) JPEGs
MIN_GRAY_CONTRAST = 50  # luma gap between a shape and the background in grayscale scenes
JPEG_QUALITY = 90
VOCAB_SIZE = 400
_VOCAB_SEED = 1  # the vocabulary is the same for every world seed and size (see _vocabulary_corpus)
_VOCAB_SCENES = 3000
_SPLIT_CODES = {"train": 1, "valid": 2, "test": 3}  # first digit of image ids, unique across splits

# Fixed instruction prompts of the OFA tasks (reference §5.1); only used to train the vocabulary.
_PROMPTS = (
    " what does the image describe?",
    ' which region does the text " {0} " describe?',
    ' does the image describe " {0} "?',
    ' can image and text1 " {0} " imply text2 " {1} "?',
    " what is the complete image? caption: {0}",
    ' what is the summary of article " {0} "?',
    ' is the text " {0} " grammatically correct?',
    ' can text1 " {0} " imply text2 " {1} "?',
    ' does text1 " {0} " and text2 " {1} " have the same semantics?',
    ' does " {0} " contain the answer to question " {1} "?',
    ' is question " {0} " and question " {1} " equivalent?',
    ' is the sentiment of text " {0} " positive or negative?',
    " {0} object: {1}",
)
# Words later tasks (VQA answers, entailment, grounding, text pairs) are likely to need.
_EXTRA_WORDS = (
    "yes no maybe positive negative true false not only exactly more fewer than same different color colour "
    "shape shapes object objects picture photo image zero one two three four five left right top bottom "
    "middle center largest smallest biggest"
)


@dataclass(frozen=True)
class ToyObject:
    """One shape; `box` = (x0, y0, x1, y1) pixel edges, the shape covers x0 <= x < x1, y0 <= y < y1."""

    shape: str
    colour: str
    box: tuple[int, int, int, int]

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass(frozen=True)
class Scene:
    """A toy image: background colour, shapes ordered left to right, and whether it is stored as grayscale."""

    width: int
    height: int
    background: str
    objects: tuple[ToyObject, ...]
    grayscale: bool = False

    def size_word(self, obj: ToyObject) -> str:
        """'small', 'big' or '' from the shape's size relative to the image's shorter side."""
        x0, y0, x1, y1 = obj.box
        relative = math.sqrt((x1 - x0) * (y1 - y0)) / min(self.width, self.height)
        return "small" if relative < 0.28 else "big" if relative > 0.4 else ""


def _luma(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _object_size(rng: random.Random, shape: str, width: int, height: int) -> tuple[int, int]:
    side = rng.uniform(0.22, 0.45) * min(width, height)
    if shape != "rectangle":
        return round(side), round(side)
    horizontal = rng.random() < 0.5
    long_side = min(round(side * 1.6), (width if horizontal else height) - 2)
    short_side = round(side * 0.75)
    return (long_side, short_side) if horizontal else (short_side, long_side)


def _overlaps(box: tuple[int, int, int, int], others: Iterable[ToyObject], gap: int = 2) -> bool:
    """Whether `box` comes closer than `gap` pixels to any of the other shapes' boxes."""
    x0, y0, x1, y1 = box
    return any(x0 < ox1 + gap and ox0 < x1 + gap and y0 < oy1 + gap and oy0 < y1 + gap
               for ox0, oy0, ox1, oy1 in (o.box for o in others))


def _place_object(rng: random.Random, scene_size: tuple[int, int], colours: Sequence[str],
                  placed: list[ToyObject]) -> ToyObject | None:
    """A shape with a new (shape, colour) pair that does not overlap the others; None if it finds no room."""
    width, height = scene_size
    taken = {(o.shape, o.colour) for o in placed}
    shape, colour = rng.choice([(s, c) for s in SHAPES for c in colours if (s, c) not in taken])
    w, h = _object_size(rng, shape, width, height)
    for _ in range(30):
        x0, y0 = rng.randint(1, width - w - 1), rng.randint(1, height - h - 1)
        box = (x0, y0, x0 + w, y0 + h)
        if not _overlaps(box, placed):
            return ToyObject(shape, colour, box)
    return None


def draw_scene(rng: random.Random, size_range: tuple[int, int] = (48, 160)) -> Scene:
    """A random scene of 1-3 distinct shapes (at least one) on a plain background of random size."""
    width, height = rng.randint(*size_range), rng.randint(*size_range)
    background = rng.choice(sorted(BACKGROUND_COLOURS))
    grayscale = rng.random() < GRAYSCALE_FRACTION
    bg_luma = _luma(BACKGROUND_COLOURS[background])
    colours = [c for c, rgb in OBJECT_COLOURS.items() if c != background
               and (not grayscale or abs(_luma(rgb) - bg_luma) >= MIN_GRAY_CONTRAST)]
    placed: list[ToyObject] = []
    for _ in range(rng.randint(1, 3)):
        obj = _place_object(rng, (width, height), colours, placed)
        if obj is not None:
            placed.append(obj)
    objects = tuple(sorted(placed, key=lambda o: o.centre))
    return Scene(width, height, background, objects, grayscale)


def render_scene(scene: Scene) -> Image.Image:
    """The scene as a PIL image (mode RGB, or L for grayscale scenes)."""
    image = Image.new("RGB", (scene.width, scene.height), BACKGROUND_COLOURS[scene.background])
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        x1, y1 = x1 - 1, y1 - 1  # PIL's shape coordinates are inclusive
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        fill = OBJECT_COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif obj.shape in ("square", "rectangle"):
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif obj.shape == "triangle":
            draw.polygon([(x0, y1), (x1, y1), (cx, y0)], fill=fill)
        else:
            draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    return image.convert("L") if scene.grayscale else image


def encode_image_base64(image: Image.Image) -> str:
    """JPEG bytes as standard base64, the encoding of the official datasets ("/9j/...")."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _with_article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _noun(scene: Scene, obj: ToyObject, colour: bool = True, size: bool = False) -> str:
    """'a small red circle' style noun phrase; colours are left out of grayscale scenes."""
    words = [scene.size_word(obj) if size else "", obj.colour if colour and not scene.grayscale else "",
             obj.shape]
    return _with_article(" ".join(w for w in words if w))


def _background(scene: Scene) -> str:
    """Background colour name, or its brightness in a grayscale scene."""
    if not scene.grayscale:
        return scene.background
    luma = _luma(BACKGROUND_COLOURS[scene.background])
    return "dark" if luma < 90 else "light" if luma > 170 else "gray"


def _position(scene: Scene, obj: ToyObject) -> str:
    cx, cy = obj.centre
    col = ("left", "", "right")[min(int(3 * cx / scene.width), 2)]
    row = ("top", "", "bottom")[min(int(3 * cy / scene.height), 2)]
    if not col and not row:
        return "in the middle of the image"
    if not row:
        return f"on the {col}"
    return f"at the {row}" if not col else f"in the {row} {col} corner"


def _relation(a: ToyObject, b: ToyObject, scene: Scene) -> tuple[str, str]:
    """How `a` sits relative to `b`, and the converse."""
    dx = (b.centre[0] - a.centre[0]) / scene.width
    dy = (b.centre[1] - a.centre[1]) / scene.height
    if abs(dy) > abs(dx):
        return ("above", "below") if dy > 0 else ("below", "above")
    return ("to the left of", "to the right of") if dx > 0 else ("to the right of", "to the left of")


def _listing(nouns: Sequence[str]) -> str:
    return nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]


def caption_candidates(scene: Scene) -> list[str]:
    """All distinct true captions of the scene (at least 5), lowercase, in a fixed order."""
    objs = scene.objects
    on_bg = f"on {_with_article(_background(scene))} background"
    coloured = _listing([_noun(scene, o) for o in objs])
    plain = _listing([_noun(scene, o, colour=False) for o in objs])
    sized = _listing([_noun(scene, o, size=True) for o in objs])
    count = ("", "one shape", "two shapes", "three shapes")[len(objs)]
    captions = [f"{sized} {on_bg}", coloured, f"{plain} {on_bg}", f"{count} {on_bg}",
                f"{_with_article(_background(scene))} background with {coloured}"]
    if len(objs) == 1:
        captions += [f"there is {coloured} in the image", f"{coloured} {_position(scene, objs[0])}"]
    elif len(objs) == 2:
        relation, converse = _relation(objs[0], objs[1], scene)
        captions += [f"there is {coloured} in the image",
                     f"{_noun(scene, objs[0])} {relation} {_noun(scene, objs[1])}",
                     f"{_noun(scene, objs[1])} {converse} {_noun(scene, objs[0])}"]
    else:
        captions += ["there are three shapes in the image", f"{sized}"]
    if scene.grayscale:
        captions.append(f"a black and white picture of {plain}")
    return list(dict.fromkeys(captions))


def _caption_columns(scene: Scene, rng: random.Random, split: str, index: int) -> list[str]:
    """uniq-id, image-id, caption(s), objects, image: the official caption layout (reference §5.2)."""
    candidates = caption_candidates(scene)
    if split == "train":
        caption = rng.choice(candidates)
    else:
        caption = "&&".join(rng.sample(candidates, rng.randint(3, min(5, len(candidates)))))
    image_id = f"{_SPLIT_CODES[split]}{index + 1:07d}"
    objects = "&&".join(o.shape for o in scene.objects)
    return [str(index + 1), image_id, caption, objects, encode_image_base64(render_scene(scene))]


def caption_rows(split: str, num_rows: int, seed: int,
                 size_range: tuple[int, int] = (48, 160)) -> Iterator[tuple[Scene, list[str]]]:
    """The scenes and TSV columns of a caption split ("train": one caption per row, else 3-5 references)."""
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}, expected one of {sorted(_SPLIT_CODES)}")
    rng = random.Random(f"toyworld:{seed}:caption:{split}")
    for index in range(num_rows):
        scene = draw_scene(rng, size_range)
        yield scene, _caption_columns(scene, rng, split, index)


def write_caption_split(path: Path, split: str, num_rows: int, seed: int,
                        size_range: tuple[int, int]) -> Path:
    """Write `num_rows` caption rows (one image each) of `split` to `path`."""
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for _, columns in caption_rows(split, num_rows, seed, size_range):
            handle.write("\t".join(columns) + "\n")
    logger.info("wrote %d caption rows (%s) to %s", num_rows, split, path)
    return path


def _vocabulary_corpus() -> Iterator[str]:
    """All text of the world: captions of a fixed sample of scenes, the word lists, questions, prompts.

    It does not depend on the world's seed or size, so every toy world shares one vocabulary.
    """
    rng = random.Random(f"toyworld:{_VOCAB_SEED}:vocabulary")
    for _ in range(_VOCAB_SCENES):
        yield from caption_candidates(draw_scene(rng))
    yield " ".join([*SHAPES, *OBJECT_COLOURS, *BACKGROUND_COLOURS, "small big dark light", _EXTRA_WORDS])
    yield " ".join(string.ascii_letters + string.digits + string.punctuation)  # no ASCII text maps to <unk>
    for colour in OBJECT_COLOURS:
        for shape in SHAPES:
            yield f"what color is the {shape}? is there {_with_article(colour)} {shape}? yes"
            yield f"how many {shape}s are there? where is the {colour} {shape}? which shape is {colour}? no"
    for prompt in _PROMPTS:
        yield prompt.format("a red circle above a blue square", "two shapes on a white background")


def train_vocabulary(vocab_dir: Path, vocab_size: int = VOCAB_SIZE) -> tuple[Path, Path]:
    """Train the SentencePiece model on the world's text; write spm.model and a fairseq dict.txt.

    dict.txt lists every piece except SentencePiece's control and unknown pieces (fairseq's Dictionary
    adds <s>, <pad>, </s>, <unk> itself), in piece-id order, with its count in the corpus (at least 1).
    """
    corpus = list(_vocabulary_corpus())
    model = io.BytesIO()
    spm.set_random_generator_seed(_VOCAB_SEED)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, byte_fallback=False, hard_vocab_limit=False, num_threads=1,
        input_sentence_size=0, shuffle_input_sentence=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2,
    )
    vocab_dir.mkdir(parents=True, exist_ok=True)
    model_path, dict_path = vocab_dir / "spm.model", vocab_dir / "dict.txt"
    model_path.write_bytes(model.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    counts = collections.Counter(piece for text in corpus for piece in processor.encode(text, out_type=str))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not (processor.is_control(i) or processor.is_unknown(i))]
    dict_path.write_text("".join(f"{p} {max(counts[p], 1)}\n" for p in pieces), encoding="utf-8")
    logger.info("wrote SentencePiece model (%d pieces) to %s and %s", len(pieces), model_path, dict_path)
    return model_path, dict_path


def write_toy_world(out_dir: str | Path, seed: int = 1, num_train: int = 2000, num_valid: int = 100,
                    num_test: int = 100, image_size_range: tuple[int, int] = (48, 160)) -> dict[str, Path]:
    """Write the toy world's caption TSVs and vocabulary into `out_dir`; returns {name: path}.

    Image widths and heights are drawn from `image_size_range` (at least 32 px, room for three shapes).
    """
    low, high = image_size_range
    if not 32 <= low <= high:
        raise ValueError(f"image_size_range must satisfy 32 <= min <= max, got {image_size_range}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        f"caption_{split}": write_caption_split(out / f"caption_{split}.tsv", split, rows, seed, (low, high))
        for split, rows in (("train", num_train), ("valid", num_valid), ("test", num_test))
    }
    written["spm_model"], written["dict"] = train_vocabulary(out / "vocab")
    return written


def main(argv: Sequence[str] | None = None) -> None:
    """Command line entry point: `python -m ofa_plugin.data.toyworld --out DIR ...`."""
    parser = argparse.ArgumentParser(description="Write the OFA toy world (caption TSVs + vocabulary).")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=1, help="random seed; same seed, same bytes")
    parser.add_argument("--num-train", type=int, default=2000, help="training rows (one image each)")
    parser.add_argument("--num-valid", type=int, default=100, help="validation images")
    parser.add_argument("--num-test", type=int, default=100, help="test images")
    parser.add_argument("--image-size-range", type=int, nargs=2, default=(48, 160), metavar=("MIN", "MAX"),
                        help="range of image widths and heights in pixels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    write_toy_world(args.out, args.seed, args.num_train, args.num_valid, args.num_test,
                    tuple(args.image_size_range))


if __name__ == "__main__":
    main()
