"""Reference implementations the benchmarks time fieldcurve against.

Nothing here imports fieldcurve's numerical internals: the Gram baseline is the textbook ReLU
arc-cosine recursion written with whole-matrix numpy operations, and the spectrum baseline is
the Funk–Hecke integral done by ``mpmath.quad`` (only the kernel's own ``mp_eval`` is borrowed,
to integrate exactly the same function).
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
from numpy.typing import NDArray


# --------------------------------------------------------------------------- Gram matrices
def relu_nngp_ntk_numpy(
    X: NDArray[np.float64], depth: int, weight_var: float, bias_var: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""NNGP and NTK Gram matrices of a depth-``depth`` ReLU MLP (NTK parameterisation), plainly.

    Input kernel :math:`K = XX^T/d`, :math:`\Theta = 0`; per Dense layer
    :math:`K \leftarrow \sigma_w^2K+\sigma_b^2`, :math:`\Theta \leftarrow K+\sigma_w^2\Theta`; per
    ReLU, with :math:`\cos\theta = K_{12}/\sqrt{K_{11}K_{22}}` (clipped to [-1, 1]),
    :math:`K \leftarrow \sqrt{K_{11}K_{22}}(\sin\theta+(\pi-\theta)\cos\theta)/2\pi` and
    :math:`\Theta \leftarrow \Theta(\pi-\theta)/2\pi`. Full matrices, one numpy expression per
    step, no tiling and no in-place tricks: the straightforward implementation.
    """
    d = X.shape[1]
    K = X @ X.T / d
    T = np.zeros_like(K)
    for layer in range(depth + 1):
        K = weight_var * K + bias_var
        T = K + weight_var * T
        if layer == depth:
            break
        diag = np.diag(K).copy()
        norm = np.sqrt(np.outer(diag, diag))
        cos = np.clip(K / norm, -1.0, 1.0)
        theta = np.arccos(cos)
        T = T * (np.pi - theta) / (2 * np.pi)
        K = norm * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    return K, T


def sphere_points(n: int, d: int, seed: int) -> NDArray[np.float64]:
    """``n`` seeded uniform points on the sphere of radius sqrt(d) in R^d."""
    X = np.random.default_rng(seed).standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X *= math.sqrt(d)
    return X


def gaussian_inputs(n: int, d: int, seed: int) -> NDArray[np.float64]:
    """``n`` seeded standard Gaussian inputs in R^d (not on the sphere)."""
    return np.random.default_rng(seed).standard_normal((n, d))


# --------------------------------------------------------------------------- Funk–Hecke in mpmath
def legendre_mp(l: int, t: Any, d: int) -> Any:
    r""":math:`P_l^{(d)}(t)` (Gegenbauer :math:`C_l^{(d-2)/2}` normalised to 1 at t = 1), by the
    three-term recurrence :math:`(l+d-2)P_{l+1} = (2l+d-2)tP_l - lP_{l-1}` in mpmath."""
    p0, p1 = mpmath.mpf(1), t
    if l == 0:
        return p0
    for j in range(1, l):
        p0, p1 = p1, ((2 * j + d - 2) * t * p1 - j * p0) / (j + d - 2)
    return p1


def legendre_mp_gegenbauer(l: int, t: Any, d: int) -> Any:
    """The same polynomial from ``mpmath.gegenbauer`` (used once as a cross-check)."""
    a = mpmath.mpf(d - 2) / 2
    return mpmath.gegenbauer(l, a, t) / mpmath.gegenbauer(l, a, 1)


def funk_hecke_mpmath(kernel: Any, d: int, l: int, dps: int) -> tuple[Any, Any]:
    r"""Funk–Hecke eigenvalue by ``mpmath.quad`` (tanh-sinh) at ``dps`` digits.

    .. math:: \lambda_l = c_d\int_0^\pi k(\cos\theta)P_l^{(d)}(\cos\theta)
              \sin^{d-2}\theta\,d\theta

    Returns (value, quad's error estimate).

    :math:`c_d = \Gamma(d/2)/(\sqrt\pi\,\Gamma((d-1)/2))`; :math:`k` is ``kernel.mp_eval(t, d)``.
    """
    with mpmath.workdps(dps):
        cd = mpmath.gamma(mpmath.mpf(d) / 2) / (mpmath.sqrt(mpmath.pi) * mpmath.gamma(mpmath.mpf(d - 1) / 2))

        def integrand(theta: Any) -> Any:
            t = mpmath.cos(theta)
            return kernel.mp_eval(t, d) * legendre_mp(l, t, d) * mpmath.sin(theta) ** (d - 2)

        value, error = mpmath.quad(integrand, [0, mpmath.pi], error=True)
        return +(cd * value), +(cd * error)
