"""Multi-input finite-width statistics and the O(1/n) posterior correction, against oracles that
share no code with the sampled recursion: the single-input 1-D recursion, Monte Carlo over random
finite networks, the exact scale-mixture posterior of deep linear networks and importance sampling
over the hidden weights of finite networks."""

import numpy as np
import pytest
from scipy.stats import gamma

import fieldcurve as fc
from fieldcurve.finite_width_posterior import kernel_fluctuations, posterior_correction


@pytest.mark.parametrize(
    ("activation", "depth", "weight_var", "bias_var"),
    [("tanh", 3, 1.5, 0.1), ("erf", 2, 1.5, 0.2), ("relu", 3, 2.0, 0.1)],
)
def test_diagonal_reduces_to_single_input_recursion(activation, depth, weight_var, bias_var):
    mlp = fc.MLP(depth=depth, activation=activation, weight_var=weight_var, bias_var=bias_var)
    X = fc.sample_sphere(3, 5, seed=1)
    kf = kernel_fluctuations(mlp, X, 64, samples=20_000, seed=2)
    single = fc.finite_width_statistics(mlp, 64)
    for i in range(3):
        assert kf.kernel[i, i] == pytest.approx(single.kernel[-1], rel=1e-12)
        assert abs(kf.kernel_nlo[i, i] - single.kernel_nlo[-1]) <= 5 * kf.kernel_nlo_se[i, i] + 1e-12
        assert abs(kf.vertex[i, i, i, i] - single.vertex[-1]) <= 5 * kf.vertex_se[i, i, i, i]
    # the vertex is symmetric within and between its pairs
    V = kf.vertex
    np.testing.assert_allclose(V, V.transpose(1, 0, 2, 3), atol=1e-12)
    np.testing.assert_allclose(V, V.transpose(2, 3, 0, 1), atol=1e-12)


def _finite_network_kernels(mlp, X, n, networks, seed, chunk=50_000):
    """Exact simulation of random width-n networks: given layer l, the n units of layer l+1 are
    i.i.d. N(0, Sigma-hat) on the inputs. Returns mean and covariance of the output kernel's
    upper-triangle entries."""
    rng = np.random.default_rng(seed)
    N, d = X.shape
    iu = np.triu_indices(N)
    s1 = 0.0
    s2 = 0.0
    for start in range(0, networks, chunk):
        m = min(chunk, networks - start)
        sig = np.broadcast_to(mlp.bias_vars[0] + mlp.weight_vars[0] * X @ X.T / d, (m, N, N))
        for l in range(mlp.depth):
            chol = np.linalg.cholesky(sig + 1e-12 * np.eye(N))
            z = np.einsum("mij,mkj->mki", chol, rng.standard_normal((m, n, N)))
            s = mlp.activation.fn(z)
            sig = mlp.bias_vars[l + 1] + mlp.weight_vars[l + 1] * np.einsum("mki,mkj->mij", s, s) / n
        v = sig[:, iu[0], iu[1]]
        s1 = s1 + v.sum(0)
        s2 = s2 + v.T @ v
    mean = s1 / networks
    return mean, s2 / networks - np.outer(mean, mean), iu


def test_multi_input_G_and_V_against_random_finite_networks():
    """ReLU with biases, two hidden layers, three inputs: the off-diagonal G is not zero (the
    arc-cosine dual is nonlinear in K_ij) and V couples all pairs."""
    mlp = fc.MLP(depth=2, activation="relu", weight_var=2.0, bias_var=0.1)
    X = fc.sample_sphere(3, 4, seed=5)
    kf = kernel_fluctuations(mlp, X, 32, samples=40_000, seed=3)
    R = 200_000
    # Richardson over n = 32, 64 removes the O(1/n^2) terms of n (E Sigma - K) and n Cov Sigma
    est = {}
    for n in (32, 64):
        mean, cov, iu = _finite_network_kernels(mlp, X, n, R, seed=n)
        est[n] = (n * (mean - kf.kernel[iu]), n * np.sqrt(np.diag(cov) / R), n * cov)
    G_mc = 2 * est[64][0] - est[32][0]
    G_mc_se = np.hypot(2 * est[64][1], est[32][1])
    G_th, G_th_se = kf.kernel_nlo[iu], kf.kernel_nlo_se[iu]
    off = iu[0] != iu[1]
    assert np.all(np.abs(G_th[off]) > 0.1)  # a real signal off the diagonal
    assert np.all(np.abs(G_mc - G_th) <= 4 * np.hypot(G_mc_se, G_th_se))
    V_th = np.array(
        [[kf.vertex[i, j, k, l] for k, l in zip(*iu, strict=True)] for i, j in zip(*iu, strict=True)]
    )
    V_mc = 2 * est[64][2] - est[32][2]
    np.testing.assert_allclose(V_mc, V_th, atol=0.03 * np.abs(V_th).max())
    # and the propagated part matters: the fresh noise of the last layer alone is far off
    one_layer = kernel_fluctuations(
        fc.MLP(depth=1, activation="relu", weight_var=2.0, bias_var=0.1), X, 32, samples=2048, seed=1
    )
    assert np.abs(one_layer.vertex[0, 0, 0, 0] - V_th[0, 0]) > 0.3 * V_th[0, 0]


# ----------------------------------------------------------------------------- posterior
def _gp(K_XX, K_tX, K_tt, y, noise):
    A = np.linalg.solve(K_XX + noise * np.eye(len(y)), K_tX.T).T
    return A @ y, K_tt - np.einsum("tp,tp->t", A, K_tX)


def _deep_linear_exact(X, y, T, noise, n, depth, nodes=120):
    """Exact posterior of a bias-free deep linear network with C_W = 1: the output is exactly a
    GP with kernel s K0, s a product of ``depth`` independent chi^2_n/n (scale mixture); the
    mixture is integrated by Gauss-Legendre rules over +-12 standard deviations of each chi^2."""
    d = X.shape[1]
    K0 = X @ X.T / d
    k0 = T @ X.T / d
    k00 = np.einsum("ij,ij->i", T, T) / d
    k = n / 2  # chi^2_n / n = Gamma(k) / k
    u, wu = np.polynomial.legendre.leggauss(nodes)
    lo, hi = max(k - 12 * np.sqrt(k), 0.0), k + 12 * np.sqrt(k)
    x = 0.5 * (hi + lo) + 0.5 * (hi - lo) * u
    w = wu * np.exp(gamma.logpdf(x, k) - gamma.logpdf(k, k))
    w = w / w.sum()
    s = np.array([1.0])
    ws = np.array([1.0])
    for _ in range(depth):
        s = np.outer(s, x / k).ravel()
        ws = np.outer(ws, w).ravel()
    lam, U = np.linalg.eigh(K0)
    lam = np.clip(lam, 0.0, None)  # rank 2: three inputs in d = 2
    yt = U.T @ y
    logw = np.array([-0.5 * np.sum(np.log(si * lam + noise) + yt**2 / (si * lam + noise)) for si in s])
    pw = ws * np.exp(logw - logw.max())
    pw /= pw.sum()
    means, second = [], []
    for si in s:
        m, v = _gp(si * K0, si * k0, si * k00, y, noise)
        means.append(m)
        second.append(v + m * m)
    mean = pw @ np.array(means)
    return mean, pw @ np.array(second) - mean**2


def test_deep_linear_posterior_against_exact_scale_mixture():
    X = np.array([[1.0, 0.0], [0.6, 0.8], [-0.5, 1.0]])
    y = np.array([1.0, -0.4, 0.7])
    T = np.array([[0.3, -1.0], [0.9, 0.2]])
    noise = 0.1
    gp_m, gp_v = _gp(X @ X.T / 2, T @ X.T / 2, np.einsum("ij,ij->i", T, T) / 2, y, noise)
    # Richardson over n = 256, 512 of n (exact - GP): the O(1/n) coefficients
    coef = {}
    for n in (256, 512):
        m, v = _deep_linear_exact(X, y, T, noise, n, depth=2)
        coef[n] = (n * (m - gp_m), n * (v - gp_v))
    c_mean = 2 * coef[512][0] - coef[256][0]
    c_var = 2 * coef[512][1] - coef[256][1]
    mlp = fc.MLP(depth=2, activation="identity", weight_var=1.0, bias_var=0.0)
    pc = posterior_correction(mlp, X, y, T, noise_var=noise, width=512, seed=4, samples=60_000, variance=True)
    np.testing.assert_allclose(pc.mean_gp, gp_m, rtol=1e-12)
    np.testing.assert_allclose(pc.variance_gp, gp_v, rtol=1e-12)
    assert np.all(np.abs(c_mean) > 0.05)
    assert np.all(np.abs(pc.mean_nlo - c_mean) <= 4 * pc.mean_nlo_se)
    assert np.all(np.abs(pc.variance_nlo - c_var) <= 4 * pc.variance_nlo_se)
    assert np.all(pc.mean_nlo_se < 0.03 * np.abs(c_mean))


def _one_hidden_exact(X, y, T, noise, n, cw, cb, w_var, b_var, networks, seed):
    """Exact finite-width posterior of a one-hidden-layer network by importance sampling over the
    hidden weights (prior draws), with the readout integrated analytically: given the hidden
    units the output is a GP with kernel C_b + C_W S S^T / n."""
    from scipy.special import erf

    rng = np.random.default_rng(seed)
    Z = np.concatenate([X, T])
    P = len(y)
    d = X.shape[1]
    logws, means = [], []
    for _ in range(networks // 20_000):
        W = rng.standard_normal((20_000, n, d)) * np.sqrt(w_var / d)
        b = rng.standard_normal((20_000, n, 1)) * np.sqrt(b_var)
        S = erf(W @ Z.T + b)  # (R, n, points)
        K = cb + cw * np.einsum("rki,rkj->rij", S, S) / n
        Kt = K[:, :P, :P] + noise * np.eye(P)
        L = np.linalg.cholesky(Kt)
        alpha = np.linalg.solve(Kt, y[None, :, None])[..., 0]
        logws.append(
            -0.5 * np.einsum("ri,ri->r", alpha, y[None]) - np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
        )
        means.append(np.einsum("rti,ri->rt", K[:, P:, :P], alpha))
    logw = np.concatenate(logws)
    m = np.concatenate(means)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean = w @ m
    se = np.sqrt(np.sum(w[:, None] ** 2 * (m - mean) ** 2, axis=0))  # self-normalised IS error
    return mean, se


def test_one_hidden_layer_erf_posterior_mean_against_importance_sampling():
    X = np.array([[-1.0], [-0.3], [0.5]])
    y = np.array([0.8, -0.5, 0.3])
    T = np.array([[1.2]])
    noise, cw, cb, w_var, b_var = 0.2, 1.5, 0.1, 1.0, 0.2
    mlp = fc.MLP(depth=1, activation="erf", weight_var=[w_var, cw], bias_var=[b_var, cb])
    pc = posterior_correction(mlp, X, y, T, noise_var=noise, width=32, seed=5, samples=40_000)
    n = 32
    exact, se = _one_hidden_exact(X, y, T, noise, n, cw, cb, w_var, b_var, 200_000, seed=6)
    measured = n * (exact - pc.mean_gp)
    # O(1/n^2): a few percent at n = 32 (the coefficient moves by 5% from n = 16 to 32)
    tol = 4 * np.hypot(n * se, pc.mean_nlo_se) + 0.05 * np.abs(pc.mean_nlo)
    assert np.all(np.abs(pc.mean_nlo) > 0.05)
    assert np.all(np.abs(measured - pc.mean_nlo) <= tol)


def test_test_error_correction_is_the_derivative_of_the_error():
    """test_error_nlo = 2 mean((m_GP - y) mean_nlo) by definition; check it and the corrected error."""
    mlp = fc.MLP(depth=2, activation="relu", weight_var=2.0, bias_var=0.1)
    X = fc.sample_sphere(20, 5, seed=1)
    T = fc.sample_sphere(30, 5, seed=2)
    y, yt = X[:, 0] + 0.3 * X[:, 1] ** 2, T[:, 0] + 0.3 * T[:, 1] ** 2
    pc = posterior_correction(mlp, X, y, T, noise_var=0.1, width=100, seed=1, y_test=yt, samples=512)
    r = pc.mean_gp - yt
    assert pc.test_error_gp == pytest.approx(np.mean(r * r), rel=1e-12)
    assert pc.test_error_nlo == pytest.approx(2 * np.mean(r * pc.mean_nlo), rel=1e-9)
    assert pc.test_error == pytest.approx(pc.test_error_gp + pc.test_error_nlo / 100, rel=1e-12)
    assert pc.expansion_parameter == pytest.approx(2 * 20 / 100)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"noise_var": -1.0}, "noise_var"),
        ({"samples": 3}, "samples"),
        ({"y": np.ones(4)}, "y must"),
        ({"X_test": np.ones((2, 3))}, "X_test"),
    ],
)
def test_posterior_correction_bad_input(kwargs, match):
    mlp = fc.MLP(depth=1, activation="tanh")
    args = {
        "X": np.ones((3, 2)),
        "y": np.ones(3),
        "X_test": np.ones((2, 2)),
        "noise_var": 0.1,
        "width": 8,
        "seed": 0,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        posterior_correction(mlp, **args)


def test_depth_zero_and_too_many_vertex_points_rejected():
    with pytest.raises(ValueError, match="depth 0"):
        posterior_correction(
            fc.MLP(depth=0), np.ones((3, 2)), np.ones(3), np.ones((1, 2)), noise_var=0.1, width=8, seed=0
        )
    with pytest.raises(ValueError, match="vertex"):
        kernel_fluctuations(fc.MLP(depth=1), fc.sample_sphere(41, 3, seed=0), 8, seed=0)


def test_unit_fast_path_equals_block_path(monkeypatch):
    """The last hidden layer's per-unit matrix products are an algebraic rewrite of the generic
    block contraction: on the same units they agree to round-off (mean and variance)."""
    import fieldcurve.finite_width_posterior as fwp

    mlp = fc.MLP(depth=1, activation="tanh", weight_var=1.5, bias_var=0.1)
    X, T = fc.sample_sphere(6, 3, seed=1), fc.sample_sphere(4, 3, seed=2)
    y = X[:, 0] - X[:, 1] ** 2
    kw = dict(noise_var=0.05, width=16, seed=3, samples=2048, unit_samples=2048, variance=True)
    fast = posterior_correction(mlp, X, y, T, batch=4, **kw)
    original = fwp._sweep

    def blocks_only(mlp_, layers, X_, T_, samples, seed, batch, visit, visit_units=None, unit_samples=0):
        return original(mlp_, layers, X_, T_, unit_samples, seed, 16 * batch, visit)

    monkeypatch.setattr(fwp, "_sweep", blocks_only)
    slow = posterior_correction(mlp, X, y, T, batch=4, **kw)
    np.testing.assert_allclose(fast.mean_nlo, slow.mean_nlo, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fast.variance_nlo, slow.variance_nlo, rtol=1e-9, atol=1e-12)


def test_finite_width_learning_curve_draws_representative_training_sets():
    """The infinite-width part is the GP learning curve; the sampled training sets reproduce it
    (their GP error averages to the theory within 25% with 6 sets of 400 test points)."""
    mlp = fc.MLP(depth=1, activation="relu", weight_var=2.0, bias_var=0.1)
    target = fc.Target.from_degree_powers({1: 1.0, 2: 0.5}, noise=0.1, d=6)
    P = [10, 40]
    curve = fc.finite_width_learning_curve(
        mlp, target, P, width=64, seed=1, trials=6, n_test=400, unit_samples=4096, samples=256
    )
    theory = fc.learning_curve(fc.spectrum(fc.nngp_kernel(mlp), 6, 40), target, P, ridge=0.1).test_error
    np.testing.assert_allclose(curve.test_error_infinite, theory, rtol=1e-12)
    np.testing.assert_allclose(curve.test_error_gp_sampled, theory, rtol=0.25)
    assert curve.correction_se.shape == (2,) and np.all(curve.correction_se > 0)
    np.testing.assert_allclose(curve.expansion_parameter, [10 / 64, 40 / 64])
    with pytest.raises(ValueError, match="noise_var"):
        fc.finite_width_learning_curve(mlp, fc.Target.from_degree_powers({1: 1.0}, d=6), P, width=8, seed=0)
    with pytest.raises(ValueError, match="trials"):
        fc.finite_width_learning_curve(mlp, target, P, width=8, seed=0, trials=1)


def test_bayesian_finite_width_does_not_depend_on_the_parameterisation():
    """The prior over functions of a width-n network is the same in the NTK and the standard
    parameterisation (W ~ N(0, C_W/n) either way; only the NTK differs), so K, G, V, the
    posterior correction and the finite-width learning curve of a standard-parameterisation MLP
    (also with trained zero-initialised biases) are those of the NTK-parameterisation MLP
    (validated above against exact posteriors and finite networks), bit for bit."""
    ntk = fc.MLP(depth=2, activation="tanh", weight_var=1.5, bias_var=[0.1, 0.0, 0.2])
    std = fc.MLP(2, "tanh", 1.5, [0.1, 0.0, 0.2], parameterization="standard", width=16, bias="trainable")
    X = fc.sample_sphere(4, 3, seed=2)
    T = fc.sample_sphere(2, 3, seed=3)
    y = np.array([0.3, -0.2, 1.0, 0.1])
    a, b = (kernel_fluctuations(m, X, 16, samples=256, seed=4) for m in (ntk, std))
    for name in ("kernel", "kernel_nlo", "kernel_nlo_se", "vertex"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    kw = dict(noise_var=0.1, width=16, seed=5, samples=256, unit_samples=256, y_test=np.zeros(2))
    a, b = (posterior_correction(m, X, y, T, **kw) for m in (ntk, std))
    for name in ("mean_gp", "mean_nlo", "mean_nlo_se", "test_error_nlo"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    target = fc.Target.from_degree_powers({1: 1.0}, noise=0.1, d=6)
    ntk = fc.MLP(depth=1, activation="relu", weight_var=2.0, bias_var=0.1)
    std = fc.MLP(1, "relu", 2.0, 0.1, parameterization="standard", width=16)
    kw = dict(width=16, seed=6, trials=2, n_test=10, unit_samples=64, samples=64)
    a, b = (fc.finite_width_learning_curve(m, target, [5], **kw) for m in (ntk, std))
    assert np.array_equal(a.correction, b.correction)
    assert np.array_equal(a.test_error_infinite, b.test_error_infinite)
