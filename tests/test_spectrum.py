"""Funk–Hecke spectra: closed forms, exact rational integrals, independent mpmath quadrature."""

from __future__ import annotations

import importlib
import math

import mpmath
import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import fieldcurve as fc
from fieldcurve.activations import abrelu
from fieldcurve.spectrum import (
    gram_spectrum,
    monomial_log_eigenvalues,
    spectrum,
    symbolic_spectrum,
)

sp_mod = importlib.import_module("fieldcurve.spectrum")


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("d", [2, 3, 7, 100, 10_000])
def test_monomial_eigenvalues_gamma_formula(d):
    """mu_{l,n} = n! G(d/2) G((n-l+1)/2) / (sqrt(pi) 2^l (n-l)! G((n+l+d)/2)), in mpmath."""
    log_mu = monomial_log_eigenvalues(d, 30, 80)
    with mpmath.workdps(40):
        for l, n in [(0, 0), (1, 1), (0, 2), (2, 2), (3, 17), (30, 80), (5, 6), (29, 31)]:
            if (n - l) % 2:
                assert log_mu[l, n] == -np.inf
                continue
            exact = (
                mpmath.factorial(n)
                * mpmath.gamma(mpmath.mpf(d) / 2)
                * mpmath.gamma(mpmath.mpf(n - l + 1) / 2)
                / (
                    mpmath.sqrt(mpmath.pi)
                    * 2**l
                    * mpmath.factorial(n - l)
                    * mpmath.gamma(mpmath.mpf(n + l + d) / 2)
                )
            )
            assert abs(log_mu[l, n] - float(mpmath.log(exact))) < 1e-12


@pytest.mark.parametrize("d", [2, 3, 10, 100, 1000, 10_000])
def test_exponential_kernel_matches_bessel(d):
    """exp(t/s): lambda_l = Gamma(d/2) (2s)^(d/2-1) I_{l+d/2-1}(1/s), l <= 200, to 1e-10 —
    including eigenvalues around 1e-800 that exist only as logarithms."""
    s = 0.7
    spec = spectrum(fc.exponential_kernel(s), d, 200)
    with mpmath.workdps(60):
        for l in (0, 1, 2, 7, 50, 120, 200):
            exact = (
                mpmath.gamma(mpmath.mpf(d) / 2)
                * (2 * mpmath.mpf(s)) ** (mpmath.mpf(d) / 2 - 1)
                * mpmath.besseli(l + mpmath.mpf(d) / 2 - 1, 1 / mpmath.mpf(s))
            )
            assert abs(spec.log_eigenvalues[l] - float(mpmath.log(exact))) < 1e-10
    assert abs(spec.tail_mass) < 1e-12 * spec.kernel_at_one


@pytest.mark.parametrize("expr", ["(1 + t)**5", "t**7 + 3*t**2 + 1/2", "(2 + t)**4 / 16"])
def test_polynomial_kernels_d3_exact_rational(expr):
    """d = 3: lambda_l = (1/2) int_{-1}^{1} k(t) P_l(t) dt, computed exactly by sympy."""
    t = sympy.Symbol("t")
    k = sympy.sympify(expr)
    spec = spectrum(k, 3, 9)
    for l in range(10):
        exact = sympy.integrate(k * sympy.legendre(l, t), (t, -1, 1)) / 2
        if exact == 0:
            assert spec.eigenvalues[l] == 0 or spec.eigenvalues[l] < 1e-14
        else:
            assert _rel(spec.eigenvalues[l], float(exact)) < 1e-12
    assert abs(spec.tail_mass) < 1e-12 * spec.kernel_at_one


@pytest.mark.parametrize("p", [0.5, 2.5])
@pytest.mark.parametrize("d", [4, 9])
def test_negative_binomial_kernel_against_mpmath_integral(p, d):
    """(1 - t/2)^(-p): positive Taylor coefficients (p)_n / (n! 2^n), no closed-form spectrum;
    vs a 40-digit tanh-sinh Funk–Hecke integral. (For non-integer p, (1 + t)^p is not positive
    definite: its binomial coefficients alternate, and spectrum() says so.)"""
    kernel = fc.DotProductKernel(
        lambda x: (1 - x / 2) ** -p, mp_fn=lambda x: (1 - x / 2) ** -p, name=f"(1-t/2)^-{p}"
    )
    spec = spectrum(kernel, d, 12)
    for l in (0, 3, 12):
        exact = _funk_hecke_mp(lambda x: (1 - x / 2) ** -p, d, l)
        assert _rel(spec.eigenvalues[l], exact) < 1e-10
    with pytest.raises(ValueError, match="not positive definite"):
        spectrum(fc.DotProductKernel(lambda x: (1 + x) ** 0.5, name="sqrt(1+t)"), d, 6)


# ----------------------------------------------------------------------------- mpmath oracle
def _funk_hecke_mp(f, d: int, l: int, dps: int = 40):
    """lambda_l = c_d int_0^pi f(cos th) P_l(cos th) sin^(d-2) th d th with mpmath.quad
    (tanh-sinh on ~l/3 + 2 sub-intervals) and P_l from mpmath's Gegenbauer function."""
    with mpmath.workdps(dps):
        alpha = mpmath.mpf(d - 2) / 2
        cd = mpmath.gamma(mpmath.mpf(d) / 2) / (mpmath.sqrt(mpmath.pi) * mpmath.gamma(mpmath.mpf(d - 1) / 2))

        def P(x):
            if d == 2:
                return mpmath.chebyt(l, x)
            return mpmath.gegenbauer(l, alpha, x) / mpmath.gegenbauer(l, alpha, 1)

        def integrand(th):
            x = mpmath.cos(th)
            return f(x) * P(x) * mpmath.sin(th) ** (d - 2)

        pieces = max(2, l // 3 + 2)
        grid = [mpmath.pi * i / pieces for i in range(pieces + 1)]
        return float(cd * mpmath.quad(integrand, grid))


MLP_CASES = [
    ("relu-ntk-L1", fc.ntk_kernel(fc.MLP(1, "relu", 2.0, 0.0))),
    ("relu-ntk-L4-bias", fc.ntk_kernel(fc.MLP(4, "relu", 2.0, 0.1))),
    ("relu-nngp-L8", fc.nngp_kernel(fc.MLP(8, "relu", 2.0, 0.05))),
    ("erf-ntk-L3", fc.ntk_kernel(fc.MLP(3, "erf", 1.7, 0.3))),
    ("gelu-nngp-L2", fc.nngp_kernel(fc.MLP(2, "gelu", 1.5, 0.2))),
    ("abrelu-ntk-L2", fc.ntk_kernel(fc.MLP(2, abrelu(-0.3, 1.5), 1.2, 0.1))),
]


def _check_against_mpmath(kernel, d: int, degrees: tuple[int, ...]) -> None:
    spec = spectrum(kernel, d, max(degrees))
    f = lambda x: kernel.mp_eval(x, d)  # noqa: E731
    for l in degrees:
        exact = _funk_hecke_mp(f, d, l, dps=40 if l < 30 else 50)
        if abs(exact) < 1e-35 * spec.kernel_at_one:  # an exact zero (e.g. odd degrees, L = 1)
            assert spec.eigenvalues[l] <= 1e-30 * spec.kernel_at_one
            continue
        assert _rel(spec.eigenvalues[l], exact) < 1e-10, (l, spec.methods[l])


FAST_GRID = [(0, 30), (1, 2), (2, 5), (3, 30), (4, 2), (5, 30)]


@pytest.mark.parametrize(("case", "d"), FAST_GRID, ids=[f"{MLP_CASES[c][0]}-d{d}" for c, d in FAST_GRID])
def test_mlp_spectrum_against_mpmath_quadrature(case, d):
    """method='auto' vs an independent 40-digit tanh-sinh integral of the mpmath kernel, at
    degrees whose eigenvalues span many orders of magnitude (lambda_30 ~ 1e-20 lambda_0)."""
    _check_against_mpmath(MLP_CASES[case][1], d, (0, 1, 6, 30))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "kernel"), MLP_CASES, ids=[c[0] for c in MLP_CASES])
@pytest.mark.parametrize("d", [2, 3, 5, 30, 100])
def test_mlp_spectrum_against_mpmath_quadrature_full(name, kernel, d):
    _check_against_mpmath(kernel, d, (0, 1, 2, 6, 17, 40, 80))


def test_mp_eval_matches_double_evaluation():
    for _, kernel in MLP_CASES:
        for x in (-0.99, -0.3, 0.0, 0.5, 0.999999):
            with mpmath.workdps(30):
                assert _rel(float(kernel.mp_eval(x, 5)), float(kernel(np.array(x)))) < 1e-14


@pytest.mark.parametrize(
    ("kernel", "d"),
    [
        (fc.ntk_kernel(fc.MLP(5, "relu", 2.0, 0.0)), 100),
        (fc.ntk_kernel(fc.MLP(5, "relu", 2.0, 0.0)), 1000),
        (fc.nngp_kernel(fc.MLP(4, "erf", 1.5, 0.2)), 10),
        (fc.nngp_kernel(fc.MLP(4, "erf", 1.5, 0.2)), 1000),
    ],
    ids=["relu-d100", "relu-d1000", "erf-d10", "erf-d1000"],
)
def test_routes_agree_where_they_claim_accuracy(kernel, d):
    """Series (non-negative Taylor sums) vs the arb Gauss–Legendre route up to l = 120, where
    eigenvalues reach 1e-180 at d = 1000."""
    lmax = 120
    series = spectrum(kernel, d, lmax, method="series")
    ok = series.relative_errors < 1e-11
    assert ok.sum() > 10
    degrees = [int(l) for l in np.flatnonzero(ok)][:: max(1, ok.sum() // 6)]
    hp = sp_mod._mp_refine(kernel, d, lmax, degrees, 1e-12, 600, 40)
    for l in degrees:
        assert hp[l][2] < 1e-11
        assert abs(series.log_eigenvalues[l] - hp[l][0]) < 1e-10, l


def test_high_precision_route_is_converged_in_nodes(monkeypatch):
    """Doubling the Gauss–Legendre nodes changes nothing at the 1e-12 level (l up to 150)."""
    kernel = fc.ntk_kernel(fc.MLP(5, "relu", 2.0, 0.0))
    degrees = [0, 50, 100, 150]
    base = sp_mod._high_precision(kernel, 7, 150, 60, degrees, sp_mod._hp_backend(kernel))[0]
    monkeypatch.setattr(sp_mod, "_hp_node_count", lambda lmax, d, dps=30: 2 * (lmax + 80) + 7)
    double = sp_mod._high_precision(kernel, 7, 150, 60, degrees, sp_mod._hp_backend(kernel))[0]
    for a, b in zip(base, double, strict=True):
        assert abs(a / b - 1) < 1e-12


# ----------------------------------------------------------------------------- structure
def test_one_layer_relu_ntk_odd_degrees_vanish():
    """Bias-free one-hidden-layer ReLU NTK: lambda_l = 0 for odd l >= 3 (Bietti & Mairal 2019)."""
    spec = spectrum(fc.ntk_kernel(fc.MLP(1, "relu", 2.0, 0.0)), 6, 15, max_dps=120)
    assert np.all(spec.eigenvalues[3::2] == 0)
    assert np.all(spec.eigenvalues[0:3] > 0) and np.all(spec.eigenvalues[2::2] > 0)


def test_trace_identity_and_reconstruction():
    kernel = fc.ntk_kernel(fc.MLP(3, "erf", 1.5, 0.2))
    spec = spectrum(kernel, 8, 60)
    assert abs(spec.tail_mass) < 1e-12 * spec.kernel_at_one
    t = np.linspace(-1, 1, 21)
    np.testing.assert_allclose(spec.evaluate(t), kernel(t), rtol=1e-11, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    coeffs=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=8),
    d=st.integers(2, 400),
)
def test_polynomial_kernels_nonnegative_with_exact_trace(coeffs, d):
    kernel = fc.polynomial_kernel(coeffs)
    spec = spectrum(kernel, d, len(coeffs) + 2)
    assert np.all(spec.eigenvalues >= 0)
    assert abs(spec.tail_mass) <= 1e-12 * max(1.0, spec.kernel_at_one)


def test_gram_spectrum_approaches_operator_eigenvalues():
    """Top eigenvalues of K/P on P = 1500 uniform points approach lambda_l with multiplicity
    N(d, l); the mean over each degenerate group is within 4% (sampling error ~ 1/sqrt(P))."""
    d = 3
    kernel = fc.exponential_kernel(1.0)
    X = fc.sample_sphere(1500, d, seed=7)
    top = gram_spectrum(kernel.gram(X))[:9]
    spec = spectrum(kernel, d, 3)
    groups = [top[:1].mean(), top[1:4].mean(), top[4:9].mean()]
    np.testing.assert_allclose(groups, spec.eigenvalues[:3], rtol=0.04)


def test_symbolic_spectrum():
    d = sympy.Symbol("d", positive=True)
    t = sympy.Symbol("t")
    lam = symbolic_spectrum(t**2, d, 3)
    # E[t^2] = 1/d on the sphere; the degree-2 part of t^2 is 2/(d(d+2)) (hand derivation)
    assert sympy.simplify(lam[0] - 1 / d) == 0
    assert lam[1] == 0 and lam[3] == 0
    assert sympy.simplify(lam[2] - 2 / (d * (d + 2))) == 0
    numeric = spectrum(1 + t + t**4, 11, 4)
    exact = symbolic_spectrum(1 + t + t**4, 11, 4)
    for l in range(5):
        assert _rel(numeric.eigenvalues[l], float(exact[l])) < 1e-13 if exact[l] != 0 else True


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs():
    k = fc.ntk_kernel(fc.MLP(2))
    with pytest.raises(ValueError, match="d must be >= 2"):
        spectrum(k, 1, 5)
    with pytest.raises(TypeError, match="d must be an integer"):
        spectrum(k, 3.5, 5)
    with pytest.raises(ValueError, match="lmax must be >= 0"):
        spectrum(k, 3, -1)
    with pytest.raises(ValueError, match="method"):
        spectrum(k, 3, 5, method="magic")
    with pytest.raises(ValueError, match="no non-negative Taylor"):
        spectrum(lambda x: np.cos(x), 3, 5, method="series")
    with pytest.raises(ValueError, match="K must be square"):
        gram_spectrum(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"not positive definite: k\(1\)"):
        spectrum(lambda x: np.cos(3 * x), 3, 5)  # k(1) = cos 3 < 0


def test_not_positive_definite_names_the_degree():
    t = sympy.Symbol("t")
    with pytest.raises(ValueError, match="degree 2"):
        spectrum(1 + t - 1.5 * t**2, 5, 4)
    with pytest.raises(ValueError, match="not positive definite"):
        spectrum(1 + t - 2 * t**2, 5, 4)  # k(1) = 0 but k != 0


def test_spectrum_json_ready():
    spec = spectrum(fc.ntk_kernel(fc.MLP(2)), 4, 5)
    out = spec.to_dict()
    assert out["d"] == 4 and len(out["degrees"]) == 6
    assert out["degrees"][1]["multiplicity"] == 4.0
    assert math.isclose(
        sum(x["eigenvalue"] * x["multiplicity"] for x in out["degrees"]) + out["tail_mass"],
        out["kernel_at_one"],
        rel_tol=1e-12,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kernel", "d"),
    [
        (fc.nngp_kernel(fc.MLP(8, "erf", 1.5, 0.2)), 2),
        (fc.ntk_kernel(fc.MLP(3, "gelu", 1.5, 0.1)), 2),
        (fc.ntk_kernel(fc.MLP(8, "relu", 2.0, 0.1)), 1000),
        (fc.nngp_kernel(fc.MLP(8, "erf", 1.5, 0.2)), 1000),
    ],
    ids=["erf-L8-d2", "gelu-L3-d2", "relu-L8-d1000", "erf-L8-d1000"],
)
def test_deep_kernels_to_degree_200(kernel, d):
    """method='auto' up to l = 200 (series route, whose tail for smooth activations is a
    geometric estimate) against the high-precision quadrature route."""
    spec = spectrum(kernel, d, 200)
    assert np.all(spec.relative_errors[spec.eigenvalues > 0] < 1e-10)
    degrees = [0, 50, 120, 200]
    hp = sp_mod._mp_refine(kernel, d, 200, degrees, 1e-12, 800, 40)
    for l in degrees:
        assert abs(spec.log_eigenvalues[l] - hp[l][0]) < 1e-10, l


def test_structural_zeros_follow_activation_parity():
    """Exact-zero eigenvalue classes: one-layer ReLU kernels (activation = linear + even) vanish
    at odd l >= 3; bias-free erf kernels (odd at every depth) at even l; none at depth 2 ReLU or
    with a bias on erf. The zeros are reported as exact 0 with a tiny absolute error bound."""
    from fieldcurve.spectrum import _structural_zeros

    L = 12
    relu1 = fc.ntk_kernel(fc.MLP(1, "relu", 2.0, 0.0))
    assert _structural_zeros(relu1, 6, L) == frozenset(range(3, L + 1, 2))
    assert _structural_zeros(fc.nngp_kernel(fc.MLP(2, "relu", 2.0, 0.0)), 6, L) == frozenset()
    assert _structural_zeros(fc.nngp_kernel(fc.MLP(3, "erf", 1.0, 0.0)), 6, L) == frozenset(
        range(0, L + 1, 2)
    )
    assert _structural_zeros(fc.nngp_kernel(fc.MLP(3, "erf", 1.0, 0.1)), 6, L) == frozenset()
    spec = fc.spectrum(relu1, 6, L)
    odd = np.arange(3, L + 1, 2)
    assert np.all(spec.eigenvalues[odd] == 0) and np.all(spec.error_estimates[odd] < 1e-25)
    assert np.all(spec.eigenvalues[::2] > 0)


def test_nearly_constant_kernel_is_not_silently_truncated():
    """Regression: for a nearly constant pre-activation kernel (|x| network, weight_var 0.31, bias
    0.13, depth 10-20: constant part 0.9957 and beyond) the series capped its re-expansion at
    1000 / (1 - beta0/q) terms and reported lambda_0 = 0.28086446 with a 3.5e-15 error where the
    value is 0.28097777 (4e-4 off). Now the series steps aside; every route agrees with the
    independent high-precision route."""
    for depth in (10, 20):
        kernel = fc.ntk_kernel(fc.MLP(depth, "abs", 0.312, 0.133))
        auto = spectrum(kernel, 29, 3)
        exact = spectrum(kernel, 29, 3, method="mpmath")
        np.testing.assert_allclose(auto.eigenvalues, exact.eigenvalues, rtol=1e-10)
        assert np.all(auto.error_estimates <= 1e-10 * auto.eigenvalues)


@pytest.mark.filterwarnings("ignore:.*could not be resolved")
@pytest.mark.parametrize(
    ("act", "depth", "weight_var", "d", "lmax"),
    [("sigmoid", 3, 0.363, 257, 18), ("sigmoid", 4, 5.868, 619, 14), ("softplus", 2, 0.112, 18, 30)],
)
def test_unresolved_weights_never_exceed_the_trace(act, depth, weight_var, d, lmax):
    """Mean-shifted activations at depth >= 2 (a pre-activation kernel with a large constant
    part) leave most degrees unresolved; their weights were summing to 1.26 k(1) (sigmoid) — now
    every weight and their sum stay within k(1), the tail is >= 0, the errors cover the values."""
    kernel = fc.ntk_kernel(fc.MLP(depth, act, weight_var, 0.0))
    spec = spectrum(kernel, d, lmax)
    total = float(np.sum(spec.weights))
    assert total <= spec.kernel_at_one * (1 + 1e-12)
    assert 0 <= spec.tail_mass <= spec.kernel_at_one
    loose = ~spec.resolved
    assert np.all(spec.error_estimates[loose] > 0)


def test_symbolic_spectrum_reads_strings_with_the_bounded_parser(tmp_path):
    """Issue #13: a string never reaches sympify (a string once created a file)."""
    sympy = pytest.importorskip("sympy")
    d = sympy.Symbol("d")
    # by hand: E[t^2] = 1/d on the sphere, mu_{1,1} = 1/d, mu_{2,2} = 2/(d(d+2))
    assert fc.symbolic_spectrum("1 + t + t**2/2", d, 2) == [
        (2 * d + 1) / (2 * d),
        1 / d,
        1 / (d * (d + 2)),
    ]
    target = tmp_path / "created"
    for bad in (f"__import__('pathlib').Path('{target}').touch()", "x**2", "t**100000", "t/t"):
        with pytest.raises(ValueError, match="expr"):
            fc.symbolic_spectrum(bad, 5, 2)
    assert not target.exists()
    with pytest.raises(TypeError, match="expr"):
        fc.symbolic_spectrum([1, 2], 5, 2)


def test_zero_kernels_and_underflow():
    """A switched-off network has the zero spectrum exactly (was 'math domain error'); a kernel
    whose k(1) only underflows is refused, not reported as zero."""
    for kernel in (fc.nngp_kernel(fc.MLP(1, "erf", 0.0, 0.0)), fc.ntk_kernel(fc.MLP(2, "relu", 0.0, 0.0))):
        spec = spectrum(kernel, 5, 4)
        assert np.all(spec.eigenvalues == 0) and np.all(spec.error_estimates == 0)
        assert spec.tail_mass == 0 and list(spec.multiplicities) == [1, 5, 14, 30, 55]
    with pytest.raises(ValueError, match="underflows"):
        spectrum(fc.nngp_kernel(fc.MLP(1, "relu", 1e-300, 0.0)), 5, 4)
    with pytest.raises(ValueError, match="not positive definite"):
        spectrum(fc.DotProductKernel(lambda t: np.sin(np.pi * t)), 5, 4)


def test_monomial_order_limit():
    assert math.isfinite(fc.activations.monomial(100).dual(1.0, 0.5, 1.0))
    with pytest.raises(ValueError, match="limit 100"):
        fc.activations.monomial(1000)
