"""The OFA vocabulary: text BPE symbols + `<mask>` + image codes + location bins (reference §3).

One dictionary serves source and target (OFA shares all embeddings). Its layout is a checkpoint
contract: fairseq specials (0-3), the text symbols of `dict.txt`, then `<mask>`, `<code_0..N-1>` and
`<bin_0..M-1>`, in that order. Text tokenizers turn text into space-joined dictionary symbols and back;
box helpers quantise boxes into `<bin_i>` tokens and undo it.
"""
from pathlib import Path
from typing import Protocol, Sequence

import sentencepiece
import torch
from fairseq.data import Dictionary
from fairseq.data.encoders.gpt2_bpe_utils import get_encoder

MASK_SYMBOL = "<mask>"
SPM_SPACE = "\u2581"  # SentencePiece's word-boundary marker "▁"


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def build_ofa_dictionary(dict_path: str, code_dict_size: int = 8192, num_bins: int = 1000) -> Dictionary:
    """Load `dict.txt` and append `<mask>`, the image-code and the bin tokens in the official order.

    With the official GPT-2 `dict.txt` and the defaults this gives 59457 symbols: `<mask>` 50264,
    `<code_0>` 50265, `<bin_0>` 58457 (reference §3.1).
    """
    dictionary = Dictionary.load(str(_require_file(Path(dict_path), "dictionary file")))
    text_size = len(dictionary)
    dictionary.add_symbol(MASK_SYMBOL)
    for i in range(code_dict_size):
        dictionary.add_symbol(f"<code_{i}>")
    for i in range(num_bins):
        dictionary.add_symbol(f"<bin_{i}>")
    if len(dictionary) != text_size + 1 + code_dict_size + num_bins:
        raise ValueError(
            f"{dict_path} already contains <mask>, <code_*> or <bin_*> symbols; "
            "appending them would break the official OFA vocabulary order"
        )
    return dictionary


class TextTokenizer(Protocol):
    """Text <-> space-joined dictionary symbols (the interface of a fairseq BPE object)."""

    def encode(self, text: str) -> str: ...

    def decode(self, symbols: str) -> str: ...


class GPT2Tokenizer:
    """GPT-2 byte-level BPE as in fairseq's `gpt2` BPE, read from local `encoder.json`/`vocab.bpe`.

    Symbols are GPT-2 BPE ids written as decimal strings (what `dict.txt` holds). Stock fairseq
    int()-casts every symbol when decoding and crashes on `<bin_12>`; here every non-numeric symbol
    (`<bin_*>`, `<code_*>`, `<mask>`, `<unk>`, ...) is kept as literal text glued to its neighbours
    without spaces, exactly as the official OFA fork does ("word<code_6867>").
    """

    def __init__(self, bpe_dir: str):
        folder = Path(bpe_dir)
        encoder_json = _require_file(folder / "encoder.json", "GPT-2 BPE encoder")
        vocab_bpe = _require_file(folder / "vocab.bpe", "GPT-2 BPE merges")
        self.bpe = get_encoder(str(encoder_json), str(vocab_bpe))

    def encode(self, text: str) -> str:
        return " ".join(str(i) for i in self.bpe.encode(text))

    def decode(self, symbols: str) -> str:
        pieces = b"".join(self._symbol_bytes(symbol) for symbol in symbols.split())
        return pieces.decode("utf-8", errors=self.bpe.errors)

    def _symbol_bytes(self, symbol: str) -> bytes:
        if not (symbol.isascii() and symbol.isdigit()):
            return symbol.encode("utf-8")
        token = self.bpe.decoder.get(int(symbol))
        if token is None:
            raise ValueError(
                f"GPT-2 BPE id {symbol} is not in encoder.json (vocabulary size {len(self.bpe.decoder)})"
            )
        return bytes(self.bpe.byte_decoder[c] for c in token)


class SentencePieceTokenizer:
    """SentencePiece pieces as dictionary symbols (for new vocabularies, e.g. the toy world's)."""

    def __init__(self, bpe_dir: str):
        model = _require_file(Path(bpe_dir) / "spm.model", "SentencePiece model")
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(model))

    def encode(self, text: str) -> str:
        return " ".join(self.sp.encode(text, out_type=str))

    def decode(self, symbols: str) -> str:
        text = "".join(symbols.split()).replace(SPM_SPACE, " ")
        return text[1:] if text.startswith(" ") else text


def write_sentencepiece_dict(spm_model: str, dict_path: str) -> int:
    """Write the fairseq `dict.txt` for a SentencePiece model: one `piece 1` line per ordinary piece.

    Control and unknown pieces (`<s>`, `</s>`, `<unk>`, `<pad>`) are left out because the fairseq
    Dictionary has its own specials. Returns the number of lines written.
    """
    model = _require_file(Path(spm_model), "SentencePiece model")
    sp = sentencepiece.SentencePieceProcessor(model_file=str(model))
    pieces = [
        sp.id_to_piece(i)
        for i in range(sp.get_piece_size())
        if not (sp.is_control(i) or sp.is_unknown(i))
    ]
    with open(dict_path, "w", encoding="utf-8") as f:
        f.writelines(f"{piece} 1\n" for piece in pieces)
    return len(pieces)


_TOKENIZERS = {"gpt2": GPT2Tokenizer, "sentencepiece": SentencePieceTokenizer}


def build_tokenizer(kind: str, bpe_dir: str) -> TextTokenizer:
    """Build the text tokenizer named `kind` ("gpt2" or "sentencepiece") from the files in `bpe_dir`."""
    if kind not in _TOKENIZERS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {sorted(_TOKENIZERS)}")
    return _TOKENIZERS[kind](bpe_dir)


def encode_text(
    dictionary: Dictionary,
    tokenizer: TextTokenizer | None,
    text: str,
    length: int | None = None,
    append_bos: bool = False,
    append_eos: bool = False,
    use_bpe: bool = True,
) -> torch.LongTensor:
    """Text -> token ids as OFA datasets do (reference §3.2): BPE, dictionary lookup (unknown -> unk),
    optional truncation to `length` tokens, then optional bos/eos.

    `use_bpe=False` is for strings that already are dictionary symbols (`"<bin_1> <bin_2> ..."`).
    """
    if use_bpe and tokenizer is None:
        raise ValueError(f"encode_text({text!r}) needs a tokenizer when use_bpe=True")
    line = tokenizer.encode(text) if use_bpe else text
    tokens = dictionary.encode_line(line, add_if_not_exist=False, append_eos=False).long()
    if length is not None:
        tokens = tokens[:length]
    if append_bos:
        tokens = torch.cat([torch.LongTensor([dictionary.bos()]), tokens])
    if append_eos:
        tokens = torch.cat([tokens, torch.LongTensor([dictionary.eos()])])
    return tokens


def coord_to_bin(coord: float, max_image_size: float, num_bins: int) -> int:
    """Quantise one resized-image coordinate: round(coord / max_image_size * (num_bins - 1)).

    Python's round() rounds halves to even, like the torch `.round()` the official dataset uses.
    """
    bin_id = int(round(coord / max_image_size * (num_bins - 1)))
    if not 0 <= bin_id < num_bins:
        raise ValueError(
            f"coordinate {coord} gives bin {bin_id}, outside [0, {num_bins - 1}] "
            f"(max_image_size {max_image_size})"
        )
    return bin_id


def box_to_bin_tokens(box_xyxy: Sequence[float], max_image_size: float, num_bins: int) -> str:
    """Box (x0, y0, x1, y1 in resized-image pixels) -> "<bin_a> <bin_b> <bin_c> <bin_d>" (reference §3.4).

    Coordinates are divided by `max_image_size`, not by the image size, as in the official code.
    """
    if len(box_xyxy) != 4:
        raise ValueError(f"a box needs 4 coordinates (x0, y0, x1, y1), got {list(box_xyxy)}")
    return " ".join(f"<bin_{coord_to_bin(float(c), max_image_size, num_bins)}>" for c in box_xyxy)


def bins_to_box(bin_ids: Sequence[int], max_image_size: float, num_bins: int) -> list[float]:
    """Bin indices -> coordinates in resized-image pixels: bin / (num_bins - 1) * max_image_size.

    No range check: the official refcoco decoding applies this to whatever 4 tokens were generated.
    """
    return [float(b) / (num_bins - 1) * max_image_size for b in bin_ids]


def token_to_bin(token_id: int | torch.Tensor, dictionary_len: int, num_bins: int) -> int | torch.Tensor:
    """Token id -> bin index (`<bin_0>` is id `dictionary_len - num_bins`).

    Pure offset arithmetic, as in the official decoding: a non-bin token gives a value outside
    [0, num_bins); callers that need a valid bin check the range.
    """
    return token_id - dictionary_len + num_bins


def token_to_code(
    token_id: int | torch.Tensor, dictionary_len: int, code_dict_size: int, num_bins: int
) -> int | torch.Tensor:
    """Token id -> image code (`<code_0>` is id `dictionary_len - code_dict_size - num_bins`).

    Pure offset arithmetic like `token_to_bin`.
    """
    return token_id - dictionary_len + code_dict_size + num_bins


def code_token_range(dictionary_len: int, code_dict_size: int, num_bins: int) -> tuple[int, int]:
    """[start, end) ids of the `<code_*>` block, e.g. (50265, 58457), the image-gen constraint range."""
    start = dictionary_len - code_dict_size - num_bins
    return start, start + code_dict_size


def bin_token_range(dictionary_len: int, num_bins: int) -> tuple[int, int]:
    """[start, end) ids of the `<bin_*>` block, e.g. (58457, 59457)."""
    return dictionary_len - num_bins, dictionary_len


NUM_SPECIAL_TOKENS = 4  # bos, pad, eos, unk: always allowed under a constraint range (official)


def parse_constraint_range(value: str | None) -> tuple[int, int] | None:
    """The `--constraint-range` option "start,end" -> (start, end), a half-open token-id range that
    the criterion and the generator restrict to (plus the special tokens); None stays None."""
    if value is None:
        return None
    try:
        start, end = (int(part) for part in str(value).split(","))
    except ValueError:
        raise ValueError(f"--constraint-range must be 'start,end' (two token ids), got {value!r}") from None
    if not NUM_SPECIAL_TOKENS <= start < end:
        raise ValueError(f"--constraint-range {value!r} must satisfy {NUM_SPECIAL_TOKENS} <= start < end")
    return start, end
