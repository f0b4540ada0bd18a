"""OFA as a fairseq plugin: `--user-dir ofa_plugin` (source checkout) or the installed package.

Importing this package registers the OFA model, tasks and criterions with fairseq's registries.
The top-level folders models/, tasks/ and criterions/ of the source tree are the subpackages
`ofa_plugin.models`, `ofa_plugin.tasks` and `ofa_plugin.criterions` (setup.py maps them; from a
plain checkout they are attached here), so nothing generic lands on `sys.path`.
"""
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

_root_logger = logging.getLogger()
_root_handlers, _root_level = list(_root_logger.handlers), _root_logger.level
try:
    import fairseq  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ofa_plugin needs fairseq. Install it with `make install` (it installs ve-fairseq==0.12.3 "
        "with --no-deps plus its runtime needs; see README)."
    ) from err
if not _root_handlers and _root_logger.handlers:
    # fairseq's wav2vec2_classification module calls logging.basicConfig(level=DEBUG) when imported: undone,
    # so that our commands' own logging set-up takes effect and libraries' debug lines (PIL) stay hidden.
    for _handler in list(_root_logger.handlers):
        _root_logger.removeHandler(_handler)
    _root_logger.setLevel(_root_level)

from ofa_plugin import compat  # noqa: F401,E402  (must run before any checkpoint is loaded)
from ofa_plugin import distributed_compat  # noqa: F401,E402  (torchrun on CPUs: see the module)
from ofa_plugin import lr_scheduler  # noqa: F401,E402  (registers --lr-scheduler ofa_polynomial_decay)

_SUBPACKAGES = ("models", "tasks", "criterions")
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _attach_source_subpackage(name: str) -> None:
    """Make `<source root>/<name>` importable as `ofa_plugin.<name>` when not installed."""
    full_name = f"{__name__}.{name}"
    if full_name in sys.modules or importlib.util.find_spec(full_name) is not None:
        return
    folder = _SOURCE_ROOT / name
    spec = importlib.util.spec_from_file_location(
        full_name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[full_name] = module
    spec.loader.exec_module(module)


for _name in _SUBPACKAGES:
    _attach_source_subpackage(_name)
    importlib.import_module(f"{__name__}.{_name}")

from ofa_plugin.metrics import grounding_scorer, label_scorer, scorer, summary_scorer, vqa_scorer  # noqa: F401,E402  (register the scorers)
