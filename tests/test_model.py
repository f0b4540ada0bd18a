"""Fast unit tests of the OFA model on tiny random configs (reference §1, DESIGN §4).

Models here are 2+2 layers, D=32, 4 heads, a resnet18 trunk (Bottleneck [2, 2, 2], the official
quirk) on 32-64 px images, small bucket tables and a ~300-symbol OFA dictionary. Comparisons are fp32.
"""
import argparse
import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from fairseq.models import ARCH_CONFIG_REGISTRY, ARCH_MODEL_REGISTRY
from torch import nn

import ofa_plugin  # noqa: F401  (registers the model)
from ofa_plugin.models import set_attention_impl
from ofa_plugin.models.attention import OFAAttention
from ofa_plugin.models.drop_path import DropPath
from ofa_plugin.models.positions import code_position_ids, image_bucket_table, token_bucket_table
from ofa_plugin.models.resnet import STAGE_BLOCKS, FrozenBatchNorm2d, build_resnet
from ofa_plugin.vocab import build_ofa_dictionary

IMPLS = ["eager", "sdpa"]
NUM_WORDS, NUM_CODES, NUM_BINS = 200, 64, 16
TINY = dict(
    encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_layers=2, decoder_layers=2,
    encoder_attention_heads=4, decoder_attention_heads=4, resnet_type="resnet18",
    max_source_positions=64, max_target_positions=64, token_bucket_size=16, image_bucket_size=8,
    code_image_size=64, orig_patch_image_size=32,
)
# the NormFormer flags and --disable-entangle of every released model (reference §1.2)
RELEASED = dict(scale_attn=True, scale_fc=True, scale_heads=True, disable_entangle=True)
# decoder parameters only image-code samples use (reference §1.9)
DECODER_CODE_ONLY = {
    "decoder.code_layernorm_embedding.weight", "decoder.code_layernorm_embedding.bias",
    "decoder.image_pos_ln.weight", "decoder.image_pos_ln.bias", "decoder.embed_image_positions.weight",
    "decoder.image_rel_pos_table_list.0.weight", "decoder.image_rel_pos_table_list.1.weight",
}


# ----------------------------------------------------------------------------------------- helpers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    path = tmp_path_factory.mktemp("dict") / "dict.txt"
    path.write_text("".join(f"w{i} {1000 - i}\n" for i in range(NUM_WORDS)))
    return build_ofa_dictionary(str(path), code_dict_size=NUM_CODES, num_bins=NUM_BINS)


def build(dictionary, seed: int = 0, **overrides):
    """A tiny `ofa` model built the way fairseq builds it: args namespace -> arch function -> build_model."""
    args = argparse.Namespace(arch="ofa_nano", **{**TINY, **RELEASED, **overrides})
    ARCH_CONFIG_REGISTRY[args.arch](args)
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    torch.manual_seed(seed)
    return ARCH_MODEL_REGISTRY[args.arch].build_model(args, task).eval()


def same_weights(model, reference):
    """Copy `reference`'s weights into `model` (strict) and return it."""
    model.load_state_dict(copy.deepcopy(reference.state_dict()))
    return model


def text_tokens(d, bsz: int, length: int, seed: int, lengths=None) -> torch.Tensor:
    """Random word tokens; row i is right-padded after lengths[i] tokens (eos last)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(d.nspecial, d.nspecial + NUM_WORDS, (bsz, length), generator=g)
    for row, n in enumerate(lengths or [length] * bsz):
        tokens[row, n - 1] = d.eos()
        tokens[row, n:] = d.pad()
    return tokens


def prev_tokens(d, bsz: int, length: int, seed: int, code: bool = False) -> torch.Tensor:
    """bos followed by words, or (code=True) by image-code tokens."""
    g = torch.Generator().manual_seed(seed)
    first = d.index("<code_0>") if code else d.nspecial
    tokens = torch.randint(first, first + (NUM_CODES if code else NUM_WORDS), (bsz, length), generator=g)
    tokens[:, 0] = d.bos()
    return tokens


def images(bsz: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randn(bsz, 3, size, size, generator=torch.Generator().manual_seed(seed))


def mixed_batch(d, seed: int = 0, size: int = 32) -> dict:
    """3 samples: text padding on rows 1 and 2, row 1 text-only (patch_masks False)."""
    return dict(
        src_tokens=text_tokens(d, 3, 7, seed, lengths=[7, 4, 5]),
        src_lengths=torch.tensor([7, 4, 5]),
        prev_output_tokens=prev_tokens(d, 3, 6, seed + 1),
        patch_images=images(3, size, seed + 2),
        patch_masks=torch.tensor([True, False, True]),
    )


def caption_batch(vocab) -> dict:
    batch = mixed_batch(vocab)
    batch["patch_masks"] = torch.ones(3, dtype=torch.bool)
    return batch


def text_batch(vocab) -> dict:
    return {k: v for k, v in mixed_batch(vocab).items() if k not in ("patch_images", "patch_masks")}


def encode(model, d, bsz: int, seed: int = 0):
    src = text_tokens(d, bsz, 5, seed)
    return model.encoder(src, patch_images=images(bsz, 32, seed), patch_masks=torch.ones(bsz, dtype=torch.bool))


def encoder_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k != "prev_output_tokens"}


def randomize_scales(model) -> None:
    """c_attn / w_resid start at 1 (invisible); give them random values so the paths are exercised."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("c_attn", "w_resid")):
                param.uniform_(0.5, 1.5)


def loss_of(model, batch: dict, vocab_size: int) -> torch.Tensor:
    logits, _ = model(**batch)
    target = torch.randint(0, vocab_size, logits.shape[:2], generator=torch.Generator().manual_seed(9))
    return F.cross_entropy(logits.float().reshape(-1, vocab_size), target.reshape(-1))


def incremental_logits(decoder, tokens, encoder_out, code_masks=None, state=None, start: int = 0):
    """Feed growing prefixes one step at a time, as fairseq's SequenceGenerator does; (B, T-start, V)."""
    state = {} if state is None else state
    steps = []
    for t in range(start, tokens.size(1)):
        logits, _ = decoder(tokens[:, : t + 1], code_masks=code_masks, encoder_out=encoder_out, incremental_state=state)
        assert logits.size(1) == 1
        steps.append(logits[:, -1])
    return torch.stack(steps, dim=1)


def close(actual, expected, atol: float = 1e-5) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=1e-5)


# ----------------------------------------------------------------------------- small components

def test_bucket_tables_match_reference_examples():
    table = token_bucket_table(256, 1024)
    for rel, bucket in {0: 255, 1: 256, -1: 254, 127: 382, 128: 383, 129: 384, 130: 384, 200: 411, 300: 436,
                        500: 467, 1000: 509, 1023: 510, -129: 126, -1023: 0}.items():
        i, j = (rel, 0) if rel >= 0 else (0, -rel)
        assert int(table[i, j]) == bucket, rel
    image = image_bucket_table(42)
    assert image.shape == (1765, 1765)
    assert int(image[5, 5]) == 3444 and int(image[5, 6]) == 3443 and int(image[5, 5 + 42]) == 3361
    assert (int(image[0, 5]), int(image[5, 0]), int(image[0, 0])) == (6889, 6890, 6891)
    ids = code_position_ids(128, 42)
    assert ids.shape == (1026,) and int(ids[0]) == 0 and int(ids[1]) == 1 and int(ids[17]) == 43
    assert int(ids[256]) == 15 * 42 + 15 + 1 and bool((ids[257:] == 1024).all())


def test_resnet18_trunk_is_bottleneck_2_2_2_at_stride_16():
    trunk = build_resnet("resnet18", 0.0, freeze_bn=False, sync_bn=False).eval()
    assert STAGE_BLOCKS["resnet18"] == [2, 2, 2]
    assert [len(getattr(trunk, f"layer{s}")) for s in (1, 2, 3)] == [2, 2, 2]
    assert not hasattr(trunk, "layer4")
    assert trunk(images(1, 48)).shape == (1, 1024, 3, 3)
    with pytest.raises(ValueError, match="resnet-type"):
        build_resnet("resnet9", 0.0, freeze_bn=False, sync_bn=False)


def test_eager_attention_is_the_official_formula():
    """Logits (q * (2*hd)**-0.5) k^T + bias + mask, fp32 softmax, per-head c_attn, then out_proj."""
    torch.manual_seed(0)
    attn = OFAAttention(16, 4, scale_heads=True, impl="eager").eval()
    with torch.no_grad():
        attn.c_attn.uniform_(0.5, 1.5)
    x = torch.randn(5, 2, 16)
    bias = torch.randn(2, 4, 5, 5)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])
    out = attn(x, x, x, key_padding_mask=padding, attn_bias=bias)

    def heads(t):
        return t.view(5, 2, 4, 4).permute(1, 2, 0, 3)

    q, k, v = heads(attn.q_proj(x)), heads(attn.k_proj(x)), heads(attn.v_proj(x))
    logits = q @ k.transpose(2, 3) / (2 * 4) ** 0.5 + bias
    logits = logits.masked_fill(padding[:, None, None, :], float("-inf"))
    mixed = (logits.softmax(-1) @ v) * attn.c_attn.view(1, 4, 1, 1)
    expected = attn.out_proj(mixed.permute(2, 0, 1, 3).reshape(5, 2, 16))
    close(out, expected)
    attn.set_impl("sdpa")
    close(attn(x, x, x, key_padding_mask=padding, attn_bias=bias), expected)
    with pytest.raises(ValueError, match="attention impl"):
        attn.set_impl("flash")

    # prefix prompts: extra keys/values in front, with no position bias and never masked (reference §1.12)
    prompt = torch.randn(2, 2, 4, 3, 4)
    logits = torch.cat([q @ prompt[0].transpose(2, 3) / (2 * 4) ** 0.5, logits], dim=-1)
    mixed = (logits.softmax(-1) @ torch.cat([prompt[1], v], dim=2)) * attn.c_attn.view(1, 4, 1, 1)
    expected = attn.out_proj(mixed.permute(2, 0, 1, 3).reshape(5, 2, 16))
    for impl in IMPLS:
        attn.set_impl(impl)
        close(attn(x, x, x, key_padding_mask=padding, attn_bias=bias, prompt_kv=prompt), expected)


def test_drop_path_is_per_sample_and_train_only():
    layer = DropPath(0.5, batch_dim=1)
    x = torch.ones(6, 64, 3)
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    torch.manual_seed(0)
    out = layer(x)
    per_sample = out.transpose(0, 1).reshape(64, -1)
    assert bool((per_sample == per_sample[:, :1]).all()), "one mask value per sample"
    assert set(per_sample[:, 0].tolist()) == {0.0, 2.0}, "kept samples are rescaled by 1/keep_prob"


def test_official_initialisation(vocab):
    """init_bert_params over the whole model: Linear/Embedding ~ N(0, 0.02), biases 0; c_attn and LayerNorms
    keep their constructor values (reference §1.10). The shared token matrix is drawn again when the walk
    reaches the tied output projection (an nn.Linear), so its padding row is *not* zero -- as in the
    official fixture checkpoint, whose row 1 has std 0.018."""
    model = build(vocab)
    params = dict(model.named_parameters())
    for name in ("encoder.image_proj.weight", "encoder.embed_tokens.weight", "decoder.embed_image_positions.weight",
                 "decoder.layers.0.encoder_attn.k_proj.weight", "encoder.image_rel_pos_table_list.0.weight"):
        assert params[name].std().item() == pytest.approx(0.02, rel=0.15), name
    assert not params["encoder.image_proj.bias"].any() and not params["encoder.layers.1.fc1.bias"].any()
    assert params["encoder.embed_tokens.weight"][vocab.pad()].std().item() == pytest.approx(0.02, rel=0.5)
    assert params["encoder.type_embedding.weight"].abs().max() < 0.2  # not its constructor N(0, D**-0.5)
    assert bool((params["decoder.layers.1.self_attn.c_attn"] == 1).all())
    assert bool((params["decoder.layers.1.self_attn_ln.weight"] == 1).all())


# ------------------------------------------------------------------------ 1. eager == SDPA

@pytest.mark.parametrize("flags", [
    RELEASED,
    dict(disable_entangle=True),
    dict(scale_attn=True, scale_fc=True, scale_heads=True, scale_resids=True, disable_entangle=False),
], ids=["released", "no_normformer", "all_scales_entangled"])
def test_eager_and_sdpa_agree_on_a_mixed_padded_batch(vocab, flags):
    model = build(vocab, **{**{k: False for k in RELEASED}, **flags})
    randomize_scales(model)
    batch = mixed_batch(vocab)
    outputs = {}
    with torch.no_grad():
        for impl in IMPLS:
            set_attention_impl(model, impl)
            enc = model.encoder(**encoder_inputs(batch))
            logits, _ = model.decoder(batch["prev_output_tokens"], encoder_out=enc)
            outputs[impl] = (enc["encoder_out"][0], logits)
    assert all(m.impl == "sdpa" for m in model.modules() if isinstance(m, OFAAttention))
    close(outputs["eager"][0], outputs["sdpa"][0])
    close(outputs["eager"][1], outputs["sdpa"][1])
    assert torch.isfinite(outputs["sdpa"][1]).all()


def test_attention_impl_option_selects_the_kernel(vocab):
    model = build(vocab, attention_impl="eager")
    impls = {m.impl for m in model.modules() if isinstance(m, OFAAttention)}
    assert impls == {"eager"}
    assert len([m for m in model.modules() if isinstance(m, OFAAttention)]) == 2 + 2 * 2


@pytest.mark.parametrize("impl", IMPLS)
def test_each_row_of_a_mixed_padded_batch_equals_the_row_alone(vocab, impl):
    """Padding (text pads, patch_masks False) must be invisible: every row equals it run alone, unpadded."""
    model = build(vocab, attention_impl=impl)
    batch = mixed_batch(vocab)
    with torch.no_grad():
        together, _ = model(**batch)
        for row, length in enumerate(batch["src_lengths"].tolist()):
            alone = dict(src_tokens=batch["src_tokens"][row: row + 1, :length], src_lengths=None,
                         prev_output_tokens=batch["prev_output_tokens"][row: row + 1])
            if batch["patch_masks"][row]:
                alone.update(patch_images=batch["patch_images"][row: row + 1], patch_masks=torch.tensor([True]))
            logits, _ = model(**alone)
            close(together[row: row + 1], logits)


def test_encoder_output_layout_and_masks(vocab):
    model = build(vocab)
    batch = mixed_batch(vocab)
    with torch.no_grad():
        enc = model.encoder(**encoder_inputs(batch), code_masks=torch.tensor([True, True, True]))
    num_patches, text_len = 4, 7  # 32 px -> 2x2 patches
    assert enc["encoder_out"][0].shape == (num_patches + text_len, 3, 32)
    assert enc["position_embeddings"][0].shape == (3, num_patches + text_len, 32)
    padding = enc["encoder_padding_mask"][0]
    assert padding[:, :num_patches].tolist() == [[False] * 4, [True] * 4, [False] * 4]
    assert torch.equal(padding[:, num_patches:], batch["src_tokens"].eq(vocab.pad()))
    with pytest.raises(ValueError, match="patch_images_2"):
        model.encoder(batch["src_tokens"], patch_images=batch["patch_images"], patch_images_2=batch["patch_images"])


def test_reorder_encoder_out_selects_samples(vocab):
    model = build(vocab)
    batch = mixed_batch(vocab)
    with torch.no_grad():
        enc = model.encoder(**encoder_inputs(batch), return_all_hiddens=True)
        order = torch.tensor([2, 0, 0])
        reordered = model.encoder.reorder_encoder_out(enc, order)
        again = model.encoder(**{k: v[order] for k, v in encoder_inputs(batch).items()}, return_all_hiddens=True)
    for name in ("encoder_out", "encoder_padding_mask", "position_embeddings", "encoder_states"):
        assert len(reordered[name]) == len(again[name]) > 0, name
        for got, want in zip(reordered[name], again[name]):
            close(got, want)


def test_encoder_position_bias_follows_the_reference(vocab):
    """Layer bias = (q_pos * (2 hd)**-0.5) k_pos^T over [image_pos_ln(image pos) ; pos_ln(text pos)],
    + the layer's 1-D table on the text block + its 2-D table on the image block (§1.5, §1.6)."""
    model = build(vocab)
    enc = model.encoder
    captured = {}
    enc.layers[1].register_forward_pre_hook(lambda m, a: captured.update(bias=a[2]))
    batch = mixed_batch(vocab)
    with torch.no_grad():
        enc(**encoder_inputs(batch))
        ids = torch.tensor([1, 2, 9, 10])  # 2x2 grid: r * 8 + c + 1 (bucket size 8)
        image_pos = enc.image_pos_ln(enc.embed_image_positions.weight[ids])
        pos = torch.cat([image_pos, enc.pos_ln(enc.embed_positions.weight[:7])])
        q, k = (linear(pos).view(11, 4, 8).transpose(0, 1) for linear in (enc.pos_q_linear, enc.pos_k_linear))
        expected = q * 16 ** -0.5 @ k.transpose(1, 2)
        expected[:, 4:, 4:] += enc.token_rel_pos_table_list[1].weight[enc.token_rp_bucket[:7, :7]].permute(2, 0, 1)
        expected[:, :4, :4] += enc.image_rel_pos_table_list[1].weight[enc.image_rp_bucket[ids][:, ids]].permute(2, 0, 1)
    for row in range(3):
        close(captured["bias"][row], expected)


# --------------------------------------------------------------- 2. incremental == teacher forced

CODE_CASES = {"text": [False, False], "code": [True, True], "mixed": [True, False]}


@pytest.mark.parametrize("kind", list(CODE_CASES))
@pytest.mark.parametrize("impl", IMPLS)
def test_incremental_decoding_equals_teacher_forcing(vocab, impl, kind):
    model = build(vocab, attention_impl=impl)
    codes = torch.tensor(CODE_CASES[kind])
    tokens = torch.stack([prev_tokens(vocab, 1, 7, seed=row, code=bool(c))[0] for row, c in enumerate(codes)])
    with torch.no_grad():
        enc = encode(model, vocab, 2)
        full, _ = model.decoder(tokens, code_masks=codes, encoder_out=enc)
        steps = incremental_logits(model.decoder, tokens, enc, code_masks=codes)
    close(steps, full)


def test_a_whole_image_of_codes_may_outgrow_the_text_positions(vocab):
    """Image generation decodes bos + (S/8)^2 codes: one step more than max_target_positions (1 + 1024
    with the official 256 px and 1024); a batch of code samples never touches the text position tables."""
    model = build(vocab, max_target_positions=16, code_image_size=32)  # 16 codes
    codes = torch.tensor([True, True])
    tokens = torch.stack([prev_tokens(vocab, 1, 17, seed=row, code=True)[0] for row in range(2)])
    with torch.no_grad():
        enc = encode(model, vocab, 2)
        full, _ = model.decoder(tokens, code_masks=codes, encoder_out=enc)
        steps = incremental_logits(model.decoder, tokens, enc, code_masks=codes)
    assert full.shape[1] == 17
    close(steps, full)


@pytest.mark.parametrize("flags", [
    dict(disable_entangle=False), dict(decoder_prompt=True, decoder_prompt_length=3),
    dict(dropout=0.3, decoder_drop_path_rate=0.5),  # eval mode: no effect
], ids=["entangled", "decoder_prompt", "dropout_in_eval"])
def test_incremental_decoding_with_other_options(vocab, flags):
    model = build(vocab, **flags)
    codes = torch.tensor([True, False])
    tokens = torch.stack([prev_tokens(vocab, 1, 6, seed=3, code=True)[0], prev_tokens(vocab, 1, 6, seed=4)[0]])
    with torch.no_grad():
        enc = encode(model, vocab, 2)
        full, _ = model.decoder(tokens, code_masks=codes, encoder_out=enc)
        close(incremental_logits(model.decoder, tokens, enc, code_masks=codes), full)


@pytest.mark.parametrize("kind", list(CODE_CASES))
@pytest.mark.parametrize("new_order", [[1, 0, 3, 3], [2, 3]], ids=["beam_permutation", "batch_shrinks"])
def test_incremental_decoding_survives_beam_reordering(vocab, kind, new_order):
    """2 sentences x 2 beams; after 3 steps the generator reorders the caches and the encoder output."""
    model = build(vocab)
    codes = torch.tensor(CODE_CASES[kind]).repeat_interleave(2)
    tokens = torch.stack([prev_tokens(vocab, 1, 7, seed=row, code=bool(c))[0] for row, c in enumerate(codes)])
    order = torch.tensor(new_order)
    with torch.no_grad():
        enc = model.encoder.reorder_encoder_out(encode(model, vocab, 2, seed=5), torch.tensor([0, 0, 1, 1]))
        state = {}
        incremental_logits(model.decoder, tokens[:, :3], enc, code_masks=codes, state=state)
        model.decoder.reorder_incremental_state_scripting(state, order)
        enc, codes, tokens = model.encoder.reorder_encoder_out(enc, order), codes[order], tokens[order].clone()
        tokens[:, 3:] = torch.stack([prev_tokens(vocab, 1, 7, seed=10 + row, code=bool(c))[0, 3:]
                                     for row, c in enumerate(codes)])  # new continuations per beam
        steps = incremental_logits(model.decoder, tokens, enc, code_masks=codes, state=state, start=3)
        full, _ = model.decoder(tokens, code_masks=codes, encoder_out=enc)
    close(steps, full[:, 3:])


# ----------------------------------------------------------------------- 3. the code_masks path

def test_code_masks_switch_positions_and_layer_norms_per_sample(vocab):
    model = build(vocab, disable_entangle=False)
    tokens = torch.stack([prev_tokens(vocab, 1, 6, seed=1, code=True)[0], prev_tokens(vocab, 1, 6, seed=2)[0]])
    codes = torch.tensor([True, False])

    def run(mask, rows=slice(None)):
        with torch.no_grad():
            enc = model.encoder.reorder_encoder_out(encode(model, vocab, 1), torch.zeros(2, dtype=torch.long)[rows])
            return model.decoder(tokens[rows], code_masks=mask, encoder_out=enc)[0]

    mixed = run(codes)
    close(mixed[:1], run(torch.tensor([True]), slice(0, 1)))
    close(mixed[1:], run(None, slice(1, 2)))
    close(mixed[1:], run(torch.tensor([False]), slice(1, 2)))
    close(mixed[1:], run([False], slice(1, 2)))  # the generator passes a python list
    as_text = run(None)
    assert (mixed[0] - as_text[0]).abs().max() > 1e-3, "a code sample must not be decoded like text"
    close(mixed[1], as_text[1])
    close(run(torch.tensor([True])), run(codes.new_ones(2)))  # one flag broadcasts to the batch


@pytest.mark.parametrize("param, changes", [
    ("decoder.code_layernorm_embedding.weight", "code"), ("decoder.image_pos_ln.weight", "code"),
    ("decoder.embed_image_positions.weight", "code"), ("decoder.image_rel_pos_table_list.1.weight", "code"),
    ("decoder.layernorm_embedding.weight", "text"), ("decoder.pos_ln.weight", "text"),
    ("decoder.embed_positions.weight", "text"), ("decoder.token_rel_pos_table_list.1.weight", "text"),
    ("decoder.self_pos_q_linear.weight", "both"), ("decoder.cross_pos_k_linear.weight", "both"),
])
def test_each_decoder_position_parameter_serves_the_right_sample_type(vocab, param, changes):
    """In a mixed batch [code, text], perturbing a code-path parameter changes only the code row."""
    model = build(vocab, disable_entangle=False)
    tokens = torch.stack([prev_tokens(vocab, 1, 6, seed=1, code=True)[0], prev_tokens(vocab, 1, 6, seed=2)[0]])
    codes = torch.tensor([True, False])
    with torch.no_grad():
        enc = encode(model, vocab, 2)
        before, _ = model.decoder(tokens, code_masks=codes, encoder_out=enc)
        dict(model.named_parameters())[param].add_(torch.randn_like(dict(model.named_parameters())[param]))
        after, _ = model.decoder(tokens, code_masks=codes, encoder_out=enc)
    moved = [bool((after[row] - before[row]).abs().max() > 1e-4) for row in (0, 1)]
    assert moved == [changes in ("code", "both"), changes in ("text", "both")]


def _per_sample_position_bias(dec, enc_pos, code: bool, tgt_len: int, layer: int):
    """Decoder self/cross biases of one sample written from reference §1.9.3: (H, T, T), (H, T, S)."""
    heads, head_dim = dec.num_heads, dec.embed_tokens.embedding_dim // dec.num_heads
    if code:
        ids = dec.image_position_idx[:tgt_len]
        pos, norm = dec.embed_image_positions.weight[ids], dec.image_pos_ln
        rel = dec.image_rel_pos_table_list[layer].weight[dec.image_rp_bucket[ids][:, ids]]
    else:
        pos, norm = dec.embed_positions.weight[:tgt_len], dec.pos_ln
        rel = dec.token_rel_pos_table_list[layer].weight[dec.token_rp_bucket[:tgt_len, :tgt_len]]

    def split(t):
        return t.view(t.size(0), heads, head_dim).transpose(0, 1)

    scaling = (head_dim * 2) ** -0.5
    query = norm(pos)
    self_bias = split(dec.self_pos_q_linear(query)) * scaling @ split(dec.self_pos_k_linear(query)).transpose(1, 2)
    cross = split(dec.cross_pos_q_linear(query)) * scaling @ split(dec.cross_pos_k_linear(enc_pos)).transpose(1, 2)
    return self_bias + rel.permute(2, 0, 1), cross


@pytest.mark.parametrize("incremental", [False, True])
def test_decoder_position_biases_follow_the_reference(vocab, incremental):
    """Self bias = |q_pos k_pos| + per-layer relative table; cross bias = decoder q_pos x encoder positions,
    with image positions / image_pos_ln / 2-D tables for code samples (§1.9.3); last row when decoding."""
    model = build(vocab)
    tokens = torch.stack([prev_tokens(vocab, 1, 6, seed=1, code=True)[0], prev_tokens(vocab, 1, 6, seed=2)[0]])
    captured = {}
    model.decoder.layers[1].register_forward_pre_hook(lambda m, a: captured.update(self=a[6], cross=a[7]))
    with torch.no_grad():
        enc = encode(model, vocab, 2)
        codes = torch.tensor([True, False])
        if incremental:
            incremental_logits(model.decoder, tokens, enc, code_masks=codes)
        else:
            model.decoder(tokens, code_masks=codes, encoder_out=enc)
        for row in (0, 1):
            self_bias, cross = _per_sample_position_bias(model.decoder, enc["position_embeddings"][0][row],
                                                         code=row == 0, tgt_len=6, layer=1)
            rows = slice(-1, None) if incremental else slice(None)
            close(captured["self"][row], self_bias[:, rows])
            close(captured["cross"][row], cross[:, rows])


@pytest.mark.parametrize("suffix, count", [
    (".self_attn.c_attn", 4), (".encoder_attn.c_attn", 2), (".w_resid", 4), (".attn_ln.weight", 2),
    (".self_attn_ln.weight", 2), (".cross_attn_ln.weight", 2), (".ffn_layernorm.weight", 4),
])
def test_every_normformer_parameter_is_live(vocab, suffix, count):
    """--scale-attn/--scale-fc/--scale-heads/--scale-resids modules must take part in the forward pass."""
    model = build(vocab, scale_resids=True)
    batch = caption_batch(vocab)
    with torch.no_grad():
        before = model(**batch)[0]
        touched = [p for n, p in model.named_parameters() if n.endswith(suffix)]
        assert len(touched) == count
        for param in touched:
            param.mul_(torch.empty_like(param).uniform_(0.5, 1.5))
        assert (model(**batch)[0] - before).abs().max() > 1e-4


# -------------------------------------------------------------------- 4. the entangle quirk

@pytest.mark.parametrize("disable_entangle", [False, True])
def test_decoder_inputs_get_raw_positions_unless_disable_entangle(vocab, disable_entangle):
    model = build(vocab, disable_entangle=disable_entangle)
    seen = {}
    for name in ("layernorm_embedding", "code_layernorm_embedding"):
        getattr(model.decoder, name).register_forward_pre_hook(lambda m, a, name=name: seen.__setitem__(name, a[0]))
    tokens = torch.stack([prev_tokens(vocab, 1, 5, seed=1, code=True)[0], prev_tokens(vocab, 1, 5, seed=2)[0]])
    with torch.no_grad():
        model.decoder(tokens, code_masks=torch.tensor([True, False]), encoder_out=encode(model, vocab, 2))
        emb = model.decoder.embed_tokens(tokens)
        text_pos = model.decoder.embed_positions.weight[:5]
        code_pos = model.decoder.embed_image_positions.weight[model.decoder.image_position_idx[:5]]
    scale = 0.0 if disable_entangle else 1.0
    close(seen["code_layernorm_embedding"][0], emb[0] + scale * code_pos)
    close(seen["layernorm_embedding"][1], emb[1] + scale * text_pos)


def test_entangle_changes_the_outputs_on_the_same_weights(vocab):
    disabled = build(vocab, disable_entangle=True)
    entangled = same_weights(build(vocab, seed=1, disable_entangle=False), disabled)
    batch = mixed_batch(vocab)
    with torch.no_grad():
        assert (entangled(**batch)[0] - disabled(**batch)[0]).abs().max() > 1e-3


def test_encoder_inputs_get_no_positions_but_type_embeddings(vocab):
    """entangle_position_embedding is False: only the type embedding is added (reference §1.4)."""
    model = build(vocab)
    seen = {}
    for name in ("layernorm_embedding", "patch_layernorm_embedding"):
        getattr(model.encoder, name).register_forward_pre_hook(lambda m, a, name=name: seen.__setitem__(name, a[0]))
    batch = mixed_batch(vocab)
    with torch.no_grad():
        model.encoder(**encoder_inputs(batch))
        enc = model.encoder
        feats = enc.embed_images(batch["patch_images"]).flatten(2).transpose(1, 2)
        close(seen["patch_layernorm_embedding"], enc.image_proj(feats) + enc.type_embedding.weight[1])
        close(seen["layernorm_embedding"], enc.embed_tokens(batch["src_tokens"]) + enc.type_embedding.weight[0])


# ----------------------------------------------------------------------- 5. sample_patch_num

def _first_layer_inputs(model, **encoder_kwargs):
    captured = {}

    def hook(module, args):
        captured["x"], captured["padding"], captured["bias"] = args[0], args[1], args[2]

    handle = model.encoder.layers[0].register_forward_pre_hook(hook)
    with torch.no_grad():
        out = model.encoder(**encoder_kwargs)
    handle.remove()
    return out, captured


@pytest.mark.parametrize("impl", IMPLS)
def test_sample_patch_num_gathers_patches_with_their_positions(vocab, impl):
    model = build(vocab, attention_impl=impl)
    src = text_tokens(vocab, 2, 5, seed=0, lengths=[5, 3])
    inputs = dict(src_tokens=src, patch_images=images(2, 64, 1), patch_masks=torch.tensor([True, False]))
    num_patches, k, text_len = 16, 5, 5
    full, ref = _first_layer_inputs(model, **inputs)
    torch.manual_seed(123)  # fairseq seeds torch with --seed + update number before each step
    sampled, got = _first_layer_inputs(model, **inputs, sample_patch_num=k)
    torch.manual_seed(123)
    orders = torch.rand(2, num_patches).argsort(dim=1)[:, :k].tolist()
    assert orders[0] != orders[1]
    assert sampled["encoder_out"][0].shape == (k + text_len, 2, 32)
    for b, order in enumerate(orders):
        keep = torch.tensor(order + list(range(num_patches, num_patches + text_len)))
        close(got["x"][:, b], ref["x"][keep, b], atol=1e-6)
        assert torch.equal(got["padding"][b], ref["padding"][b, keep])
        close(got["bias"][b], ref["bias"][b][:, keep][:, :, keep], atol=1e-6)
        close(sampled["position_embeddings"][0][b], full["position_embeddings"][0][b, keep], atol=1e-6)
    assert bool(got["padding"][1, :k].all()) and not bool(got["padding"][0, :k].any())
    torch.manual_seed(123)
    again, _ = _first_layer_inputs(model, **inputs, sample_patch_num=k)
    assert torch.equal(again["encoder_out"][0], sampled["encoder_out"][0])


@pytest.mark.parametrize("impl", IMPLS)
def test_patch_order_does_not_matter_because_biases_follow_the_patches(vocab, impl):
    """Sampling all P patches permutes them: each patch's encoder output must just move with it."""
    model = build(vocab, attention_impl=impl)
    randomize_scales(model)
    inputs = dict(src_tokens=text_tokens(vocab, 2, 5, seed=0, lengths=[5, 4]), patch_images=images(2, 64, 1),
                  patch_masks=torch.tensor([True, True]))
    with torch.no_grad():
        full = model.encoder(**inputs)["encoder_out"][0]
        torch.manual_seed(7)
        permuted = model.encoder(**inputs, sample_patch_num=16)["encoder_out"][0]
    torch.manual_seed(7)
    for b, order in enumerate(torch.rand(2, 16).argsort(dim=1).tolist()):
        assert order != sorted(order)
        close(permuted[:16, b], full[order, b])
        close(permuted[16:, b], full[16:, b])


# ------------------------------------------------------------------- 6. dropout / drop path

@pytest.mark.parametrize("knob", ["dropout", "attention_dropout", "activation_dropout", "encoder_drop_path_rate",
                                  "decoder_drop_path_rate", "resnet_drop_path_rate"])
def test_dropout_and_drop_path_act_only_in_training(vocab, knob):
    reference = build(vocab)
    model = same_weights(build(vocab, seed=1, **{knob: 0.5}), reference)
    batch = mixed_batch(vocab)
    with torch.no_grad():
        close(model(**batch)[0], reference(**batch)[0], atol=0)  # eval: the knob has no effect
        model.train()
        runs = []
        for seed in (0, 0, 1, 2, 3):
            torch.manual_seed(seed)
            runs.append(model(**batch)[0])
    assert torch.equal(runs[0], runs[1]), "training randomness must follow the torch seed"
    assert any(not torch.equal(runs[0], other) for other in runs[2:]), f"{knob} never changed the outputs"


def test_drop_path_rates_grow_linearly_per_stack_and_per_resnet_stage(vocab):
    model = build(vocab, encoder_drop_path_rate=0.2, decoder_drop_path_rate=0.4, resnet_drop_path_rate=0.3,
                  encoder_layers=3)
    assert [layer.drop_path.drop_prob for layer in model.encoder.layers] == pytest.approx([0.0, 0.1, 0.2])
    assert [layer.drop_path.drop_prob for layer in model.decoder.layers] == pytest.approx([0.0, 0.4])
    for stage in (1, 2, 3):
        blocks = getattr(model.encoder.embed_images, f"layer{stage}")
        assert isinstance(blocks[0].drop_path, nn.Identity)
        assert blocks[1].drop_path.drop_prob == pytest.approx(0.3)


# ------------------------------------------------------------------------------- 7. freezing

def test_freeze_resnet_uses_frozen_batch_norm_and_loads_a_batchnorm_state_dict(vocab):
    trainable = build(vocab)
    with torch.no_grad():
        for module in trainable.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_()
    frozen = build(vocab, seed=1, freeze_resnet=True)
    trunk = frozen.encoder.embed_images
    assert not any(isinstance(m, nn.BatchNorm2d) for m in trunk.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in trunk.modules()) == 1 + 3 * (3 * 2 + 1)
    assert all(p.requires_grad for p in trunk.parameters()), "convolutions keep training"
    assert not any("bn" in n or "downsample.1" in n for n, _ in trunk.named_parameters())
    source = trainable.state_dict()
    assert any(k.endswith("num_batches_tracked") for k in source)
    assert set(frozen.state_dict()) == {k for k in source if not k.endswith("num_batches_tracked")}
    frozen.load_state_dict(copy.deepcopy(source))
    x = images(2, 32, 3)
    with torch.no_grad():
        expected = trainable.encoder.embed_images(x)  # values up to ~20: compare relatively
        torch.testing.assert_close(trunk(x), expected, rtol=1e-4, atol=1e-4)
        stats = trunk.layer1[0].bn1.running_mean.clone()
        frozen.train()
        torch.testing.assert_close(trunk(x), expected, rtol=1e-4, atol=1e-4)  # statistics stay fixed
    assert torch.equal(trunk.layer1[0].bn1.running_mean, stats)


def _backward(model, vocab, batch=None):
    model.train()
    loss_of(model, batch or mixed_batch(vocab), len(vocab)).backward()
    return {name for name, p in model.named_parameters() if p.grad is not None}


def test_freeze_encoder_embedding_freezes_the_shared_embedding(vocab):
    model = build(vocab, freeze_encoder_embedding=True)
    assert model.decoder.embed_tokens.weight is model.encoder.embed_tokens.weight
    assert model.decoder.output_projection.weight is model.encoder.embed_tokens.weight
    assert not model.encoder.embed_tokens.weight.requires_grad
    with_grad = _backward(model, vocab)
    assert "encoder.embed_tokens.weight" not in with_grad and "encoder.image_proj.weight" in with_grad
    assert build(vocab).encoder.embed_tokens.weight.requires_grad


def test_bitfit_trains_only_layer_norm_and_fc_biases(vocab):
    model = build(vocab, bitfit=True)
    # the official rule (train.py): ("layer_norm" in name and "bias" in name) or ("fc" in name and "bias" in name)
    expected = {n for n, _ in model.named_parameters() if "bias" in n and ("layer_norm" in n or "fc" in n)}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected
    assert "encoder.layers.0.fc1.bias" in expected and "decoder.layer_norm.bias" in expected
    assert "decoder.layers.1.encoder_attn_layer_norm.bias" in expected
    assert _backward(model, vocab) == expected


def test_adapter_adds_adapters_and_freezes_only_the_embedding(vocab):
    plain = build(vocab)
    model = build(vocab, adapter=True, adapter_dim=8)
    added = set(dict(model.named_parameters())) - set(dict(plain.named_parameters()))
    expected = {f"{side}.layers.{i}.adapter.{proj}.{kind}" for side in ("encoder", "decoder") for i in (0, 1)
                for proj in ("down_proj", "up_proj") for kind in ("weight", "bias")}
    assert added == expected
    assert model.encoder.layers[0].adapter.down_proj.weight.shape == (8, 32)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"encoder.embed_tokens.weight"}
    assert expected <= _backward(model, vocab)


PROMPT_CASES = {
    "encoder": dict(encoder_prompt=True),
    "decoder": dict(decoder_prompt=True),
    "both_projected": dict(encoder_prompt=True, decoder_prompt=True, encoder_prompt_projection=True,
                           decoder_prompt_projection=True, encoder_prompt_dim=16, decoder_prompt_dim=16),
    "encoder_projected_with_adapter": dict(encoder_prompt=True, encoder_prompt_projection=True, adapter=True,
                                           adapter_dim=8),
}


@pytest.mark.parametrize("case", list(PROMPT_CASES))
def test_prompt_tuning_trains_only_the_prompts(vocab, case):
    flags = dict(encoder_prompt_length=3, decoder_prompt_length=3, **PROMPT_CASES[case])
    model = build(vocab, **flags)
    tuned = {n for n, _ in model.named_parameters() if "prompt_encoder" in n or ".adapter." in n}
    prompt_params = {n for n in tuned if "prompt_encoder" in n}
    for side in ("encoder", "decoder"):
        has = any(n.startswith(f"{side}.{side}_prompt_encoder.") for n in prompt_params)
        assert has == bool(flags.get(f"{side}_prompt"))
    if flags.get("encoder_prompt_projection"):
        assert model.encoder.encoder_prompt_encoder.embedding.weight.shape == (3, 32)
        hidden = flags.get("encoder_prompt_dim", 2 * 32)  # default 2 * D
        assert model.encoder.encoder_prompt_encoder.trans[2].weight.shape == (2 * 2 * 32, hidden)
    elif flags.get("encoder_prompt"):
        assert model.encoder.encoder_prompt_encoder.embedding.weight.shape == (3, 2 * 2 * 32)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == tuned
    prompt = model.encoder.encoder_prompt_encoder or model.decoder.decoder_prompt_encoder
    prompt.train()
    torch.manual_seed(0)
    first = prompt(2)
    torch.manual_seed(1)
    assert len(first) == 2 and first[0].shape == (2, 2, 4, 3, 8)  # per layer: (k|v, B, H, length, head_dim)
    assert not torch.equal(first[1], prompt(2)[1]), "prompts get dropout 0.2 in training (official)"
    with_grad = _backward(model, vocab)
    assert with_grad == tuned
    for name, param in model.named_parameters():
        if name in with_grad:
            assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("case", ["encoder", "decoder", "both_projected"])
def test_prompts_change_outputs_and_eager_equals_sdpa(vocab, case):
    flags = dict(encoder_prompt_length=3, decoder_prompt_length=3, **PROMPT_CASES[case])
    model = build(vocab, **flags)
    plain = build(vocab)
    own = model.state_dict()
    plain.load_state_dict({k: v for k, v in own.items() if "prompt_encoder" not in k})
    batch = mixed_batch(vocab)
    with torch.no_grad():
        results = {}
        for impl in IMPLS:
            set_attention_impl(model, impl)
            results[impl] = model(**batch)[0]
        without = plain(**batch)[0]
    close(results["eager"], results["sdpa"])
    assert (results["sdpa"] - without).abs().max() > 1e-4


# --------------------------------------------------------------------- 8. checkpoint activations

def test_checkpoint_activations_keep_outputs_and_gradients(vocab):
    flags = dict(dropout=0.1, encoder_drop_path_rate=0.2, decoder_drop_path_rate=0.2)
    plain = build(vocab, **flags)
    checkpointed = build(vocab, checkpoint_activations=True, **flags)
    assert hasattr(checkpointed.encoder.layers[0], "precheckpoint_forward"), "layers are not checkpointed"
    assert hasattr(checkpointed.decoder.layers[1], "precheckpoint_forward")
    assert list(checkpointed.state_dict()) == list(plain.state_dict())
    same_weights(checkpointed, plain)
    batch = mixed_batch(vocab)
    losses = []
    for model in (plain, checkpointed):
        model.train()
        torch.manual_seed(0)
        loss = loss_of(model, batch, len(vocab))
        loss.backward()
        losses.append(loss.detach())
    close(losses[0], losses[1])
    grads = {n: p.grad for n, p in checkpointed.named_parameters()}
    for name, param in plain.named_parameters():
        assert (param.grad is None) == (grads[name] is None), name
        if param.grad is not None:
            close(grads[name], param.grad, atol=1e-6)


# ------------------------------------------------------------------------------- 9. backward

def _image_only_params(model) -> set:
    names = {n for n, _ in model.named_parameters()}
    return {n for n in names if n.startswith(("encoder.embed_images.", "encoder.image_proj.",
                                              "encoder.patch_layernorm_embedding.", "encoder.image_pos_ln.",
                                              "encoder.embed_image_positions.", "encoder.image_rel_pos_table_list."))}


@pytest.mark.parametrize("kind", ["caption", "text_only"])
def test_every_parameter_a_batch_uses_gets_a_finite_gradient(vocab, kind):
    model = build(vocab)
    batch = caption_batch(vocab) if kind == "caption" else text_batch(vocab)
    with_grad = _backward(model, vocab, batch)
    unused = set(DECODER_CODE_ONLY) | (_image_only_params(model) if kind == "text_only" else set())
    names = {n for n, _ in model.named_parameters()}
    assert names - with_grad == unused
    for name, param in model.named_parameters():
        if param.grad is None:
            continue
        assert torch.isfinite(param.grad).all(), name
        # a key bias adds a per-query constant to the logits, which softmax ignores: zero gradient
        if not name.endswith(("k_proj.bias", "pos_k_linear.bias")):
            assert param.grad.abs().sum() > 0, name


def test_code_batch_gives_zero_gradient_to_decoder_text_position_parameters(vocab):
    model = build(vocab)
    batch = caption_batch(vocab)
    batch["prev_output_tokens"] = prev_tokens(vocab, 3, 6, seed=4, code=True)
    batch["code_masks"] = torch.ones(3, dtype=torch.bool)
    _backward(model, vocab, batch)
    zero = {n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.any())}
    assert zero == {"decoder.layernorm_embedding.weight", "decoder.layernorm_embedding.bias",
                    "decoder.pos_ln.weight", "decoder.pos_ln.bias", "decoder.embed_positions.weight",
                    "decoder.token_rel_pos_table_list.0.weight", "decoder.token_rel_pos_table_list.1.weight"}


# --------------------------------------------------------------------- 10. state-dict upgrades

DERIVED = ("encoder.version", "decoder.version", "encoder.token_rp_bucket", "encoder.image_rp_bucket",
           "decoder.token_rp_bucket", "decoder.image_rp_bucket", "decoder.image_position_idx")


def test_state_dict_without_derived_buffers_or_tied_projection_loads(vocab):
    source = build(vocab, seed=3)
    target = build(vocab, seed=4)
    state = {k: v.clone() for k, v in source.state_dict().items()
             if k not in DERIVED and k != "decoder.output_projection.weight"}
    target.load_state_dict(state)
    for key, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], tensor), key
    assert torch.equal(target.encoder.token_rp_bucket, token_bucket_table(16, 64))
    assert target.decoder.output_projection.weight is target.encoder.embed_tokens.weight


def test_stale_derived_buffers_are_replaced_by_the_current_config(vocab):
    """Official: image_position_idx is always the current model's (a 128-px code model loads into 256)."""
    target = build(vocab)
    state = copy.deepcopy(build(vocab, seed=1, code_image_size=32).state_dict())
    assert state["decoder.image_position_idx"].shape != target.decoder.image_position_idx.shape
    target.load_state_dict(state)
    assert torch.equal(target.decoder.image_position_idx, code_position_ids(64, 8))


def test_missing_parameters_keep_their_initial_values(vocab):
    target = build(vocab, seed=4)
    initial = target.decoder.code_layernorm_embedding.weight.detach().clone()
    state = copy.deepcopy(build(vocab, seed=3).state_dict())
    del state["decoder.code_layernorm_embedding.weight"], state["encoder.type_embedding.weight"]
    target.load_state_dict(state)
    assert torch.equal(target.decoder.code_layernorm_embedding.weight, initial)
    assert torch.equal(target.encoder.pos_q_linear.weight, state["encoder.pos_q_linear.weight"])


def test_vocabulary_mismatch_is_a_clear_error(vocab, tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("".join(f"w{i} {1000 - i}\n" for i in range(NUM_WORDS)))
    smaller = build(build_ofa_dictionary(str(path), code_dict_size=NUM_CODES // 2, num_bins=NUM_BINS))
    with pytest.raises(ValueError, match="vocabulary mismatch") as error:
        build(vocab).load_state_dict(copy.deepcopy(smaller.state_dict()))
    assert str(len(vocab) - NUM_CODES // 2) in str(error.value) and str(len(vocab)) in str(error.value)


def test_unexpected_keys_are_an_error(vocab):
    target = build(vocab)
    state = copy.deepcopy(target.state_dict())
    state["encoder.layers.0.bogus"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="bogus"):
        target.load_state_dict(state)
    # a checkpoint trained with --scale-attn/--scale-fc/--scale-heads needs those flags (issue #146)
    plain = build(vocab, scale_attn=False, scale_fc=False, scale_heads=False)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        plain.load_state_dict(copy.deepcopy(build(vocab).state_dict()))


# ------------------------------------------------------------------ 11. --interpolate-position

def test_interpolate_position_resizes_the_original_grid_for_big_images(vocab):
    """orig_patch_image_size 32 -> 2x2 original grid; 64 px images (4x4 patches) use it resized."""
    plain = build(vocab)
    model = same_weights(build(vocab, seed=1, interpolate_position=True), plain)
    src = text_tokens(vocab, 2, 5, seed=0)
    masks = torch.ones(2, dtype=torch.bool)
    with torch.no_grad():
        small = [m.encoder(src, patch_images=images(2, 32), patch_masks=masks) for m in (plain, model)]
        close(small[0]["encoder_out"][0], small[1]["encoder_out"][0], atol=0)
        big = [m.encoder(src, patch_images=images(2, 64), patch_masks=masks) for m in (plain, model)]
        assert big[1]["encoder_out"][0].shape == (16 + 5, 2, 32)
        assert (big[1]["encoder_out"][0] - big[0]["encoder_out"][0]).abs().max() > 1e-3
        enc = model.encoder
        ids = torch.tensor([1, 2, 9, 10])  # r * 8 + c + 1 for the 2x2 original grid (bucket size 8)
        grid = enc.embed_image_positions(ids).reshape(1, 2, 2, 32).permute(0, 3, 1, 2)
        resized = F.interpolate(grid, size=(4, 4), mode="bilinear", align_corners=False)
        expected = enc.image_pos_ln(resized.permute(0, 2, 3, 1).reshape(16, 32))
        close(big[1]["position_embeddings"][0][0, :16], expected)
        close(big[1]["position_embeddings"][0][1, :16], expected)
