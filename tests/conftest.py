import numpy as np
import pytest

import fastsoftmax

ISAS = fastsoftmax.available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once per ISA this machine supports, with that ISA's kernels forced."""
    fastsoftmax.set_isa(request.param)
    yield request.param
    fastsoftmax.set_isa("auto")


def nasty_arrays(dtypes=(np.float32, np.float64)):
    """(name, array) pairs: shapes, layouts and byte orders the wrapper must get right."""
    rng = np.random.default_rng(12345)
    shapes = [(), (0,), (1,), (5,), (0, 3), (3, 0), (2, 3, 4), (7, 1000), (3, 5, 17), (2, 40000)]
    for dt in dtypes:
        for shape in shapes:
            base = (rng.standard_normal(shape) * 4).astype(dt)
            yield f"{np.dtype(dt).name}{shape}-C", base
            if base.ndim >= 2:
                yield f"{np.dtype(dt).name}{shape}-F", np.asfortranarray(base)
                yield f"{np.dtype(dt).name}{shape}-T", base.T
            if base.ndim >= 1 and base.shape[-1] > 1:
                yield f"{np.dtype(dt).name}{shape}-sliced", base[..., ::2]
                yield f"{np.dtype(dt).name}{shape}-reversed", base[..., ::-1]
        x = (rng.standard_normal((4, 9)) * 4).astype(dt)
        yield f"{np.dtype(dt).name}-byteswapped", x.astype(x.dtype.newbyteorder())
        ro = x.copy()
        ro.flags.writeable = False
        yield f"{np.dtype(dt).name}-readonly", ro


def axis_options(ndim):
    opts = [None]
    opts += list(range(-ndim, ndim))
    if ndim >= 2:
        opts += [(0, 1), (ndim - 1, 0), tuple(range(ndim))]
    if ndim >= 3:
        opts += [(1, 2), (0, 2)]
    return opts


def under_each_mode(set_mode, modes, fn):
    """fn() once under each mode of a hidden _core switch (set_mode(mode)), the switch back at its default (0)
    after each run, even when fn raises: the list of results, in the order of modes."""
    out = []
    for mode in modes:
        set_mode(mode)
        try:
            out.append(fn())
        finally:
            set_mode(0)
    return out
