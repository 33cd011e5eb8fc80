#!/usr/bin/env python
"""Fit the float32 exp polynomial of the float32 kernels (csrc/kernels/template.h, "exp_f32").

    python scripts/fit_exp_f32.py [degree]

p(r) = 1 + r + c2 r^2 + ... + cN r^N approximates e^r on |r| <= R (R = ln2/2 plus the slack of the
rounded reduction), minimising the *relative* error max |p(r)/e^r - 1| (the softmax error budget is
relative). Method: a Lawson iteration (iteratively reweighted least squares) in float64 gives the
near-minimax real coefficients; they are then rounded to float32 one at a time, highest degree first,
re-fitting the remaining ones after each rounding so that the others absorb the rounding. The
constant and linear coefficients are kept at exactly 1 (1 + r is then formed without a coefficient
multiply's rounding error). Printed: the coefficients in hex-float and the relative error of the
float32 coefficients evaluated exactly (float64) on a dense grid.
"""
import sys

import numpy as np

R = 0.34658 + 2e-5  # ln2/2 (0.3465736) plus the error of k = round(x log2e) for |x| <= 400


def lawson(rs, deg, fixed, iters=400):
    """Coefficients c[2..deg] minimising max |(1 + r + fixed + sum c_j r^j) / e^r - 1| over rs."""
    free = [j for j in range(2, deg + 1) if j not in fixed]
    target = np.exp(rs) - 1 - rs - sum(c * rs ** j for j, c in fixed.items())
    A = np.stack([rs ** j for j in free], axis=1) / np.exp(rs)[:, None]
    b = target / np.exp(rs)
    w = np.full(rs.size, 1.0 / rs.size)
    for _ in range(iters):
        sw = np.sqrt(w)
        c, *_ = np.linalg.lstsq(A * sw[:, None], b * sw, rcond=None)
        err = np.abs(A @ c - b)
        w = w * err
        w /= w.sum()
    return dict(zip(free, c))


def rel_error(coef, rs):
    p = 1 + rs + sum(c * rs ** j for j, c in coef.items())
    return np.max(np.abs(p / np.exp(rs) - 1))


def main():
    deg = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    rs = np.linspace(-R, R, 20001)
    fixed = {}
    real = lawson(rs, deg, fixed)
    print(f"degree {deg} on |r| <= {R}: real coefficients, relative error 2^{np.log2(rel_error(real, rs)):.2f}")
    for j in range(deg, 1, -1):
        fit = lawson(rs, deg, fixed)
        fixed[j] = float(np.float32(fit[j]))
    err = rel_error(fixed, np.linspace(-R, R, 400001))
    print(f"float32 coefficients, relative error 2^{np.log2(err):.2f}:")
    for j in range(2, deg + 1):
        print(f"  c{j} = {float(fixed[j]).hex()}  ({fixed[j]:.9g})")


if __name__ == "__main__":
    main()
