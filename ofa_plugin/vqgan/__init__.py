"""The VQGAN image tokenizer of OFA's image generation and image infilling (reference §3.5, §5.6, §10.2).

A taming-transformers `GumbelVQ` (f8: an S x S image <-> (S/8)^2 codes, token = code + 50265) that loads the
official tokenizer's config YAML and checkpoint, and a small one of ours fitted to toy-world images:

    python -m ofa_plugin.vqgan.train_toy --out DIR           # DIR/model.yaml + DIR/last.ckpt (taming format)
    python -m ofa_plugin.vqgan.encode_tsv --vqgan-config-path DIR/model.yaml --vqgan-model-path DIR/last.ckpt \
        --input images.tsv --output codes.tsv                # image TSV -> code TSV
    python -m ofa_plugin.vqgan.decode_tsv --vqgan-config-path ... --vqgan-model-path ... \
        --input codes.tsv --out-dir pngs/                    # code TSV -> PNG files

Python API for tasks: `load_vqgan(config, checkpoint)`, `image_to_tensor(image, size)`,
`encode_images(model, images) -> LongTensor (B, h*w)`, `decode_codes(model, codes, size) -> PIL images`.
Modules: `modules` (encoder/decoder blocks), `gumbel_vq` (the model), `loading` (file formats), `codes`
(image <-> code conversions, code columns), the three command lines.
"""
from .codes import (OFA_CODE_TOKEN_OFFSET, CodeFormatError, decode_codes, encode_images, format_codes, image_to_tensor,
                    parse_codes, pixels_to_images, read_code_rows)
from .gumbel_vq import GumbelVQ
from .loading import TokenizerFileError, VQGANConfig, build_model, load_vqgan, read_config, save_checkpoint, write_config
from .modules import DDConfig

__all__ = [
    "OFA_CODE_TOKEN_OFFSET", "CodeFormatError", "DDConfig", "GumbelVQ", "TokenizerFileError", "VQGANConfig",
    "build_model", "decode_codes", "encode_images", "format_codes", "image_to_tensor", "load_vqgan", "parse_codes",
    "pixels_to_images", "read_code_rows", "read_config", "save_checkpoint", "write_config",
]
