"""OFA criterions; importing this package registers them with fairseq."""
from . import label_smoothed_cross_entropy  # noqa: F401
