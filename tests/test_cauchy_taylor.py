"""Taylor coefficients of user kernels by Cauchy integrals (DotProductKernel, issue #12).

Oracles share no code with the Cauchy route: exact coefficients in mpmath (2^n/n!, binomial
series), Bessel and hypergeometric closed forms of the eigenvalues, and sympy's exact spectrum
of polynomials.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import sympy

import fieldcurve as fc
from fieldcurve.spectrum import spectrum, symbolic_spectrum


def _exp_log_eigenvalue(s: float, d: int, l: int) -> float:
    """e^(t/s): lambda_l = Gamma(d/2) (2s)^(d/2-1) I_{l+d/2-1}(1/s), in logs."""
    with mpmath.workdps(50):
        s_, h = mpmath.mpf(s), mpmath.mpf(d) / 2
        return float(mpmath.log(mpmath.gamma(h) * (2 * s_) ** (h - 1) * mpmath.besseli(l + h - 1, 1 / s_)))


def _binomial_eigenvalue(p: float, d: int, l: int) -> mpmath.mpf:
    """(1 - t/2)^-p: sum_k b_{l+2k} mu_{l,l+2k} with b_n = (p)_n/(n! 2^n) and
    mu_{l,l+2k} = (l+2k)!/(2^l 4^k k! (d/2)_{l+k}) sums to
    (p)_l/(4^l (d/2)_l) 2F1((p+l)/2, (p+l+1)/2; l+d/2; 1/4)."""
    p_, h = mpmath.mpf(p), mpmath.mpf(d) / 2
    return (
        mpmath.rf(p_, l)
        / (mpmath.mpf(4) ** l * mpmath.rf(h, l))
        * mpmath.hyp2f1((p_ + l) / 2, (p_ + l + 1) / 2, l + h, mpmath.mpf(1) / 4)
    )


def _sqrt_eigenvalue(d: int, l: int) -> mpmath.mpf:
    """2 - sqrt(1 - t): (1 - t)^(1/2) has b_n = (-1/2)_n/n!, so its lambda_l is
    (-1/2)_l/(2^l (d/2)_l) 2F1((2l-1)/4, (2l+1)/4; l+d/2; 1), summed by Gauss's theorem."""
    h, a, b = mpmath.mpf(d) / 2, (2 * l - mpmath.mpf(1)) / 4, (2 * l + mpmath.mpf(1)) / 4
    gauss = mpmath.gamma(l + h) * mpmath.gamma(h) / (mpmath.gamma(l + h - a) * mpmath.gamma(l + h - b))
    lam = -mpmath.rf(-mpmath.mpf(1) / 2, l) / (mpmath.mpf(2) ** l * mpmath.rf(h, l)) * gauss
    return lam + (2 if l == 0 else 0)


def _within_bars(kernel: fc.DotProductKernel, exact, n_max: int, d: int | None) -> tuple[int, float]:
    """Check every returned coefficient against ``exact(n)`` (mpmath) within its error bar.

    Returns (N, largest relative error of the nonzero coefficients).
    """
    log_b = kernel.log_taylor_coefficients(n_max, d)
    log_e = kernel.log_taylor_errors(n_max, d)
    assert log_b is not None and log_e is not None and len(log_b) == len(log_e)
    worst = 0.0
    with mpmath.workdps(40):
        for n, (lb, le) in enumerate(zip(log_b, log_e, strict=True)):
            got = mpmath.exp(lb) if lb > -math.inf else mpmath.mpf(0)
            ref = exact(n)
            assert abs(got - ref) <= mpmath.exp(le), (n, got, ref, mpmath.exp(le))
            if ref != 0:
                worst = max(worst, float(abs(got / ref - 1)))
    return len(log_b) - 1, worst


# ----------------------------------------------------------------------------- the case
@pytest.mark.parametrize("d", [10, 100, 2000])
def test_exp_callable_matches_bessel_to_degree_300(d):
    """The issue's kernel as a plain lambda: every eigenvalue up to l = 300 resolved by the series
    route and within 1e-10 (relative) of the Bessel closed form — before, log lambda_10 was -62.2
    instead of -69.12 at d = 2000 and lambda_100 was 0."""
    kernel = fc.DotProductKernel(lambda t: np.exp(t / 0.5))
    spec = spectrum(kernel, d, 300)
    assert spec.resolved.all()
    assert set(spec.methods) == {"series"}
    exact = np.array([_exp_log_eigenvalue(0.5, d, l) for l in range(301)])
    np.testing.assert_array_less(np.abs(spec.log_eigenvalues - exact), 1e-10)
    if d == 2000:  # the values quoted in the issue
        assert abs(spec.log_eigenvalues[10] - (-69.12)) < 0.005
        assert abs(spec.log_eigenvalues[100] - (-695.6)) < 0.05


def test_exp_coefficients_within_their_error_bars():
    """b_n = 2^n/n! for e^{2t}: each coefficient within its error bar, and the bars (hence the
    values) below 1e-12 relative up to order 300 at least, with and without d."""
    kernel = fc.DotProductKernel(lambda t: np.exp(2 * t))
    assert kernel.taylor_source == "cauchy"
    for d in (None, 2000):
        N, worst = _within_bars(kernel, lambda n: mpmath.mpf(2) ** n / mpmath.factorial(n), 768, d)
        assert N >= 300
        assert worst < 1e-12
        if d is None:  # each coefficient meets the budget (with d, the remainder may cover some)
            errors = np.exp(kernel.log_taylor_errors(768, d) - kernel.log_taylor_coefficients(768, d))
            assert errors.max() <= 1e-12
    assert kernel.taylor_rtol(768, 2000) == 1e-12


@pytest.mark.parametrize(
    ("fn", "exact"),
    [
        (lambda t: np.exp(100 * t), lambda n: mpmath.mpf(100) ** n / mpmath.factorial(n)),
        (lambda t: 1 - np.log(1 - t / 2), lambda n: 1 / (n * mpmath.mpf(2) ** n) if n else mpmath.mpf(1)),
    ],
    ids=["exp(100t)", "1-log(1-t/2)"],
)
def test_more_coefficients_within_their_error_bars(fn, exact):
    N, worst = _within_bars(fc.DotProductKernel(fn), exact, 768, 10)
    assert N >= 200 and worst < 1e-12


def test_binomial_kernel_coefficients_and_eigenvalues():
    """(1 - t/2)^{-3/2}: radius of convergence 2 (branch point). Coefficients (3/2)_n/(n! 2^n)
    within their bars to order 768, the remainder bounds the exact tail, and the spectrum
    matches the hypergeometric closed form."""
    p = 1.5
    kernel = fc.DotProductKernel(lambda t: (1 - t / 2) ** -p)

    def exact(n: int) -> mpmath.mpf:
        return mpmath.rf(mpmath.mpf(p), n) / (mpmath.factorial(n) * mpmath.mpf(2) ** n)

    N, worst = _within_bars(kernel, exact, 768, 10)
    assert N >= 700 and worst < 1e-12
    with mpmath.workdps(40):
        tail = mpmath.fsum(exact(n) for n in range(N + 1, N + 2000))
        assert kernel.log_taylor_remainder(N, 10) >= float(mpmath.log(tail))
    for d, lmax in ((3, 60), (10, 60), (2000, 150)):
        spec = spectrum(kernel, d, lmax)
        assert spec.resolved.all() and set(spec.methods) == {"series"}
        with mpmath.workdps(40):
            for l in range(0, lmax + 1, 5):
                ref = float(mpmath.log(_binomial_eigenvalue(p, d, l)))
                assert abs(spec.log_eigenvalues[l] - ref) < 1e-10, (d, l)


def test_branch_point_at_one_stops_the_series_early():
    """2 - sqrt(1 - t) is analytic only in the unit disc (b_n ~ n^{-3/2}): the coefficients'
    relative accuracy degrades with n, so the series stops well before the order asked for;
    every coefficient is within its bar, and every eigenvalue within its error estimate of
    Gauss's closed form (those marked resolved within 1e-10)."""
    kernel = fc.DotProductKernel(lambda t: 2 - np.sqrt(1 - t))

    def exact(n: int) -> mpmath.mpf:
        return mpmath.mpf(1) if n == 0 else -mpmath.binomial(mpmath.mpf(1) / 2, n) * (-1) ** n

    N, _ = _within_bars(kernel, exact, 768, 2000)
    assert 10 < N < 400
    d, lmax = 2000, 40
    with pytest.warns(RuntimeWarning, match="could not be resolved"):
        spec = spectrum(kernel, d, lmax)
    assert spec.resolved.sum() >= 30
    with mpmath.workdps(40):
        for l in range(lmax + 1):
            ref = _sqrt_eigenvalue(d, l)
            err = abs(mpmath.mpf(float(spec.eigenvalues[l])) - ref)
            if spec.resolved[l]:
                assert err <= 1e-10 * ref, l
            else:
                assert err <= spec.error_estimates[l], l


def test_polynomial_lambda_against_sympy():
    """A polynomial as a plain lambda. With all coefficients positive ((1 + t)^5 at d = 2000)
    every degree is exact; with zero coefficients (t^7 + 3t^2 + 1/2 at d = 3) the zeros are
    returned as 0 with their error bars, nonzero eigenvalues match sympy's exact rationals and
    the zero ones are 0 within a tiny error estimate (so they are reported unresolved)."""
    t = sympy.Symbol("t")
    kernel = fc.DotProductKernel(lambda x: (1 + x) ** 5)
    exact = symbolic_spectrum((1 + t) ** 5, 2000, 5)
    spec = spectrum(kernel, 2000, 5)
    assert spec.resolved.all()
    for l in range(6):
        assert abs(spec.eigenvalues[l] / float(exact[l]) - 1) < 1e-12

    kernel = fc.DotProductKernel(lambda x: x**7 + 3 * x**2 + 0.5)
    b = kernel.taylor_coefficients(20, 3)
    np.testing.assert_allclose(b, [0.5, 0, 3, 0, 0, 0, 0, 1], rtol=1e-13, atol=0)
    assert np.all(b[[1, 3, 4, 5, 6]] == 0)
    assert np.all(np.exp(kernel.log_taylor_errors(20, 3)) < 1e-13)
    exact = symbolic_spectrum(t**7 + 3 * t**2 + sympy.Rational(1, 2), 3, 9)
    with pytest.warns(RuntimeWarning, match="could not be resolved"):
        spec = spectrum(kernel, 3, 9)
    for l in range(10):
        if exact[l] == 0:
            assert spec.eigenvalues[l] <= spec.error_estimates[l] < 1e-13
        else:
            assert spec.resolved[l]
            assert abs(spec.eigenvalues[l] / float(exact[l]) - 1) < 1e-12


def test_sympy_expression_gets_the_cauchy_route():
    """A non-polynomial sympy kernel (lambdified, complex-capable) now has series coefficients."""
    t = sympy.Symbol("t")
    kernel = fc.as_kernel(sympy.exp(2 * t))
    assert kernel.taylor_source == "cauchy"
    spec = spectrum(kernel, 100, 60)
    assert spec.resolved.all() and set(spec.methods) == {"series"}
    for l in (0, 7, 33, 60):
        assert abs(spec.log_eigenvalues[l] - _exp_log_eigenvalue(0.5, 100, l)) < 1e-10


# ----------------------------------------------------------------------------- declining
def _real_only_exp(t):
    t = np.asarray(t)
    if np.iscomplexobj(t):
        raise TypeError("real input only")
    return np.exp(2 * t)


def test_kernel_rejecting_complex_input_falls_back_to_quadrature():
    kernel = fc.DotProductKernel(_real_only_exp)
    assert kernel.log_taylor_coefficients(100, 5) is None
    assert kernel.log_taylor_remainder(100, 5) is None
    assert kernel.taylor_source is None
    spec = spectrum(kernel, 5, 7)  # degrees the quadrature resolves at d = 5
    assert set(spec.methods) == {"quadrature"} and spec.resolved.all()
    for l in range(8):
        assert abs(spec.log_eigenvalues[l] - _exp_log_eigenvalue(0.5, 5, l)) < 1e-10
    with pytest.raises(ValueError, match=r"analytic=True.*does not accept complex"):
        fc.DotProductKernel(_real_only_exp, analytic=True).log_taylor_coefficients(10, 5)


def test_analytic_false_never_calls_fn_with_complex_numbers():
    seen = []

    def fn(t):
        seen.append(np.asarray(t).dtype.kind)
        return np.exp(np.asarray(t).real)

    kernel = fc.DotProductKernel(fn, analytic=False)
    assert kernel.log_taylor_coefficients(50, 4) is None
    assert kernel.taylor_source is None
    spectrum(kernel, 4, 4)
    assert seen and "c" not in seen


@pytest.mark.parametrize(
    "fn",
    [lambda t: np.abs(t), lambda t: t * np.conj(t), lambda t: np.maximum(t, 0), lambda t: np.real(t) ** 2],
    ids=["abs", "t-conj-t", "max0", "real-squared"],
)
def test_non_analytic_callables_decline(fn):
    assert fc.DotProductKernel(fn).log_taylor_coefficients(50, 3) is None
    with pytest.raises(ValueError, match="analytic=True"):
        fc.DotProductKernel(fn, analytic=True).log_taylor_coefficients(50, 3)


@pytest.mark.parametrize(
    ("fn", "order"),
    [(lambda t: np.cos(t), 2), (lambda t: np.exp(2 * t) - 2 * t**3, 3), (lambda t: np.sqrt(1 + t), 2)],
    ids=["cos", "exp-minus-cubic", "sqrt1+t"],
)
def test_negative_coefficient_declines_the_series_route(fn, order):
    """A clearly negative b_n: not a dot-product kernel on every sphere. No coefficients (not an
    error even with analytic=True), and the series method says so."""
    kernel = fc.DotProductKernel(fn, analytic=True)
    assert kernel.log_taylor_coefficients(100, 3) is None
    assert f"b_{order} =" in kernel._series.reason
    with pytest.raises(ValueError, match="no non-negative Taylor"):
        spectrum(kernel, 3, 5, method="series")


def test_linear_and_constant_lambdas():
    """b_0 = 0 (t) and b_n = 0 for n >= 1 (a constant): lambda_1 = 1/d of the linear kernel is
    exact; its lambda_0 = 0 is 0 within a tiny error (b_0 is 0 only within its error bar)."""
    with pytest.warns(RuntimeWarning, match=r"degrees \[0\]"):
        spec = spectrum(fc.DotProductKernel(lambda t: t), 50, 1)
    assert spec.methods[1] in ("series", "quadrature") and abs(spec.eigenvalues[1] * 50 - 1) < 1e-14
    assert spec.eigenvalues[0] <= spec.error_estimates[0] < 1e-15
    b = fc.DotProductKernel(lambda t: 2.0 + 0 * t).taylor_coefficients(10, 7)
    assert b.tolist() == [pytest.approx(2.0, rel=1e-15)]


def test_bad_arguments_name_the_parameter():
    with pytest.raises(TypeError, match="analytic"):
        fc.DotProductKernel(np.exp, analytic="yes")
    kernel = fc.DotProductKernel(np.exp)
    with pytest.raises(ValueError, match="n_max"):
        kernel.log_taylor_coefficients(-1, 3)
    with pytest.raises(ValueError, match="d must be >= 2"):
        kernel.log_taylor_coefficients(10, 1)
    with pytest.raises(TypeError, match="fn must be callable"):
        fc.DotProductKernel(3.0)


def test_explicit_coefficients_take_precedence():
    kernel = fc.exponential_kernel(0.5)
    assert kernel.taylor_source == "explicit"
    assert kernel.log_taylor_errors(10, 3) is None and kernel.taylor_rtol(10, 3) is None
    assert len(kernel.log_taylor_coefficients(10, 3)) == 11
