"""fastsoftmax: softmax, log_softmax and logsumexp for NumPy, fast and accurate, scipy-compatible.

>>> import numpy as np, fastsoftmax
>>> fastsoftmax.softmax(np.array([1.0, 1.0]))
array([0.5, 0.5])
"""
import os as _os

from ._version import __version__
from . import _core
from ._core import available_isas, log_softmax, logsumexp, set_isa, softmax
from ._select import sample, topk_softmax

__all__ = ["softmax", "log_softmax", "logsumexp", "topk_softmax", "sample", "show_config", "get_config",
           "set_isa", "available_isas", "__version__"]


def _threads_source():
    if _os.environ.get("FASTSOFTMAX_NUM_THREADS"):
        return "FASTSOFTMAX_NUM_THREADS"
    if not _core.openmp_enabled():
        return "built without OpenMP"
    if _os.environ.get("OMP_NUM_THREADS"):
        return "OMP_NUM_THREADS"
    return "OpenMP default (CPUs this process may use), or threadpoolctl's limit"


def get_config():
    """The build and run-time configuration as a dict (see ``show_config``)."""
    return {
        "version": __version__,
        "isa": _core.current_isa(),
        "isa_algorithm": _core.isa_algorithm(),
        "isas_available": available_isas(),
        "isas_compiled": _core.compiled_isas(),
        "openmp": _core.openmp_enabled(),
        "default_threads": _core.default_threads(),
        "default_threads_from": _threads_source(),
    }


def show_config():
    """Print the version, the ISA in use and available, OpenMP on/off and the default thread count."""
    for key, value in get_config().items():
        print(f"{key:>22}: {value}")


_isa = _os.environ.get("FASTSOFTMAX_ISA")
if _isa:
    set_isa(_isa)
del _isa
