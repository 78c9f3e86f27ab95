"""Arbitrary-precision Gaussian derivative moments and the exact spectra they give smooth activations.

Oracles: mpmath.quad (tanh–sinh quadrature, 50 digits) of E[phi(sqrt(q) z) He_m(z)]; the
closed-form moments of erf and GELU (Williams 1997; derived in activations.py) at high order;
a ridge-function Funk–Hecke integral for a one-hidden-layer network (tests/data/
make_smooth_spectrum_reference.py, an independent 40-digit computation); the kernel's own
double-precision 2-D quadrature (sum rule and reconstruction).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

import fieldcurve as fc
from fieldcurve.hermite import detect_zero_class, hermite_log_moments


def _quad_moment(fn, q: float, m: int) -> mpmath.mpf:
    """g_m(q) = q^{-m/2} E[phi(sqrt q z) He_m(z)] by mpmath.quad at 50 digits."""
    with mpmath.workdps(50):
        root = mpmath.sqrt(q)
        scale = mpmath.mpf(2) ** (-mpmath.mpf(m) / 2)  # He_m(z) = 2^{-m/2} H_m(z / sqrt 2)
        val = mpmath.quad(
            lambda z: fn(root * z) * mpmath.hermite(m, z / mpmath.sqrt(2)) * scale * mpmath.npdf(z),
            mpmath.linspace(-40, 40, 81),
        )
        return val * mpmath.mpf(q) ** (-mpmath.mpf(m) / 2)


SMOOTH = ["tanh", "sigmoid", "silu", "softplus"]


_FAST = [("tanh", 0.05), ("sigmoid", 1.0), ("silu", 30.0), ("softplus", 1.0)]
_CASES = [
    pytest.param(n, q, marks=() if (n, q) in _FAST else pytest.mark.slow)
    for n in SMOOTH
    for q in (0.05, 1.0, 30.0)
]


@pytest.mark.parametrize(("name", "q"), _CASES)
def test_moments_match_mpmath_quadrature(name: str, q: float) -> None:
    act = fc.get_activation(name)
    res = hermite_log_moments(act.mp_fn, q, 40, strip=act.singularity_distance, zero_class=act.zero_class)
    parity, start = act.zero_class
    for m in (0, 1, 2, 3, 6, 17, 40):
        if m >= start and m % 2 == parity:
            assert res.log_abs[m] == -np.inf, (name, q, m)  # exact zero by symmetry
            continue
        ref = _quad_moment(act.mp_fn, q, m)
        assert res.log_abs[m] == pytest.approx(float(mpmath.log(abs(ref))), abs=1e-12), (name, q, m)
        assert res.signs[m] == float(mpmath.sign(ref))
    assert res.max_relative_error < 1e-13


@pytest.mark.parametrize("q", [0.3, 2.0])
def test_high_orders_match_closed_forms(q: float) -> None:
    """erf and GELU through the Hermite transform against their closed-form moments, m <= 400."""
    for name, mp_fn in (
        ("erf", mpmath.erf),
        ("gelu", lambda x: x * (1 + mpmath.erf(x / mpmath.sqrt(2))) / 2),
    ):
        act = fc.get_activation(name)
        ref = act.log_moments(q, 400)
        res = hermite_log_moments(mp_fn, q, 400, strip=math.inf, zero_class=act.zero_class)
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(np.isfinite(res.log_abs), finite)
        # compared in logarithms of magnitude up to ~1e3: 1e-12 absolute is ~1e-12 relative
        gap = np.abs(res.log_abs[finite] - ref[finite])
        assert np.all(gap <= 1e-11 * (1 + np.abs(ref[finite]))), (name, q, float(gap.max()))


def test_zero_classes_are_exact() -> None:
    res = hermite_log_moments(mpmath.tanh, 1.0, 50, strip=math.pi / 2, zero_class=(0, 0))
    assert np.all(res.log_abs[0::2] == -np.inf)
    assert np.all(np.isfinite(res.log_abs[1::2]))
    silu = fc.get_activation("silu")
    res = hermite_log_moments(silu.mp_fn, 2.0, 50, strip=math.pi, zero_class=silu.zero_class)
    assert np.all(res.log_abs[3::2] == -np.inf)
    assert np.all(np.isfinite(res.log_abs[0:3]))
    assert np.all(np.isfinite(res.log_abs[4::2]))


def test_detect_zero_class() -> None:
    assert detect_zero_class(mpmath.tanh) == (0, 0)
    assert detect_zero_class(lambda x: x * x / (1 + x * x)) == (1, 1)
    assert detect_zero_class(lambda x: (1 + mpmath.tanh(x / 2)) / 2) == (0, 2)
    assert detect_zero_class(lambda x: x * (1 + mpmath.tanh(x / 2)) / 2) == (1, 3)
    assert detect_zero_class(lambda x: mpmath.exp(x) / (1 + x * x)) is None


def test_mpmath_compatible_callable_gets_verified_moments() -> None:
    act = fc.get_activation(lambda x: x / (1 + x * x) + x * x / 4)
    assert act.mp_fn is not None and act.zero_class is None and act.verify_moments
    logs = act.log_moments(1.5, 12)
    assert np.all(logs[4::2] == -np.inf)  # x^2/4 + an odd function: even moments vanish from m = 4
    for m in (0, 1, 2, 5, 11):
        ref = _quad_moment(act.mp_fn, 1.5, m)
        assert logs[m] == pytest.approx(float(mpmath.log(abs(ref))), abs=1e-11)


def test_numpy_only_callable_has_no_series_route() -> None:
    act = fc.get_activation(np.tanh)
    assert act.mp_fn is None and act.log_moments is None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="variance q"):
        hermite_log_moments(mpmath.tanh, 0.0, 5)
    with pytest.raises(ValueError, match="order M"):
        hermite_log_moments(mpmath.tanh, 1.0, -1)
    with pytest.raises(ValueError, match="exceeds the limit"):
        hermite_log_moments(mpmath.tanh, 1.0, 10**6)
    with pytest.raises(ValueError, match="not finite"):
        hermite_log_moments(lambda x: 1 / x if x != 0 else mpmath.inf, 1.0, 5)


# ridge-function Funk–Hecke oracle for the NNGP of MLP(1, "tanh", weight_var=2) at d = 784:
# lambda_l = sigma_w^2 E_rho[F_l(rho)^2], F_l(rho) = c_d int tanh(rho s) P_l(s) (1-s^2)^((d-3)/2) ds,
# rho^2 ~ sigma_w^2 chi^2_d (tests/data/make_smooth_spectrum_reference.py; 40 digits)
RIDGE_REFERENCE = {1: 0.00117603616912536, 3: 1.03508650808049e-9}


def test_one_layer_tanh_eigenvalues_match_ridge_oracle() -> None:
    spec = fc.spectrum(fc.nngp_kernel(fc.MLP(1, "tanh", weight_var=2.0)), 784, 6)
    for l, ref in RIDGE_REFERENCE.items():
        assert spec.eigenvalues[l] == pytest.approx(ref, rel=1e-13)
    assert np.all(spec.eigenvalues[0::2] == 0) and set(spec.methods[0::2]) == {"parity"}


@pytest.mark.parametrize(
    ("name", "depth", "bias_var", "d"),
    [("tanh", 4, 0.0, 784), ("tanh", 2, 0.3, 3072), ("sigmoid", 2, 0.0, 784), ("silu", 4, 0.1, 30)],
)
def test_smooth_spectra_sum_to_the_kernel(name: str, depth: int, bias_var: float, d: int) -> None:
    """sum_l N(d,l) lambda_l + tail = k(1), and the spectrum rebuilds k(t), with k from the
    independent double-precision 2-D quadrature of the duals; every degree resolved."""
    mlp = fc.MLP(depth, name, weight_var=1.5, bias_var=bias_var)
    for kernel in (fc.nngp_kernel(mlp), fc.ntk_kernel(mlp)):
        lmax = 40 if d > 100 else 30
        spec = fc.spectrum(kernel, d, lmax)
        assert np.all(spec.resolved), spec.methods
        assert set(spec.methods) <= {"series", "parity", "quadrature", "mpmath"}
        k1 = float(kernel(1.0))
        total = float(np.sum(spec.weights)) + spec.tail_mass
        assert total == pytest.approx(k1, rel=1e-11)
        if d <= 100:
            t = np.array([-0.7, -0.2, 0.0, 0.35, 0.8])
            np.testing.assert_allclose(spec.evaluate(t), kernel(t), rtol=1e-9, atol=1e-9 * k1)


def test_tanh_series_beats_old_quadrature_garbage() -> None:
    """The issue's case: depth-4 tanh NTK at d = 784 gave a trace fraction of 5.7e8; now every
    weight N lambda is below k(1), the cumulative fraction rises monotonically to <= 1."""
    kernel = fc.ntk_kernel(fc.MLP(4, "tanh", weight_var=2.0))
    spec = fc.spectrum(kernel, 784, 30)
    cumulative = np.cumsum(spec.weights) / spec.kernel_at_one
    assert np.all(np.diff(cumulative) >= 0) and cumulative[-1] <= 1 + 1e-12
    assert 0 <= spec.tail_mass <= spec.kernel_at_one
    assert np.all(spec.resolved)
