"""Taylor coefficients of MLP kernels (fieldcurve._taylor) against an independent oracle.

The oracle composes the closed-form duals of phi(x) = a min(x, 0) + b max(x, 0) (Cho & Saul
2009) as arb power series (python-flint ``arb_series``: ``asin``, ``sqrt``, products) at several
hundred bits — a different algorithm from both library routes (the piecewise-linear recurrence
and the Mehler re-expansion), with rigorous error balls.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest

import fieldcurve as fc
from fieldcurve import _taylor


@contextlib.contextmanager
def _arb_series_context(n: int, prec: int):
    """python-flint with series truncated after t^n at ``prec`` bits (restored afterwards)."""
    import flint

    old = flint.ctx.cap, flint.ctx.prec
    flint.ctx.cap, flint.ctx.prec = n + 1, prec
    try:
        yield flint
    finally:
        flint.ctx.cap, flint.ctx.prec = old


def _mid_rad(series, n: int):
    coeffs = series.coeffs()
    coeffs += [type(coeffs[0])(0)] * (n + 1 - len(coeffs))
    return np.array([float(c.mid()) for c in coeffs]), np.array([float(c.rad()) for c in coeffs])


def _arb_mlp(layer_map, depth: int, w: float, bias: float, kind: str, n: int, prec: int):
    """NNGP/NTK coefficients b_0..b_n (NTK parameterisation, inputs on the sphere) in arb;
    ``layer_map(flint, k, q)`` gives (E[phi phi], E[phi' phi'], next q) as series."""
    with _arb_series_context(n, prec) as flint:
        A = flint.arb
        k, q, theta = flint.arb_series([0, 1]), A(1), flint.arb_series([0])
        for layer in range(depth + 1):
            k, q = A(w) * k + A(bias), A(w) * q + A(bias)
            if kind == "ntk":
                theta = k + A(w) * theta
            if layer == depth:
                break
            k, fprime, q = layer_map(flint, k, q)
            theta = theta * fprime
        return _mid_rad(theta if kind == "ntk" else k, n)


def arb_series_kernel(a: float, b: float, depth: int, w: float, bias: float, kind: str, n: int, prec: int):
    """phi(x) = a min(x, 0) + b max(x, 0): with rho = c/q, E[phi' phi'] = (a+b)^2/4 +
    (a-b)^2 asin(rho)/(2 pi) and E[phi phi] = (a-b)^2 q sqrt(1-rho^2)/(2 pi) + E[phi' phi'] c."""

    def layer_map(flint, k, q):
        A = flint.arb
        jump = (A(a) - A(b)) ** 2 / (2 * A.pi())
        rho = k / q
        fprime = (A(a) + A(b)) ** 2 / 4 + jump * rho.asin()
        return jump * q * (1 - rho * rho).sqrt() + fprime * k, fprime, (A(a) ** 2 + A(b) ** 2) / 2 * q

    return _arb_mlp(layer_map, depth, w, bias, kind, n, prec)


def _relative_error(got, mid, rad):
    nonzero = mid != 0
    assert np.all(rad[nonzero] <= 1e-20 * np.abs(mid[nonzero])), "oracle not accurate enough"
    assert np.all(got[~nonzero] == 0), "a structural zero came out nonzero"
    return float(np.max(np.abs(got[nonzero] / mid[nonzero] - 1)))


@pytest.mark.parametrize(
    ("ab", "depth", "w", "bias", "kind"),
    [
        ((0.0, 1.0), 5, 2.0, 0.1, "ntk"),
        ((0.0, 1.0), 20, 1.8, 0.05, "nngp"),
        ((0.2, 1.0), 5, 0.1, 10.0, "ntk"),  # nearly constant kernel: rho_0 = 1 - 7e-8 at the top
        ((-1.0, 1.0), 10, 2.0, 0.0, "ntk"),  # |x|: odd coefficients vanish
        ((0.3, -0.7), 30, 1.0, 2.0, "ntk"),
        ((0.0, 1.0), 3, 100.0, 0.0, "nngp"),
    ],
)
def test_piecewise_linear_route_matches_arb_series(ab, depth, w, bias, kind):
    n = 600
    mlp = fc.MLP(depth, fc.activations.abrelu(*ab), w, bias)
    mid, rad = arb_series_kernel(*ab, depth, w, bias, kind, n, prec=1600)
    got = _taylor.mlp_taylor_coefficients(mlp, kind, n, 10)
    kernel = fc.ntk_kernel(mlp) if kind == "ntk" else fc.nngp_kernel(mlp)
    err = _relative_error(got, mid, rad)
    assert err <= kernel.taylor_rtol(n, 10), err


@pytest.mark.parametrize(("depth", "w", "bias"), [(2, 0.5, 2.0), (1, 2.0, 0.0)])
def test_mehler_route_matches_arb_series(depth, w, bias):
    """The generic route (the piecewise-linear shortcut switched off): its re-expansion about
    beta_0 kept too few terms for the last orders (3.9e-5 off at N = 400 for depth 2, bias 2)."""
    n = 400
    mlp = fc.MLP(depth, "relu", w, bias)
    generic = dataclasses.replace(mlp.activation, abrelu_params=None)
    mlp_generic = dataclasses.replace(mlp, activation=generic)
    mid, rad = arb_series_kernel(0.0, 1.0, depth, w, bias, "nngp", n, prec=800)
    got = _taylor.mlp_taylor_coefficients(mlp_generic, "nngp", n, 10)
    err = _relative_error(got, mid, rad)
    assert err <= fc.nngp_kernel(mlp_generic).taylor_rtol(n, 10), err


def arb_series_erf_kernel(depth: int, w: float, bias: float, kind: str, n: int, prec: int = 800):
    """The same for erf: E[erf(u) erf(v)] = (2/pi) asin(2c/(1+2q)),
    E[erf'(u) erf'(v)] = (4/pi) ((1+2q)^2 - 4c^2)^(-1/2) (Williams 1997)."""

    def layer_map(flint, k, q):
        A = flint.arb
        s = 1 + 2 * q
        return (
            2 / A.pi() * (2 * k / s).asin(),
            4 / A.pi() * (s * s - 4 * k * k).rsqrt(),
            2 / A.pi() * (2 * q / s).asin(),
        )

    return _arb_mlp(layer_map, depth, w, bias, kind, n, prec)


@pytest.mark.parametrize(("depth", "w", "bias", "kind"), [(1, 2.0, 0.0, "nngp"), (3, 1.7, 0.3, "ntk")])
def test_mehler_route_for_erf_matches_arb_series(depth, w, bias, kind):
    n = 768
    mlp = fc.MLP(depth, "erf", w, bias)
    mid, rad = arb_series_erf_kernel(depth, w, bias, kind, n)
    got = _taylor.mlp_taylor_coefficients(mlp, kind, n, 10)
    kernel = fc.ntk_kernel(mlp) if kind == "ntk" else fc.nngp_kernel(mlp)
    assert _relative_error(got, mid, rad) <= kernel.taylor_rtol(n, 10)
