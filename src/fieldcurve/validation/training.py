r"""Training finite networks: full-batch gradient descent and Langevin dynamics (JAX, CPU).

Gradient descent (the lazy / NTK regime at large width; Jacot et al. 2018, Lee et al. 2019)
minimises :math:`L(\theta) = \frac1{2P}\sum_{i,c}(f_c(x_i;\theta) - y_{ic})^2` with
:math:`\theta \leftarrow \theta - \eta\nabla L`. Linearised, the residual evolves as
:math:`r \leftarrow (I - \eta\Theta/P)\,r`, stable for :math:`\eta < 2P/\lambda_{max}(\Theta)`;
the default :math:`\eta = P/\lambda_{max}` uses the empirical NTK on the training set at
initialisation. Training stops when the training MSE :math:`\frac1P\sum(f-y)^2` falls below
``tol`` times the labels' mean power, or after ``max_steps`` (``converged`` records which).
Initialisations: ``"standard"``; ``"centered"`` trains :math:`f(\theta) - f(\theta_0)`; and
``"antisymmetric"`` (Zhang et al. 2019) trains :math:`(f(\theta_a) - f(\theta_b))/\sqrt2` from
:math:`\theta_a = \theta_b`. The last two start from :math:`f_0 = 0` with the same NTK, so the
initialisation term of the GD learning curve is absent.

Langevin dynamics (Welling & Teh 2011; Naveh et al. 2021) samples the Bayesian posterior with
the initialisation distribution as Gaussian prior and Gaussian likelihood of variance
:math:`\sigma^2`:

.. math::
    U(\theta) = \frac{1}{2\sigma^2}\sum_{i,c}(f_c(x_i;\theta) - y_{ic})^2
              + \frac12\sum_j \frac{\theta_j^2}{v_j},\qquad
    \theta \leftarrow \theta - \eta\nabla U + \sqrt{2\eta}\,\xi,\quad \xi\sim\mathcal N(0, I),

whose stationary density is :math:`\propto e^{-U}` up to :math:`O(\eta)` discretisation error
(:math:`v_j` = prior variance of parameter :math:`j`: 1 in the NTK parameterisation). The
weight decay :math:`1/v_j` and the temperature are fixed by the prior and :math:`\sigma^2`.
The posterior mean of the outputs at test points is the average over samples taken every
``thin`` steps after ``burn_in`` steps, over independent chains (vectorised with ``vmap``).
At infinite width it is GP regression with the NNGP kernel and noise :math:`\sigma^2`.
The default step :math:`\eta = c/(\lambda_{max}(\Theta)/\sigma^2 + 1/v_{min})` keeps the
stiffest direction stable (``lr_factor`` c = 0.5).

Rao–Blackwellised posterior mean (``rao_blackwell=True``). Given the hidden layers, the output
layer :math:`f = c\,h^\top W + s\,b` is linear in its own parameters with Gaussian prior and
likelihood, so its conditional posterior is exactly Gaussian with the mean of Bayesian linear
regression on the last hidden features :math:`h` (GP regression with the random kernel
:math:`\hat\Sigma = c^2 v_W\,h h^\top + s^2 v_b`):

.. math:: \mathbb E[f(x_*)\,|\,\text{hidden}, y] = \hat\Sigma_{*X}(\hat\Sigma_{XX} + \sigma^2 I)^{-1}y .

Averaging this over the chain's samples of the hidden layers estimates the same posterior mean
with the read-out noise integrated out exactly (Rao–Blackwell: the variance cannot increase).
What remains fluctuates only with the hidden layers' empirical kernel, :math:`O(1/n)` for wide
networks, so the estimate is far less noisy exactly where finite-width effects are small.
It also removes the discretisation error of the read-out layer, whose conditional law the
chain only approximates to :math:`O(\eta)`.

Diagnostics: the effective sample size (ESS) of the tracked test outputs, by Geyer's initial
positive sequence estimator of the integrated autocorrelation time on each chain (Geyer 1992),
summed over chains; and the Monte Carlo variance of the posterior-mean estimate per test point,
from the spread between chains, which :func:`posterior_test_error` subtracts so that the test
error of the *exact* posterior mean is estimated without the sampling noise bias.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fieldcurve.kernels import MLP
from fieldcurve.validation.networks import Params, _forward, _scales, apply_mlp, empirical_ntk

__all__ = [
    "GDResult",
    "LangevinResult",
    "effective_sample_size",
    "gd_train",
    "gd_train_ensemble",
    "langevin_sample",
    "posterior_test_error",
    "posterior_test_error_se",
]

_INITS = ("standard", "centered", "antisymmetric")


@dataclass
class GDResult:
    """Outcome of gradient-descent training (arrays over the ensemble for ensembles)."""

    params: Any = field(repr=False)
    steps: int
    train_mse: Any
    converged: Any
    lr: Any
    lambda_max: Any
    predict: Any = field(repr=False)  # predict(x) -> outputs of the trained model(s)


def _member_fn(mlp: MLP, init: str) -> Any:
    """f(theta, theta0, x) of one member for the initialisation scheme (module docstring)."""
    if init not in _INITS:
        raise ValueError(f"init must be one of {_INITS}, got {init!r}")
    if init == "standard":
        return lambda th, th0, x: apply_mlp(mlp, th, x)
    if init == "centered":
        return lambda th, th0, x: apply_mlp(mlp, th, x) - apply_mlp(mlp, th0, x)
    return lambda th, th0, x: (apply_mlp(mlp, th[0], x) - apply_mlp(mlp, th[1], x)) / math.sqrt(2.0)


def _cached(builder: Any) -> Any:
    """Memoise a builder of compiled functions on its (hashable) arguments, so repeated runs of
    the same network reuse JAX's compilation cache instead of re-tracing new closures."""
    cache = functools.lru_cache(maxsize=32)(builder)

    def get(*args: Any) -> Any:
        try:
            hash(args)
        except TypeError:  # e.g. per-layer variances given as lists: no memoisation
            return builder(*args)
        return cache(*args)

    return get


def _lambda_max(mlp: MLP, params0: Params, X: jax.Array) -> float:
    """Largest eigenvalue of the empirical NTK on the training inputs (evaluated eagerly: one
    evaluation costs less than compiling it)."""
    T = np.asarray(empirical_ntk(mlp, params0, X))
    return float(np.linalg.eigvalsh(0.5 * (T + T.T))[-1])


@_cached
def _gd_functions(mlp: MLP, init: str, check_every: int, batched: bool) -> tuple[Any, Any]:
    """(chunk, loss): ``check_every`` compiled GD steps (vmapped over members if ``batched``)
    returning the new parameters and the training MSE, and the plain loss; data are passed as
    arguments (not captured), so one compilation serves every run of the same shapes."""
    f = _member_fn(mlp, init)

    def loss(th: Any, th0: Any, X: jax.Array, Y: jax.Array) -> jax.Array:
        return 0.5 * jnp.mean(jnp.sum((f(th, th0, X) - Y) ** 2, axis=1))

    grad = jax.grad(loss)

    def member_chunk(th: Any, th0: Any, step: jax.Array, X: jax.Array, Y: jax.Array) -> tuple[Any, jax.Array]:
        def body(_: int, t: Any) -> Any:
            return jax.tree_util.tree_map(lambda a, g: a - step * g, t, grad(t, th0, X, Y))

        th = jax.lax.fori_loop(0, check_every, body, th)
        return th, 2 * loss(th, th0, X, Y)

    if batched:
        return jax.jit(jax.vmap(member_chunk, in_axes=(0, 0, 0, None, None))), loss
    return jax.jit(member_chunk), loss


def _squeeze(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: a[0], tree)


def _check_data(X: Any, Y: Any) -> tuple[jax.Array, jax.Array]:
    X = jnp.asarray(X)
    Y = jnp.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X must be (P, d) and Y (P,) or (P, C) with the same P; got {X.shape}, {Y.shape}")
    if not (bool(jnp.all(jnp.isfinite(X))) and bool(jnp.all(jnp.isfinite(Y)))):
        raise ValueError("X and Y must be finite (no NaN or inf)")
    return X, Y


def gd_train(
    mlp: MLP,
    params0: Params,
    X: Any,
    Y: Any,
    *,
    init: str = "standard",
    lr: float | None = None,
    lr_factor: float = 1.0,
    tol: float = 1e-6,
    max_steps: int = 100_000,
    check_every: int = 100,
) -> GDResult:
    """Full-batch gradient descent on the MSE to convergence (module docstring).

    The loop runs ``check_every`` steps inside one compiled ``lax.fori_loop`` between checks of
    the training loss, so the harness adds little over a bare JAX loop (see benchmarks/); the
    number of steps is therefore a multiple of ``check_every`` (``max_steps`` is rounded up).
    """
    batched = jax.tree_util.tree_map(lambda a: a[None], params0)
    res = gd_train_ensemble(
        mlp,
        batched,
        X,
        Y,
        init=init,
        lr=lr,
        lr_factor=lr_factor,
        tol=tol,
        max_steps=max_steps,
        check_every=check_every,
    )
    ensemble_predict = res.predict
    return GDResult(
        params=jax.tree_util.tree_map(lambda a: a[0], res.params),
        steps=res.steps,
        train_mse=float(res.train_mse[0]),
        converged=bool(res.converged[0]),
        lr=float(res.lr[0]),
        lambda_max=float(res.lambda_max[0]),
        predict=lambda x: ensemble_predict(x)[0],
    )


def gd_train_ensemble(
    mlp: MLP,
    params0: Params,
    X: Any,
    Y: Any,
    *,
    init: str = "standard",
    lr: float | None = None,
    lr_factor: float = 1.0,
    tol: float = 1e-6,
    max_steps: int = 100_000,
    check_every: int = 100,
) -> GDResult:
    """:func:`gd_train` for an ensemble: ``params0`` has a leading ensemble axis (``vmap`` of
    :func:`~fieldcurve.validation.networks.init_mlp` over keys), trained in one vectorised loop.
    Each member has its own step size from its own NTK; all run until every member meets
    ``tol`` (or ``max_steps``)."""
    X, Y = _check_data(X, Y)
    P = X.shape[0]
    f = _member_fn(mlp, init)
    n_members = jax.tree_util.tree_leaves(params0)[0].shape[0]
    lams = np.array(
        [_lambda_max(mlp, jax.tree_util.tree_map(lambda a, i=i: a[i], params0), X) for i in range(n_members)]
    )
    lrs = np.full(n_members, float(lr)) if lr is not None else lr_factor * P / lams
    if not np.all(lrs > 0):
        raise ValueError(f"learning rate must be positive, got {lrs}")
    theta = (params0, jax.tree_util.tree_map(jnp.copy, params0)) if init == "antisymmetric" else params0
    target = tol * float(jnp.mean(jnp.sum(Y**2, axis=1)))

    batched = n_members > 1
    chunk, loss = _gd_functions(mlp, init, check_every, batched)
    lr_arr = jnp.asarray(lrs, dtype=jax.tree_util.tree_leaves(params0)[0].dtype)
    mse = np.asarray(jax.vmap(lambda th, th0: 2 * loss(th, th0, X, Y))(theta, params0))  # eager
    if not batched:  # one network: no batch axis inside the compiled loop
        theta, th0, lr_arr = _squeeze(theta), _squeeze(params0), lr_arr[0]
    steps = 0
    while np.max(mse) > target and steps < max_steps:
        if batched:
            theta, mse_arr = chunk(theta, params0, lr_arr, X, Y)
        else:
            theta, mse_arr = chunk(theta, th0, lr_arr, X, Y)
        steps += check_every
        mse = np.atleast_1d(np.asarray(mse_arr))
        if not np.all(np.isfinite(mse)):
            raise FloatingPointError(f"gradient descent diverged at step {steps} (lr = {lrs})")
    final = theta if batched else jax.tree_util.tree_map(lambda a: a[None], theta)

    def predict(x: Any) -> jax.Array:
        return jax.vmap(lambda th, th0: f(th, th0, jnp.asarray(x)))(final, params0)

    return GDResult(
        params=final,
        steps=steps,
        train_mse=mse,
        converged=mse <= target,
        lr=lrs,
        lambda_max=lams,
        predict=predict,
    )


# ----------------------------------------------------------------------------- Langevin
@dataclass
class LangevinResult:
    """Posterior-mean outputs at the test points and the sampling diagnostics."""

    mean: np.ndarray  # (n_test, C): average over samples and chains
    chain_means: np.ndarray  # (chains, n_test, C)
    mc_variance: np.ndarray  # (n_test, C): Monte Carlo variance of ``mean`` (between chains)
    samples_per_chain: int
    ess: float  # smallest ESS over the tracked outputs (summed over chains)
    ess_median: float
    lr: float
    steps: int
    burn_in: int
    thin: int


def _prior_variances(mlp: MLP, params: Params) -> Params:
    if mlp.parameterization != "standard":
        return jax.tree_util.tree_map(jnp.ones_like, params)
    out = []
    for i, layer in enumerate(params):
        n_in = layer["W"].shape[0]
        entry = {"W": jnp.full_like(layer["W"], mlp.weight_vars[i] / n_in)}
        if "b" in layer:
            entry["b"] = jnp.full_like(layer["b"], mlp.bias_vars[i])
        out.append(entry)
    return out


def langevin_sample(
    mlp: MLP,
    params0: Params,
    X: Any,
    Y: Any,
    X_test: Any,
    *,
    noise_var: float,
    key: jax.Array,
    steps: int = 20_000,
    burn_in: int = 5_000,
    thin: int = 50,
    lr: float | None = None,
    lr_factor: float = 0.5,
    track: int = 8,
    noise: str = "gaussian",
    rao_blackwell: bool = False,
) -> LangevinResult:
    """Langevin chains from ``params0`` (leading axis = chains) (module docstring).

    ``noise="rademacher"`` replaces the Gaussian increments by random signs (same mean, variance
    and third moment: a weak first-order scheme with the same O(lr) accuracy of the stationary
    averages, exact posterior mean for Gaussian targets); it draws one random bit per parameter
    instead of a normal, which dominates the cost of a step for wide networks on CPU.
    ``rao_blackwell=True`` averages the read-out layer's exact conditional posterior mean instead
    of the sampled outputs (module docstring).
    """
    if noise not in ("gaussian", "rademacher"):
        raise ValueError(f"noise must be 'gaussian' or 'rademacher', got {noise!r}")
    X, Y = _check_data(X, Y)
    Xt = jnp.asarray(X_test)
    if not noise_var > 0:
        raise ValueError(f"noise_var must be positive (it is the temperature), got {noise_var}")
    if burn_in >= steps or thin < 1:
        raise ValueError("need burn_in < steps and thin >= 1")
    n_chains = jax.tree_util.tree_leaves(params0)[0].shape[0]
    first = jax.tree_util.tree_map(lambda a: a[0], params0)
    v = _prior_variances(mlp, first)
    v_min = min(float(jnp.min(a)) for a in jax.tree_util.tree_leaves(v))
    if not v_min > 0:
        raise ValueError(
            "Langevin sampling needs a positive prior variance for every parameter: a bias with"
            " bias_var = 0 (MLP(bias='trainable')) has a point-mass prior; use bias='auto' (no such"
            " bias: the same posterior) or a positive bias_var"
        )
    if lr is None:
        lr = lr_factor / (_lambda_max(mlp, first, X) / noise_var + 1.0 / v_min)
    n_samples = (steps - burn_in) // thin
    n_track = min(track, Xt.shape[0])

    def potential(th: Any) -> jax.Array:
        fit = jnp.sum((apply_mlp(mlp, th, X) - Y) ** 2) / (2 * noise_var)
        prior = sum(
            jnp.sum(a * a / w)
            for a, w in zip(jax.tree_util.tree_leaves(th), jax.tree_util.tree_leaves(v), strict=True)
        )
        return fit + 0.5 * prior

    grad = jax.grad(potential)
    conditional = functools.partial(_readout_posterior_mean, mlp, X=X, Y=Y, X_test=Xt, noise_var=noise_var)
    noise_scale = math.sqrt(2 * lr)

    draw = _rademacher if noise == "rademacher" else (lambda kk, shape, dt: jax.random.normal(kk, shape, dt))

    def one_step(th: Any, k: jax.Array) -> Any:
        leaves, tree = jax.tree_util.tree_flatten(th)
        keys = jax.random.split(k, len(leaves))
        g = jax.tree_util.tree_leaves(grad(th))
        new = [
            a - lr * ga + noise_scale * draw(kk, a.shape, a.dtype)
            for a, ga, kk in zip(leaves, g, keys, strict=True)
        ]
        return jax.tree_util.tree_unflatten(tree, new)

    def run_steps(th: Any, k: jax.Array, n: int) -> Any:
        return jax.lax.fori_loop(0, n, lambda i, t: one_step(t, jax.random.fold_in(k, i)), th)

    def chain(th: Any, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_burn, k_run = jax.random.split(k)
        th = run_steps(th, k_burn, burn_in)

        def sample(carry: Any, kk: jax.Array) -> tuple[Any, Any]:
            t, acc = carry
            t = run_steps(t, kk, thin)
            out = conditional(t) if rao_blackwell else apply_mlp(mlp, t, Xt)
            return (t, acc + out), out[:n_track, 0]

        zero = jnp.zeros((Xt.shape[0], Y.shape[1]), dtype=Xt.dtype)
        (_, acc), trace = jax.lax.scan(sample, (th, zero), jax.random.split(k_run, n_samples))
        return acc / n_samples, trace

    chain_means, traces = jax.jit(jax.vmap(chain))(params0, jax.random.split(key, n_chains))
    chain_means = np.asarray(chain_means)
    traces = np.asarray(traces)  # (chains, samples, track)
    ess = np.array([effective_sample_size(traces[:, :, j]) for j in range(n_track)])
    mc_var = (
        chain_means.var(axis=0, ddof=1) / n_chains if n_chains > 1 else np.full(chain_means.shape[1:], np.nan)
    )
    return LangevinResult(
        mean=chain_means.mean(axis=0),
        chain_means=chain_means,
        mc_variance=mc_var,
        samples_per_chain=n_samples,
        ess=float(ess.min()),
        ess_median=float(np.median(ess)),
        lr=float(lr),
        steps=steps,
        burn_in=burn_in,
        thin=thin,
    )


def _readout_posterior_mean(
    mlp: MLP, params: Params, *, X: jax.Array, Y: jax.Array, X_test: jax.Array, noise_var: float
) -> jax.Array:
    r"""Posterior mean of the outputs at ``X_test`` given the hidden layers of ``params``: Bayesian
    linear regression of ``Y`` on the last hidden features, :math:`\hat\Sigma_{*X}(\hat\Sigma_{XX} +
    \sigma^2 I)^{-1}Y` with :math:`\hat\Sigma = c^2 v_W hh^\top + s^2 v_b` (module docstring)."""
    P = X.shape[0]
    hs, _ = _forward(mlp, params, jnp.concatenate([X, X_test]))
    h = hs[-1]
    c, s = _scales(mlp, params)[-1]
    v = _prior_variances(mlp, params)[-1]
    kern = (c * c) * (h * v["W"][:, 0]) @ h.T
    if "b" in params[-1]:
        kern = kern + (s * s) * v["b"][0]
    A = kern[:P, :P] + noise_var * jnp.eye(P, dtype=kern.dtype)
    return kern[P:, :P] @ jnp.linalg.solve(A, Y)


def _rademacher(key: jax.Array, shape: tuple, dtype: Any) -> jax.Array:
    """Independent random signs: 32 per 32-bit word of threefry output."""
    size = int(np.prod(shape)) if shape else 1
    words = jax.random.bits(key, ((size + 31) // 32, 1), jnp.uint32)
    bits = ((words >> jnp.arange(32, dtype=jnp.uint32)) & 1).astype(bool).reshape(-1)
    signs = jnp.where(bits, jnp.asarray(1, dtype), jnp.asarray(-1, dtype))
    return (signs if signs.size == size else signs[:size]).reshape(shape)


def effective_sample_size(chains: np.ndarray) -> float:
    r"""ESS of a scalar from an array (chains, samples): per chain
    :math:`N/\tau`, :math:`\tau = 1 + 2\sum_k\rho_k` summed over Geyer's initial positive
    sequence of pair sums :math:`\rho_{2m} + \rho_{2m+1} > 0`; summed over chains."""
    chains = np.atleast_2d(np.asarray(chains, dtype=np.float64))
    total = 0.0
    for x in chains:
        n = x.size
        x = x - x.mean()
        var = float(np.dot(x, x)) / n
        if n < 4 or var == 0:
            total += n
            continue
        f = np.fft.rfft(x, 2 * n)
        acov = np.fft.irfft(f * np.conj(f))[:n] / n
        rho = acov / acov[0]
        tau = -1.0  # 1 + 2 * sum_{k>=1} rho_k = -1 + 2 * sum_{k>=0} rho_k
        for m in range(n // 2):
            pair = rho[2 * m] + rho[2 * m + 1]
            if pair <= 0:
                break
            tau += 2 * pair
        total += n / max(tau, 1e-12)
    return float(total)


def posterior_test_error(result: LangevinResult, Y_test: Any) -> tuple[float, float]:
    r"""Test error of the posterior mean, :math:`\frac1n\sum_x\sum_c(\bar f - y)^2`, and the same
    with the Monte Carlo variance of :math:`\bar f` subtracted (unbiased for the exact posterior
    mean; needs two or more chains)."""
    Y_test = np.asarray(Y_test, dtype=np.float64)
    if Y_test.ndim == 1:
        Y_test = Y_test[:, None]
    raw = float(np.mean(np.sum((result.mean - Y_test) ** 2, axis=1)))
    corrected = raw - float(np.mean(np.sum(result.mc_variance, axis=1)))
    return raw, corrected


def posterior_test_error_se(result: LangevinResult, Y_test: Any) -> float:
    """Monte Carlo standard error of :func:`posterior_test_error`: the spread of the test errors
    of the single chains' means divided by the square root of the number of chains (to first
    order the sampling noise of the test error is linear in that of the mean)."""
    Y_test = np.asarray(Y_test, dtype=np.float64)
    if Y_test.ndim == 1:
        Y_test = Y_test[:, None]
    per_chain = np.mean(np.sum((result.chain_means - Y_test[None]) ** 2, axis=2), axis=1)
    if len(per_chain) < 2:
        return float("nan")
    return float(per_chain.std(ddof=1) / math.sqrt(len(per_chain)))
