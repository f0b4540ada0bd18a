"""OFA tasks, registered with fairseq under their official names."""
from . import caption, ofa_task  # noqa: F401
from . import refcoco  # noqa: F401
from . import vqa_gen  # noqa: F401
from . import snli_ve  # noqa: F401
from . import image_classify  # noqa: F401
from . import gigaword, glue  # noqa: F401
from . import image_gen  # noqa: F401
from . import unify_task  # noqa: F401
