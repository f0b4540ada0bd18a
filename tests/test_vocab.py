"""OFA vocabulary, text tokenizers and box <-> bin helpers, checked against official facts and goldens."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa_plugin.vocab import (
    GPT2Tokenizer,
    SentencePieceTokenizer,
    bin_token_range,
    bins_to_box,
    box_to_bin_tokens,
    build_ofa_dictionary,
    build_tokenizer,
    code_token_range,
    encode_text,
    token_to_bin,
    token_to_code,
    write_sentencepiece_dict,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BPE_DIR = SHARED / "ofa_bpe"
GOLDEN = SHARED / "fixtures" / "official_mini" / "golden"


@pytest.fixture(scope="module")
def dictionary():
    return build_ofa_dictionary(str(BPE_DIR / "dict.txt"))


@pytest.fixture(scope="module")
def gpt2():
    return build_tokenizer("gpt2", str(BPE_DIR))


def _golden(name: str) -> dict:
    with open(GOLDEN / name, encoding="utf-8") as f:
        return json.load(f)


# --- dictionary layout -------------------------------------------------------------------------


def test_official_dictionary_layout(dictionary):
    assert len(dictionary) == 59457
    assert (dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk()) == (0, 1, 2, 3)
    assert dictionary.index("<mask>") == 50264
    assert dictionary.index("<code_0>") == 50265
    assert dictionary.index("<code_8191>") == 58456
    assert dictionary.index("<bin_0>") == 58457
    assert dictionary.index("<bin_999>") == 59456


def test_dictionary_sizes_follow_options():
    small = build_ofa_dictionary(str(BPE_DIR / "dict.txt"), code_dict_size=16, num_bins=10)
    assert len(small) == 50265 + 16 + 10
    assert small.index("<bin_0>") == len(small) - 10
    assert small.index("<code_15>") == len(small) - 11


def test_dictionary_rejects_file_that_already_has_ofa_symbols(tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("hello 5\n<mask> 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="already contains"):
        build_ofa_dictionary(str(path), code_dict_size=4, num_bins=4)


def test_missing_dictionary_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        build_ofa_dictionary(str(tmp_path / "nope.txt"))


def test_token_ranges_and_offsets(dictionary):
    n = len(dictionary)
    assert code_token_range(n, 8192, 1000) == (50265, 58457)
    assert bin_token_range(n, 1000) == (58457, 59457)
    assert token_to_code(dictionary.index("<code_6867>"), n, 8192, 1000) == 6867
    assert token_to_bin(dictionary.index("<bin_12>"), n, 1000) == 12
    tokens = torch.tensor([58457, 59456])
    assert token_to_bin(tokens, n, 1000).tolist() == [0, 999]


# --- tokenizers --------------------------------------------------------------------------------


def test_build_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match="'bert'"):
        build_tokenizer("bert", str(BPE_DIR))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "encoder.json")):
        build_tokenizer("gpt2", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "spm.model")):
        build_tokenizer("sentencepiece", str(tmp_path))


def test_encode_text_official_facts(dictionary, gpt2):
    assert isinstance(gpt2, GPT2Tokenizer)
    prompt = encode_text(dictionary, gpt2, " what does the image describe?", append_bos=True, append_eos=True)
    assert prompt.dtype == torch.long
    assert prompt.tolist() == [0, 99, 473, 5, 2274, 6190, 116, 2]
    answers = {" yes": 4420, " no": 117, " maybe": 2085, " positive": 1313, " negative": 2430}
    for text, token in answers.items():
        assert encode_text(dictionary, gpt2, text).tolist() == [token]


def test_encode_text_truncates_before_adding_bos_eos(dictionary, gpt2):
    prompt = " what does the image describe?"
    tokens = encode_text(dictionary, gpt2, prompt, length=3, append_bos=True, append_eos=True)
    assert tokens.tolist() == [0, 99, 473, 5, 2]


def test_encode_text_symbols_without_bpe(dictionary):
    tokens = encode_text(dictionary, None, "<bin_0> <bin_999> <code_1> not_a_symbol", use_bpe=False)
    assert tokens.tolist() == [58457, 59456, 50266, dictionary.unk()]
    with pytest.raises(ValueError, match="needs a tokenizer"):
        encode_text(dictionary, None, " hello")


def test_caption_targets_match_official_teacher_forcing(dictionary, gpt2):
    meta = _golden("teacher_forced.json")["meta"]
    targets = np.load(GOLDEN / "teacher_forced.npz")["caption.target"]
    for text, symbols, row in zip(meta["caption.target_text"], meta["caption.target_symbols"], targets):
        assert gpt2.encode(text) == symbols
        expected = [int(t) for t in row if t != dictionary.pad()]
        assert encode_text(dictionary, gpt2, text, append_eos=True).tolist() == expected
        assert gpt2.decode(symbols) == text


def test_gpt2_decode_keeps_special_symbols_literal(gpt2):
    assert gpt2.decode("262") == " the"
    assert gpt2.decode("262 <code_5> 262") == " the<code_5> the"
    assert gpt2.decode("<bin_12> <bin_3> <mask> <unk> <<unk>>") == "<bin_12><bin_3><mask><unk><<unk>>"
    assert gpt2.decode("") == ""
    with pytest.raises(ValueError, match="99999999"):
        gpt2.decode("99999999")


@pytest.mark.parametrize(
    "golden", ["caption.json", "vqa_beam.json", "refcoco.json", "refcoco_binconstrained.json"]
)
def test_decode_reproduces_official_hypothesis_text(dictionary, gpt2, golden):
    hypotheses = [h for s in _golden(golden)["samples"] for h in s["nbest"] if "text" in h]
    assert hypotheses
    for hyp in hypotheses:
        symbols = dictionary.string(torch.tensor(hyp["tokens"]))
        assert gpt2.decode(symbols) == hyp["text"], hyp["tokens"]


def test_official_captions_contain_literal_code_tokens(dictionary, gpt2):
    """The caption golden exercises the literal path: official outputs glue `<code_6867>` to words."""
    texts = [h["text"] for s in _golden("caption.json")["samples"] for h in s["nbest"]]
    assert any("<code_6867>" in t for t in texts)


# --- SentencePiece -----------------------------------------------------------------------------

_SPM_TEXT = [
    "a red circle and a blue square on a yellow background",
    "a green triangle on a white background",
    "an orange circle above a brown rectangle",
    "two shapes on a yellow background",
    "the blue square is left of the red circle",
] * 20


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory):
    sentencepiece = pytest.importorskip("sentencepiece")
    folder = tmp_path_factory.mktemp("spm")
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_SPM_TEXT),
        model_prefix=str(folder / "spm"),
        vocab_size=60,
        model_type="bpe",
        hard_vocab_limit=False,
        minloglevel=2,
    )
    return folder


def test_sentencepiece_dictionary_and_roundtrip(spm_dir):
    lines = write_sentencepiece_dict(str(spm_dir / "spm.model"), str(spm_dir / "dict.txt"))
    written = (spm_dir / "dict.txt").read_text(encoding="utf-8").split("\n")
    assert not {"<unk>", "<s>", "</s>"} & {line.split(" ")[0] for line in written}
    dictionary = build_ofa_dictionary(str(spm_dir / "dict.txt"), code_dict_size=8, num_bins=10)
    assert len(dictionary) == 4 + lines + 1 + 8 + 10
    assert dictionary.index("<mask>") == 4 + lines
    assert dictionary.index("<bin_0>") == len(dictionary) - 10

    tokenizer = build_tokenizer("sentencepiece", str(spm_dir))
    assert isinstance(tokenizer, SentencePieceTokenizer)
    text = "a red circle above a green triangle"
    tokens = encode_text(dictionary, tokenizer, " " + text, append_bos=True, append_eos=True)
    assert tokens[0] == dictionary.bos() and tokens[-1] == dictionary.eos()
    assert dictionary.unk() not in tokens.tolist()
    assert tokenizer.decode(dictionary.string(tokens)) == text


def test_sentencepiece_decode_keeps_special_symbols_literal(spm_dir):
    tokenizer = SentencePieceTokenizer(str(spm_dir))
    assert tokenizer.decode("\u2581a \u2581red <bin_3> <code_5>") == "a red<bin_3><code_5>"
    assert tokenizer.decode("<unk> \u2581circle") == "<unk> circle"


# --- boxes -------------------------------------------------------------------------------------


def test_box_to_bin_tokens_hand_cases():
    assert box_to_bin_tokens([0, 0, 512, 512], 512, 1000) == "<bin_0> <bin_0> <bin_999> <bin_999>"
    # 100/512*999 = 195.12 -> 195; 300/512*999 = 585.35 -> 585; 256/512*999 = 499.5 -> 500 (half to even)
    assert box_to_bin_tokens([100, 300, 256, 512], 512, 1000) == "<bin_195> <bin_585> <bin_500> <bin_999>"
    # pretraining detection: 256-px images normalised by 512 stay in the lower half of the bins
    assert box_to_bin_tokens([0, 0, 256, 256], 512, 1000) == "<bin_0> <bin_0> <bin_500> <bin_500>"


def test_box_to_bin_tokens_rejects_bad_boxes():
    with pytest.raises(ValueError, match="600"):
        box_to_bin_tokens([0, 0, 600, 10], 512, 1000)
    with pytest.raises(ValueError, match="4 coordinates"):
        box_to_bin_tokens([0, 0, 10], 512, 1000)


def test_bins_to_box_inverts_quantisation():
    assert bins_to_box([0, 999, 0, 999], 512, 1000) == [0.0, 512.0, 0.0, 512.0]
    box = [13.3, 77.0, 250.9, 511.2]
    bins = [int(t[len("<bin_"):-1]) for t in box_to_bin_tokens(box, 512, 1000).split()]
    for original, decoded in zip(box, bins_to_box(bins, 512, 1000)):
        assert abs(original - decoded) <= 0.5 * 512 / 999


def test_refcoco_targets_match_official_bins(dictionary):
    """Original box x resize ratio (256-px images), normalised by max_image_size 512 -> official bins."""
    arrays = np.load(GOLDEN / "teacher_forced.npz")
    symbols = _golden("teacher_forced.json")["meta"]["refcoco.target_symbols"]
    coords, w_ratios, h_ratios = (
        arrays["refcoco.region_coords"], arrays["refcoco.w_resize_ratios"], arrays["refcoco.h_resize_ratios"]
    )
    for box, w, h, expected, target in zip(coords, w_ratios, h_ratios, symbols, arrays["refcoco.target"]):
        resized = [box[0] * w, box[1] * h, box[2] * w, box[3] * h]
        assert box_to_bin_tokens(resized, 512, 1000) == expected
        assert encode_text(dictionary, None, expected, use_bpe=False, append_eos=True).tolist() == target.tolist()


@pytest.mark.parametrize("golden", ["refcoco.json", "refcoco_binconstrained.json"])
def test_official_box_decoding_arithmetic(dictionary, golden):
    """token -> bin -> box / resize ratio reproduces the official boxes, even for non-bin tokens."""
    for sample in _golden(golden)["samples"]:
        tokens = sample["nbest"][0]["tokens"][:4]
        bins = [token_to_bin(t, len(dictionary), 1000) for t in tokens]
        assert bins == sample["pred_bins"]
        x0, y0, x1, y1 = bins_to_box(bins, 512, 1000)
        w, h = sample["w_resize_ratio"], sample["h_resize_ratio"]
        decoded = [x0 / w, y0 / h, x1 / w, y1 / h]
        assert decoded == pytest.approx(sample["result"]["box"], rel=1e-6, abs=1e-3)
