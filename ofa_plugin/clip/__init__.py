"""CLIP for OFA's image generation (reference §5.6, §6.4, §8): the official CLIP score of generated images
and the reward of CLIP-SCST, with a user-supplied checkpoint (OFA's scripts use OpenAI's `ViT-B-16.pt`)
run by the installed open_clip library.

    python -m ofa_plugin.clip --write-random-checkpoint OUT.pt    # a tiny random CLIP for tests/toy runs

Modules: `loading` (checkpoint files -> open_clip CLIP; random checkpoints), `model` (`ClipModel`: features,
`ti_sim`, `ii_sim`), `scorer` (fairseq-generate's `ofa_clip_image` scorer of the image_gen task).
"""
from .loading import ClipCheckpointError, TinyClipConfig, load_clip_model, read_state_dict, write_random_checkpoint
from .model import ClipModel

__all__ = ["ClipCheckpointError", "ClipModel", "TinyClipConfig", "load_clip_model", "read_state_dict",
           "write_random_checkpoint"]
