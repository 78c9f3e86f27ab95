"""Tests of fieldcurve.empirical against oracles that share no code with it.

Oracles:
- exact recovery by finite-rank kernels (linear kernel k(t) = t: rank d; 1 + t + t^2/2 on S^2:
  rank 1 + 3 + 5 = 9) of targets in their span, ridgeless, noiseless;
- ordinary least squares computed here with numpy.linalg.lstsq on independently drawn sphere
  data (the linear kernel's ridgeless limit), excess error |w_hat - w|^2 exactly;
- kernel ridge regression computed here with numpy.linalg.solve for k(t) = e^t on the
  sqrt(3)-sphere, with *exact* test errors from closed forms: E_x e^{x.z/3} = sinh(a)/a and
  E_x x e^{x.z/3} = z (a cosh a - sinh a)/a^3, a = |z|/sqrt(3); the degree-0 and degree-1 parts of
  the fit follow from these without any zonal harmonic or Legendre polynomial;
- statistical comparisons of means over independent trials at fixed seeds, with the combined
  standard error (5-sigma bands); the code's random stream is never reproduced.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fieldcurve as fc
from fieldcurve import Target, empirical_learning_curve

# ----------------------------------------------------------------------------- oracles


def uniform_sphere(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """n points uniform on the sphere of radius sqrt(d) (own sampler: normalised Gaussians)."""
    g = rng.normal(size=(n, d))
    return math.sqrt(d) * g / np.sqrt(np.sum(g * g, axis=1, keepdims=True))


def mean_sem(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    samples = np.asarray(samples, dtype=float)
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / math.sqrt(len(samples))


def assert_means_agree(m1, s1, m2, s2, k: float = 5.0) -> None:
    m1, s1, m2, s2 = (np.asarray(v, dtype=float) for v in (m1, s1, m2, s2))
    combined = np.sqrt(s1**2 + s2**2)
    assert np.all(combined > 0)
    assert np.all(np.abs(m1 - m2) < k * combined), (m1, m2, combined)


def exp_krr_s2_oracle(
    P: list[int], c0: float, v1: float, noise: float, ridge: float, trials: int, seed: int
) -> dict[str, np.ndarray]:
    """Own Monte Carlo of kernel ridge regression with k(t) = e^t on the sqrt(3)-sphere.

    Target f*(x) = c0 + w.x, |w|^2 = v1 (so v_0^2 = c0^2, v_1^2 = v1; E_x x x^T = I), random
    direction per trial. Fit f_hat(x) = sum_i alpha_i e^{x.x_i/3}, alpha = (K + ridge I)^{-1} y by
    numpy.linalg.solve. Exact errors per trial (no test set), with u uniform on S^2:
    E_u e^{a u.e} = sinh(a)/a and E_u u e^{a u.e} = e (a cosh a - sinh a)/a^2, hence
      ||f_hat||^2 = alpha^T M alpha, M_ij = sinh(a_ij)/a_ij, a_ij = |x_i + x_j|/sqrt(3);
      Pi_0 f_hat = sinh(1) sum_i alpha_i;  Pi_1 f_hat(x) = b.x, b = (cosh 1 - sinh 1) sum_i alpha_i x_i.
    Returns per-trial arrays (trials, len(P)) of the total error and of degrees 0, 1, and >= 2.
    """
    rng = np.random.default_rng(seed)
    out = {key: np.empty((trials, len(P))) for key in ("total", "deg0", "deg1", "rest")}
    g0, g1 = math.sinh(1.0), math.cosh(1.0) - math.sinh(1.0)
    pmax = max(P)
    for trial in range(trials):
        w = rng.normal(size=3)
        w *= math.sqrt(v1) / np.linalg.norm(w)
        X = uniform_sphere(rng, pmax, 3)
        y = c0 + X @ w + math.sqrt(noise) * rng.normal(size=pmax)
        for j, p in enumerate(P):
            Xp = X[:p]
            K = np.exp(Xp @ Xp.T / 3.0)
            alpha = np.linalg.solve(K + ridge * np.eye(p), y[:p])
            S = Xp[:, None, :] + Xp[None, :, :]
            a = np.sqrt(np.sum(S * S, axis=-1)) / math.sqrt(3.0)
            M = np.sinh(a) / a  # a = 0 has probability 0
            norm2 = alpha @ M @ alpha
            m0 = g0 * alpha.sum()
            b = g1 * (alpha @ Xp)
            out["deg0"][trial, j] = (m0 - c0) ** 2
            out["deg1"][trial, j] = float((b - w) @ (b - w))
            out["rest"][trial, j] = norm2 - m0**2 - b @ b
            # ||f_hat - f*||^2 = ||f_hat||^2 - 2 <f_hat, f*> + ||f*||^2 (degree 0 and 1 only in f*)
            out["total"][trial, j] = norm2 - 2 * (m0 * c0 + b @ w) + c0**2 + v1
    return out


# ----------------------------------------------------------------------------- exact recovery


@pytest.mark.parametrize("d", [3, 6])
def test_linear_kernel_recovers_linear_target_exactly(d):
    """k(t) = t has rank d; a degree-1 target (a linear function) is recovered exactly from
    P >= d noiseless samples without ridge."""
    kern = fc.polynomial_kernel([0, 1])
    spec = fc.spectrum(kern, d, 2)
    target = Target.from_degree_powers({1: 1.3}, d=d)
    P = [d, d + 1, 2 * d, 40]
    curve = empirical_learning_curve(kern, target, P, ridge=0.0, trials=4, seed=0, spectrum_for_degrees=spec)
    assert np.all(curve.test_error < 1e-10 * 1.3), curve.test_error
    assert curve.degrees == [1]
    assert np.all(np.abs(curve.error_per_degree) < 1e-9 * 1.3), curve.error_per_degree
    # and with too few samples it is not recovered: error of OLS-interpolation with P < d is
    # the power outside the span of the P training inputs, (1 - P/d) v on average
    few = empirical_learning_curve(kern, target, [1, d - 1], trials=200, seed=1, n_test=200)
    expected = 1.3 * (1 - np.array([1, d - 1]) / d)
    assert_means_agree(few.test_error, few.test_error_sem, expected, np.zeros(2) + 1e-300)


def test_lambda_kernel_linear_via_dot_product_kernel():
    kern = fc.DotProductKernel(lambda t: t, name="linear")
    curve = empirical_learning_curve(kern, Target.from_degree_powers({1: 1.0}), [5, 9], d=4, trials=3, seed=2)
    assert np.all(curve.test_error < 1e-10)
    assert curve.error_per_degree is None  # no spectrum given


def test_quadratic_kernel_recovers_degree_0_1_2_target_exactly():
    """k(t) = 1 + t + t^2/2 on S^2 spans degrees 0, 1, 2 (rank 1 + 3 + 5 = 9)."""
    kern = fc.polynomial_kernel([1, 1, 0.5])
    target = Target.from_degree_powers({0: 0.3, 1: 1.0, 2: 0.5}, d=3)
    curve = empirical_learning_curve(
        kern, target, [9, 12, 30], trials=3, seed=4, spectrum_for_degrees=fc.spectrum(kern, 3, 4)
    )
    assert np.all(curve.test_error < 1e-9), curve.test_error
    assert np.all(np.abs(curve.error_per_degree) < 1e-8), curve.error_per_degree


# ----------------------------------------------------------------------------- statistical oracles


def test_linear_kernel_with_noise_matches_least_squares():
    """Ridgeless linear kernel = ordinary least squares (no intercept); own OLS Monte Carlo with
    numpy.linalg.lstsq, excess error |w_hat - w|^2 exactly (E_x x x^T = I on the sqrt(d)-sphere)."""
    d, sigma2, v = 4, 0.5, 1.0
    P = [12, 20, 40]
    curve = empirical_learning_curve(
        fc.polynomial_kernel([0, 1]),
        Target.from_degree_powers({1: v}, noise=sigma2, d=d),
        P,
        trials=400,
        seed=10,
        n_test=500,
    )
    rng = np.random.default_rng(20240601)
    trials = 4000
    errs = np.empty((trials, len(P)))
    for i in range(trials):
        w = rng.normal(size=d)
        w *= math.sqrt(v) / np.linalg.norm(w)
        X = uniform_sphere(rng, max(P), d)
        y = X @ w + math.sqrt(sigma2) * rng.normal(size=max(P))
        for j, p in enumerate(P):
            w_hat = np.linalg.lstsq(X[:p], y[:p], rcond=None)[0]
            errs[i, j] = np.sum((w_hat - w) ** 2)
    m, s = mean_sem(errs)
    assert_means_agree(curve.test_error, curve.test_error_sem, m, s)
    # sanity on the oracle itself: E tr (X^T X)^{-1} >= tr (E X^T X)^{-1} = d/P (Jensen)
    assert np.all(m > sigma2 * d / np.array(P))


@pytest.mark.parametrize(("ridge", "noise"), [(0.1, 0.3), (0.0, 0.05), (1.0, 0.0)])
def test_constant_target_matches_own_kernel_ridge_regression(ridge, noise):
    """Degree-0 target, k(t) = e^t (lambda_0 = sinh 1 > 0) on S^2: the code's mean test error and
    its exact degree-0 error agree with an own KRR (np.linalg.solve, exact closed-form errors)."""
    v0 = 0.8
    P = [2, 6, 20]
    kern = fc.exponential_kernel(1.0)
    curve = empirical_learning_curve(
        kern,
        Target.from_degree_powers({0: v0}, noise=noise, d=3),
        P,
        ridge=ridge,
        trials=300,
        seed=3,
        n_test=1000,
        spectrum_for_degrees=fc.spectrum(kern, 3, 6),
    )
    oracle = exp_krr_s2_oracle(P, math.sqrt(v0), 0.0, noise, ridge, trials=1500, seed=77)
    m, s = mean_sem(oracle["total"])
    assert_means_agree(curve.test_error, curve.test_error_sem, m, s)
    m0, s0 = mean_sem(oracle["deg0"])
    assert curve.degrees == [0]
    assert_means_agree(curve.error_per_degree[:, 0], curve.error_per_degree_sem[:, 0], m0, s0)
    # the oracle's own decomposition is consistent (degree 1 and >= 2 carry the rest)
    np.testing.assert_allclose(
        oracle["total"], oracle["deg0"] + oracle["deg1"] + oracle["rest"], rtol=1e-8, atol=1e-12
    )


def test_per_degree_errors_sum_to_total_for_finite_rank_kernel():
    """k(t) = 1 + t + t^2/2 on S^2 has eigenfunctions of degrees 0, 1, 2 only; with a target on
    exactly those degrees, E_g = sum_l (exact per-degree error) per trial, so total - sum is pure
    test-set noise. Many independent 2-trial runs give its mean and an honest standard error."""
    kern = fc.polynomial_kernel([1, 1, 0.5])
    spec = fc.spectrum(kern, 3, 3)
    target = Target.from_degree_powers({0: 0.3, 1: 1.0, 2: 0.5}, noise=0.1, d=3)
    P = [4, 9, 15]
    diffs, totals = [], []
    for run in range(40):
        c = empirical_learning_curve(
            kern, target, P, ridge=0.01, trials=2, seed=1000 + run, n_test=4000, spectrum_for_degrees=spec
        )
        assert c.degrees == [0, 1, 2]
        diffs.append(c.test_error - c.error_per_degree.sum(axis=1))
        totals.append(c.test_error)
    m, s = mean_sem(diffs)
    total = np.mean(totals, axis=0)
    assert np.all(s < 0.05 * total)  # the comparison has power: noise is a few % of E_g
    assert np.all(np.abs(m) < 5 * s), (m, s, total)


def test_per_degree_and_out_of_target_errors_match_own_oracle():
    """k(t) = e^t on S^2, target c0 + w.x (degrees 0, 1): the code's total and per-degree errors
    agree with the own exact-error KRR oracle, and total - sum over target degrees (the error
    in degrees >= 2, where the target is zero) agrees with the oracle's ||Pi_{>=2} f_hat||^2."""
    kern = fc.exponential_kernel(1.0)
    spec = fc.spectrum(kern, 3, 6)
    c0sq, v1, noise, ridge = 0.5, 1.0, 0.1, 0.01
    target = Target.from_degree_powers({0: c0sq, 1: v1}, noise=noise, d=3)
    P = [5, 15]
    diffs, per_deg = [], []
    for run in range(30):
        c = empirical_learning_curve(
            kern, target, P, ridge=ridge, trials=2, seed=500 + run, n_test=4000, spectrum_for_degrees=spec
        )
        diffs.append(c.test_error - c.error_per_degree.sum(axis=1))
        per_deg.append(c.error_per_degree)
    oracle = exp_krr_s2_oracle(P, math.sqrt(c0sq), v1, noise, ridge, trials=600, seed=99)
    m_code, s_code = mean_sem(diffs)
    m_rest, s_rest = mean_sem(oracle["rest"])
    assert np.all(m_rest > 10 * s_rest)  # the out-of-target share is resolved, not zero
    assert_means_agree(m_code, s_code, m_rest, s_rest)
    pd_mean, pd_sem = mean_sem(per_deg)
    for k, key in enumerate(("deg0", "deg1")):
        m, s = mean_sem(oracle[key])
        assert_means_agree(pd_mean[:, k], pd_sem[:, k], m, s)


def test_per_degree_bounds_exponential_kernel():
    """Per-degree errors are >= 0 and their sum is <= the total (5 SE). Lower bound: the degree-1
    part of any kernel fit, lambda_1 sum_i alpha_i x.x_i, lies in span(x_1..x_P), so with P = 3 < d = 5
    the degree-1 error is at least |(I - Pi)w|^2 per trial, which for a uniform direction has mean
    (1 - 3/5) v_1 and variance v_1^2 Var Beta(1, 3/2) = v_1^2 1.5/(2.5^2 3.5)."""
    d, trials, v1 = 5, 40, 1.0
    kern = fc.exponential_kernel(0.5)
    target = Target.from_degree_powers({0: 0.2, 1: v1, 3: 0.4}, noise=0.05, d=d)
    c = empirical_learning_curve(
        kern,
        target,
        [3, 20, 60],
        ridge=1e-3,
        trials=trials,
        seed=8,
        n_test=1000,
        spectrum_for_degrees=fc.spectrum(kern, d, 5),
    )
    assert c.degrees == [0, 1, 3]
    assert c.error_per_degree.shape == (3, 3) and c.error_per_degree_sem.shape == (3, 3)
    assert np.all(c.error_per_degree > -1e-12)
    bound = c.test_error + 5 * c.test_error_sem
    assert np.all(c.error_per_degree.sum(axis=1) <= bound)
    sd_beta = v1 * math.sqrt(1.5 / (2.5**2 * 3.5))
    assert c.error_per_degree[0, 1] > (1 - 3 / d) * v1 - 5 * sd_beta / math.sqrt(trials)


# ----------------------------------------------------------------------------- curve bookkeeping


def test_result_fields_and_sem_from_raw():
    kern = fc.exponential_kernel(1.0)
    target = Target.from_degree_powers({1: 1.0}, noise=0.2, d=3)
    c = empirical_learning_curve(kern, target, np.array([10, 3]), ridge=0.1, trials=5, seed=1, n_test=300)
    np.testing.assert_array_equal(c.P, [10.0, 3.0])
    assert c.trials == 5 and c.ridge == 0.1
    assert c.raw.shape == (5, 2)
    np.testing.assert_allclose(c.test_error, c.raw.mean(axis=0), rtol=1e-14)
    # standard error by its definition, computed here
    dev = c.raw - c.raw.mean(axis=0)
    np.testing.assert_allclose(c.test_error_sem, np.sqrt((dev**2).sum(axis=0) / 4 / 5), rtol=1e-12)
    assert c.meta["n_test"] == 300 and c.meta["seed"] == 1


def test_reproducibility():
    kern = fc.exponential_kernel(1.0)
    spec = fc.spectrum(kern, 4, 4)
    target = Target.from_degree_powers({1: 1.0, 2: 0.3}, noise=0.1, d=4)
    kw = dict(ridge=0.01, trials=3, n_test=500, spectrum_for_degrees=spec)
    a = empirical_learning_curve(kern, target, [5, 15], seed=42, **kw)
    b = empirical_learning_curve(kern, target, [5, 15], seed=42, **kw)
    np.testing.assert_array_equal(a.raw, b.raw)
    np.testing.assert_array_equal(a.test_error_sem, b.test_error_sem)
    np.testing.assert_array_equal(a.error_per_degree, b.error_per_degree)
    c = empirical_learning_curve(kern, target, [5, 15], seed=43, **kw)
    assert np.all(a.raw != c.raw)
    assert np.all(a.error_per_degree != c.error_per_degree)


# ----------------------------------------------------------------------------- bad input


KERN = fc.polynomial_kernel([0, 1])
T3 = Target.from_degree_powers({1: 1.0}, d=3)


@pytest.mark.parametrize(
    ("P", "exc"),
    [([0], ValueError), ([5, -3], ValueError), (2.5, ValueError), ([], ValueError), ([np.nan], ValueError)],
)
def test_bad_P(P, exc):
    with pytest.raises(exc, match="P"):
        empirical_learning_curve(KERN, T3, P, trials=2, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"ridge": -0.1}, ValueError, "ridge"),
        ({"ridge": float("nan")}, ValueError, "ridge"),
        ({"trials": 1}, ValueError, "trials"),
        ({"trials": 0}, ValueError, "trials"),
        ({"trials": 3.0}, TypeError, "trials"),
        ({"n_test": -1}, ValueError, "n_test"),
        ({"d": 4}, ValueError, "d = 3"),  # contradicts target.d
        ({"d": 1}, ValueError, "d"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    kwargs = {"trials": 2, **kwargs}
    with pytest.raises(exc, match=match):
        empirical_learning_curve(KERN, T3, [4], seed=0, **kwargs)


def test_missing_d_is_value_error():
    with pytest.raises(ValueError, match="d"):
        empirical_learning_curve(KERN, Target.from_degree_powers({1: 1.0}), [4], trials=2, seed=0)


def test_missing_d_message_says_required():
    with pytest.raises(ValueError, match="required"):
        empirical_learning_curve(KERN, Target.from_degree_powers({1: 1.0}), [4], trials=2, seed=0)


def test_spectrum_for_other_d_rejected():
    spec4 = fc.spectrum(KERN, 4, 2)
    with pytest.raises(ValueError, match="another d"):
        empirical_learning_curve(KERN, T3, [4], trials=2, seed=0, spectrum_for_degrees=spec4)


def test_zero_n_test_rejected():
    with pytest.raises(ValueError, match="n_test"):
        empirical_learning_curve(KERN, T3, [4], trials=2, seed=0, n_test=0)


def test_spectrum_too_short_rejected():
    short = fc.spectrum(KERN, 3, 0)
    with pytest.raises(ValueError, match=r"lmax|degree"):
        empirical_learning_curve(KERN, T3, [4], trials=2, seed=0, spectrum_for_degrees=short)


# ----------------------------------------------------------------------------- gradient descent
def test_init_term_matches_sampled_initial_functions():
    """The exact expected initialisation term vs 20000 joint Gaussian draws of f0 (own Cholesky
    sampler), E[(f0(x) - Theta_xX Theta^-1 f0(X))^2] summed over test points, within 5 SE."""
    import scipy.linalg as sla

    from fieldcurve.empirical import _factor, _init_term

    rng = np.random.default_rng(11)
    d = 6
    mlp = fc.MLP(2, "relu", 2.0, 0.1)
    nngp, ntk = fc.nngp_kernel(mlp), fc.ntk_kernel(mlp)
    X, Xt = uniform_sphere(rng, 40, d), uniform_sphere(rng, 25, d)
    factor, _ = _factor(ntk.gram(X), 0.0)
    T_xX = ntk.gram(Xt, X)
    K0 = nngp.gram(X)
    exact = _init_term(factor, T_xX, nngp.gram(Xt, X), K0, np.diag(nngp.gram(Xt)))
    Z = np.vstack([X, Xt])
    L = np.linalg.cholesky(nngp.gram(Z) + 1e-12 * np.eye(len(Z)))
    f0 = L @ rng.standard_normal((len(Z), 20000))
    resid = f0[40:] - T_xX @ sla.solve(ntk.gram(X), f0[:40], assume_a="pos")
    per_draw = np.sum(resid**2, axis=0)
    se = per_draw.std(ddof=1) / np.sqrt(per_draw.size)
    assert abs(per_draw.mean() - exact) < 5 * se, (per_draw.mean(), exact, se)
    assert exact > 0.05 * per_draw.mean()  # the term is not negligible here


def test_gradient_descent_curve_matches_theory():
    """empirical_learning_curve(..., init_kernel=NNGP) vs network_learning_curve(regime='gd'):
    within 3 SE or 10% per point (the theory's own accuracy, see tests/test_theory.py)."""
    d = 8
    mlp = fc.MLP(2, "relu", 2.0, 0.1)
    tgt = Target.from_degree_powers({1: 1.0, 2: 0.3}, noise=0.02, d=d)
    P = np.array([30, 100, 200])
    theory = fc.network_learning_curve(mlp, tgt, P, regime="gd", lmax=30)
    emp = empirical_learning_curve(
        fc.ntk_kernel(mlp), tgt, P, trials=24, seed=4, n_test=300, init_kernel=fc.nngp_kernel(mlp)
    )
    assert emp.error_per_degree is None and emp.meta["regime"] == "gd"
    z = np.abs(theory.test_error - emp.test_error) / emp.test_error_sem
    rel = np.abs(theory.test_error / emp.test_error - 1)
    assert np.all((z < 3) | (rel < 0.10)), (theory.test_error, emp.test_error, emp.test_error_sem)
    # without the initialisation term the measurement is clearly above kernel regression's theory
    plain = fc.network_learning_curve(mlp, tgt, P, regime="kernel", lmax=30)
    assert np.all(plain.test_error < emp.test_error - 3 * emp.test_error_sem)
