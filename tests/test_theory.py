"""Eigenlearning / replica learning curves: identities, solver, tail model, Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

import fieldcurve as fc
from fieldcurve.targets import Target
from fieldcurve.theory import learning_curve, solve_kappa


def _spec(depth=2, d=10, lmax=40, act="relu", kind="ntk"):
    mlp = fc.MLP(depth, act, 2.0 if act == "relu" else 1.5, 0.0 if act == "relu" else 0.1)
    kernel = fc.ntk_kernel(mlp) if kind == "ntk" else fc.nngp_kernel(mlp)
    return kernel, fc.spectrum(kernel, d, lmax)


def test_solve_kappa_against_brentq():
    """Vectorised solver vs scipy's bracketed root finder, point by point."""
    rng = np.random.default_rng(0)
    lam = np.sort(rng.lognormal(-3, 2, 300))[::-1]
    mult = rng.integers(1, 50, 300).astype(float)
    for ridge in (0.0, 1e-3):
        P = np.array([1.0, 7.0, 100.0, 1000.0, 3000.0])
        kappa = solve_kappa(lam, mult, ridge, P)
        for p, k in zip(P, kappa, strict=True):
            f = lambda x, p=p, r=ridge: np.sum(mult * lam / (lam + x)) + r / x - p  # noqa: E731
            ref = brentq(f, 1e-300, 1e6, xtol=1e-300, rtol=1e-14)
            assert abs(k / ref - 1) < 1e-11


def test_solve_kappa_long_spectrum_series_levels_against_brentq():
    """2000 power-law levels (most far from every kappa, summed through power moments) vs brentq
    on the direct sum, and the moment sums vs direct summation inside and outside their range."""
    from fieldcurve.theory._spectral import ModeSums as _ModeSums
    from fieldcurve.theory._spectral import exact_sums as _exact_sums

    deg = np.arange(1, 2001)
    lam = 0.3 * deg**-5.0
    mult = (deg + 1.0) ** 3 / 6
    P = np.geomspace(10, 1e6, 9).round()
    for ridge in (0.0, 1e-9):
        kappa = solve_kappa(lam, mult, ridge, P)
        for p, k in zip(P, kappa, strict=True):
            f = lambda x, p=p, r=ridge: np.sum(mult * lam / (lam + x)) + r / x - p  # noqa: E731
            ref = brentq(f, 1e-300, 1e6, xtol=1e-300, rtol=1e-14)
            assert abs(k / ref - 1) < 1e-11
    sums = _ModeSums(lam, mult, 1e-9, 1e-4)
    assert sums.n_series > 1000  # the test exercises the moment path
    kap = np.geomspace(1e-12, 1e-1, 40)  # inside, near the edges, and far outside the range
    g, s2 = sums(kap)
    g_ref, s2_ref = _exact_sums(kap, lam, mult)
    np.testing.assert_allclose(g, g_ref, rtol=1e-13)
    np.testing.assert_allclose(s2, s2_ref, rtol=1e-13)


def test_interpolation_regime_finite_rank():
    """Ridgeless with P beyond the rank: kappa = 0, E0 = P/(P - rank) (noise amplification)."""
    t = fc.polynomial_kernel([0.0, 1.0])  # k(t) = t: rank d (degree 1 only)
    d = 8
    spec = fc.spectrum(t, d, 3)
    tgt = Target.from_degree_powers({1: 1.0}, noise=0.1, d=d)
    lc = learning_curve(spec, tgt, [4, 20, 40])
    assert lc.kappa[1] == 0 and lc.kappa[2] == 0
    np.testing.assert_allclose(lc.overfitting[1:], [20 / 12, 40 / 32], rtol=1e-12)
    # learned exactly: only noise amplification remains, (E0 - 1) sigma^2
    np.testing.assert_allclose(lc.test_error[1:], [(20 / 12 - 1) * 0.1, (40 / 32 - 1) * 0.1], rtol=1e-12)


def test_linear_regression_closed_form():
    """k(t) = t on the sphere is linear regression with d equal eigenvalues 1/d. With a = P/d and
    the ridge delta, z = ((1 + delta - a) + sqrt((1 + delta - a)^2 + 4 delta a))/2 and
    E_g = (z^2 + s2 a)/((a + z)^2 - a) for a unit-power target (the classical random-design
    ridge result, checked by simulation in the project's REFERENCES)."""
    d = 20
    spec = fc.spectrum(fc.polynomial_kernel([0.0, 1.0]), d, 2)
    for P, ridge, s2 in [(10, 0.5, 0.0), (40, 2.0, 0.2), (15, 1e-3, 0.05)]:
        tgt = Target.from_degree_powers({1: 1.0}, noise=s2, d=d)
        lc = learning_curve(spec, tgt, [P], ridge=ridge)
        a = P / d
        lam = ridge
        z = 0.5 * (1 + lam - a + np.sqrt((1 + lam - a) ** 2 + 4 * lam * a))
        expected = (z**2 + s2 * a) / ((a + z) ** 2 - a)
        assert abs(lc.test_error[0] / expected - 1) < 1e-10, (P, ridge, s2)


def test_conservation_law_and_decomposition():
    """sum_l N_l L_l + (tail share) = P - delta/kappa, and per-degree errors sum to E_g."""
    _, spec = _spec()
    tgt = Target.from_degree_powers({0: 0.2, 1: 1.0, 2: 0.5, 3: 0.25}, noise=0.05, d=10)
    P = np.array([5.0, 50.0, 500.0, 5000.0])
    lc = learning_curve(spec, tgt, P, ridge=1e-3)
    n = np.exp(spec.log_multiplicities)
    learned = (n[None, :] * lc.learnability).sum(axis=1)
    assert np.all(learned <= P - 1e-3 / lc.kappa + 1e-9)
    # per-degree errors never exceed the total (the modes beyond lmax take the rest)
    assert np.all(lc.error_per_degree.sum(axis=1) <= lc.test_error * (1 + 1e-12))
    np.testing.assert_allclose(lc.test_error_noisy - lc.test_error, 0.05, rtol=1e-12)
    # with no mass beyond lmax the per-degree errors add up to E_g exactly
    spec_exp = fc.spectrum(fc.exponential_kernel(1.0), 10, 60)
    assert spec_exp.tail_mass < 1e-14
    lc2 = learning_curve(spec_exp, tgt, P, ridge=1e-3)
    np.testing.assert_allclose(lc2.error_per_degree.sum(axis=1), lc2.test_error, rtol=1e-10)


def test_ridgeless_prediction_stable_when_lmax_doubles():
    """The tail model: doubling lmax moves a ridgeless prediction by < 1e-3 relative."""
    kernel = fc.ntk_kernel(fc.MLP(3, "relu", 2.0, 0.0))
    tgt = Target.from_degree_powers({1: 1.0, 2: 0.5, 3: 0.25}, noise=0.01, d=30)
    P = np.geomspace(10, 10_000, 12).round()
    a = learning_curve(fc.spectrum(kernel, 30, 30), tgt, P)
    b = learning_curve(fc.spectrum(kernel, 30, 60), tgt, P)
    assert np.max(np.abs(a.test_error / b.test_error - 1)) < 1e-3


@pytest.mark.parametrize(
    ("act", "kind", "depth", "d", "powers", "noise", "ridge"),
    [
        ("relu", "ntk", 2, 10, {1: 1.0, 2: 0.5, 3: 0.25}, 0.01, 0.0),
        ("erf", "nngp", 3, 5, {0: 0.3, 1: 1.0, 3: 0.5}, 0.1, 1e-2),
        ("relu", "nngp", 1, 30, {1: 1.0, 2: 1.0}, 0.0, 1e-3),
    ],
)
def test_theory_matches_kernel_regression(act, kind, depth, d, powers, noise, ridge):
    """Against exact kernel regression (30 trials): every point within 15% or 3 standard errors,
    median relative error <= 6%."""
    kernel, spec = _spec(depth, d, 40, act, kind)
    tgt = Target.from_degree_powers(powers, noise=noise, d=d)
    P = np.array([10, 40, 160, 640])
    lc = learning_curve(spec, tgt, P, ridge=ridge)
    emp = fc.empirical_learning_curve(
        kernel, tgt, P, d=d, ridge=ridge, trials=30, seed=1, n_test=800, per_degree=False
    )
    rel = np.abs(lc.test_error / emp.test_error - 1)
    z = np.abs(lc.test_error - emp.test_error) / emp.test_error_sem
    assert np.all((rel < 0.15) | (z < 3)), (rel, z)
    assert np.median(rel) < 0.06, rel


def test_bad_inputs():
    _, spec = _spec(lmax=10)
    tgt = Target.from_degree_powers({1: 1.0}, d=10)
    with pytest.raises(ValueError, match="positive integers"):
        learning_curve(spec, tgt, [0, 10])
    with pytest.raises(ValueError, match="positive integers"):
        learning_curve(spec, tgt, [10.5])
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        learning_curve(spec, tgt, [10], ridge=-1.0)
    with pytest.raises(ValueError, match="d = 10 but the target is for d = 7"):
        learning_curve(spec, Target.from_degree_powers({1: 1.0}, d=7), [10])
    with pytest.raises(ValueError, match="noise must be >= 0"):
        Target.from_degree_powers({1: 1.0}, noise=-0.1)
    with pytest.warns(RuntimeWarning, match="beyond lmax"):
        learning_curve(spec, Target.from_degree_powers({1: 1.0, 12: 0.5}, d=10), [10])
    with pytest.raises(TypeError, match="Spectrum"):
        learning_curve("spec", tgt, [10])


def test_gradient_descent_regime_matches_simulated_infinite_width_training():
    """GD to convergence at infinite width: f = f0 + Theta_xX Theta^-1 (y - f0(X)), f0 ~ GP(0, K).
    Simulated exactly (joint Cholesky draw of f0 on train and test points, 40 trials) vs the
    theory with the initialisation term; within 3 standard errors or 10%."""
    d, depth = 6, 2
    mlp = fc.MLP(depth, "relu", 2.0, 0.1)
    tgt = Target.from_degree_powers({1: 1.0, 2: 0.3}, noise=0.02, d=d)
    P = np.array([40, 120, 360])
    curve = fc.network_learning_curve(mlp, tgt, P, regime="gd", lmax=30)
    nngp, ntk = fc.nngp_kernel(mlp), fc.ntk_kernel(mlp)
    rng = np.random.default_rng(5)
    errs = np.empty((40, len(P)))
    for trial in range(40):
        f = tgt.sample(d, seed=rng)
        X = fc.sample_sphere(int(P.max()), d, seed=rng)
        Xt = fc.sample_sphere(300, d, seed=rng)
        y = f.labels(X, seed=rng)
        Z = np.vstack([X, Xt])
        K = nngp.gram(Z)
        f0 = np.linalg.cholesky(K + 1e-10 * np.eye(len(Z))) @ rng.standard_normal(len(Z))
        f0_train, f0_test = f0[: len(X)], f0[len(X) :]
        for j, p in enumerate(P):
            T = ntk.gram(X[:p])
            coef = np.linalg.solve(T, y[:p] - f0_train[:p])
            pred = f0_test + ntk.gram(Xt, X[:p]) @ coef
            errs[trial, j] = np.mean((pred - f(Xt)) ** 2)
    mean, sem = errs.mean(axis=0), errs.std(axis=0, ddof=1) / np.sqrt(40)
    z = np.abs(curve.test_error - mean) / sem
    rel = np.abs(curve.test_error / mean - 1)
    assert np.all((z < 3) | (rel < 0.10)), (curve.test_error, mean, sem)
    # the initialisation term matters here: without it the prediction is clearly lower
    plain = learning_curve(fc.spectrum(ntk, d, 30), tgt, P)
    assert np.all(plain.test_error < 0.8 * mean)


def test_bayes_regime_is_gp_regression_with_noise_as_ridge():
    mlp = fc.MLP(2, "erf", 1.5, 0.1)
    tgt = Target.from_degree_powers({1: 1.0}, noise=0.05, d=8)
    a = fc.network_learning_curve(mlp, tgt, [50, 500], regime="bayes", lmax=30)
    b = learning_curve(fc.spectrum(fc.nngp_kernel(mlp), 8, 30), tgt, [50, 500], ridge=0.05)
    np.testing.assert_allclose(a.test_error, b.test_error, rtol=1e-14)


def test_shown_degrees_include_degree_zero_and_add_up():
    """Issue #13: the library's to_dict and error_rest include degree 0 (the CLI used to
    recompute them): E_0 + E_l (target degrees) + rest = E_g."""
    mlp = fc.MLP(2, "relu", 2.0, 0.5)
    target = fc.Target({1: 1.0, 3: 0.25})
    curve = fc.network_learning_curve(mlp, target, [5, 50, 500], d=10, regime="kernel", lmax=30)
    assert curve.shown_degrees == [0, 1, 3]
    got = curve.to_dict()["points"]
    for i, p in enumerate(got):
        assert set(p["error_per_degree"]) == {"0", "1", "3"}
        assert p["error_per_degree"]["0"] > 0  # the bias term's share of the effective noise
        assert math.fsum(p["error_per_degree"].values()) + p["error_rest"] == pytest.approx(
            curve.test_error[i], rel=1e-12
        )
