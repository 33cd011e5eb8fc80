"""Type stubs for the public API of fastsoftmax."""
from typing import Any, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core as _core
from ._core import available_isas as available_isas
from ._core import log_softmax as log_softmax
from ._core import logsumexp as logsumexp
from ._core import set_isa as set_isa
from ._core import softmax as softmax

__version__: str
__all__ = ["softmax", "log_softmax", "logsumexp", "topk_softmax", "sample", "show_config", "get_config",
           "set_isa", "available_isas", "__version__"]

def get_config() -> dict[str, Any]: ...
def show_config() -> None: ...

def topk_softmax(x: ArrayLike, k: SupportsIndex, axis: SupportsIndex = -1, *, temperature: float = 1.0,
                 threads: int | np.integer[Any] | None = None) -> tuple[NDArray[np.inexact[Any]], NDArray[np.int64]]: ...
def sample(logits: ArrayLike, *, temperature: float = 1.0, top_k: SupportsIndex | None = None,
           top_p: float | None = None, min_p: float | None = None,
           rng: np.random.Generator | int | np.random.SeedSequence | None = None,
           threads: int | np.integer[Any] | None = None) -> NDArray[np.int64] | np.int64: ...
