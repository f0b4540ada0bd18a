"""OFA tasks, registered with fairseq under their official names."""
from . import caption, ofa_task  # noqa: F401
from . import refcoco  # noqa: F401
