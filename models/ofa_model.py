"""The `ofa` model: registration, construction from (checkpoint) args, freezing and state-dict upgrades."""
import logging
from typing import Dict, Optional

import torch
from fairseq.models import FairseqEncoderDecoderModel, register_model
from fairseq.modules.transformer_sentence_encoder import init_bert_params
from torch import Tensor, nn

from .attention import OFAAttention
from .config import add_ofa_args, ofa_large_architecture, register_architectures
from .decoder import OFADecoder
from .embeddings import build_embedding
from .encoder import OFAEncoder
from .load_report import TIED_KEYS, describe_load, is_derived

logger = logging.getLogger(__name__)


@register_model("ofa")
class OFAModel(FairseqEncoderDecoderModel):
    """OFA encoder-decoder; `forward` takes the official `net_input` fields (reference §1.13)."""

    def __init__(self, args, encoder: OFAEncoder, decoder: OFADecoder):
        super().__init__(encoder, decoder)
        self.args = args
        if not next(self.parameters()).is_meta:  # the official init; skipped for shape-only builds
            self.apply(init_bert_params)

    @staticmethod
    def add_args(parser) -> None:
        add_ofa_args(parser)

    @classmethod
    def build_model(cls, args, task) -> "OFAModel":
        ofa_large_architecture(args)
        src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
        if args.share_all_embeddings and src_dict != tgt_dict:
            raise ValueError("--share-all-embeddings requires one dictionary for source and target")
        encoder_embed = build_embedding(len(src_dict), args.encoder_embed_dim, src_dict.pad())
        decoder_embed = encoder_embed if args.share_all_embeddings else build_embedding(
            len(tgt_dict), args.decoder_embed_dim, tgt_dict.pad())
        model = cls(args, OFAEncoder(args, src_dict, encoder_embed), OFADecoder(args, tgt_dict, decoder_embed))
        apply_freezing(model, args)
        return model

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        patch_images: Optional[Tensor] = None,
        patch_images_2: Optional[Tensor] = None,
        patch_masks: Optional[Tensor] = None,
        code_masks: Optional[Tensor] = None,
        sample_patch_num: Optional[int] = None,
        features_only: bool = False,
        classification_head_name: Optional[str] = None,
        token_embeddings: Optional[Tensor] = None,
        return_all_hiddens: bool = False,
        alignment_layer: Optional[int] = None,
        alignment_heads: Optional[int] = None,
    ):
        if classification_head_name is not None:
            raise ValueError("classification heads are not supported (no official task uses them)")
        encoder_out = self.encoder(
            src_tokens, src_lengths=src_lengths, patch_images=patch_images, patch_images_2=patch_images_2,
            patch_masks=patch_masks, sample_patch_num=sample_patch_num, token_embeddings=token_embeddings,
            return_all_hiddens=return_all_hiddens,
        )
        return self.decoder(prev_output_tokens, code_masks=code_masks, encoder_out=encoder_out,
                            features_only=features_only)

    def load_state_dict(self, state_dict: Dict[str, Tensor], strict: bool = True, model_cfg=None, args=None):
        """fairseq's (state-dict upgrade, then torch's load). Strict loads are checkpoint loads
        (--restore-file, fairseq-generate) and log what came from the checkpoint; the EMA copies weights
        into its own model non-strictly after every update, silently."""
        report = describe_load(self.state_dict(), state_dict) if strict else None
        result = super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
        if report:
            logger.info(report)
        return result

    def upgrade_state_dict_named(self, state_dict: Dict[str, Tensor], name: str) -> None:
        """Make an official (or our) checkpoint's state dict loadable into this model (reference §2.3):
        derived buffers recomputed, the tied projection and missing entries filled from this model."""
        prefix = f"{name}." if name else ""
        own = self.state_dict()
        _check_vocabulary(state_dict, own, prefix)
        for key, tensor in own.items():
            if is_derived(key):
                state_dict[prefix + key] = tensor
        for tied, source in TIED_KEYS.items():
            if prefix + tied not in state_dict and prefix + source in state_dict:
                state_dict[prefix + tied] = state_dict[prefix + source]
        for side in ("encoder", "decoder"):
            _grow_image_positions(state_dict, own, prefix, f"{side}.embed_image_positions.weight")
        for key, tensor in own.items():
            state_dict.setdefault(prefix + key, tensor)
        super().upgrade_state_dict_named(state_dict, name)

    def prepare_for_inference_(self, cfg) -> None:
        """fairseq-generate halves the model for --fp16 but ignores --bf16: cast to bfloat16 for it."""
        if cfg.common.bf16 and not cfg.common.fp16:
            self.to(torch.bfloat16)
        super().prepare_for_inference_(cfg)


def _check_vocabulary(state_dict: Dict[str, Tensor], own: Dict[str, Tensor], prefix: str) -> None:
    key = "encoder.embed_tokens.weight"
    if prefix + key not in state_dict:
        return
    rows, expected = state_dict[prefix + key].size(0), own[key].size(0)
    if rows != expected:
        raise ValueError(
            f"vocabulary mismatch: the checkpoint's token embedding has {rows} rows but the task's "
            f"dictionary has {expected} entries (dict.txt of --bpe-dir + <mask> + code_dict_size codes + "
            f"num_bins bins). Use the vocabulary the checkpoint was trained with: fairseq-generate builds the "
            f"dictionary from its own command line, so pass the training run's --bpe, --bpe-dir, "
            f"--code-dict-size and --num-bins."
        )


def _grow_image_positions(state_dict, own, prefix: str, key: str) -> None:
    """A larger --image-bucket-size than the checkpoint's: append N(0, D**-0.5) rows (official)."""
    full_key = prefix + key
    if full_key not in state_dict:
        return
    table, target = state_dict[full_key], own[key]
    if table.size(0) < target.size(0):
        extra = torch.randn(target.size(0) - table.size(0), table.size(1), dtype=table.dtype) * table.size(1) ** -0.5
        state_dict[full_key] = torch.cat([table, extra])


def apply_freezing(model: OFAModel, args) -> None:
    """The official freezing rules: embeddings, prompt/adapter tuning and --bitfit (reference §1.12)."""
    uses_prompt = getattr(args, "encoder_prompt", False) or getattr(args, "decoder_prompt", False)
    if uses_prompt:
        for param_name, param in model.named_parameters():
            param.requires_grad = "prompt_encoder" in param_name or ".adapter." in param_name
    if getattr(args, "freeze_encoder_embedding", False) or uses_prompt or getattr(args, "adapter", False):
        model.encoder.embed_tokens.weight.requires_grad = False
    if getattr(args, "freeze_decoder_embedding", False) or uses_prompt or getattr(args, "adapter", False):
        model.decoder.embed_tokens.weight.requires_grad = False
    if getattr(args, "bitfit", False):
        for param_name, param in model.named_parameters():
            param.requires_grad = param_name.endswith("bias") and ("layer_norm" in param_name or "fc" in param_name)


def set_attention_impl(model: nn.Module, impl: str) -> None:
    """Switch every attention of `model` between the 'eager' reference and the fused 'sdpa' path."""
    for module in model.modules():
        if isinstance(module, OFAAttention):
            module.set_impl(impl)


register_architectures("ofa")
