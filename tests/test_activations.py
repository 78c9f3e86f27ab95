r"""Tests of fieldcurve.activations against oracles that share no code with it.

Oracles for :math:`\mathbb E[f(u)g(v)]`, :math:`(u, v) \sim \mathcal N(0, [[k_{11}, k_{12}],
[k_{12}, k_{22}]])`, with the float inputs taken as exact:

* ``iterated``: the Cholesky change of variables :math:`u = a z_1`, :math:`v = b(\rho z_1 + s z_2)`;
  the inner :math:`z_2`-integral is a one-dimensional Gaussian smoothing of :math:`g` done with a
  textbook identity (e.g. :math:`\mathbb E[\max(X,0)] = m\Phi(m/\sigma) + \sigma\varphi(m/\sigma)`,
  each identity checked against ``mpmath.quad`` below), the outer :math:`z_1`-integral by
  ``mpmath.quad`` (Gauss-Legendre, adaptive degree) at 30 digits on [-12, 12] (the Gaussian
  tail beyond is below 1e-31), split at the kink and, for nearly parallel inputs, at the width
  :math:`s` of the smoothed kink.
* ``trapezoid``: for activations without any closed form (tanh, sigmoid, silu, softplus), the
  full two-dimensional integral by the trapezoidal rule on :math:`\mathbb R^2` at 30 digits
  (exponentially convergent for analytic integrands: error ~exp(-2 pi d / h) for poles at
  distance d from the real axis; the steps used give <= 1e-15 relative, checked below).
* ``exact``: monomials by exact rational arithmetic (``fractions``) from the same Cholesky
  expansion, a different expansion from the pairing sum used in the code.

Monte Carlo checks use fixed seeds and 5-standard-error bands.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np
import pytest
import scipy.special as sc
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fieldcurve import activations as A
from fieldcurve.activations import Activation, available_activations, get_activation

DPS = 30
INF = mpmath.inf
mpf = mpmath.mpf


# ----------------------------------------------------------------------------- mpmath oracles


def npdf(x):
    return mpmath.exp(-x * x / 2) / mpmath.sqrt(2 * mpmath.pi)


def ncdf(x):
    return mpmath.ncdf(x)


def msigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


@dataclass(frozen=True)
class Spec:
    """mpmath versions of phi, phi' and of their Gaussian smoothings E[phi(m + sigma Z)]."""

    f: Callable
    df: Callable
    smooth: Callable | None = None
    dsmooth: Callable | None = None
    monomial_degree: int | None = None
    trapezoid_step: float = 1 / 6  # for the trapezoid oracle (no closed-form smoothing)


TAIL = 12  # |z| > 12 carries Gaussian mass < 1e-32


def normal_expectation(h: Callable, points=(0,)) -> mpmath.mpf:
    """E[h(Z)], Z ~ N(0, 1), by mpmath Gauss-Legendre quadrature on [-12, 12] split at points."""
    inner = sorted({mpf(p) for p in points if -TAIL < p < TAIL})
    return mpmath.quad(lambda z: h(z) * npdf(z), [-TAIL, *inner, TAIL], method="gauss-legendre")


def abrelu_spec(a: float, b: float) -> Spec:
    a, b = mpf(a), mpf(b)

    def f(x):
        return a * min(x, 0) + b * max(x, 0)

    def df(x):
        return b if x > 0 else a

    def smooth(m, s):  # E[max(X,0)] = m Phi(m/s) + s phi(m/s), min(X,0) = X - max(X,0)
        if s == 0:
            return f(m)
        return a * m + (b - a) * (m * ncdf(m / s) + s * npdf(m / s))

    def dsmooth(m, s):
        if s == 0:
            return df(m)
        return a + (b - a) * ncdf(m / s)

    return Spec(f, df, smooth, dsmooth)


def erf_spec() -> Spec:
    def c():  # 2/sqrt(pi) at the working precision of the call
        return 2 / mpmath.sqrt(mpmath.pi)

    return Spec(
        f=mpmath.erf,
        df=lambda x: c() * mpmath.exp(-x * x),
        # E[erf(X)] = erf(m / sqrt(1 + 2 s^2)); E[exp(-X^2)] = exp(-m^2/(1+2s^2)) / sqrt(1+2s^2)
        smooth=lambda m, s: mpmath.erf(m / mpmath.sqrt(1 + 2 * s * s)),
        dsmooth=lambda m, s: c() * mpmath.exp(-m * m / (1 + 2 * s * s)) / mpmath.sqrt(1 + 2 * s * s),
    )


def gelu_spec() -> Spec:
    def smooth(m, s):  # E[Phi(X)] = Phi(m/tau), E[(X-m) Phi(X)] = s^2 E[phi(X)] (Stein)
        tau = mpmath.sqrt(1 + s * s)
        return m * ncdf(m / tau) + s * s * npdf(m / tau) / tau

    def dsmooth(m, s):  # E[X phi(X)] = (m / tau^2) phi(m/tau) / tau (tilted Gaussian)
        tau = mpmath.sqrt(1 + s * s)
        return ncdf(m / tau) + m / (tau * tau) * npdf(m / tau) / tau

    return Spec(f=lambda x: x * ncdf(x), df=lambda x: ncdf(x) + x * npdf(x), smooth=smooth, dsmooth=dsmooth)


def sin_spec() -> Spec:
    return Spec(
        f=mpmath.sin,
        df=mpmath.cos,
        smooth=lambda m, s: mpmath.exp(-s * s / 2) * mpmath.sin(m),
        dsmooth=lambda m, s: mpmath.exp(-s * s / 2) * mpmath.cos(m),
    )


def cos_spec() -> Spec:
    return Spec(
        f=mpmath.cos,
        df=lambda x: -mpmath.sin(x),
        smooth=lambda m, s: mpmath.exp(-s * s / 2) * mpmath.cos(m),
        dsmooth=lambda m, s: -mpmath.exp(-s * s / 2) * mpmath.sin(m),
    )


def monomial_spec(k: int) -> Spec:
    return Spec(
        f=lambda x: x**k,
        df=(lambda x: k * x ** (k - 1)) if k else (lambda x: mpf(0)),
        monomial_degree=k,
    )


CLOSED_FORM = {
    "relu": (A.relu, lambda: abrelu_spec(0, 1)),
    "abrelu(-0.3,1.5)": (lambda: A.abrelu(-0.3, 1.5), lambda: abrelu_spec(-0.3, 1.5)),
    "abrelu(0.1,1)": (lambda: A.abrelu(0.1, 1), lambda: abrelu_spec(0.1, 1.0)),
    "erf": (A.erf, erf_spec),
    "gelu": (A.gelu, gelu_spec),
    "sin": (A.sin, sin_spec),
    "cos": (A.cos, cos_spec),
    **{
        f"monomial({k})": (functools.partial(A.monomial, k), functools.partial(monomial_spec, k))
        for k in range(5)
    },
    "identity": (A.identity, lambda: monomial_spec(1)),
}

# trapezoid steps: tanh has poles at +-i pi/2 (distance >= 1.11 in z for variances <= 2), the
# others at +-i pi (distance >= 2.2): exp(-2 pi d / h) <= 1e-18 in both cases
NO_CLOSED_FORM = {
    "tanh": (A.tanh, Spec(f=mpmath.tanh, df=lambda x: 1 / mpmath.cosh(x) ** 2)),
    "sigmoid": (
        A.sigmoid,
        Spec(f=msigmoid, df=lambda x: msigmoid(x) * (1 - msigmoid(x)), trapezoid_step=1 / 4),
    ),
    "silu": (
        A.silu,
        Spec(
            f=lambda x: x * msigmoid(x),
            df=lambda x: msigmoid(x) * (1 + x * (1 - msigmoid(x))),
            trapezoid_step=1 / 4,
        ),
    ),
    "softplus": (
        A.softplus,
        Spec(f=lambda x: mpmath.log1p(mpmath.exp(x)), df=msigmoid, trapezoid_step=1 / 4),
    ),
}


@functools.cache
def spec_of(name: str) -> Spec:
    if name in CLOSED_FORM:
        return CLOSED_FORM[name][1]()
    return NO_CLOSED_FORM[name][1]


def cholesky(k11: float, k12: float, k22: float):
    k11, k12, k22 = mpf(k11), mpf(k12), mpf(k22)
    a, b = mpmath.sqrt(k11), mpmath.sqrt(k22)
    rho = k12 / (a * b)
    s = mpmath.sqrt(max(1 - rho * rho, 0))
    return a, b, rho, s


def iterated(f, smooth, k11: float, k12: float, k22: float) -> mpmath.mpf:
    """E[f(u) g(v)] = E_z1[f(a z1) E_z2 g(b rho z1 + b s z2)], inner integral in closed form."""
    with mpmath.workdps(DPS):
        a, b, rho, s = cholesky(k11, k12, k22)
        points = [mpf(0)]
        if 0 < s < mpf(1) / 10:  # the smoothed kink of g has width ~ s around z1 = 0
            points = [-10 * s, mpf(0), 10 * s]
        return normal_expectation(lambda z: f(a * z) * smooth(b * rho * z, b * s), points)


def trapezoid(f, g, k11: float, k12: float, k22: float, h: float, radius: float = 9.0):
    """E[f(u) g(v)] by the trapezoidal rule on R^2 (disk of the given radius) at 30 digits."""
    with mpmath.workdps(DPS):
        a, b, rho, s = cholesky(k11, k12, k22)
        h = mpf(h)
        n = int(radius / h)
        z = [h * i for i in range(-n, n + 1)]
        w = [mpmath.exp(-x * x / 2) for x in z]
        total = []
        for x, wx in zip(z, w, strict=True):
            fx = f(a * x) * wx
            c = b * rho * x
            inner = [
                g(c + b * s * y) * wy for y, wy in zip(z, w, strict=True) if x * x + y * y <= radius * radius
            ]
            total.append(fx * mpmath.fsum(inner))
        return mpmath.fsum(total) * h * h / (2 * mpmath.pi)


def one_dimensional(f, g, k11: float, k12: float, k22: float) -> mpmath.mpf:
    """E[f(u) g(v)] for rho = +-1 or k11 = 0: a single Gaussian integral."""
    with mpmath.workdps(DPS):
        k11, k12, k22 = mpf(k11), mpf(k12), mpf(k22)
        if k11 == 0:  # u = 0
            b = mpmath.sqrt(k22)
            return f(mpf(0)) * normal_expectation(lambda z: g(b * z))
        a = mpmath.sqrt(k11)
        c = k12 / a  # v = c z exactly when rho = +-1
        return normal_expectation(lambda z: f(a * z) * g(c * z))


def monomial_exact(k: int, k11: float, k12: float, k22: float) -> Fraction:
    """E[u^k v^k] = sum_{j even} C(k,j) (j-1)!! (2k-j-1)!! k12^(k-j) (k11 k22 - k12^2)^(j/2).

    From u = a z1, v = b rho z1 + b s z2: (ab)^k rho^(k-j) s^j = k12^(k-j) (k11 k22 - k12^2)^(j/2).
    """
    k11, k12, k22 = Fraction(k11), Fraction(k12), Fraction(k22)
    det = k11 * k22 - k12 * k12

    def dfact(n: int) -> int:  # (n)!! with (-1)!! = 1
        return math.prod(range(n, 0, -2)) if n > 0 else 1

    return sum(
        (
            math.comb(k, j) * dfact(j - 1) * dfact(2 * k - j - 1) * k12 ** (k - j) * det ** (j // 2)
            for j in range(0, k + 1, 2)
        ),
        Fraction(0),
    )


@functools.cache
def oracle(name: str, k11: float, k12: float, k22: float, derivative: bool = False) -> float:
    """High-precision E[phi(u) phi(v)] (or E[phi' phi']), rounded to float at the end."""
    spec = spec_of(name)
    if spec.monomial_degree is not None:
        k = spec.monomial_degree
        if derivative:
            return 0.0 if k == 0 else float(k * k * monomial_exact(k - 1, k11, k12, k22))
        return float(monomial_exact(k, k11, k12, k22))
    f = spec.df if derivative else spec.f
    if Fraction(k12) ** 2 == Fraction(k11) * Fraction(k22):  # rank-one covariance (exactly)
        return float(one_dimensional(f, f, k11, k12, k22))
    smooth = spec.dsmooth if derivative else spec.smooth
    if smooth is not None:
        return float(iterated(f, smooth, k11, k12, k22))
    return float(trapezoid(f, f, k11, k12, k22, spec.trapezoid_step))


def cauchy_schwarz_scale(name: str, k11: float, k22: float, derivative: bool) -> float:
    """sqrt(E[phi(u)^2] E[phi(v)^2]) >= |E[phi(u) phi(v)]|: the natural absolute scale."""
    return math.sqrt(oracle(name, k11, k11, k11, derivative) * oracle(name, k22, k22, k22, derivative))


def assert_matches_oracle(got, name, cov, derivative, rtol) -> None:
    """|got - ref| <= rtol |ref|, or <= rtol * scale where |ref| << its Cauchy-Schwarz scale."""
    ref = oracle(name, *cov, derivative)
    err = abs(float(got) - ref)
    if err <= rtol * abs(ref):
        return
    scale = cauchy_schwarz_scale(name, cov[0], cov[2], derivative)
    assert abs(ref) < 1e-3 * scale and err <= rtol * scale, (name, cov, derivative, got, ref, err)


# ----------------------------------------------------------------------------- covariances

_R = math.sqrt(1.3 * 0.7)
COVARIANCES = {
    "generic": (0.8, 0.5, 1.7),
    "unequal": (0.05, -0.2, 3.0),
    "orthogonal": (1.2, 0.0, 0.6),
    "near_parallel": (1.3, 0.999999 * _R, 0.7),
    "near_antiparallel": (1.3, -0.999999 * _R, 0.7),
    "antiparallel": (1.0, -2.0, 4.0),
    "diagonal": (1.7, 1.7, 1.7),
}
QUAD_COVARIANCES = {  # variances <= 2
    "generic": (0.8, 0.5, 1.7),
    "near_parallel": (1.3, 0.999999 * _R, 0.7),
    "large": (2.0, 1.2, 2.0),
    "antiparallel": (0.5, -1.0, 2.0),
    "diagonal": (1.5, 1.5, 1.5),
}


# ----------------------------------------------------------------------------- oracle checks


@pytest.mark.parametrize(
    ("name", "m", "s"),
    [
        (n, m, s)
        for n in ("abrelu(-0.3,1.5)", "erf", "gelu", "sin", "cos")
        for m, s in ((0.3, 0.7), (-1.1, 0.05), (0.0, 1.9))
    ],
)
def test_oracle_smoothing_identities_against_mpmath_quad(name: str, m: float, s: float) -> None:
    spec = spec_of(name)
    with mpmath.workdps(DPS):
        m, s = mpf(m), mpf(s)
        for fn, smooth in ((spec.f, spec.smooth), (spec.df, spec.dsmooth)):
            points = sorted({mpf(0), -m / s})  # the kink of fn and the Gaussian's centre
            direct = mpmath.quad(lambda z, fn=fn: fn(m + s * z) * npdf(z), [-INF, *points, INF])
            assert abs(smooth(m, s) - direct) < mpf(10) ** -25


def test_oracles_agree_with_each_other() -> None:
    sin = spec_of("sin")
    cube = spec_of("monomial(3)")
    with mpmath.workdps(DPS):
        for cov in (COVARIANCES["generic"], COVARIANCES["near_parallel"]):
            a = iterated(sin.f, sin.smooth, *cov)
            b = trapezoid(sin.f, sin.f, *cov, h=1 / 6)
            assert abs(a - b) < 1e-17
        cov = COVARIANCES["unequal"]
        via_quad = iterated(cube.f, lambda m, s: m**3 + 3 * m * s * s, *cov)
        exact = monomial_exact(3, *cov)
        assert abs(via_quad - mpf(exact.numerator) / exact.denominator) < 1e-25
        # the trapezoid steps are converged: finer steps and a larger disk change nothing
        cov = QUAD_COVARIANCES["large"]
        for name in ("tanh", "sigmoid"):
            spec = spec_of(name)
            coarse = trapezoid(spec.df, spec.df, *cov, h=spec.trapezoid_step)
            fine = trapezoid(spec.df, spec.df, *cov, h=spec.trapezoid_step * 0.75, radius=10.0)
            assert abs(coarse - fine) < 1e-15 * abs(fine)


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("cov_name", list(COVARIANCES))
@pytest.mark.parametrize("name", list(CLOSED_FORM))
def test_closed_form_dual_against_mpmath(name: str, cov_name: str) -> None:
    act = CLOSED_FORM[name][0]()
    assert act.has_closed_form
    cov = COVARIANCES[cov_name]
    assert_matches_oracle(act.dual(*cov), name, cov, False, 1e-13)
    assert_matches_oracle(act.dual_derivative(*cov), name, cov, True, 1e-13)


@pytest.mark.parametrize("name", list(CLOSED_FORM))
def test_closed_form_dual_zero_variance(name: str) -> None:
    act = CLOSED_FORM[name][0]()
    for cov in ((0.0, 0.0, 1.3), (1.3, 0.0, 0.0), (0.0, 0.0, 0.0)):
        assert_matches_oracle(act.dual(*cov), name, cov, False, 1e-13)
        if name in ("erf", "gelu", "sin", "cos") or name.startswith("monomial"):
            assert_matches_oracle(act.dual_derivative(*cov), name, cov, True, 1e-13)


@pytest.mark.parametrize("name", ["relu", "monomial(3)"])
def test_closed_form_dual_broadcasts(name: str) -> None:
    act = CLOSED_FORM[name][0]()
    k11 = np.array([[0.8], [1.3]])
    k12 = np.array([0.5, -0.2, 0.0])
    for derivative, fn in ((False, act.dual), (True, act.dual_derivative)):
        out = fn(k11, k12, 1.7)
        assert out.shape == (2, 3)
        for i, j in np.ndindex(2, 3):
            expected = oracle(name, float(k11[i, 0]), float(k12[j]), 1.7, derivative)
            assert out[i, j] == pytest.approx(expected, rel=1e-13, abs=1e-15)


_R_EXACT = Fraction(1.3) * Fraction(0.7)


@pytest.mark.parametrize("one_minus_rho", [1e-16, 1e-14, 1e-12])
def test_abrelu_dual_nearly_parallel_inputs(one_minus_rho: float) -> None:
    cov = (1.3, math.sqrt(1.3 * 0.7) * (1 - one_minus_rho), 0.7)
    assert Fraction(cov[1]) ** 2 < _R_EXACT  # a valid covariance
    assert_matches_oracle(A.relu().dual(*cov), "relu", cov, False, 1e-13)


@pytest.mark.parametrize("one_minus_rho", [1e-16, 1e-14, 1e-12])
def test_abrelu_dual_nearly_antiparallel_inputs(one_minus_rho: float) -> None:
    cov = (1.3, -math.sqrt(1.3 * 0.7) * (1 - one_minus_rho), 0.7)
    assert Fraction(cov[1]) ** 2 < _R_EXACT
    value = float(A.relu().dual(*cov))
    assert value >= 0.0
    assert_matches_oracle(value, "relu", cov, False, 1e-13)


def test_abrelu_derivative_dual_zero_variance_gram() -> None:
    cov = np.diag([0.0, 1.0, 1.0])  # u1 = 0 (e.g. a zero input with no bias), u2, u3 iid
    k11, k22 = np.diag(cov)[:, None] * np.ones((3, 3)), np.diag(cov)[None, :] * np.ones((3, 3))
    gram = A.relu().dual_derivative(k11, cov, k22)
    assert np.linalg.eigvalsh(gram).min() >= -1e-12  # the code's value: -0.093


# ----------------------------------------------------------------------------- quadrature path

QUADRATURE_CASES = [
    (name, cov_name)
    for name in ("tanh", "sigmoid", "silu", "softplus", "erf", "gelu", "sin")
    for cov_name in QUAD_COVARIANCES
    if (name, cov_name) != ("tanh", "diagonal")  # in test_quadrature_path_diagonal_variance_scan
]


def _activation(name: str) -> Activation:
    return (CLOSED_FORM.get(name) or NO_CLOSED_FORM[name])[0]()


@pytest.mark.parametrize(("name", "cov_name"), QUADRATURE_CASES)
def test_quadrature_path_against_mpmath(name: str, cov_name: str) -> None:
    act = _activation(name)
    cov = QUAD_COVARIANCES[cov_name]
    assert_matches_oracle(act.dual_quadrature(*cov), name, cov, False, 1e-12)
    assert_matches_oracle(act.dual_quadrature(*cov, derivative=True), name, cov, True, 1e-12)
    if not act.has_closed_form:  # dual/dual_derivative are the quadrature path
        assert_matches_oracle(act.dual(*cov), name, cov, False, 1e-12)
        assert_matches_oracle(act.dual_derivative(*cov), name, cov, True, 1e-12)


@pytest.mark.parametrize(
    "name",
    ["tanh", "sigmoid", "silu", "softplus"],
)
def test_quadrature_path_diagonal_variance_scan(name: str) -> None:
    """E[phi(u)^2], E[phi'(u)^2] for variances 0.5..20 (one-dimensional mpmath oracle)."""
    act = _activation(name)
    worst = []
    for k in (0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0):
        for derivative, fn in ((False, act.dual), (True, act.dual_derivative)):
            ref = oracle(name, k, k, k, derivative)
            err = abs(float(fn(k, k, k)) - ref) / abs(ref)
            if err > 1e-12:
                worst.append((k, derivative, err))
    assert not worst, worst


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "softplus"])
def test_quadrature_path_large_variance(name: str) -> None:
    """Variances ~15 put tanh's poles at 0.4 from the real axis (in z): a hard case."""
    spec = spec_of(name)
    act = _activation(name)
    cov = (15.0, -9.0, 12.0)
    for derivative, fn in ((False, act.dual), (True, act.dual_derivative)):
        f = spec.df if derivative else spec.f
        ref = float(trapezoid(f, f, *cov, h=1 / 16, radius=9.0))
        assert abs(float(fn(*cov)) - ref) <= 1e-12 * abs(ref)


def test_quadrature_high_order_stays_finite() -> None:
    act = A.sigmoid()
    cov = QUAD_COVARIANCES["generic"]
    assert_matches_oracle(act.dual_quadrature(*cov, order=400), "sigmoid", cov, False, 1e-12)


@pytest.mark.parametrize(
    ("fn", "derivative", "name", "rtol_derivative"),
    [
        (sc.expit, None, "sigmoid", 1e-10),  # numerical derivative: documented ~1e-10
        (lambda x: np.logaddexp(0.0, x), None, "softplus", 1e-10),
        (lambda x: x * sc.expit(x), lambda x: sc.expit(x) * (1 + x * (1 - sc.expit(x))), "silu", 1e-12),
    ],
)
def test_get_activation_callable_uses_quadrature(fn, derivative, name, rtol_derivative) -> None:
    act = get_activation(fn, derivative)
    assert isinstance(act, Activation)
    assert not act.has_closed_form
    for cov_name in ("generic", "near_parallel", "large"):
        cov = QUAD_COVARIANCES[cov_name]
        assert_matches_oracle(act.dual(*cov), name, cov, False, 1e-12)
        assert_matches_oracle(act.dual_derivative(*cov), name, cov, True, rtol_derivative)


# ----------------------------------------------------------------------------- Gaussian moments

MOMENT_NAMES = [n for n in CLOSED_FORM if n != "identity"]


def mehler_sum(log_g: np.ndarray, c: float, shift: int) -> float:
    """sum_m g_{m+shift}^2 c^m / m! from log|g_m| (exact-sign powers of c, fsum)."""
    terms = []
    for m in range(len(log_g) - shift):
        lg = log_g[m + shift]
        if np.isneginf(lg):
            continue
        mag = 2 * lg - math.lgamma(m + 1) + (m * math.log(abs(c)) if m else 0.0)
        terms.append(math.copysign(math.exp(mag), c**m if m else 1.0))
    return math.fsum(terms)


@pytest.mark.parametrize(("q", "c"), [(1.3, -0.9), (0.4, 0.3)])
@pytest.mark.parametrize("name", MOMENT_NAMES)
def test_log_moments_mehler_identity(name: str, q: float, c: float) -> None:
    act = CLOSED_FORM[name][0]()
    log_g = act.log_moments(q, 200)
    assert log_g.shape == (201,)
    assert log_g.dtype == np.float64
    cov = (q, c, q)
    assert mehler_sum(log_g, c, 0) == pytest.approx(oracle(name, *cov), rel=1e-13, abs=1e-15)
    assert mehler_sum(log_g, c, 1) == pytest.approx(oracle(name, *cov, True), rel=1e-13, abs=1e-15)


def hermite_e(m: int, x):
    """Probabilists' Hermite polynomial He_m by its recurrence (mpmath scalars)."""
    h0, h1 = mpf(1), x
    if m == 0:
        return h0
    for k in range(1, m):
        h0, h1 = h1, x * h1 - k * h0
    return h1


@pytest.mark.parametrize(
    ("name", "q"),
    [(n, 1.7 if i % 2 else 0.6) for i, n in enumerate(MOMENT_NAMES)]
    + [
        pytest.param(n, 1.7 if i % 2 == 0 else 0.6, marks=pytest.mark.slow)
        for i, n in enumerate(MOMENT_NAMES)
    ],
)
def test_log_moments_stein_identity(name: str, q: float) -> None:
    """g_m = E[phi^(m)(sqrt(q) z)] = q^(-m/2) E[phi(sqrt(q) z) He_m(z)] (Gaussian integration by
    parts; valid for the kinked activations too)."""
    act = CLOSED_FORM[name][0]()
    f = spec_of(name).f
    log_g = act.log_moments(q, 6)
    with mpmath.workdps(DPS):
        rq = mpmath.sqrt(mpf(q))
        for m in range(7):
            g = normal_expectation(lambda z, m=m: f(rq * z) * hermite_e(m, z)) / rq**m
            if abs(g) < mpf(10) ** -20:  # 30-digit quadrature noise of a vanishing moment
                assert np.isneginf(log_g[m]), (name, m, log_g[m])
            else:
                assert log_g[m] == pytest.approx(float(mpmath.log(abs(g))), rel=1e-13, abs=1e-14)


@pytest.mark.parametrize("name", ["gelu", "sin", pytest.param("erf", marks=pytest.mark.slow), "cos"])
def test_log_moments_numerical_derivative_route(name: str) -> None:
    """g_m = E[phi^(m)(sqrt(q) z)] with phi^(m) by mpmath numerical differentiation."""
    q = 0.8
    f = spec_of(name).f
    log_g = CLOSED_FORM[name][0]().log_moments(q, 3)
    with mpmath.workdps(DPS):
        rq = mpmath.sqrt(mpf(q))
        for m in range(1, 4):
            g = normal_expectation(lambda z, m=m: mpmath.diff(f, rq * z, m))
            if abs(g) < mpf(10) ** -20:
                assert np.isneginf(log_g[m])
            else:
                assert log_g[m] == pytest.approx(float(mpmath.log(abs(g))), rel=1e-12, abs=1e-12)


# ----------------------------------------------------------------------------- Monte Carlo


@pytest.mark.parametrize(
    ("make", "cov"),
    [
        (lambda: A.abrelu(-0.3, 1.5), (0.8, 0.5, 1.7)),  # kinked, closed form
        (A.gelu, (1.3, -0.6, 0.7)),  # smooth, closed form
        (lambda: A.monomial(3), (0.8, 0.5, 1.2)),  # Wick
        (A.softplus, (1.0, 0.7, 2.0)),  # quadrature path
        (lambda: get_activation(np.arctan), (1.5, 0.4, 0.5)),  # user callable
    ],
)
def test_dual_monte_carlo(make, cov) -> None:
    act = make()
    k11, k12, k22 = cov
    rng = np.random.default_rng(20240531)
    n = 1_000_000
    z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
    u = math.sqrt(k11) * z1
    rho = k12 / math.sqrt(k11 * k22)
    v = math.sqrt(k22) * (rho * z1 + math.sqrt(1 - rho**2) * z2)
    for sample, predicted in (
        (act.fn(u) * act.fn(v), act.dual(*cov)),
        (act.derivative(u) * act.derivative(v), act.dual_derivative(*cov)),
    ):
        mean, se = sample.mean(), sample.std(ddof=1) / math.sqrt(n)
        assert 5 * se < 0.05 * abs(mean)  # the band can detect a 5% error
        assert abs(mean - float(predicted)) <= 5 * se


# ----------------------------------------------------------------------------- get_activation

REFERENCE_FUNCTIONS = {
    "relu": lambda x: max(x, 0.0),
    "leaky_relu": lambda x: x if x > 0 else 0.01 * x,
    "abs": abs,
    "erf": math.erf,
    "gelu": lambda x: x * (1 + math.erf(x / math.sqrt(2))) / 2,
    "tanh": math.tanh,
    "sigmoid": lambda x: 1 / (1 + math.exp(-x)),
    "silu": lambda x: x / (1 + math.exp(-x)),
    "swish": lambda x: x / (1 + math.exp(-x)),
    "softplus": lambda x: math.log1p(math.exp(x)),
    "sin": math.sin,
    "cos": math.cos,
    "identity": lambda x: x,
    "linear": lambda x: x,
}
X_GRID = [-3.1, -1.0, -0.25, 0.4, 1.0, 2.7]


def test_available_activations_all_have_references() -> None:
    assert set(available_activations()) == set(REFERENCE_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(REFERENCE_FUNCTIONS))
def test_get_activation_resolves_names(name: str) -> None:
    act = get_activation(name)
    assert isinstance(act, Activation)
    assert get_activation(f"  {name.upper()} ").name == act.name
    ref = REFERENCE_FUNCTIONS[name]
    np.testing.assert_allclose(act(np.array(X_GRID)), [ref(x) for x in X_GRID], rtol=1e-14, atol=1e-15)
    # derivatives against mpmath numerical differentiation of the reference (away from kinks)
    with mpmath.workdps(DPS):
        expected = [float(mpmath.diff(_mp_reference(name), x)) for x in X_GRID]
    np.testing.assert_allclose(act.derivative(np.array(X_GRID)), expected, rtol=1e-13, atol=1e-14)


def _mp_reference(name: str) -> Callable:
    table = {
        "relu": lambda x: max(x, 0),
        "leaky_relu": lambda x: x if x > 0 else x / 100,
        "abs": abs,
        "erf": mpmath.erf,
        "gelu": lambda x: x * ncdf(x),
        "tanh": mpmath.tanh,
        "sigmoid": msigmoid,
        "silu": lambda x: x * msigmoid(x),
        "swish": lambda x: x * msigmoid(x),
        "softplus": lambda x: mpmath.log1p(mpmath.exp(x)),
        "sin": mpmath.sin,
        "cos": mpmath.cos,
        "identity": lambda x: x,
        "linear": lambda x: x,
    }
    return table[name]


def test_get_activation_passthrough_and_errors() -> None:
    act = A.gelu()
    assert get_activation(act) is act
    with pytest.raises(ValueError, match=r"unknown activation 'relu6'; choose one of .*\brelu\b"):
        get_activation("relu6")
    with pytest.raises(ValueError, match=r"choose one of .*tanh"):
        get_activation("")
    with pytest.raises(TypeError, match=r"^activation must be a name, an Activation or a callable"):
        get_activation(3)
    with pytest.raises(TypeError, match=r"^activation must be"):
        get_activation(None)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((math.nan, 1.0), r"abrelu parameter a must be a finite real number"),
        ((0.0, math.nan), r"abrelu parameter b must be a finite real number"),
        ((0.0, math.inf), r"abrelu parameter b"),
        (("0", 1.0), r"abrelu parameter a"),
        ((True, 1.0), r"abrelu parameter a"),
    ],
)
def test_abrelu_rejects_bad_parameters(args, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        A.abrelu(*args)


@pytest.mark.parametrize("k", [-1, 2.0, True])
def test_monomial_rejects_bad_degree(k) -> None:
    with pytest.raises(ValueError, match=r"monomial degree k must be a non-negative integer"):
        A.monomial(k)


def test_quadrature_rejects_negative_variance() -> None:
    with pytest.raises(ValueError, match=r"variances k11 and k22 must be non-negative"):
        A.tanh().dual(-1.0, 0.0, 1.0)


# ----------------------------------------------------------------------------- invariants

HYPOTHESIS_ACTIVATIONS = [*CLOSED_FORM, "softplus"]


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(HYPOTHESIS_ACTIVATIONS),
    k11=st.floats(0.0, 4.0),
    k22=st.floats(0.0, 4.0),
    rho=st.floats(-1.0, 1.0),
)
def test_dual_symmetric_under_swap(name: str, k11: float, k22: float, rho: float) -> None:
    act = _activation(name)
    k12 = rho * math.sqrt(k11 * k22)
    rtol = 1e-12 if name == "softplus" else 1e-13
    for fn in (act.dual, act.dual_derivative):
        a, b = float(fn(k11, k12, k22)), float(fn(k22, k12, k11))
        scale = math.sqrt(abs(float(fn(k11, k11, k11)) * float(fn(k22, k22, k22))))
        assert abs(a - b) <= rtol * max(abs(a), scale, 1e-300), (name, k11, k12, k22, a, b)


def exactly_psd(cov: np.ndarray) -> bool:
    """All principal minors >= 0 in exact rational arithmetic (the float matrix is a covariance)."""
    m = [[Fraction(float(x)) for x in row] for row in cov]
    for i in range(3):
        if m[i][i] < 0:
            return False
        for j in range(i + 1, 3):
            if m[i][i] * m[j][j] - m[i][j] * m[j][i] < 0:
                return False
    det = (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    )
    return det >= 0


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from([*HYPOTHESIS_ACTIVATIONS, "abrelu(a,b)"]),
    entries=st.lists(
        st.one_of(st.just(0.0), st.floats(1e-3, 1.4), st.floats(-1.4, -1e-3)),
        min_size=9,
        max_size=9,
    ),
    rank=st.integers(1, 3),
    ab=st.tuples(st.floats(-2.0, 2.0), st.floats(-2.0, 2.0)),
)
def test_dual_gram_matrices_are_psd(name: str, entries, rank: int, ab) -> None:
    act = A.abrelu(*ab) if name == "abrelu(a,b)" else _activation(name)
    L = np.array(entries).reshape(3, 3)[:, :rank]
    cov = L @ L.T  # PSD in exact arithmetic, possibly singular; rounding may break that
    assume(exactly_psd(cov))
    diag = np.diag(cov)
    k11, k22 = diag[:, None] * np.ones(3), diag[None, :] * np.ones(3)
    for fn in (act.dual, act.dual_derivative):
        gram = np.asarray(fn(k11, cov, k22))
        assert gram.shape == (3, 3)
        scale = np.abs(gram).max()
        assert np.linalg.eigvalsh((gram + gram.T) / 2).min() >= -1e-12 * scale, (name, cov, gram)


# --------------------------------------------------------------------------- edges (issue 12)
def _mp_abrelu_derivative_dual(a: float, b: float, k11: float, k12: float, k22: float) -> float:
    """A - B theta at 50 digits on the stored doubles (correlation clipped to [-1, 1])."""
    with mpmath.workdps(50):
        m11, m12, m22 = (mpmath.mpf(float(v)) for v in (k11, k12, k22))
        r = max(min(m12 / mpmath.sqrt(m11 * m22), 1), -1)
        theta = mpmath.acos(r)
        return float((a * a + b * b) / 2 - (a - b) ** 2 * theta / (2 * mpmath.pi))


@pytest.mark.parametrize("seed", range(6))
def test_collinear_inputs_derivative_dual_regression(seed: int) -> None:
    """Regression: three exactly collinear inputs (rank-1 covariance from L L^T) gave the ReLU
    derivative dual 0.5 - 2.8e-9 where the stored numbers define 0.5 - 1.1e-9 (an angle error of
    order sqrt(eps) from sqrt(k11 k22) - k12); now within 1e-13 of the 50-digit value."""
    rng = np.random.default_rng(seed)
    L = rng.standard_normal((3, 1)) * 10.0 ** rng.uniform(-3, 3)
    cov = L @ L.T
    k11, k22 = np.diag(cov)[:, None] * np.ones((3, 3)), np.diag(cov)[None, :] * np.ones((3, 3))
    for a, b in ((0.0, 1.0), (-1.0, 1.0), (0.2, 1.0)):
        got = A.abrelu(a, b).dual_derivative(k11, cov, k22)
        for i in range(3):
            for j in range(3):
                ref = _mp_abrelu_derivative_dual(a, b, k11[i, j], cov[i, j], k22[i, j])
                assert got[i, j] == pytest.approx(ref, abs=1e-13 * (a * a + b * b)), (a, b, i, j)


@pytest.mark.parametrize("q", [1e10, 1e14, 1e18, 1e100])
def test_gelu_duals_at_huge_variance(q: float) -> None:
    """E[(u Phi(u))^2]/q = 1/2 - E[z^2 Phi(sqrt q z) Phi(-sqrt q z)] = 1/2 - O(q^{-3/2}) and
    E[phi'(u)^2] = 1/2 + O(q^{-1/2}) for u ~ N(0, q); the old form drifted to 0.5056 at q = 1e14
    and NaN from 1e16."""
    gelu = A.gelu()
    assert gelu.dual(q, q, q) / q == pytest.approx(0.5, rel=1e-13)
    assert gelu.dual_derivative(q, q, q) == pytest.approx(0.5, abs=2 / math.sqrt(q))
    # uncorrelated inputs: E[phi(u)] E[phi(v)] = (q phi(0)/sqrt(1+q))^2 (the m = 0 Mehler term)
    g0 = q / math.sqrt(2 * math.pi * (1 + q))
    assert gelu.dual(q, 0.0, q) == pytest.approx(g0 * g0, rel=1e-13)


def _gelu_dual_oracle(k11: float, k12: float, k22: float, deriv: bool) -> float:
    """v = b(rho z1 + c z2) integrated over z2 in closed form, G(mu) = E[phi(mu + sigma z)]
    = mu Phi(mu/s) + (sigma^2/s) varphi(mu/s), G'(mu) = Phi(mu/s) + mu varphi(mu/s)/s^3,
    s = sqrt(1 + sigma^2); then mpmath.quad over z1 at 30 digits."""
    with mpmath.workdps(30):
        a, b = mpmath.sqrt(k11), mpmath.sqrt(k22)
        rho = k12 / (a * b)
        sigma = b * mpmath.sqrt(1 - rho * rho)
        s = mpmath.sqrt(1 + sigma * sigma)

        def inner(mu):
            if deriv:
                return mpmath.ncdf(mu / s) + mu * mpmath.npdf(mu / s) / s**3
            return mu * mpmath.ncdf(mu / s) + sigma * sigma / s * mpmath.npdf(mu / s)

        def outer(x):
            return mpmath.ncdf(x) + x * mpmath.npdf(x) if deriv else x * mpmath.ncdf(x)

        return float(mpmath.quad(lambda z: outer(a * z) * inner(b * rho * z) * mpmath.npdf(z), [-14, 0, 14]))


@pytest.mark.parametrize("cov", [(1.0, 0.3, 2.0), (0.5, -0.2, 0.7), (3.0, 2.9, 3.0), (40.0, -39.0, 41.0)])
def test_gelu_duals_match_one_dimensional_mpmath_quadrature(cov) -> None:
    gelu = A.gelu()
    assert float(gelu.dual(*cov)) == pytest.approx(_gelu_dual_oracle(*cov, False), rel=1e-12, abs=1e-14)
    assert float(gelu.dual_derivative(*cov)) == pytest.approx(
        _gelu_dual_oracle(*cov, True), rel=1e-12, abs=1e-14
    )


def test_abs_nearly_antiparallel_next_layer_gap() -> None:
    """|x| maps nearly antiparallel inputs to nearly parallel ones; the new gap comes from the
    delta = pi - theta form (no sqrt(eps) error): compare with 50-digit arithmetic."""
    from fieldcurve.activations import MPMATH_OPS, NUMPY_OPS, abrelu_gap_step

    for eps in (1e-6, 1e-10, 1e-14):
        k12 = -(1 - eps)
        out = abrelu_gap_step(-1.0, 1.0, 1.0, k12, 1.0, 1 - k12, eps, NUMPY_OPS)
        with mpmath.workdps(50):
            ref = abrelu_gap_step(
                -1.0,
                1.0,
                mpmath.mpf(1),
                mpmath.mpf(k12),
                mpmath.mpf(1),
                1 - mpmath.mpf(k12),
                mpmath.mpf(eps),
                MPMATH_OPS,
            )
            assert float(out[3]) == pytest.approx(float(ref[3]), rel=1e-12)


# --------------------------------------------------------------------------- sphere tables
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "silu", "softplus"])
@pytest.mark.parametrize("q", [0.1, 2.0, 30.0])
def test_sphere_table_matches_two_dimensional_rule(name: str, q: float) -> None:
    """Equal variances (inputs on the sphere) take the Mehler table; it agrees with the
    independent 2-D trapezoidal rule (1e-12, tested against 30-digit mpmath above) to 1e-13."""
    act = A.get_activation(name)
    edge = np.logspace(-16, -1, 40)
    # enough entries that the table is worth building (at q = 30 the 2-D rule is dear: fewer)
    rho = np.concatenate([np.linspace(-1, 1, 2001 if q < 10 else 401), 1 - edge, -1 + edge])
    ones = q * np.ones_like(rho)
    for derivative in (False, True):
        fast = (act.dual_derivative if derivative else act.dual)(ones, q * rho, ones.copy())
        slow = act.dual_quadrature(ones, q * rho, ones.copy(), derivative=derivative)
        scale = np.abs(slow).max()
        assert np.max(np.abs(fast - slow)) <= 1e-13 * scale, (name, q, derivative)


def test_unequal_variances_and_huge_variances() -> None:
    act = A.tanh()
    rng = np.random.default_rng(0)
    k11 = rng.uniform(0.5, 2, 3000)
    k22 = rng.uniform(0.5, 2, 3000)
    k12 = rng.uniform(-1, 1, 3000) * np.sqrt(k11 * k22)
    # off the sphere: the direct rule, same numbers as dual_quadrature
    np.testing.assert_array_equal(act.dual(k11, k12, k22), act.dual_quadrature(k11, k12, k22))
    # a variance the 2-D rule cannot integrate: a clear error before any allocation
    with pytest.raises(ValueError, match="too large for the 2-D quadrature"):
        act.dual(1e10 * k11, 1e10 * k12, 1e10 * k22)
