r"""Exact kernel / GP regression Monte Carlo: the cheap ground truth for learning curves.

For each trial: draw a target with exactly the stated power per degree
(:meth:`fieldcurve.targets.Target.sample`), :math:`P_{max}` training points uniform on the
:math:`\sqrt d`-sphere, noisy labels, and a test set; for each P (nested prefixes of the
training set) solve :math:`\hat f = K_{xX}(K_{XX} + \delta I)^{-1}y` by Cholesky (float64; a
tiny jitter :math:`10^{-12}\,\mathrm{tr}K/P` is added only if the ridgeless factorisation fails,
and recorded) and measure :math:`E_g = \frac1{n}\sum_{test}(\hat f - f^*)^2` against the clean
target, in chunks of test points. The mean over trials and its standard error are reported per
P. Per degree, the error of the degree-l part is exact given the fit (no test set):
:math:`\lVert(\hat f - f^*)_l\rVert^2 = \lambda_l^2\alpha^\top Z_l\alpha - 2\lambda_l\alpha^\top
f_l(X) + v_l^2`, with :math:`\alpha = (K+\delta I)^{-1}y` and :math:`Z_l` the zonal harmonic on
the training points.

Networks trained by gradient descent to convergence at infinite width (``init_kernel`` = the
NNGP): :math:`f_\infty = f_0 + \Theta_{xX}\Theta_{XX}^{-1}(y - f_0(X))` with
:math:`f_0\sim\mathrm{GP}(0, K)` independent of the data. The cross term has mean zero over
:math:`f_0`, so each trial adds the *exact* conditional expectation of the initialisation term
(Rao–Blackwellised, no draw of :math:`f_0`), per test point

.. math:: K_{xx} - 2\,K_{xX}B_x + B_x^\top K_{XX}B_x, \qquad B_x = \Theta_{XX}^{-1}\Theta_{Xx}.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg as sla
from numpy.typing import ArrayLike, NDArray
from tqdm import tqdm

from fieldcurve._checks import check_dimension, check_nonneg_int, check_variance
from fieldcurve.kernels import as_kernel
from fieldcurve.sphere import legendre, multiplicity, sample_sphere
from fieldcurve.targets import Target

__all__ = ["EmpiricalCurve", "empirical_dataset_curve", "empirical_learning_curve"]


@dataclass(frozen=True)
class EmpiricalCurve:
    """Measured learning curve: mean and standard error over trials, per P (and per degree)."""

    P: NDArray[np.float64]
    test_error: NDArray[np.float64]
    test_error_sem: NDArray[np.float64]
    error_per_degree: NDArray[np.float64] | None
    error_per_degree_sem: NDArray[np.float64] | None
    degrees: list[int]
    trials: int
    ridge: float
    raw: NDArray[np.float64] = field(repr=False)
    meta: dict = field(default_factory=dict, compare=False)


def _check_P(P: ArrayLike) -> NDArray[np.int64]:
    from fieldcurve.theory.eigenlearning import _check_sizes

    return _check_sizes(P).astype(np.int64)


def _factor(K: NDArray, ridge: float) -> tuple[Any, float]:
    """Cholesky factor of K + ridge I (a growing jitter only if the factorisation fails)."""
    A = K.copy()
    A[np.diag_indices_from(A)] += ridge
    jitter = 0.0
    for _ in range(6):
        try:
            return sla.cho_factor(A, lower=True, check_finite=False), jitter
        except np.linalg.LinAlgError:
            jitter = max(jitter * 100, 1e-12 * float(np.trace(K)) / len(K))
            A = K.copy()
            A[np.diag_indices_from(A)] += ridge + jitter
    raise np.linalg.LinAlgError("kernel matrix is not positive definite even with jitter")


def _init_term(factor: Any, T_xX: NDArray, K0_xX: NDArray, K0_XX: NDArray, K0_xx: NDArray) -> float:
    """Sum over test points of E_f0[(f0(x) - Theta_xX Theta^-1 f0(X))^2] (module docstring)."""
    B = sla.cho_solve(factor, T_xX.T, check_finite=False)  # (P, n)
    return float(np.sum(K0_xx) - 2 * np.sum(K0_xX.T * B) + np.sum(B * (K0_XX @ B)))


def empirical_learning_curve(
    kernel: Any,
    target: Target,
    P: ArrayLike | Sequence[int],
    *,
    d: int | None = None,
    ridge: float = 0.0,
    trials: int = 30,
    seed: int,
    n_test: int = 2000,
    per_degree: bool = True,
    spectrum_for_degrees: Any = None,
    init_kernel: Any = None,
    progress: bool = False,
) -> EmpiricalCurve:
    r"""Monte Carlo learning curve of exact kernel ridge regression on the sphere.

    Parameters
    ----------
    kernel
        A kernel (``nngp_kernel(mlp)``, ``ntk_kernel(mlp)``, any dot-product kernel).
    target
        Synthetic :class:`~fieldcurve.targets.Target` (sampled afresh in every trial).
    P
        Sample sizes (nested prefixes of one training set per trial); up to ~8000.
    d
        Input dimension (defaults to ``target.d``).
    ridge
        :math:`\delta \ge 0`.
    trials, seed
        Number of independent trials and the seed of all random draws.
    n_test
        Test points per trial (the estimator of :math:`E_x`).
    per_degree
        Also return the exact per-degree errors; needs ``spectrum_for_degrees`` (a Spectrum
        of the same kernel) for the :math:`\lambda_l` (without it they are None).
    init_kernel
        The NNGP of a network trained by gradient descent to convergence from random
        initialisation (``kernel`` is then its NTK, ridge 0): adds the exact expected
        initialisation term (module docstring); per-degree errors are then not computed.
    """
    kernel = as_kernel(kernel)
    if init_kernel is not None:
        init_kernel = as_kernel(init_kernel)
        per_degree = False
    if d is None:
        d = target.d
    if d is None:
        raise ValueError("d is required: the target is not tied to an input dimension")
    d = check_dimension(d)
    Ps = _check_P(P)
    ridge = check_variance(ridge, "ridge")
    trials = check_nonneg_int(trials, "trials")
    if trials < 2:
        raise ValueError("trials must be >= 2 (a standard error needs two)")
    n_test = check_nonneg_int(n_test, "n_test")
    if n_test < 1:
        raise ValueError("n_test must be >= 1")
    degrees = [l for l in target.degrees]
    lam = None
    if per_degree and spectrum_for_degrees is not None:
        lam = spectrum_for_degrees.eigenvalues
        if spectrum_for_degrees.d != d:
            raise ValueError("spectrum_for_degrees is for another d")
        if degrees and max(degrees) > spectrum_for_degrees.lmax:
            raise ValueError(
                f"spectrum_for_degrees stops at lmax = {spectrum_for_degrees.lmax}, below the"
                f" target's degree {max(degrees)}"
            )
    rng = np.random.default_rng(seed)
    p_max = int(Ps.max())
    raw = np.empty((trials, len(Ps)))
    raw_deg = np.empty((trials, len(Ps), len(degrees))) if lam is not None else None
    jitters = []
    it = range(trials)
    if progress:
        it = tqdm(it, desc="trials", unit="trial", disable=None)
    for trial in it:
        f = target.sample(d, seed=rng)
        X = sample_sphere(p_max, d, seed=rng)
        y = f.labels(X, seed=rng)
        Xt = sample_sphere(n_test, d, seed=rng)
        ft = f(Xt)
        K = kernel.gram(X)
        f_parts = {l: f.degree_part(X, l) for l in degrees} if raw_deg is not None else {}
        K0 = init_kernel.gram(X) if init_kernel is not None else None
        for j, p in enumerate(Ps):
            factor, jitter = _factor(K[:p, :p], ridge)
            alpha = sla.cho_solve(factor, y[:p], check_finite=False)
            jitters.append(jitter)
            err = 0.0
            for s in range(0, n_test, 2048):
                Kt = kernel.gram(Xt[s : s + 2048], X[:p])
                err += float(np.sum((Kt @ alpha - ft[s : s + 2048]) ** 2))
                if K0 is not None:
                    xs = Xt[s : s + 2048]
                    k0_diag = np.full(len(xs), float(init_kernel(np.ones(1), d)[0]))
                    err += _init_term(factor, Kt, init_kernel.gram(xs, X[:p]), K0[:p, :p], k0_diag)
            raw[trial, j] = err / n_test
            if raw_deg is not None:
                t = np.clip(X[:p] @ X[:p].T / d, -1, 1)
                for k, l in enumerate(degrees):
                    Z = multiplicity(d, l) * legendre(l, t, d)[l]
                    v2 = target.powers[l]
                    raw_deg[trial, j, k] = (
                        lam[l] ** 2 * alpha @ Z @ alpha - 2 * lam[l] * alpha @ f_parts[l][:p] + v2
                    )
    mean = raw.mean(axis=0)
    sem = raw.std(axis=0, ddof=1) / np.sqrt(trials)
    deg_mean = raw_deg.mean(axis=0) if raw_deg is not None else None
    deg_sem = raw_deg.std(axis=0, ddof=1) / np.sqrt(trials) if raw_deg is not None else None
    return EmpiricalCurve(
        P=Ps.astype(np.float64),
        test_error=mean,
        test_error_sem=sem,
        error_per_degree=deg_mean,
        error_per_degree_sem=deg_sem,
        degrees=degrees,
        trials=trials,
        ridge=ridge,
        raw=raw,
        meta={
            "max_jitter": max(jitters) if jitters else 0.0,
            "n_test": n_test,
            "seed": seed,
            "regime": "gd" if init_kernel is not None else "kernel",
        },
    )


def empirical_dataset_curve(
    kernel: Any,
    data: Any,
    P: ArrayLike | Sequence[int],
    *,
    ridge: float = 0.0,
    trials: int = 20,
    seed: int,
    init_kernel: Any = None,
    progress: bool = False,
) -> EmpiricalCurve:
    r"""Kernel regression on a real data set: random training subsets of size P (nested prefixes
    of a random permutation per trial), test error on the held-out points
    :math:`\frac1{n}\sum_{held-out}\sum_c(\hat f_c - y_c)^2` (summed over outputs), mean and
    standard error over trials. The Gram matrix of all M points is computed once. With
    ``init_kernel`` (the NNGP; ``kernel`` its NTK) the exact expected initialisation term of a
    network trained by gradient descent is added, once per output (module docstring).
    """
    from fieldcurve.data import Dataset

    if not isinstance(data, Dataset):
        raise TypeError("data must be a fieldcurve Dataset (see fieldcurve.data)")
    kernel = as_kernel(kernel)
    Ps = _check_P(P)
    ridge = check_variance(ridge, "ridge")
    trials = check_nonneg_int(trials, "trials")
    if trials < 2:
        raise ValueError("trials must be >= 2 (a standard error needs two)")
    M = data.size
    p_max = int(Ps.max())
    if p_max >= M:
        raise ValueError(f"P = {p_max} leaves no held-out points in a data set of M = {M}")
    K = kernel.gram(data.X)
    K0 = as_kernel(init_kernel).gram(data.X) if init_kernel is not None else None
    Y = data.Y
    rng = np.random.default_rng(seed)
    raw = np.empty((trials, len(Ps)))
    it = tqdm(range(trials), desc="trials", unit="trial", disable=None) if progress else range(trials)
    for trial in it:
        perm = rng.permutation(M)
        train, test = perm[:p_max], perm[p_max:]
        for j, p in enumerate(Ps):
            idx = train[:p]
            factor, _ = _factor(K[np.ix_(idx, idx)], ridge)
            alpha = sla.cho_solve(factor, Y[idx], check_finite=False)
            pred = K[np.ix_(test, idx)] @ alpha
            err = float(np.sum((pred - Y[test]) ** 2))
            if K0 is not None:
                init = _init_term(
                    factor, K[np.ix_(test, idx)], K0[np.ix_(test, idx)], K0[np.ix_(idx, idx)], K0[test, test]
                )
                err += Y.shape[1] * init
            raw[trial, j] = err / len(test)
    return EmpiricalCurve(
        P=Ps.astype(np.float64),
        test_error=raw.mean(axis=0),
        test_error_sem=raw.std(axis=0, ddof=1) / np.sqrt(trials),
        error_per_degree=None,
        error_per_degree_sem=None,
        degrees=[],
        trials=trials,
        ridge=ridge,
        raw=raw,
        meta={
            "seed": seed,
            "held_out": M - p_max,
            "data": data.name,
            "regime": "gd" if init_kernel is not None else "kernel",
        },
    )
