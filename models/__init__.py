"""The OFA model (registered with fairseq as `ofa` with archs ofa_tiny ... ofa_huge and ofa_nano)."""
from .ofa_model import OFAModel, set_attention_impl  # noqa: F401
