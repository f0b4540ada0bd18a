"""Command-line options and architectures of the `ofa` model (official names and defaults).

The model is a legacy fairseq `add_args` model, like the official one, because official checkpoints
store `cfg["model"]` as an `argparse.Namespace`. Architecture functions only fill attributes that
are not already set, so values stored in a checkpoint always win over the defaults (reference §1.2).
"""
import argparse
from typing import Callable, Dict

from fairseq.dataclass.utils import gen_parser_from_dataclass
from fairseq.models import register_model_architecture
from fairseq.models.transformer import TransformerConfig

RESNET_TYPES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

# (option, type, help); every OFA-specific model option, defaults come from the arch functions.
_OFA_OPTIONS = [
    ("--bitfit", "flag", "train only LayerNorm and fc biases (applied by the training setup)"),
    ("--freeze-encoder", "flag", "accepted for compatibility; a no-op in the official code"),
    ("--freeze-decoder", "flag", "accepted for compatibility; a no-op in the official code"),
    ("--adapter", "flag", "add a bottleneck adapter after every FFN"),
    ("--adapter-dim", int, "hidden size of the adapters"),
    ("--encoder-prompt", "flag", "prefix-tune the encoder self-attention"),
    ("--encoder-prompt-type", str, "prompt type (only 'prefix')"),
    ("--encoder-prompt-projection", "flag", "reparametrise encoder prompts through an MLP"),
    ("--encoder-prompt-length", int, "number of encoder prompt vectors"),
    ("--encoder-prompt-dim", int, "hidden size of the encoder prompt MLP"),
    ("--decoder-prompt", "flag", "prefix-tune the decoder self-attention"),
    ("--decoder-prompt-type", str, "prompt type (only 'prefix')"),
    ("--decoder-prompt-projection", "flag", "reparametrise decoder prompts through an MLP"),
    ("--decoder-prompt-length", int, "number of decoder prompt vectors"),
    ("--decoder-prompt-dim", int, "hidden size of the decoder prompt MLP"),
    ("--resnet-drop-path-rate", float, "stochastic depth rate inside the ResNet blocks"),
    ("--encoder-drop-path-rate", float, "stochastic depth rate of the last encoder layer"),
    ("--decoder-drop-path-rate", float, "stochastic depth rate of the last decoder layer"),
    ("--token-bucket-size", int, "text relative position buckets"),
    ("--image-bucket-size", int, "side of the largest image patch grid"),
    ("--attn-scale-factor", float, "attention logits are scaled by (head_dim * factor) ** -0.5"),
    ("--freeze-resnet", "flag", "freeze the ResNet BatchNorm layers (convolutions still train)"),
    ("--freeze-encoder-embedding", "flag", "freeze the (shared) encoder token embedding"),
    ("--freeze-decoder-embedding", "flag", "freeze the (shared) decoder token embedding"),
    ("--add-type-embedding", "flag", "add text/image type embeddings in the encoder"),
    ("--interpolate-position", "flag", "bilinearly resize image position embeddings for big grids"),
    ("--resnet-type", str, "image backbone: " + ", ".join(RESNET_TYPES)),
    ("--resnet-model-path", str, "torchvision-style ResNet weights loaded at build time"),
    ("--code-image-size", int, "image size whose 8x-downsampled grid the image codes cover"),
    ("--patch-layernorm-embedding", "flag", "LayerNorm on image patch embeddings"),
    ("--code-layernorm-embedding", "flag", "LayerNorm on decoder embeddings of image codes"),
    ("--entangle-position-embedding", "flag", "add absolute positions to the encoder inputs"),
    ("--disable-entangle", "flag", "do not add absolute positions to the decoder inputs"),
    ("--sync-bn", "flag", "SyncBatchNorm in the ResNet"),
    ("--scale-attn", "flag", "NormFormer LayerNorm after attention"),
    ("--scale-fc", "flag", "NormFormer LayerNorm inside the FFN"),
    ("--scale-heads", "flag", "NormFormer learnable per-head scale"),
    ("--scale-resids", "flag", "NormFormer learnable residual scale"),
    ("--pooler-dropout", float, "accepted for compatibility (classification heads are not built)"),
    ("--pooler-classifier", str, "accepted for compatibility (classification heads are not built)"),
    ("--pooler-activation-fn", str, "accepted for compatibility (classification heads are not built)"),
    ("--spectral-norm-classification-head", "flag", "accepted for compatibility"),
    ("--attention-impl", str, "attention kernel: 'sdpa' (fused) or 'eager' (reference); same numbers"),
]


def add_ofa_args(parser: argparse.ArgumentParser) -> None:
    """Stock transformer options (no defaults, so arch functions can fill them) + OFA's own."""
    gen_parser_from_dataclass(parser, TransformerConfig(), delete_default=True, with_prefix="")
    existing = {opt for action in parser._actions for opt in action.option_strings}
    for option, kind, help_text in _OFA_OPTIONS:
        if option in existing:  # task options with the same name share one CLI flag (as official)
            continue
        if kind == "flag":
            parser.add_argument(option, action="store_true", help=help_text)
        else:
            parser.add_argument(option, type=kind, metavar="N" if kind is not str else "STR", help=help_text)


def _fill(args, defaults: Dict[str, object]) -> None:
    """Set only absent attributes (fairseq parses model options with argparse.SUPPRESS)."""
    for name, value in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)


def ofa_large_architecture(args) -> None:
    """Defaults shared by every OFA size (official `ofa_large_architecture`, reference §1.2)."""
    _fill(args, dict(
        encoder_embed_path=None, encoder_embed_dim=1024, encoder_ffn_embed_dim=4096,
        encoder_layers=12, encoder_attention_heads=16, decoder_embed_path=None,
        decoder_layers=12, decoder_attention_heads=16, attention_dropout=0.0,
        relu_dropout=0.0, dropout=0.0, max_target_positions=1024, max_source_positions=1024,
        adaptive_softmax_cutoff=None, adaptive_softmax_dropout=0, activation_fn="gelu",
        pooler_activation_fn="tanh", pooler_dropout=0.0, pooler_classifier="mlp",
        resnet_drop_path_rate=0.0, encoder_drop_path_rate=0.0, decoder_drop_path_rate=0.0,
        resnet_type="resnet152", token_bucket_size=256, image_bucket_size=42, attn_scale_factor=2,
        code_image_size=128, orig_patch_image_size=256, activation_dropout=0.0,
        encoder_layerdrop=0.0, decoder_layerdrop=0.0, adapter_dim=64,
        encoder_prompt_type="prefix", decoder_prompt_type="prefix",
        encoder_prompt_length=100, decoder_prompt_length=100, attention_impl="sdpa",
    ))
    _fill(args, dict(
        decoder_embed_dim=args.encoder_embed_dim,
        decoder_ffn_embed_dim=args.encoder_ffn_embed_dim,
        encoder_prompt_dim=2 * args.encoder_embed_dim,
        decoder_prompt_dim=2 * args.encoder_embed_dim,
    ))
    _fill(args, dict(decoder_output_dim=args.decoder_embed_dim, decoder_input_dim=args.decoder_embed_dim))
    _fill(args, {name: True for name in (
        "encoder_normalize_before", "encoder_learned_pos", "decoder_normalize_before",
        "decoder_learned_pos", "share_decoder_input_output_embed", "share_all_embeddings",
        "no_scale_embedding", "layernorm_embedding", "add_type_embedding",
        "patch_layernorm_embedding", "code_layernorm_embedding",
    )})


def _sized(name: str, dim: int, ffn: int, enc_layers: int, dec_layers: int, heads: int, resnet: str) -> Callable:
    def arch(args) -> None:
        _fill(args, dict(
            encoder_embed_dim=dim, encoder_ffn_embed_dim=ffn, encoder_layers=enc_layers,
            decoder_layers=dec_layers, encoder_attention_heads=heads,
            decoder_attention_heads=heads, resnet_type=resnet,
        ))
        ofa_large_architecture(args)

    arch.__name__ = f"{name}_architecture"
    arch.__doc__ = f"{name}: D={dim}, FFN={ffn}, {enc_layers}+{dec_layers} layers, {heads} heads, {resnet}."
    return arch


# name: (embed dim, ffn dim, encoder layers, decoder layers, heads, resnet) -- reference §1.2
OFA_ARCHS = {
    "ofa_tiny": (256, 1024, 4, 4, 4, "resnet50"),
    "ofa_medium": (512, 2048, 4, 4, 8, "resnet101"),
    "ofa_base": (768, 3072, 6, 6, 12, "resnet101"),
    "ofa_large": (1024, 4096, 12, 12, 16, "resnet152"),
    "ofa_huge": (1280, 5120, 24, 12, 16, "resnet152"),
    # ours: a small model for CPU demos and tests (not an official size)
    "ofa_nano": (128, 512, 2, 2, 4, "resnet50"),
}


def register_architectures(model_name: str) -> None:
    """Register every size in OFA_ARCHS for `model_name` (called once by the model module)."""
    for arch_name, sizes in OFA_ARCHS.items():
        register_model_architecture(model_name, arch_name)(_sized(arch_name, *sizes))
