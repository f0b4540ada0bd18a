"""The toy world's vocabulary: a SentencePiece model and a fairseq dict.txt trained on all the world's text
(the task prompts included), so that no text of any task maps to <unk>.
"""
from __future__ import annotations

import collections
import io
import logging
import random
import re
import string
from pathlib import Path
from typing import Iterator

import sentencepiece as spm

from .scene import ANSWER_COLOURS, SHAPES, draw_scene
from .tasks import LAYOUTS
from .vision import CLASS_NAMES, VQA_ANSWERS, caption_candidates

logger = logging.getLogger(__name__)

VOCAB_SIZE = 600
_VOCAB_SEED = 1  # the vocabulary is the same for every world seed and size (see _vocabulary_corpus)
_VOCAB_SCENES = 3000
_VOCAB_ROWS_PER_TASK = 300

# Fixed instruction prompts of the OFA tasks (reference §5.1); only used to train the vocabulary.
PROMPTS = (
    " what does the image describe?",
    ' which region does the text " {0} " describe?',
    ' does the image describe " {0} "?',
    ' can image and text1 " {0} " imply text2 " {1} "?',
    " what is the complete image? caption: {0}",
    " what are the texts on the image?",
    ' what is the summary of article " {0} "?',
    ' is the text " {0} " grammatically correct?',
    ' can text1 " {0} " imply text2 " {1} "?',
    ' does text1 " {0} " and text2 " {1} " have the same semantics?',
    ' does " {0} " contain the answer to question " {1} "?',
    ' is question " {0} " and question " {1} " equivalent?',
    ' is the sentiment of text " {0} " positive or negative?',
    " {0} object: {1}",
)
# Decoder targets of the closed-set tasks (snli_ve, GLUE) besides the VQA answers and class names.
_LABEL_WORDS = "yes no maybe positive negative"
_CONFIDENCE = re.compile(r"\d\.\d\|!\+")


def _model_text(field: str) -> str:
    """The words of a text column as the tasks feed them to the model: lowercase, '&&' lists and
    VQA confidences split off."""
    return " ".join(_CONFIDENCE.sub(" ", field).replace("&&", " ").lower().split())


def _vocabulary_corpus() -> Iterator[str]:
    """All text of the world: captions of a fixed sample of scenes, text columns of every task's rows,
    the word lists and the task prompts.

    It does not depend on the world's seed or size, so every toy world shares one vocabulary.
    """
    rng = random.Random(f"toyworld:{_VOCAB_SEED}:vocabulary")
    for _ in range(_VOCAB_SCENES):
        yield from caption_candidates(draw_scene(rng))
    for task, layout in LAYOUTS.items():
        task_rng = random.Random(f"toyworld:{_VOCAB_SEED}:vocabulary:{task}")
        for index in range(_VOCAB_ROWS_PER_TASK):
            _, columns = layout.build(task_rng, "train", index, (48, 160))
            if layout.image_col is not None:
                columns.insert(layout.image_col, "")
            yield from (_model_text(columns[col]) for col in layout.text_cols)
    yield " ".join([*SHAPES, *ANSWER_COLOURS, *VQA_ANSWERS, *CLASS_NAMES, "small big dark light", _LABEL_WORDS])
    yield " ".join(string.ascii_letters + string.digits + string.punctuation)  # no ASCII text maps to <unk>
    for prompt in PROMPTS:
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
