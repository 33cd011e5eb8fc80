"""Type stubs for the compiled extension fastsoftmax._core (Cython wrapper over the C core)."""
from typing import Any, Literal, SupportsIndex, TypeAlias, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

_Axis: TypeAlias = SupportsIndex | tuple[SupportsIndex, ...] | None
_Threads: TypeAlias = int | np.integer[Any] | None
_InexactT = TypeVar("_InexactT", bound=np.inexact[Any])
_ArrayT = TypeVar("_ArrayT", bound=np.ndarray[Any, Any])
# logsumexp reduces: a NumPy scalar when every axis is reduced, else an array.
_LSE: TypeAlias = np.inexact[Any] | NDArray[np.inexact[Any]]

ISAS: tuple[str, ...]

def available_isas() -> tuple[str, ...]: ...
def set_isa(name: str) -> str: ...
def current_isa() -> str: ...
def isa_algorithm() -> str: ...
def openmp_enabled() -> bool: ...
def default_threads() -> int: ...

@overload
def softmax(x: NDArray[_InexactT], axis: _Axis = None, *, out: None = None,
            threads: _Threads = None) -> NDArray[_InexactT]: ...
@overload
def softmax(x: NDArray[np.integer[Any]], axis: _Axis = None, *, out: None = None,
            threads: _Threads = None) -> NDArray[np.float64]: ...
@overload
def softmax(x: ArrayLike, axis: _Axis = None, *, out: _ArrayT,
            threads: _Threads = None) -> _ArrayT: ...
@overload
def softmax(x: ArrayLike, axis: _Axis = None, *, out: None = None,
            threads: _Threads = None) -> NDArray[np.inexact[Any]]: ...

@overload
def log_softmax(x: NDArray[_InexactT], axis: _Axis = None, *, out: None = None,
                threads: _Threads = None) -> NDArray[_InexactT]: ...
@overload
def log_softmax(x: NDArray[np.integer[Any]], axis: _Axis = None, *, out: None = None,
                threads: _Threads = None) -> NDArray[np.float64]: ...
@overload
def log_softmax(x: ArrayLike, axis: _Axis = None, *, out: _ArrayT,
                threads: _Threads = None) -> _ArrayT: ...
@overload
def log_softmax(x: ArrayLike, axis: _Axis = None, *, out: None = None,
                threads: _Threads = None) -> NDArray[np.inexact[Any]]: ...

@overload
def logsumexp(a: ArrayLike, axis: _Axis = None, b: ArrayLike | None = None, keepdims: bool = False,
              return_sign: Literal[False] = False, *, threads: _Threads = None) -> _LSE: ...
@overload
def logsumexp(a: ArrayLike, axis: _Axis = None, b: ArrayLike | None = None, keepdims: bool = False,
              *, return_sign: Literal[True], threads: _Threads = None) -> tuple[_LSE, _LSE]: ...
@overload
def logsumexp(a: ArrayLike, axis: _Axis, b: ArrayLike | None, keepdims: bool,
              return_sign: Literal[True], *, threads: _Threads = None) -> tuple[_LSE, _LSE]: ...
@overload
def logsumexp(a: ArrayLike, axis: _Axis = None, b: ArrayLike | None = None, keepdims: bool = False,
              return_sign: bool = False, *, threads: _Threads = None) -> _LSE | tuple[_LSE, _LSE]: ...
