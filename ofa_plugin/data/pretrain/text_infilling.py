"""Text infilling examples from `text_examples.tsv` rows (uniq-id, text), reference §10.3."""
import random
from dataclasses import dataclass
from typing import Any, Dict, List

import torch
from fairseq.data import Dictionary

from ofa_plugin.vocab import TextTokenizer, encode_text

from .examples import EXTRA_CONF, blank_image, make_example
from .infilling import SpanMasker

# ' what is the complete text of " "?' with the masked text between the quotes; the two halves are encoded
# separately, which gives the official tokens (the official code splits the whole prompt's tokens before the
# last two, ' "' and '?', with the GPT-2 BPE).
INFILLING_PROMPT_HEAD = ' what is the complete text of "'
INFILLING_PROMPT_TAIL = ' "?'
TEXT_ENCODE_LENGTH = 512  # tokens encoded from the text ...
TEXT_KEEP_LAST = 256  # ... of which the last ones are kept


@dataclass
class TextInfillingBuilder:
    """(uniq_id, text) -> example: source = prompt around the span-masked text, target = the text."""

    dictionary: Dictionary
    tokenizer: TextTokenizer
    masker: SpanMasker
    image_size: int  # side of the blank image (2 x code_image_size, like the other extra examples)
    tsv_path: str

    def __call__(self, columns: List[str], row: int, rng: random.Random) -> Dict[str, Any]:
        if len(columns) != 2:
            raise ValueError(f"{self.tsv_path}: row {row}: text rows need 2 selected columns (uniq_id, text), "
                             f"got {len(columns)}")
        uniq_id, text = columns
        if not text.strip():
            raise ValueError(f"{self.tsv_path}: row {row}: empty text")
        tokens = encode_text(self.dictionary, self.tokenizer, " " + text.lower().strip(),
                             length=TEXT_ENCODE_LENGTH)[-TEXT_KEEP_LAST:]
        bos, eos = torch.LongTensor([self.dictionary.bos()]), torch.LongTensor([self.dictionary.eos()])
        generator = torch.Generator().manual_seed(rng.getrandbits(63))
        masked = self.masker(torch.cat([bos, tokens, eos]), generator)[1:-1]
        head = encode_text(self.dictionary, self.tokenizer, INFILLING_PROMPT_HEAD)
        tail = encode_text(self.dictionary, self.tokenizer, INFILLING_PROMPT_TAIL)
        source = torch.cat([bos, head, masked, tail, eos])
        return make_example(self.dictionary, uniq_id, source, tokens, blank_image(self.image_size), False,
                            conf=EXTRA_CONF)
