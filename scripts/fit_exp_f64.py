#!/usr/bin/env python
"""Fit the float64 exp polynomial of the table kernels (csrc/kernels/template.h, "x_rr2_t16_p7"
and "x_rr2_t8_p8").

    python scripts/fit_exp_f64.py [degree] [table bits]
    python scripts/fit_exp_f64.py --table [table bits]    the table 2^(j/N) = hi + lo itself

With a table of 2^(j/N), N = 2^bits, the reduced argument is r = x - (k/N) ln 2, |r| <= ln2/(2N)
plus the slack of the rounded reduction, and exp(r) - 1 is approximated by r + c2 r^2 + ... + cD r^D
(the linear coefficient exactly 1, so the polynomial adds no rounding to its leading term). The
coefficients minimise the relative error of 1 + p(r) against e^r: a Lawson iteration (iteratively
reweighted least squares) in mpmath at 50 digits on Chebyshev-distributed points, then rounded to
float64 one at a time, highest degree first, re-fitting the lower ones after each rounding.
Printed: the coefficients in hex-float and the relative error of 1 + p(r) with the float64
coefficients, evaluated exactly (mpmath) on a dense grid.
"""
import sys

import mpmath as mp

mp.mp.dps = 50


def lawson(rs, deg, fixed, iters=60):
    """Coefficients c[2..deg] minimising max |(1 + r + sum c_j r^j) / e^r - 1| over rs."""
    free = [j for j in range(2, deg + 1) if j not in fixed]
    rows, rhs = [], []
    for r in rs:
        er = mp.exp(r)
        rows.append([r ** j / er for j in free])
        rhs.append((er - 1 - r - sum(c * r ** j for j, c in fixed.items())) / er)
    w = [mp.mpf(1) / len(rs)] * len(rs)
    c = None
    for _ in range(iters):
        sw = [mp.sqrt(v) for v in w]
        A = mp.matrix([[a * s for a in row] for row, s in zip(rows, sw)])
        b = mp.matrix([v * s for v, s in zip(rhs, sw)])
        c, _ = mp.qr_solve(A, b)
        err = [abs(sum(a * c[i] for i, a in enumerate(row)) - v) for row, v in zip(rows, rhs)]
        w = [wi * ei for wi, ei in zip(w, err)]
        tot = sum(w)
        w = [wi / tot for wi in w]
    return {j: c[i] for i, j in enumerate(free)}


def rel_error(coef, rs):
    return max(abs((1 + r + sum(c * r ** j for j, c in coef.items())) / mp.exp(r) - 1) for r in rs)


def table(bits):
    """2^(j/N) = hi + lo, hi rounded to double, lo the rest rounded: the rows of f64_t_hi / f64_t_lo."""
    n = 2 ** bits
    for j in range(n):
        v = mp.mpf(2) ** (mp.mpf(j) / n)
        hi = float(v)
        print(f"  j = {j:2d}  hi {hi.hex():>22s}  lo {float(v - mp.mpf(hi)).hex():>23s}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--table":
        return table(int(sys.argv[2]) if len(sys.argv) > 2 else 4)
    deg = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    bits = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    R = mp.log(2) / 2 ** (bits + 1) * (1 + mp.mpf(2) ** -20)  # the rounded reduction's slack
    npts = 120
    rs = [R * mp.cos(mp.pi * (i + mp.mpf(1) / 2) / npts) for i in range(npts)] + [R, -R]
    fixed = {}
    real = lawson(rs, deg, fixed)
    dense = [R * (2 * mp.mpf(i) / 4000 - 1) for i in range(4001)]
    print(f"degree {deg}, N = {2 ** bits} on |r| <= {mp.nstr(R, 8)}: real coefficients, relative error "
          f"2^{mp.nstr(mp.log(rel_error(real, dense), 2), 5)}")
    for j in range(deg, 1, -1):
        fit = lawson(rs, deg, fixed, iters=30)
        fixed[j] = mp.mpf(float(fit[j]))
    err = rel_error(fixed, dense)
    print(f"float64 coefficients, relative error 2^{mp.nstr(mp.log(err, 2), 5)}:")
    for j in range(2, deg + 1):
        print(f"  c{j} = {float(fixed[j]).hex()}  ({float(fixed[j]):.17g})")


if __name__ == "__main__":
    main()
