"""Tests of fieldcurve.targets against oracles that share no code with it.

Oracles: exact arithmetic (fractions / math.fsum) for the bookkeeping of powers; Monte Carlo
estimates over uniform points drawn here (normalised Gaussians, own generator) with explicit
standard errors at fixed seeds (5-sigma bands); a product Gauss-Legendre(cos theta) x
trapezoid(phi) rule on S^2 that is exact for the polynomial degrees involved, with degree
projections built from scipy's Legendre polynomials and the addition theorem (not from
fieldcurve.sphere); and closed-form Funk-Hecke eigenvalues of e^{t/s} (modified Bessel
functions, mpmath at 40 digits) and of t^2 (exact rationals) for Target.from_kernel.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import scipy.special as sc
from hypothesis import given, settings
from hypothesis import strategies as st

import fieldcurve as fc
from fieldcurve import SampledTarget, Target

# ----------------------------------------------------------------------------- oracles


def uniform_sphere(n: int, d: int, seed: int) -> np.ndarray:
    """n points uniform on the sphere of radius sqrt(d), drawn here (not fieldcurve.sample_sphere)."""
    g = np.random.default_rng(seed).normal(size=(n, d))
    return math.sqrt(d) * g / np.sqrt(np.sum(g * g, axis=1, keepdims=True))


def n_harmonics(d: int, l: int) -> int:
    """N(d, l) = dim P_l - dim P_{l-2} (monomial counts), independent of fieldcurve.multiplicity."""

    def n_monomials(k: int) -> int:
        return math.comb(k + d - 1, d - 1) if k >= 0 else 0

    return n_monomials(l) - n_monomials(l - 2)


def s2_rule(n_theta: int, n_phi: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes on the sqrt(3)-sphere and weights (summing to 1) of the product rule
    Gauss-Legendre in cos(theta) x trapezoid in phi: exact for polynomials in x of total degree
    <= min(2 n_theta - 1, n_phi - 1) under the uniform probability measure."""
    z, wz = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    Z, PHI = np.meshgrid(z, phi, indexing="ij")
    R = np.sqrt(1 - Z**2)
    U = np.stack([R * np.cos(PHI), R * np.sin(PHI), Z], axis=-1).reshape(-1, 3)
    W = (np.repeat(wz, n_phi) / 2.0) / n_phi
    return math.sqrt(3.0) * U, W


def projection_norms_s2(values: np.ndarray, X: np.ndarray, W: np.ndarray, lmax: int) -> np.ndarray:
    """||Pi_j g||^2 for j = 0..lmax of a function g given at the nodes X of an exact rule on the
    sqrt(3)-sphere: <g, Z_j g> with the zonal harmonic Z_j(x, y) = (2j + 1) P_j(x.y / 3) from
    scipy (classical Legendre = Gegenbauer of dimension 3)."""
    t = np.clip(X @ X.T / 3.0, -1.0, 1.0)
    gw = values * W
    return np.array([(2 * j + 1) * gw @ sc.eval_legendre(j, t) @ gw for j in range(lmax + 1)])


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"powers": {1: -0.5}}, ValueError, "power of degree 1"),
        ({"powers": {2: float("nan")}}, ValueError, "power of degree 2"),
        ({"powers": {2: float("inf")}}, ValueError, "power of degree 2"),
        ({"powers": {1.5: 1.0}}, TypeError, "degree"),
        ({"powers": {2.0: 1.0}}, TypeError, "degree"),
        ({"powers": {-1: 1.0}}, ValueError, "degree"),
        ({"powers": {1: 1.0}, "noise": -0.1}, ValueError, "noise"),
        ({"powers": {1: 1.0}, "noise": float("nan")}, ValueError, "noise"),
        ({"powers": {1: 1.0}, "d": 1}, ValueError, "d"),
        ({"powers": {1: 1.0}, "d": 3.0}, TypeError, "d"),
    ],
)
def test_from_degree_powers_rejects_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        Target.from_degree_powers(**kwargs)


def test_from_degree_powers_non_numeric_power_names_the_power():
    with pytest.raises((TypeError, ValueError), match="power"):
        Target.from_degree_powers({1: "a"})


def test_from_degree_powers_non_mapping_is_type_error():
    with pytest.raises(TypeError, match="mapping"):
        Target.from_degree_powers([(1, 1.0)])


def test_constructor_non_mapping_is_type_error():
    with pytest.raises(TypeError, match="mapping"):
        Target(powers=[(1, 1.0)])


# ----------------------------------------------------------------------------- bookkeeping


def test_power_bookkeeping_exact_values():
    t = Target.from_degree_powers({7: 0.25, 0: 0.5, 2: 1.0, 3: 0.0}, noise=0.125)
    assert t.degrees == [0, 2, 7]  # zero power is not a degree of the target
    np.testing.assert_array_equal(t.power_array(4), [0.5, 0.0, 1.0, 0.0, 0.0])
    np.testing.assert_array_equal(t.power_array(0), [0.5])
    np.testing.assert_array_equal(t.power_array(9), [0.5, 0, 1.0, 0, 0, 0, 0, 0.25, 0, 0])
    assert t.power_beyond(4) == 0.25
    assert t.power_beyond(7) == 0.0
    assert t.power_beyond(1) == 1.25
    assert t.total_power == 1.75
    assert t.noise == 0.125
    assert t.d is None


def test_integer_like_degrees_and_powers_are_accepted():
    t = Target.from_degree_powers({np.int64(2): 1, 1: np.float32(0.5)}, d=np.int32(4))
    assert t.degrees == [1, 2]
    assert all(type(l) is int for l in t.powers)
    assert t.d == 4 and type(t.d) is int


powers_strategy = st.dictionaries(
    st.integers(0, 30),
    st.one_of(st.just(0.0), st.fractions(0, 10, max_denominator=64).map(float)),
    max_size=8,
)


@settings(max_examples=80, deadline=None)
@given(powers=powers_strategy, lmax=st.integers(0, 35))
def test_power_bookkeeping_property(powers, lmax):
    t = Target.from_degree_powers(powers)
    exact = {l: Fraction(v) for l, v in powers.items()}
    arr = t.power_array(lmax)
    assert arr.shape == (lmax + 1,)
    for l in range(lmax + 1):
        assert Fraction(arr[l]) == exact.get(l, 0)
    # float sums against the exact rational sums of the same floats (a few ulp of round-off)
    beyond = float(sum((v for l, v in exact.items() if l > lmax), Fraction(0)))
    assert math.isclose(t.power_beyond(lmax), beyond, rel_tol=1e-14, abs_tol=0)
    assert math.isclose(t.total_power, float(sum(exact.values(), Fraction(0))), rel_tol=1e-14, abs_tol=0)
    assert t.degrees == sorted(l for l, v in exact.items() if v > 0)


# ----------------------------------------------------------------------------- sampling: powers


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(2, 9),
    powers=st.dictionaries(st.integers(0, 4), st.floats(1e-3, 10.0), min_size=1, max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_sampled_powers_equal_request(d, powers, seed):
    s = Target.from_degree_powers(powers, noise=0.3).sample(d, seed=seed)
    assert isinstance(s, SampledTarget)
    assert s.d == d and s.noise == 0.3
    assert set(s.powers) == set(powers)
    for l, v in powers.items():
        assert abs(s.powers[l] - v) <= 1e-12 * v


def test_sampled_target_monte_carlo_powers_and_orthogonality():
    """E_x f^2 = sum v_l^2; E (Pi_l f)^2 = v_l^2; E (Pi_l f)(Pi_k f) = 0; f = sum_l Pi_l f."""
    d = 5
    powers = {0: 0.3, 1: 1.0, 2: 0.5, 3: 0.25}
    s = Target.from_degree_powers(powers).sample(d, seed=11)
    X = uniform_sphere(40_000, d, seed=123)
    n = len(X)
    f = s(X)
    parts = {l: s.degree_part(X, l) for l in powers}
    np.testing.assert_allclose(sum(parts.values()), f, rtol=0, atol=1e-12 * np.abs(f).max())

    def check(samples: np.ndarray, expected: float) -> None:
        mean, se = samples.mean(), samples.std(ddof=1) / math.sqrt(n)
        assert se > 0
        assert abs(mean - expected) < 5 * se, (mean, expected, se)

    check(f**2, sum(powers.values()))
    for l, v in powers.items():
        if l == 0:
            # a constant: exact, no Monte Carlo needed
            np.testing.assert_allclose(parts[0] ** 2, v, rtol=1e-12)
        else:
            check(parts[l] ** 2, v)
            check(parts[l], 0.0)  # non-constant harmonics have mean zero
    for l in powers:
        for k in powers:
            if l < k and l > 0:
                check(parts[l] * parts[k], 0.0)
    # a degree that is absent is identically zero
    np.testing.assert_array_equal(s.degree_part(X[:10], 4), np.zeros(10))


@pytest.mark.parametrize("max_features", [64, 3])
def test_sampled_target_exact_quadrature_on_s2(max_features):
    """d = 3: exact product quadrature of int f^2, int (Pi_l f)(Pi_k f), and the projections of
    each degree part onto every degree (scipy Legendre zonal harmonics): Pi_j(degree_part(l)) is
    v_l^2 for j = l and 0 otherwise, so degree_part(l) really is of degree l."""
    powers = {0: 0.7, 1: 1.0, 2: 0.5, 3: 0.25, 5: 0.125}
    s = Target.from_degree_powers(powers, d=3).sample(seed=2024, max_features=max_features)
    L = max(powers)
    # products of two degree-<=L parts with a zonal harmonic of degree <= L: degree <= 3L
    X, W = s2_rule(n_theta=3 * L // 2 + 2, n_phi=3 * L + 2)
    assert math.isclose(W.sum(), 1.0, rel_tol=1e-14)
    f = s(X)
    parts = {l: s.degree_part(X, l) for l in range(L + 2)}
    total = sum(powers.values())
    assert abs(W @ f**2 - total) < 1e-12 * total
    for l in range(L + 2):
        for k in range(L + 2):
            expected = powers.get(l, 0.0) if l == k else 0.0
            assert abs(W @ (parts[l] * parts[k]) - expected) < 1e-12 * total, (l, k)
    for l in powers:
        norms = projection_norms_s2(parts[l], X, W, L + 1)
        expected = np.zeros(L + 2)
        expected[l] = powers[l]
        np.testing.assert_allclose(norms, expected, rtol=0, atol=1e-11 * total)
    expected = np.array([powers.get(j, 0.0) for j in range(L + 2)])
    np.testing.assert_allclose(projection_norms_s2(f, X, W, L + 1), expected, rtol=0, atol=1e-11 * total)


def test_sample_max_features_limits_but_keeps_power():
    """With high multiplicity (d = 10, l = 3: N = 210) only max_features harmonics are used, and
    the power is still exact (exact S^9 check is out of reach: Monte Carlo with error bars)."""
    d = 10
    assert n_harmonics(d, 3) == 210
    s = Target.from_degree_powers({3: 2.0}).sample(d, seed=5, max_features=16)
    assert [len(c) for _, _, c in s.components] == [16]
    assert abs(s.powers[3] - 2.0) < 1e-12
    X = uniform_sphere(30_000, d, seed=9)
    f2 = s(X) ** 2
    se = f2.std(ddof=1) / math.sqrt(len(f2))
    assert abs(f2.mean() - 2.0) < 5 * se


def test_sample_rejects_nonpositive_max_features():
    with pytest.raises(ValueError, match="max_features"):
        Target.from_degree_powers({1: 1.0}).sample(3, seed=0, max_features=0)


def test_sample_seed_reproducibility():
    t = Target.from_degree_powers({1: 1.0, 2: 0.5, 4: 0.1}, d=4)
    X = uniform_sphere(200, 4, seed=1)
    a, b = t.sample(seed=7), t.sample(seed=7)
    np.testing.assert_array_equal(a(X), b(X))
    np.testing.assert_array_equal(a.degree_part(X, 2), b.degree_part(X, 2))
    c = t.sample(seed=8)
    assert np.max(np.abs(a(X) - c(X))) > 1e-3
    for l in (1, 2, 4):
        assert np.max(np.abs(a.degree_part(X, l) - c.degree_part(X, l))) > 1e-6
    # a Generator seed is consumed: two draws from one generator differ, same-seeded generators agree
    g = np.random.default_rng(3)
    g1, g2 = t.sample(seed=g), t.sample(seed=g)
    assert np.max(np.abs(g1(X) - g2(X))) > 1e-3
    np.testing.assert_array_equal(t.sample(seed=np.random.default_rng(3))(X), g1(X))
    # evaluation does not depend on which other points are evaluated alongside
    np.testing.assert_allclose(a(X[:7]), a(X)[:7], rtol=1e-12, atol=1e-12)


def test_labels_noise_variance_monte_carlo():
    sigma2 = 0.37
    d = 4
    s = Target.from_degree_powers({1: 1.0, 2: 0.5}, noise=sigma2, d=d).sample(seed=4)
    X = uniform_sphere(20_000, d, seed=10)
    n = len(X)
    r = s.labels(X, seed=99) - s(X)
    # Gaussian residual: SE of the mean sqrt(s2/n), of the sample variance s2 sqrt(2/(n-1))
    assert abs(r.mean()) < 5 * math.sqrt(sigma2 / n)
    assert abs(r.var(ddof=1) - sigma2) < 5 * sigma2 * math.sqrt(2 / (n - 1))
    # the fourth moment of a Gaussian is 3 sigma^4 (checks the noise is Gaussian-like, not e.g. +-sigma)
    m4 = r**4
    assert abs(m4.mean() - 3 * sigma2**2) < 5 * m4.std(ddof=1) / math.sqrt(n)
    np.testing.assert_array_equal(s.labels(X, seed=99), s.labels(X, seed=99))
    assert np.max(np.abs(s.labels(X, seed=99) - s.labels(X, seed=100))) > 0.1
    # no noise: labels are the clean function
    s0 = Target.from_degree_powers({1: 1.0}, d=d).sample(seed=4)
    np.testing.assert_array_equal(s0.labels(X[:50], seed=1), s0(X[:50]))


def test_sample_dimension_errors():
    t3 = Target.from_degree_powers({1: 1.0}, d=3)
    with pytest.raises(ValueError, match="d = 3"):
        t3.sample(4, seed=0)
    assert t3.sample(3, seed=0).d == 3
    assert t3.sample(seed=0).d == 3
    free = Target.from_degree_powers({1: 1.0})
    with pytest.raises(ValueError, match="d is required"):
        free.sample(seed=0)
    with pytest.raises(ValueError, match="d"):
        free.sample(1, seed=0)
    with pytest.raises(TypeError, match="d"):
        free.sample(3.5, seed=0)
    s = t3.sample(seed=0)
    X4 = uniform_sphere(5, 4, seed=0)
    with pytest.raises(ValueError, match="dimension 4"):
        s(X4)
    with pytest.raises(ValueError, match="dimension 4"):
        s.labels(X4, seed=0)
    with pytest.raises(ValueError):
        s(np.ones(3))  # 1-D input


def test_degree_part_rejects_wrong_dimension():
    s = Target.from_degree_powers({1: 1.0, 2: 0.5}, d=3).sample(seed=1)
    with pytest.raises(ValueError, match="dimension"):
        s.degree_part(uniform_sphere(5, 4, seed=0), 1)


# ----------------------------------------------------------------------------- from_kernel


def exp_kernel_eigenvalue(l: int, d: int, s: float) -> mpmath.mpf:
    """Funk-Hecke eigenvalue of e^{t/s}: Gamma(d/2) (2s)^{d/2-1} I_{l+d/2-1}(1/s) (mpmath)."""
    s = mpmath.mpf(s)
    nu = mpmath.mpf(l) + mpmath.mpf(d) / 2 - 1
    return mpmath.gamma(mpmath.mpf(d) / 2) * (2 * s) ** (mpmath.mpf(d) / 2 - 1) * mpmath.besseli(nu, 1 / s)


@pytest.mark.parametrize(
    ("d", "s", "lmax", "scale"), [(3, 1.0, 8, 1.0), (5, 0.5, 10, 2.5), (12, 0.3, 6, 0.7)]
)
def test_from_kernel_exponential_closed_form(d, s, lmax, scale):
    t = Target.from_kernel(fc.exponential_kernel(s), d, lmax, scale=scale, noise=0.2)
    assert t.d == d and t.noise == 0.2
    with mpmath.workdps(40):
        w = [n_harmonics(d, l) * exp_kernel_eigenvalue(l, d, s) for l in range(lmax + 1)]
        tail = mpmath.e ** (1 / mpmath.mpf(s)) - mpmath.fsum(w)
    assert t.degrees == list(range(lmax + 1))
    for l in range(lmax + 1):
        assert math.isclose(t.powers[l], scale * float(w[l]), rel_tol=1e-9), l
    k1 = math.exp(1 / s)
    assert tail > 0
    assert abs(t.meta["tail_power"] - scale * float(tail)) < 1e-9 * scale * k1
    # the powers and the tail account for scale * k(1)
    assert math.isclose(t.total_power + t.meta["tail_power"], scale * k1, rel_tol=1e-12)


@pytest.mark.parametrize("d", [2, 3, 7])
def test_from_kernel_t_squared_exact(d):
    """t^2 = 1/d + (d-1)/d P_2(t), P_2(t) = (d t^2 - 1)/(d - 1): powers {0: 1/d, 2: (d-1)/d}."""
    scale = 3.0
    t = Target.from_kernel(fc.polynomial_kernel([0, 0, 1]), d, 5, scale=scale)
    assert t.degrees == [0, 2]
    assert math.isclose(t.powers[0], scale / d, rel_tol=1e-12)
    assert math.isclose(t.powers[2], scale * (d - 1) / d, rel_tol=1e-12)
    assert abs(t.meta["tail_power"]) < 1e-12 * scale


def test_from_kernel_rejects_negative_scale():
    with pytest.raises(ValueError, match="scale"):
        Target.from_kernel(fc.exponential_kernel(1.0), 3, 4, scale=-1.0)


def test_from_function_monte_carlo_powers_against_closed_forms():
    """f(x) = x_1 + (x_2^2 - 1) on the sqrt(d)-sphere: degree 1 power E[x_1^2] = 1, degree 2
    power E[(x_2^2 - 1)^2] = 3d/(d+2) - 1 (x_2^2 - |x|^2/d is harmonic); zero elsewhere. The
    batched U-statistic must agree within 5 standard errors (where the power is zero the
    U-statistic is degenerate and skewed, so its tails are heavier than Gaussian: over 20 seeds
    the largest deviation seen was 4.0 SE, in degree 0)."""
    d = 6
    tgt = Target.from_function(lambda X: X[:, 0] + X[:, 1] ** 2 - 1, d, 4, n=4000, seed=11)
    exact = [0.0, 1.0, 3 * d / (d + 2) - 1, 0.0, 0.0]
    raw, sem = tgt.meta["raw_power"], tgt.meta["power_sem"]
    assert np.all(np.abs(raw - exact) < 5 * sem + 1e-12), (raw, sem)
    assert np.all(sem < 0.1)
    with pytest.raises(ValueError, match="one value per row"):
        Target.from_function(lambda X: X, d, 2, n=100, seed=0)
    with pytest.raises(TypeError, match="callable"):
        Target.from_function(3.0, d, 2, n=100, seed=0)


def test_from_polynomial_exact_powers():
    """Exact rational powers: harmonic pieces with hand-computed norms, Parseval against the
    closed-form sphere moment E[x_1^8] = d^4 Gamma(d/2) Gamma(9/2) / (Gamma(d/2+4) Gamma(1/2)),
    and agreement with the independent Monte Carlo U-statistic (from_function)."""
    import sympy

    d = 6
    tgt = Target.from_polynomial("x1 + x2**2 - 1 + x1*x2*x3", d)
    assert tgt.meta["exact_powers"] == {0: 0, 1: 1, 2: sympy.Rational(5, 4), 3: sympy.Rational(9, 20)}
    d = 7
    tgt = Target.from_polynomial("x1**4 + 3*x_2", d)
    half = sympy.Rational(d, 2)
    m8 = (
        d**4
        * sympy.gamma(half)
        * sympy.gamma(sympy.Rational(9, 2))
        / (sympy.gamma(half + 4) * sympy.gamma(sympy.Rational(1, 2)))
    )
    assert sympy.simplify(sum(tgt.meta["exact_powers"].values()) - (m8 + 9)) == 0
    mc = Target.from_function(lambda X: X[:, 0] ** 4 + 3 * X[:, 1], d, 4, n=6000, seed=3)
    for l in range(5):
        assert abs(mc.meta["raw_power"][l] - tgt.powers.get(l, 0.0)) < 5 * mc.meta["power_sem"][l] + 1e-9
    with pytest.raises(ValueError, match="may contain only"):
        Target.from_polynomial("y**2", 3)
    with pytest.raises(ValueError, match="may contain only"):
        Target.from_polynomial("__import__('os')", 3)
    with pytest.raises(ValueError, match="unknown"):
        Target.from_polynomial(sympy.Symbol("y") ** 2, 3)


@pytest.mark.parametrize(
    "text, words",
    [
        ("9**9**9**9", "exponent 387420489 exceeds the limit"),
        ("x1**100000", "exponent 100000 exceeds the limit"),
        ("(x1+x2+x3+x4)**60", "exponent 60 exceeds the limit"),
        ("(x1+x2+x3+x4)**12 * (x1+x2)**10", "total degree 22 exceeds the limit 20"),
        ("(x1+x2+x3+x4+x5+x6)**8", "more than 1000 terms"),
        ("x1/x2", "division only by a number"),
        ("x1**-1", "non-negative integers"),
        ("x1**0.5", "non-negative integers"),
        ("x1.__x__", "unexpected character"),
        ("((((", "unexpected end"),
        ("(" * 60 + "x1" + ")" * 60, "nested"),
        ("x1 x2", "unexpected"),
        ("x7", "unknown symbol 'x7'"),
        ("x0", "unknown symbol 'x0'"),
        ("((2**20)**20)**20*x1", "exceed 2048 bits"),
        ("", "empty"),
    ],
)
def test_from_polynomial_refuses_before_expanding(text, words):
    """Issue 13: the safe parser (no eval, no sympify) refuses non-polynomials and inputs beyond
    the limits of fieldcurve._limits while parsing, naming the problem."""
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("*", r"\*")):
        Target.from_polynomial(text, 6)


def test_from_polynomial_string_and_sympy_agree_and_zero_polynomial():
    import sympy

    x1, x2, x3 = sympy.symbols("x1 x2 x3")
    a = Target.from_polynomial("(x1 - 2*x2)^3/4 + 1.5*x3 - 2", 5)
    b = Target.from_polynomial((x1 - 2 * x2) ** 3 / 4 + sympy.Rational(3, 2) * x3 - 2, 5)
    assert a.meta["exact_powers"] == b.meta["exact_powers"]
    # Parseval: the powers add up to E[f^2] = 4 + 9/4 E[x3^2] + E[(x1 - 2 x2)^6]/16 (the cross
    # terms are odd); on the sqrt(5)-sphere E[x^2] = 1, E[x1^6] = 125/21, E[x1^2 x2^4] = 25/21, so
    # E[(x1 - 2 x2)^6] = (1 + 64) 125/21 + (15*4 + 15*16) 25/21 = 15625/21
    total = 4 + sympy.Rational(9, 4) + sympy.Rational(15625, 21 * 16)
    assert sum(a.meta["exact_powers"].values()) == total
    with pytest.raises(ValueError, match="exponents must be non-negative"):
        Target.from_polynomial(x1 ** sympy.Rational(1, 2), 3)
    with pytest.raises(ValueError, match="exceeds the limit"):
        Target.from_polynomial((x1 + x2) ** 60, 3)
    zero = Target.from_polynomial("0", 3)
    assert zero.total_power == 0 and zero.name == "polynomial 0"
