"""OFA criterions; importing this package registers them with fairseq."""
from . import label_smoothed_cross_entropy  # noqa: F401
from . import label_smoothed_encouraging_loss  # noqa: F401
from . import scst_reward_criterion  # noqa: F401
from . import clip_scst_reward_criterion  # noqa: F401
