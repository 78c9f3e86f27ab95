"""The validation package's networks and trainers against oracles that do not share their code:
the full ``jax.jacobian`` contraction, the infinite-width kernels of ``fieldcurve.kernels``,
kernel regression solved with numpy, Bayesian linear regression in closed form, and AR(1)
processes with known autocorrelation time."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402

import fieldcurve as fc  # noqa: E402
from fieldcurve.validation.networks import apply_mlp, empirical_kernels, empirical_ntk, init_mlp  # noqa: E402
from fieldcurve.validation.training import (  # noqa: E402
    effective_sample_size,
    gd_train,
    gd_train_ensemble,
    langevin_sample,
    posterior_test_error,
)


@pytest.mark.parametrize(
    "mlp",
    [
        fc.MLP(2, "relu", 2.0, 0.1),
        fc.MLP(1, "erf", 1.5, 0.0),
        fc.MLP(2, "gelu", [1.0, 2.0, 1.5], [0.1, 0.0, 0.2]),
        fc.MLP(2, "tanh", 1.2, 0.3, parameterization="standard", width=12),
    ],
)
def test_layerwise_ntk_equals_jacobian_contraction(mlp):
    d = 5
    X = jnp.asarray(fc.sample_sphere(7, d, seed=1))
    p = init_mlp(mlp, d, 12, jax.random.PRNGKey(3))
    flat, unravel = ravel_pytree(p)
    J = jax.jacobian(lambda v: apply_mlp(mlp, unravel(v), X)[:, 0])(flat)
    np.testing.assert_allclose(
        np.asarray(empirical_ntk(mlp, p, X)), np.asarray(J @ J.T), rtol=1e-11, atol=1e-12
    )


def test_empirical_kernels_approach_infinite_width_as_inverse_sqrt_width():
    """RMS deviation of the empirical NNGP and NTK from nngp_kernel / ntk_kernel over 6 seeds at
    widths 256 ... 4096: log-log slope -1/2 (within 0.15) and a 4x smaller error at 16x width."""
    d = 5
    mlp = fc.MLP(2, "relu", 2.0, 0.1)
    X = fc.sample_sphere(6, d, seed=0)
    K_inf, T_inf = fc.nngp_kernel(mlp).gram(X), fc.ntk_kernel(mlp).gram(X)
    widths = [256, 1024, 4096]
    rms = {"nngp": [], "ntk": []}
    for n in widths:
        dk, dt = [], []
        for seed in range(6):
            K, T = empirical_kernels(mlp, init_mlp(mlp, d, n, jax.random.PRNGKey(seed)), jnp.asarray(X))
            dk.append(np.mean((np.asarray(K) - K_inf) ** 2))
            dt.append(np.mean((np.asarray(T) - T_inf) ** 2))
        rms["nngp"].append(np.sqrt(np.mean(dk)))
        rms["ntk"].append(np.sqrt(np.mean(dt)))
    for kind, values in rms.items():
        slope = np.polyfit(np.log(widths), np.log(values), 1)[0]
        assert -0.65 < slope < -0.35, (kind, slope, values)
        assert values[-1] < values[0] / 2.5, (kind, values)
    assert rms["ntk"][-1] / np.sqrt(np.mean(T_inf**2)) < 0.05


def _data(d=6, P=40, n_test=300, seed=0):
    tgt = fc.Target.from_degree_powers({1: 1.0, 2: 0.3}, d=d)
    rng = np.random.default_rng(seed)
    f = tgt.sample(d, seed=rng)
    X, Xt = fc.sample_sphere(P, d, seed=rng), fc.sample_sphere(n_test, d, seed=rng)
    return X, f(X), Xt, f(Xt)


def test_centered_wide_network_trained_by_gd_is_ntk_regression():
    """A width-2048 one-hidden-layer network trained from centred initialisation predicts what
    NTK kernel regression (numpy solve) predicts, to the O(n^-1/2) finite-width accuracy."""
    d = 6
    X, y, Xt, yt = _data(d)
    mlp = fc.MLP(1, "relu", 2.0, 0.1)
    res = gd_train(mlp, init_mlp(mlp, d, 2048, jax.random.PRNGKey(0)), X, y, init="centered", tol=1e-8)
    assert res.converged and res.train_mse < 1e-8 * np.mean(y**2) and res.steps > 0
    pred = np.asarray(res.predict(Xt))[:, 0]
    ntk = fc.ntk_kernel(mlp)
    ref = ntk.gram(Xt, X) @ np.linalg.solve(ntk.gram(X), y)
    assert np.linalg.norm(pred - ref) < 0.1 * np.linalg.norm(ref)
    err_net, err_ker = np.mean((pred - yt) ** 2), np.mean((ref - yt) ** 2)
    assert abs(err_net / err_ker - 1) < 0.1


def test_antisymmetric_init_starts_at_zero_and_ensemble_matches_single_runs():
    d = 5
    X, y, Xt, _ = _data(d, P=20)
    mlp = fc.MLP(1, "erf", 1.5, 0.1)
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    stacked = jax.vmap(lambda k: init_mlp(mlp, d, 64, k))(keys)
    ens = gd_train_ensemble(
        mlp, stacked, X, y, init="antisymmetric", tol=1e-6, max_steps=300, check_every=100
    )
    zero = gd_train(mlp, init_mlp(mlp, d, 64, keys[0]), X, y, init="antisymmetric", max_steps=0)
    np.testing.assert_allclose(np.asarray(zero.predict(Xt)), 0.0, atol=1e-14)
    for i in range(3):
        one = gd_train(
            mlp,
            init_mlp(mlp, d, 64, keys[i]),
            X,
            y,
            init="antisymmetric",
            lr=float(ens.lr[i]),
            tol=0.0,
            max_steps=ens.steps,
            check_every=100,
        )
        np.testing.assert_allclose(
            np.asarray(ens.predict(Xt))[i], np.asarray(one.predict(Xt)), rtol=1e-9, atol=1e-11
        )


def test_langevin_posterior_mean_of_linear_model_is_bayesian_linear_regression():
    """Depth 0 is a linear model with Gaussian prior: the posterior mean is GP regression with the
    linear NNGP kernel and noise variance sigma^2, exactly (the Euler-Maruyama chain of a
    Gaussian target has the exact stationary mean). chi^2 per point with the between-chain
    Monte Carlo variance (16 chains) must be consistent with 1."""
    d, P, s2 = 6, 30, 0.05
    rng = np.random.default_rng(0)
    X, Xt = fc.sample_sphere(P, d, seed=rng), fc.sample_sphere(40, d, seed=rng)
    y = X @ rng.standard_normal(d) / np.sqrt(d) + np.sqrt(s2) * rng.standard_normal(P)
    mlp = fc.MLP(0, "relu", 1.5, 0.2)
    K = fc.nngp_kernel(mlp)
    gp = K.gram(Xt, X) @ np.linalg.solve(K.gram(X) + s2 * np.eye(P), y)
    p0 = jax.vmap(lambda k: init_mlp(mlp, d, 1, k))(jax.random.split(jax.random.PRNGKey(1), 16))
    res = langevin_sample(
        mlp, p0, X, y, Xt, noise_var=s2, key=jax.random.PRNGKey(2), steps=8000, burn_in=2000, thin=10
    )
    chi2 = np.mean((res.mean[:, 0] - gp) ** 2 / res.mc_variance[:, 0])
    assert 0.5 < chi2 < 1.8, chi2
    assert res.ess > 500 and res.samples_per_chain == 600
    raw, corrected = posterior_test_error(res, gp)
    assert corrected < raw and abs(corrected) < 3 * np.mean(res.mc_variance)


def test_langevin_with_random_sign_noise_has_the_same_posterior_mean():
    """Rademacher increments (a weak first-order scheme): for the linear model the stationary
    mean is still exactly the Bayesian posterior mean."""
    d, P, s2 = 5, 20, 0.1
    rng = np.random.default_rng(3)
    X, Xt = fc.sample_sphere(P, d, seed=rng), fc.sample_sphere(30, d, seed=rng)
    y = X @ rng.standard_normal(d) / np.sqrt(d) + np.sqrt(s2) * rng.standard_normal(P)
    mlp = fc.MLP(0, "relu", 1.0, 0.3)
    K = fc.nngp_kernel(mlp)
    gp = K.gram(Xt, X) @ np.linalg.solve(K.gram(X) + s2 * np.eye(P), y)
    p0 = jax.vmap(lambda k: init_mlp(mlp, d, 1, k))(jax.random.split(jax.random.PRNGKey(5), 16))
    res = langevin_sample(
        mlp,
        p0,
        X,
        y,
        Xt,
        noise_var=s2,
        key=jax.random.PRNGKey(6),
        steps=6000,
        burn_in=1500,
        thin=10,
        noise="rademacher",
    )
    chi2 = np.mean((res.mean[:, 0] - gp) ** 2 / res.mc_variance[:, 0])
    assert 0.5 < chi2 < 1.8, chi2
    from fieldcurve.validation.training import _rademacher

    signs = np.asarray(_rademacher(jax.random.PRNGKey(0), (300, 333), jnp.float64))
    assert set(np.unique(signs)) == {-1.0, 1.0} and abs(signs.mean()) < 4 / np.sqrt(signs.size)
    assert abs(np.mean(signs[:, 1:] * signs[:, :-1])) < 4 / np.sqrt(signs.size)  # neighbours independent
    with pytest.raises(ValueError, match="noise must be"):
        langevin_sample(mlp, p0, X, y, Xt, noise_var=s2, key=jax.random.PRNGKey(6), noise="uniform")


@pytest.mark.parametrize(
    "mlp",
    [
        fc.MLP(1, "relu", 2.0, 0.1),
        fc.MLP(2, "tanh", 1.5, 0.0),
        fc.MLP(1, "erf", [1.0, 1.7], [0.2, 0.3], parameterization="standard", width=9),
    ],
)
def test_readout_posterior_mean_is_weight_space_bayesian_regression(mlp):
    """The Rao-Blackwellised estimator's conditional mean (function space, kernel of the hidden
    features) equals the weight-space posterior mean of the read-out layer, computed in numpy
    from the explicit features: m = (Phi^T Phi / s2 + Lambda^-1)^-1 Phi^T y / s2."""
    from fieldcurve.validation.networks import _forward
    from fieldcurve.validation.training import _readout_posterior_mean

    d, P, s2, width = 4, 7, 0.3, 9
    rng = np.random.default_rng(11)
    X, Xt = rng.standard_normal((P, d)), rng.standard_normal((5, d))
    Y = rng.standard_normal((P, 2))
    params = init_mlp(mlp, d, width, jax.random.PRNGKey(3), outputs=2)
    got = np.asarray(_readout_posterior_mean(mlp, params, X=X, Y=Y, X_test=Xt, noise_var=s2))
    # explicit features of the read-out layer, including its bias column and multipliers
    hs, _ = _forward(mlp, params, jnp.concatenate([X, Xt]))
    h = np.asarray(hs[-1])
    i = mlp.depth
    if mlp.parameterization == "standard":
        mult, prior = np.ones(width + 1), np.r_[np.full(width, mlp.weight_vars[i] / width), mlp.bias_vars[i]]
    else:
        mult, prior = (
            np.r_[np.full(width, np.sqrt(mlp.weight_vars[i] / width)), np.sqrt(mlp.bias_vars[i])],
            np.ones(width + 1),
        )
    phi = np.c_[h, np.ones(len(h))] * mult
    if mlp.bias_vars[i] == 0:
        phi, prior = phi[:, :-1], prior[:-1]
    A = phi[:P].T @ phi[:P] / s2 + np.diag(1 / prior)
    m = np.linalg.solve(A, phi[:P].T @ Y / s2)
    np.testing.assert_allclose(got, phi[P:] @ m, rtol=1e-9, atol=1e-12)


def test_rao_blackwell_estimator_exact_for_linear_model_and_unbiased_for_a_network():
    """Depth 0: the read-out is the whole model, so every sample's conditional mean is the exact
    GP posterior mean (Monte Carlo variance zero). Depth 1: the Rao-Blackwellised and the plain
    estimates of the same posterior mean agree within their Monte Carlo errors, and the former's
    error is smaller."""
    d, P, s2 = 5, 12, 0.1
    rng = np.random.default_rng(4)
    X, Xt = fc.sample_sphere(P, d, seed=rng), fc.sample_sphere(25, d, seed=rng)
    y = X @ rng.standard_normal(d) / np.sqrt(d) + np.sqrt(s2) * rng.standard_normal(P)
    lin = fc.MLP(0, "relu", 1.5, 0.2)
    K = fc.nngp_kernel(lin)
    gp = K.gram(Xt, X) @ np.linalg.solve(K.gram(X) + s2 * np.eye(P), y)
    p0 = jax.vmap(lambda k: init_mlp(lin, d, 1, k))(jax.random.split(jax.random.PRNGKey(1), 4))
    res = langevin_sample(
        lin,
        p0,
        X,
        y,
        Xt,
        noise_var=s2,
        key=jax.random.PRNGKey(2),
        steps=400,
        burn_in=100,
        thin=10,
        rao_blackwell=True,
    )
    np.testing.assert_allclose(res.mean[:, 0], gp, rtol=1e-9, atol=1e-12)
    assert np.max(res.mc_variance) < 1e-20

    mlp = fc.MLP(1, "relu", 2.0, 0.1)
    p0 = jax.vmap(lambda k: init_mlp(mlp, d, 16, k))(jax.random.split(jax.random.PRNGKey(7), 8))
    kw = dict(noise_var=s2, steps=6000, burn_in=1500, thin=10)
    plain = langevin_sample(mlp, p0, X, y, Xt, key=jax.random.PRNGKey(8), **kw)
    rb = langevin_sample(mlp, p0, X, y, Xt, key=jax.random.PRNGKey(9), rao_blackwell=True, **kw)
    chi2 = np.mean((plain.mean[:, 0] - rb.mean[:, 0]) ** 2 / (plain.mc_variance[:, 0] + rb.mc_variance[:, 0]))
    assert 0.3 < chi2 < 2.0, chi2
    assert np.mean(rb.mc_variance) < 0.7 * np.mean(plain.mc_variance)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_effective_sample_size_of_ar1(rho):
    """AR(1) with coefficient rho: integrated autocorrelation time (1 + rho)/(1 - rho)."""
    rng = np.random.default_rng(4)
    n, chains = 20000, 4
    x = np.empty((chains, n))
    x[:, 0] = rng.standard_normal(chains) / np.sqrt(1 - rho**2)
    eps = rng.standard_normal((chains, n))
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + eps[:, t]
    expected = chains * n * (1 - rho) / (1 + rho)
    assert abs(effective_sample_size(x) / expected - 1) < 0.15


def test_bad_input():
    mlp = fc.MLP(1, "relu")
    with pytest.raises(ValueError, match="width"):
        init_mlp(mlp, 5, 0, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="d must"):
        init_mlp(mlp, 0, 8, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="no JAX version"):
        init_mlp(fc.MLP(1, lambda x: x), 5, 8, jax.random.PRNGKey(0))
    p = init_mlp(mlp, 5, 8, jax.random.PRNGKey(0))
    X = np.ones((4, 5))
    with pytest.raises(ValueError, match="finite"):
        gd_train(mlp, p, X, np.array([1.0, np.nan, 0.0, 1.0]))
    with pytest.raises(ValueError, match="same P"):
        gd_train(mlp, p, X, np.ones(3))
    with pytest.raises(ValueError, match="init must be"):
        gd_train(mlp, p, X, np.ones(4), init="weird")
    with pytest.raises(ValueError, match="noise_var"):
        langevin_sample(
            mlp,
            jax.tree_util.tree_map(lambda a: a[None], p),
            X,
            np.ones(4),
            X,
            noise_var=0.0,
            key=jax.random.PRNGKey(0),
        )


# ----------------------------------------------------------------------------- trainable zero biases
# (MLP(bias="trainable") with bias_var = 0: networks.init_mlp follows mlp.has_bias, issue #12)
def test_trainable_zero_bias_network_matches_the_standard_ntk():
    """Standard parameterisation, bias="trainable", bias_var = 0, width 2048: every Dense has a
    bias, initialised at zero. Over 8 networks the empirical NTK at init agrees with ntk_kernel
    within Monte Carlo error (4.5 standard errors, plus 1e-3 relative for the O(1/n) mean shift),
    and so does its bias part (the NTK minus that of the same weights without bias parameters)
    with ntk_kernel(bias="trainable") - ntk_kernel(bias="none"), the +1 per Dense propagated to
    the output — zero if the biases were dropped."""
    d, width, seeds = 5, 2048, 8
    kw = {"parameterization": "standard", "width": width}
    mlp = fc.MLP(2, "relu", 2.0, 0.0, bias="trainable", **kw)
    X = fc.sample_sphere(4, d, seed=2)
    theory = fc.ntk_kernel(mlp).gram(X)
    theory_bias = theory - fc.ntk_kernel(fc.MLP(2, "relu", 2.0, 0.0, bias="none", **kw)).gram(X)
    assert theory_bias.min() > 1.0  # the readout's +1 and the hidden layers' back-propagated ones
    totals, bias_parts = [], []
    for seed in range(seeds):
        p = init_mlp(mlp, d, width, jax.random.PRNGKey(100 + seed))
        assert all("b" in layer and np.all(np.asarray(layer["b"]) == 0) for layer in p)
        T = np.asarray(empirical_ntk(mlp, p, jnp.asarray(X)))
        T_weights = np.asarray(empirical_ntk(mlp, [{"W": layer["W"]} for layer in p], jnp.asarray(X)))
        totals.append(T)
        bias_parts.append(T - T_weights)
    for samples, expected in ((np.array(totals), theory), (np.array(bias_parts), theory_bias)):
        mean, se = samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(seeds)
        assert np.all(np.abs(mean - expected) <= 4.5 * se + 1e-3 * np.abs(expected)), (mean, expected, se)


def test_trainable_zero_bias_in_ntk_parameterisation_changes_nothing():
    """NTK parameterisation: the bias enters as sigma_b b = 0, so the parameters exist but the
    empirical NTK equals that of the weights alone."""
    d = 4
    mlp = fc.MLP(2, "erf", 1.5, 0.0, bias="trainable")
    p = init_mlp(mlp, d, 16, jax.random.PRNGKey(0))
    assert all("b" in layer for layer in p)
    X = jnp.asarray(fc.sample_sphere(5, d, seed=0))
    np.testing.assert_array_equal(
        np.asarray(empirical_ntk(mlp, p, X)), np.asarray(empirical_ntk(mlp, [{"W": q["W"]} for q in p], X))
    )
