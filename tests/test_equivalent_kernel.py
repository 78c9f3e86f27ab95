"""Equivalent-kernel approximations against their defining equations and kernel regression."""

from __future__ import annotations

import numpy as np

import fieldcurve as fc
from fieldcurve.theory import equivalent_kernel_curve, learning_curve
from fieldcurve.theory._spectral import levels as _levels


def _setup(noise):
    d = 10
    kernel = fc.nngp_kernel(fc.MLP(2, "relu", 2.0, 0.1))
    spec = fc.spectrum(kernel, d, 40)
    tgt = fc.Target.from_degree_powers({1: 1.0, 2: 0.5, 3: 0.25}, noise=noise, d=d)
    return kernel, spec, tgt


def test_ek_ridgeless_noiseless_learns_every_mode():
    _, spec, _ = _setup(0.0)
    tgt = fc.Target.from_degree_powers({1: 1.0, 3: 0.5}, d=10)
    ek = equivalent_kernel_curve(spec, tgt, [5, 50])
    np.testing.assert_array_equal(ek.test_error, [0.0, 0.0])


def test_renormalised_kappa_is_a_fixed_point():
    """P kappa = delta + sum over modes with lambda < kappa of m lambda (brute force check)."""
    _, spec, tgt = _setup(0.3)
    P = np.array([3, 30, 300, 3000])
    rek = equivalent_kernel_curve(spec, tgt, P, ridge=0.3, renormalised=True)
    lam, mult, leftover, _ = _levels(spec, 8.0)
    for p, k in zip(P, rek.kappa, strict=True):
        high = lam < k
        assert abs(p * k - (0.3 + leftover + np.sum(mult[high] * lam[high]))) < 1e-12 * p * k


def test_approximations_approach_replica_at_large_P_and_rek_beats_ek():
    """At P = 2560 both EK forms are within 15% of the replica result; at small P the
    renormalised EK is closer to exact kernel regression than the plain EK (measured, 15
    trials)."""
    kernel, spec, tgt = _setup(0.5)
    P = np.array([40, 160, 2560])
    rep = learning_curve(spec, tgt, P, ridge=0.5)
    ek = equivalent_kernel_curve(spec, tgt, P, ridge=0.5)
    rek = equivalent_kernel_curve(spec, tgt, P, ridge=0.5, renormalised=True)
    assert abs(ek.test_error[-1] / rep.test_error[-1] - 1) < 0.15
    assert abs(rek.test_error[-1] / rep.test_error[-1] - 1) < 0.15
    emp = fc.empirical_learning_curve(
        kernel, tgt, P[:2], d=10, ridge=0.5, trials=15, seed=2, n_test=600, per_degree=False
    )
    assert np.all(np.abs(rek.test_error[:2] - emp.test_error) < np.abs(ek.test_error[:2] - emp.test_error))
