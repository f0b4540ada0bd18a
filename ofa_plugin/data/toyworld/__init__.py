"""The toy world: random scenes of coloured shapes, written as official-layout OFA TSVs plus a vocabulary.

A `Scene` (background, 1-3 shapes with colours and pixel boxes) is the single source of truth; every task
split is a view of scenes: captions, VQA questions with answer sets, referring expressions with boxes,
entailment hypotheses, class labels, and text-only pairs (Gigaword-style summaries, GLUE-style
classification) generated from scene descriptions, so that every label follows from the scene (or, for the
text tasks, from the text) and can be learnt. Everything is deterministic given the seed, each (task, split)
file has its own random stream (writing fewer tasks gives the same bytes for those written), and the whole
world (thousands of rows per task) is written in seconds.

    python -m ofa_plugin.data.toyworld --out DIR [--seed 1] [--num-train 2000] [--tasks caption vqa ...]

writes DIR/{task}_{train,valid,test}.tsv for every task in `TASKS`, DIR/vqa_ans2label.{pkl,json},
DIR/classify_class2label.pkl and DIR/vocab/{spm.model,dict.txt}. Column layouts and the official
`--selected-cols` of each file are listed in `OFFICIAL_SELECTED_COLS` (reference §5).

Modules: `scene` (scene model, drawing, rendering, JPEG/base64), `phrases` (what is true of a scene),
`claims` (entailment statements), `vision` and `text` (row builders of the image and text-only tasks),
`tasks` (task layouts and the rows of a split), `vocabulary` (SentencePiece), `writer` (the files),
`cli` (the command line).
"""
from .claims import ENTAILMENT_LABELS, hypothesis
from .cli import main
from .phrases import NUMBER_WORDS
from .scene import (ANSWER_COLOURS, BACKGROUND_COLOURS, GRAYSCALE_FRACTION, JPEG_QUALITY, MIN_GRAY_CONTRAST,
                    OBJECT_COLOURS, SHAPES, Scene, ToyObject, draw_scene, draw_single_object_scene,
                    encode_image_base64, render_scene)
from .tasks import OFFICIAL_SELECTED_COLS, TASKS, caption_rows, task_rows
from .vision import CLASS_NAMES, VQA_ANSWERS, caption_candidates, referring_expressions, vqa_question
from .vocabulary import VOCAB_SIZE, train_vocabulary
from .writer import write_split, write_toy_world

__all__ = [
    "ANSWER_COLOURS", "BACKGROUND_COLOURS", "CLASS_NAMES", "ENTAILMENT_LABELS", "GRAYSCALE_FRACTION",
    "JPEG_QUALITY", "MIN_GRAY_CONTRAST", "NUMBER_WORDS", "OBJECT_COLOURS", "OFFICIAL_SELECTED_COLS", "SHAPES",
    "TASKS", "VOCAB_SIZE", "VQA_ANSWERS", "Scene", "ToyObject", "caption_candidates", "caption_rows",
    "draw_scene", "draw_single_object_scene", "encode_image_base64", "hypothesis", "main",
    "referring_expressions", "render_scene", "task_rows", "train_vocabulary", "vqa_question",
    "write_split", "write_toy_world",
]
