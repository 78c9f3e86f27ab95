"""Tests of fieldcurve.sphere against oracles that share no code with it.

Oracles: exact integer counts of homogeneous / harmonic polynomials (Python ints, sympy ranks),
closed forms (Chebyshev, Legendre, spherical harmonics from scipy), mpmath Gegenbauer values at
30+ digits and exact rational hypergeometric sums, Gauss-Jacobi and Gauss-Legendre x trapezoid
quadratures that are exact for the polynomial degrees involved, and Monte Carlo estimates with
explicit standard errors (fixed seeds, 5-sigma bands).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import scipy.special as sc
import scipy.stats
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldcurve.sphere import (
    harmonic_features,
    legendre,
    log_multiplicity,
    multiplicity,
    sample_sphere,
    zonal_harmonic,
)

# ----------------------------------------------------------------------------- oracles


def harmonic_count(d: int, l: int) -> int:
    """dim(harmonic polynomials of degree l in d variables) = dim P_l - dim P_{l-2}.

    Multiplication by |x|^2 maps P_{l-2} injectively into P_l and P_l = H_l + |x|^2 P_{l-2};
    dim P_k = C(k + d - 1, d - 1) is the number of monomials of degree k.
    """

    def n_monomials(k: int) -> int:
        return math.comb(k + d - 1, d - 1) if k >= 0 else 0

    return n_monomials(l) - n_monomials(l - 2)


def generating_function_count(d: int, l: int) -> int:
    """Coefficient of x^l in (1 + x) / (1 - x)^(d-1), the generating function of N(d, l)."""
    if d == 2:
        return 1 if l == 0 else 2
    return math.comb(l + d - 2, d - 2) + (math.comb(l + d - 3, d - 2) if l >= 1 else 0)


def laplacian_kernel_dimension(d: int, l: int) -> int:
    """dim ker(Laplacian: P_l -> P_{l-2}) by an exact sympy rank computation."""
    xs = sympy.symbols(f"x0:{d}")
    monomials = [sympy.Mul(*c) for c in itertools.combinations_with_replacement(xs, l)]
    if l < 2:
        return len(monomials)
    targets = [sympy.Mul(*c) for c in itertools.combinations_with_replacement(xs, l - 2)]
    index = {m: i for i, m in enumerate(targets)}
    rows = []
    for m in monomials:
        lap = sympy.expand(sum(sympy.diff(m, x, 2) for x in xs))
        col = [0] * len(targets)
        if lap != 0:
            for term, coeff in lap.as_coefficients_dict().items():
                col[index[term]] += int(coeff)
        rows.append(col)
    rank = sympy.Matrix(rows).rank()
    return len(monomials) - rank


def exact_legendre(l: int, d: int, t: float) -> Fraction:
    """P_l^{(d)}(t) = 2F1(-l, l+d-2; (d-1)/2; (1-t)/2) summed exactly in rationals."""
    x = (1 - Fraction(t)) / 2
    term = Fraction(1)
    total = Fraction(1)
    c = Fraction(d - 1, 2)
    for k in range(l):
        term = term * (k - l) * (l + d - 2 + k) / ((c + k) * (k + 1)) * x
        total += term
    return total


def cosine_sum_legendre(l: int, d: int, t: float) -> mpmath.mpf:
    """P_l^{(d)}(cos th) from C_l^a(cos th) = sum_k (a)_k (a)_{l-k} / (k! (l-k)!) cos((l-2k) th).

    All coefficients are positive, so at 40 digits the absolute error of the normalised value is
    ~ l 10^-40 however much the cosines cancel (used where mpmath's hypergeometric summation
    cannot certify a relative accuracy because the value is ~0).
    """
    with mpmath.workdps(40):
        alpha = mpmath.mpf(d - 2) / 2
        theta = mpmath.acos(mpmath.mpf(t))
        a = [mpmath.mpf(1)]
        for k in range(l):
            a.append(a[-1] * (alpha + k) / (k + 1))
        coeffs = [a[k] * a[l - k] for k in range(l + 1)]
        num = mpmath.fsum(c * mpmath.cos((l - 2 * k) * theta) for k, c in enumerate(coeffs))
        return num / mpmath.fsum(coeffs)


def mp_legendre(l: int, d: int, t: float) -> mpmath.mpf:
    """C_l^{(d-2)/2}(t) / C_l^{(d-2)/2}(1) by mpmath's hypergeometric Gegenbauer at 30 digits."""
    with mpmath.workdps(30):
        alpha = mpmath.mpf(d - 2) / 2
        try:
            return mpmath.gegenbauer(l, alpha, t) / mpmath.gegenbauer(l, alpha, 1)
        except ValueError:  # hypsum cannot resolve a (near-)zero value: positive-sum form
            return cosine_sum_legendre(l, d, t)


def s2_product_rule(n_theta: int, n_phi: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on the sqrt(3)-sphere in R^3 and probability weights of a product rule.

    Gauss-Legendre in cos(theta) (exact for polynomials of degree <= 2 n_theta - 1) times the
    uniform trapezoid in phi (exact for trigonometric polynomials of degree < n_phi): exact for
    every polynomial of degree <= min(2 n_theta - 1, n_phi - 1) restricted to the sphere.
    """
    c, wc = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    cc, pp = np.meshgrid(c, phi, indexing="ij")
    ss = np.sqrt(1.0 - cc**2)
    X = np.sqrt(3.0) * np.stack([ss * np.cos(pp), ss * np.sin(pp), cc], axis=-1).reshape(-1, 3)
    w = (wc[:, None] / 2 * np.full(n_phi, 1.0 / n_phi)[None, :]).reshape(-1)
    return X, w


def real_spherical_harmonics(l: int, X: np.ndarray) -> np.ndarray:
    """Real and imaginary parts of scipy's Y_l^m, m = 0..l, at points X of the sqrt(3)-sphere."""
    u = X / np.sqrt(3.0)
    theta = np.arccos(np.clip(u[:, 2], -1.0, 1.0))
    phi = np.mod(np.arctan2(u[:, 1], u[:, 0]), 2 * np.pi)
    cols = []
    for m in range(l + 1):
        y = sc.sph_harm_y(l, m, theta, phi)
        cols.append(y.real)
        if m > 0:
            cols.append(y.imag)
    return np.stack(cols, axis=1)


def lstsq_relative_residual(basis: np.ndarray, F: np.ndarray) -> float:
    coef, *_ = np.linalg.lstsq(basis, F, rcond=None)
    return float(np.linalg.norm(basis @ coef - F) / np.linalg.norm(F))


# ----------------------------------------------------------------------------- multiplicity


@pytest.mark.parametrize("d", [2, 3, 4, 5, 7, 10, 100, 12345])
def test_multiplicity_matches_independent_counts(d: int) -> None:
    for l in [*range(40), 100, 1000]:
        expected = harmonic_count(d, l)
        assert generating_function_count(d, l) == expected
        got = multiplicity(d, l)
        assert type(got) is int
        assert got == expected, (d, l)


def test_multiplicity_low_dimensions() -> None:
    assert multiplicity(2, 0) == 1
    assert all(multiplicity(2, l) == 2 for l in range(1, 200))
    assert all(multiplicity(3, l) == 2 * l + 1 for l in range(200))
    assert all(multiplicity(4, l) == (l + 1) ** 2 for l in range(200))
    assert multiplicity(np.int64(3), np.int64(4)) == 9


@pytest.mark.parametrize(("d", "l"), [(d, l) for d in (2, 3, 4) for l in range(5)])
def test_multiplicity_is_dimension_of_laplacian_kernel(d: int, l: int) -> None:
    assert multiplicity(d, l) == laplacian_kernel_dimension(d, l)


def test_multiplicity_huge_is_exact() -> None:
    # a value far beyond float range: only exact integer arithmetic can match
    assert multiplicity(100_000, 3000) == harmonic_count(100_000, 3000)
    assert multiplicity(100_000, 3000) > 10**4000


@pytest.mark.parametrize("d", [2, 3, 4, 10, 1000, 99_999, 100_000])
def test_log_multiplicity_matches_log_of_exact_integer(d: int) -> None:
    degrees = np.array([0, 1, 2, 3, 7, 10, 100, 999, 1000, 2999, 3000])
    got = log_multiplicity(d, degrees)
    assert got.shape == degrees.shape
    assert got.dtype == np.float64
    for l, value in zip(degrees, got, strict=True):
        exact = math.log(harmonic_count(d, int(l)))
        if exact == 0.0:
            assert value == 0.0
        else:
            assert abs(value - exact) <= 1e-13 * abs(exact), (d, l, value, exact)


def test_log_multiplicity_keeps_shape_and_small_values_exact() -> None:
    degrees = np.array([[0, 1], [2, 5]])
    got = log_multiplicity(7, degrees)
    assert got.shape == (2, 2)
    expected = np.log([[1.0, 7.0], [27.0, harmonic_count(7, 5)]])
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    assert log_multiplicity(7, np.array([], dtype=np.int64)).shape == (0,)


# ----------------------------------------------------------------------------- legendre

T_GRID = np.array([-1.0, -0.7071, -0.3, 0.05, 0.5, 0.999, 1.0])


@pytest.mark.parametrize("d", [2, 3, 4, 5, 10, 1000, 100_000])
def test_legendre_endpoints(d: int) -> None:
    P = legendre(3000, np.array([1.0, -1.0]), d)
    l = np.arange(3001)
    np.testing.assert_allclose(P[:, 0], 1.0, rtol=0, atol=1e-13)
    np.testing.assert_allclose(P[:, 1], (-1.0) ** l, rtol=0, atol=1e-13)


def test_legendre_d3_is_classical_legendre() -> None:
    t = np.linspace(-1.0, 1.0, 201)
    P = legendre(150, t, 3)
    for l in [0, 1, 2, 3, 7, 50, 100, 150]:  # scipy itself is accurate to 1e-13 up to here
        np.testing.assert_allclose(P[l], sc.eval_legendre(l, t), rtol=0, atol=1e-13)


def test_legendre_d2_is_chebyshev() -> None:
    t = np.concatenate([T_GRID, [0.0, 0.3333, -0.99999]])
    P = legendre(2000, t, 2)
    for l in [0, 1, 2, 5, 64, 999, 2000]:
        with mpmath.workdps(30):
            expected = [float(mpmath.cos(l * mpmath.acos(mpmath.mpf(x)))) for x in t]
        np.testing.assert_allclose(P[l], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("d", [3, 4, 5, 7, 50, 1000, 100_000])
def test_legendre_matches_mpmath_gegenbauer(d: int) -> None:
    P = legendre(2000, T_GRID, d)
    for l in [0, 1, 2, 3, 10, 100, 1000, 2000]:
        expected = np.array([float(mp_legendre(l, d, t)) for t in T_GRID])
        np.testing.assert_allclose(P[l], expected, rtol=0, atol=1e-12, err_msg=f"l={l}, d={d}")


@pytest.mark.parametrize("d", [3, 4, 6, 9, 31])
def test_legendre_matches_exact_rational_hypergeometric(d: int) -> None:
    t = np.array([-0.875, -0.5, 0.0, 0.1, 0.75, 0.9990234375])
    P = legendre(40, t, d)
    for l in [0, 1, 2, 5, 13, 40]:
        expected = [float(exact_legendre(l, d, x)) for x in t]
        np.testing.assert_allclose(P[l], expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("d", [2, 3, 4, 5, 8, 20, 61])
def test_legendre_orthogonality_gauss_jacobi(d: int) -> None:
    lmax = 14
    alpha = (d - 3) / 2
    nodes, weights = sc.roots_jacobi(lmax + 2, alpha, alpha)  # exact to degree 2 lmax + 3
    weights = weights / weights.sum()  # the normalised measure c_d (1-t^2)^((d-3)/2) dt
    P = legendre(lmax, nodes, d)
    gram = (P * weights) @ P.T
    expected = np.diag([1.0 / harmonic_count(d, l) for l in range(lmax + 1)])
    np.testing.assert_allclose(gram, expected, rtol=0, atol=2e-14)


@pytest.mark.parametrize(("d", "k", "l"), [(3, 2, 2), (3, 3, 5), (6, 4, 4), (6, 1, 3), (6, 5, 5)])
def test_legendre_orthogonality_mpmath(d: int, k: int, l: int) -> None:
    def integrand(t: mpmath.mpf) -> mpmath.mpf:
        p = legendre(max(k, l), float(t), d)
        return mpmath.mpf(float(p[k] * p[l])) * (1 - t * t) ** (mpmath.mpf(d - 3) / 2)

    with mpmath.workdps(30):
        c_d = mpmath.gamma(mpmath.mpf(d) / 2) / (mpmath.sqrt(mpmath.pi) * mpmath.gamma(mpmath.mpf(d - 1) / 2))
        value = float(c_d * mpmath.quad(integrand, [-1, 0, 1]))
    expected = 1.0 / harmonic_count(d, l) if k == l else 0.0
    assert abs(value - expected) <= 1e-13


def test_legendre_shapes() -> None:
    assert legendre(4, 0.3, 5).shape == (5,)
    assert legendre(0, np.zeros((2, 3)), 5).shape == (1, 2, 3)
    P = legendre(3, np.full((2, 3), 0.25), 3)
    assert P.shape == (4, 2, 3)
    np.testing.assert_allclose(P[2], (3 * 0.25**2 - 1) / 2, rtol=1e-15)


@settings(max_examples=60, deadline=None)
@given(
    t=st.floats(-1.0, 1.0, allow_nan=False),
    d=st.sampled_from([2, 3, 4, 5, 11, 1000]),
    lmax=st.integers(0, 300),
)
def test_legendre_parity_and_bound(t: float, d: int, lmax: int) -> None:
    plus = legendre(lmax, t, d)
    minus = legendre(lmax, -t, d)
    sign = (-1.0) ** np.arange(lmax + 1)
    np.testing.assert_allclose(minus, sign * plus, rtol=0, atol=1e-15)
    # |P_l^{(d)}(t)| <= 1 on [-1, 1] (Gegenbauer, alpha >= 0)
    assert np.all(np.abs(plus) <= 1.0 + 1e-12)


# ----------------------------------------------------------------------------- sample_sphere


@pytest.mark.parametrize("d", [2, 3, 10, 1000])
def test_sample_sphere_norms(d: int) -> None:
    X = sample_sphere(500, d, seed=11)
    assert X.shape == (500, d)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), np.sqrt(d), rtol=1e-12, atol=0)
    assert sample_sphere(0, d, seed=1).shape == (0, d)


def test_sample_sphere_seeds() -> None:
    a = sample_sphere(50, 4, seed=123)
    np.testing.assert_array_equal(a, sample_sphere(50, 4, seed=123))
    np.testing.assert_array_equal(a, sample_sphere(50, 4, seed=np.random.default_rng(123)))
    assert not np.allclose(a, sample_sphere(50, 4, seed=124))
    rng = np.random.default_rng(5)
    first, second = sample_sphere(50, 4, seed=rng), sample_sphere(50, 4, seed=rng)
    assert not np.allclose(first, second)  # a Generator advances between calls


def test_sample_sphere_moments_monte_carlo() -> None:
    d, n = 4, 200_000
    X = sample_sphere(n, d, seed=2024)
    # first moments: E[x] = 0
    mean = X.mean(axis=0)
    se = X.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(mean) <= 5 * se)
    # second moments: E[x x^T] = I
    prods = X[:, :, None] * X[:, None, :]
    est = prods.mean(axis=0)
    se2 = prods.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(est - np.eye(d)) <= 5 * se2)
    # the standard errors themselves match the closed forms Var(x_i x_j) = d/(d+2) (i != j),
    # Var(x_i^2) = 2(d-1)/(d+2): a sanity check that the 5-sigma band is not vacuous
    np.testing.assert_allclose(se2[0, 1], np.sqrt(d / (d + 2) / n), rtol=0.02)
    np.testing.assert_allclose(se2[0, 0], np.sqrt(2 * (d - 1) / (d + 2) / n), rtol=0.02)
    # fourth moment E[x_1^4] = 3d/(d+2) on the sqrt(d)-sphere
    x4 = X[:, 0] ** 4
    assert abs(x4.mean() - 3 * d / (d + 2)) <= 5 * x4.std(ddof=1) / np.sqrt(n)


@pytest.mark.parametrize("d", [3, 5, 20])
def test_sample_sphere_marginal_distribution(d: int) -> None:
    # t = x_1 / sqrt(d) has density proportional to (1-t^2)^((d-3)/2): (t+1)/2 ~ Beta((d-1)/2, (d-1)/2)
    X = sample_sphere(20_000, d, seed=99 + d)
    u = (X[:, 0] / np.sqrt(d) + 1) / 2
    a = (d - 1) / 2
    assert scipy.stats.kstest(u, "beta", args=(a, a)).pvalue > 1e-3
    # a negative control: the same sample is far from the d+6 marginal
    assert scipy.stats.kstest(u, "beta", args=(a + 3, a + 3)).pvalue < 1e-6


# ----------------------------------------------------------------------------- zonal_harmonic


def test_zonal_harmonic_closed_forms() -> None:
    X3, Y3 = sample_sphere(40, 3, seed=1), sample_sphere(30, 3, seed=2)
    t3 = np.clip(X3 @ Y3.T / 3, -1, 1)
    for l in [0, 1, 2, 6]:
        np.testing.assert_allclose(
            zonal_harmonic(l, X3, Y3), (2 * l + 1) * sc.eval_legendre(l, t3), rtol=0, atol=1e-12
        )
    X4, Y4 = sample_sphere(40, 4, seed=3), sample_sphere(30, 4, seed=4)
    t4 = np.clip(X4 @ Y4.T / 4, -1, 1)
    for l in [0, 1, 3, 5]:
        # N(4, l) P_l^{(4)} = (l+1)^2 U_l(t)/(l+1)
        np.testing.assert_allclose(
            zonal_harmonic(l, X4, Y4), (l + 1) * sc.eval_chebyu(l, t4), rtol=0, atol=1e-11
        )
    ang_x, ang_y = np.array([0.3, 2.0, -1.1]), np.array([0.9, -2.5])
    X2 = np.sqrt(2) * np.stack([np.cos(ang_x), np.sin(ang_x)], axis=1)
    Y2 = np.sqrt(2) * np.stack([np.cos(ang_y), np.sin(ang_y)], axis=1)
    for l in [1, 2, 7]:
        expected = 2 * np.cos(l * (ang_x[:, None] - ang_y[None, :]))
        np.testing.assert_allclose(zonal_harmonic(l, X2, Y2), expected, rtol=0, atol=1e-12)


def test_zonal_harmonic_reproducing_property_exact_quadrature() -> None:
    Q, w = s2_product_rule(8, 16)  # exact to degree 15
    X, Z = sample_sphere(5, 3, seed=8), sample_sphere(6, 3, seed=9)
    for k, l in [(2, 2), (3, 3), (2, 4), (1, 3), (0, 0), (0, 2)]:
        lhs = (zonal_harmonic(k, X, Q) * w) @ zonal_harmonic(l, Q, Z)
        expected = zonal_harmonic(l, X, Z) if k == l else np.zeros((5, 6))
        np.testing.assert_allclose(lhs, expected, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- harmonic_features


@pytest.mark.parametrize(("l", "num"), [(0, 1), (1, 3), (2, 5), (2, 3), (3, 7), (5, 4), (6, 8)])
def test_harmonic_features_orthonormal_exact_quadrature_d3(l: int, num: int) -> None:
    Q, w = s2_product_rule(l + 2, 2 * l + 4)  # exact for the degree-2l products
    F = harmonic_features(Q, l, num, seed=l + 10 * num)
    assert F.shape == (len(w), num)
    np.testing.assert_allclose((F * w[:, None]).T @ F, np.eye(num), rtol=0, atol=1e-12)


def test_harmonic_features_different_degrees_orthogonal_d3() -> None:
    Q, w = s2_product_rule(8, 16)
    feats = {l: harmonic_features(Q, l, 2 * l + 1, seed=l) for l in range(6)}
    for k, l in itertools.combinations(range(6), 2):
        cross = (feats[k] * w[:, None]).T @ feats[l]
        np.testing.assert_allclose(cross, 0.0, rtol=0, atol=1e-12, err_msg=f"degrees {k}, {l}")


@pytest.mark.parametrize(("l", "num"), [(2, 6), (3, 5)])
def test_harmonic_features_orthonormal_monte_carlo_d5(l: int, num: int) -> None:
    n = 100_000
    X = sample_sphere(n, 5, seed=31 + l)
    F = harmonic_features(X, l, num, seed=7)
    prods = F[:, :, None] * F[:, None, :]
    est = prods.mean(axis=0)
    se = prods.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(se < 0.05)  # the band is informative
    assert np.all(np.abs(est - np.eye(num)) <= 5 * se)
    # orthogonal to the degree-(l+1) features as well
    G = harmonic_features(X, l + 1, 4, seed=8)
    cross = F[:, :, None] * G[:, None, :]
    assert np.all(np.abs(cross.mean(axis=0)) <= 5 * cross.std(axis=0, ddof=1) / np.sqrt(n))


@pytest.mark.parametrize(("d", "l"), [(3, 2), (4, 3), (3, 4), (2, 3)])
def test_harmonic_features_addition_theorem(d: int, l: int) -> None:
    n_l = harmonic_count(d, l)
    X, Y = sample_sphere(30, d, seed=1), sample_sphere(20, d, seed=2)
    FX = harmonic_features(X, l, n_l, seed=5)
    FY = harmonic_features(Y, l, n_l, seed=5)
    t = np.clip(X @ Y.T / d, -1.0, 1.0)
    if d == 2:
        p = np.cos(l * np.arccos(t))
    elif d == 3:
        p = sc.eval_legendre(l, t)
    else:  # d == 4: P_l^{(4)} = U_l / (l + 1)
        p = sc.eval_chebyu(l, t) / (l + 1)
    np.testing.assert_allclose(FX @ FY.T, n_l * p, rtol=0, atol=1e-10 * n_l)


@pytest.mark.parametrize(("l", "num"), [(1, 3), (2, 5), (3, 4), (4, 9)])
def test_harmonic_features_span_scipy_spherical_harmonics_d3(l: int, num: int) -> None:
    X = sample_sphere(200, 3, seed=17)
    F = harmonic_features(X, l, num, seed=3)
    assert lstsq_relative_residual(real_spherical_harmonics(l, X), F) < 1e-10
    # negative controls: neither the neighbouring degrees nor both of them together fit
    assert lstsq_relative_residual(real_spherical_harmonics(l + 1, X), F) > 0.5
    lower = np.concatenate([real_spherical_harmonics(k, X) for k in range(l)], axis=1)
    assert lstsq_relative_residual(lower, F) > 0.5


@pytest.mark.parametrize(("l", "num"), [(2, 6), (3, 10)])
def test_harmonic_features_parity_and_polynomial_degree_d5(l: int, num: int) -> None:
    X = sample_sphere(400, 5, seed=41)
    F = harmonic_features(X, l, num, seed=2)
    np.testing.assert_allclose(harmonic_features(-X, l, num, seed=2), (-1) ** l * F, atol=1e-12)

    def monomial_basis(deg: int) -> np.ndarray:
        cols = [np.ones(len(X))]
        for k in range(1, deg + 1):
            for c in itertools.combinations_with_replacement(range(5), k):
                cols.append(np.prod(X[:, list(c)], axis=1))
        return np.stack(cols, axis=1)

    assert lstsq_relative_residual(monomial_basis(l), F) < 1e-10
    assert lstsq_relative_residual(monomial_basis(l - 1), F) > 0.5


def test_harmonic_features_depend_on_seed_not_on_other_points() -> None:
    X, Z = sample_sphere(7, 4, seed=1), sample_sphere(5, 4, seed=2)
    joint = harmonic_features(np.vstack([X, Z]), 3, 8, seed=21)
    np.testing.assert_allclose(joint[:7], harmonic_features(X, 3, 8, seed=21), atol=1e-13)
    np.testing.assert_allclose(joint[7:], harmonic_features(Z, 3, 8, seed=21), atol=1e-13)
    assert not np.allclose(joint, harmonic_features(np.vstack([X, Z]), 3, 8, seed=22))


def test_harmonic_features_complete_basis_orthonormal_to_roundoff_for_every_seed() -> None:
    worst = 0.0
    for l in (5, 8, 10):
        num = harmonic_count(3, l)
        Q, w = s2_product_rule(l + 2, 2 * l + 4)
        for seed in range(20):
            F = harmonic_features(Q, l, num, seed=seed)
            worst = max(worst, float(np.abs((F * w[:, None]).T @ F - np.eye(num)).max()))
    assert worst <= 1e-12, worst


def test_harmonic_features_zero_features() -> None:
    X = sample_sphere(4, 3, seed=0)
    assert harmonic_features(X, 2, 0, seed=1).shape == (4, 0)


# ----------------------------------------------------------------------------- bad input

ON3 = sample_sphere(4, 3, seed=0)
NAN3 = ON3.copy()
NAN3[1, 2] = np.nan
OFF3 = ON3 * 1.01


@pytest.mark.parametrize(
    ("call", "exc", "pattern"),
    [
        (lambda: multiplicity(1, 0), ValueError, r"^d must be >= 2"),
        (lambda: multiplicity(0, 3), ValueError, r"^d must be >= 2"),
        (lambda: multiplicity(3.0, 1), TypeError, r"^d must be an integer"),
        (lambda: multiplicity(True, 1), TypeError, r"^d must be an integer"),
        (lambda: multiplicity(3, -1), ValueError, r"^l must be >= 0"),
        (lambda: multiplicity(3, 1.5), TypeError, r"^l must be a non-negative integer"),
        (lambda: log_multiplicity(1, [0]), ValueError, r"^d must be >= 2"),
        (lambda: log_multiplicity(2.5, [0]), TypeError, r"^d must be an integer"),
        (lambda: log_multiplicity(3, [2, -1]), ValueError, r"^degrees must be non-negative"),
        (lambda: log_multiplicity(3, [1.5]), ValueError, r"^degrees must be non-negative"),
        (lambda: legendre(-1, 0.5, 3), ValueError, r"^lmax must be >= 0"),
        (lambda: legendre(2.0, 0.5, 3), TypeError, r"^lmax must be a non-negative integer"),
        (lambda: legendre(3, 0.5, 1), ValueError, r"^d must be >= 2"),
        (lambda: legendre(3, 0.5, 3.5), TypeError, r"^d must be an integer"),
        (lambda: legendre(3, [0.1, np.nan], 3), ValueError, r"^t contains NaN"),
        (lambda: legendre(3, [0.1, np.inf], 3), ValueError, r"^t contains NaN or inf"),
        (lambda: legendre(3, "abc", 3), TypeError, r"^t must be an array"),
        (lambda: sample_sphere(-1, 3, seed=0), ValueError, r"^n must be >= 0"),
        (lambda: sample_sphere(5, 1, seed=0), ValueError, r"^d must be >= 2"),
        (lambda: sample_sphere(5, 3.0, seed=0), TypeError, r"^d must be an integer"),
        (lambda: zonal_harmonic(1, NAN3, ON3), ValueError, r"^X contains NaN"),
        (lambda: zonal_harmonic(1, ON3, NAN3), ValueError, r"^Y contains NaN"),
        (lambda: zonal_harmonic(1, OFF3, ON3), ValueError, r"^X must lie on the sphere"),
        (lambda: zonal_harmonic(1, ON3, OFF3), ValueError, r"^Y must lie on the sphere"),
        (lambda: zonal_harmonic(1, ON3[0], ON3), ValueError, r"^X must be 2-dimensional"),
        (lambda: zonal_harmonic(1, ON3, ON3[:, :2]), ValueError, r"different dimensions"),
        (lambda: zonal_harmonic(-1, ON3, ON3), ValueError, r"^degree must be >= 0"),
        (lambda: zonal_harmonic(1.0, ON3, ON3), TypeError, r"^degree must be"),
        (
            lambda: zonal_harmonic(1, np.ones((3, 1)), np.ones((2, 1))),
            ValueError,
            r"^X\.shape\[1\] must be >= 2",
        ),
        (lambda: harmonic_features(ON3, 2, 6, seed=0), ValueError, r"^num = 6 exceeds .* N = 5"),
        (lambda: harmonic_features(ON3, 0, 2, seed=0), ValueError, r"^num = 2 exceeds"),
        (lambda: harmonic_features(ON3, 2, -1, seed=0), ValueError, r"^num must be >= 0"),
        (lambda: harmonic_features(ON3, 2, 2.0, seed=0), TypeError, r"^num must be"),
        (lambda: harmonic_features(ON3, -2, 1, seed=0), ValueError, r"^degree must be >= 0"),
        (lambda: harmonic_features(NAN3, 2, 3, seed=0), ValueError, r"^X contains NaN"),
        (lambda: harmonic_features(OFF3, 2, 3, seed=0), ValueError, r"^X must lie on the sphere"),
        (
            lambda: harmonic_features(np.ones((3, 1)), 1, 1, seed=0),
            ValueError,
            r"^X\.shape\[1\] must be >= 2",
        ),
    ],
)
def test_bad_input_is_rejected_with_parameter_name(call, exc, pattern) -> None:
    with pytest.raises(exc, match=pattern):
        call()
