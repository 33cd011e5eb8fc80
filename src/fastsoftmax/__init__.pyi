"""Type stubs for the public API of fastsoftmax."""
from typing import Any

from . import _core as _core
from ._core import available_isas as available_isas
from ._core import log_softmax as log_softmax
from ._core import logsumexp as logsumexp
from ._core import set_isa as set_isa
from ._core import softmax as softmax

__version__: str
__all__ = ["softmax", "log_softmax", "logsumexp", "show_config", "get_config",
           "set_isa", "available_isas", "__version__"]

def get_config() -> dict[str, Any]: ...
def show_config() -> None: ...
