r"""Non-negative Taylor coefficients of MLP kernels by Mehler-series composition (private).

For inputs on the sphere every layer sees equal variances :math:`q`, and the Mehler expansion

.. math:: \mathbb E[\phi(u)\phi(v)] = f(c) = \sum_{m\ge0}\frac{g_m(q)^2}{m!}c^m,\qquad
          g_m(q) = \mathbb E[\phi^{(m)}(\sqrt q z)],

(and the same with :math:`g_{m+1}` for :math:`\mathbb E[\phi'\phi']`) has non-negative
coefficients (Daniely, Frostig & Singer 2016). The pre-activation kernel :math:`c(t) = \beta_0 +
h(t)` has non-negative coefficients, so re-expanding :math:`f` about :math:`\beta_0`,

.. math:: f(\beta_0 + h) = \sum_j e_j h^j,\qquad
          e_j = \frac1{j!}\sum_{k\ge0}\frac{g_{j+k}^2\,\beta_0^k}{k!},

and composing with :math:`h(t) = O(t)` is exact to order :math:`N` and uses only sums and
products of non-negative numbers: every coefficient carries a relative error of a few ulp per
layer, however small it is. The :math:`e_j` are summed in log space, scaled by
:math:`r^j` with :math:`r = h(1)`, so nothing overflows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln, logsumexp


def _shifted_log_coefficients(
    log_g: NDArray[np.float64], beta0: float, log_r: float, n_max: int, n_terms: int
) -> NDArray[np.float64]:
    r"""log of :math:`\hat e_j = e_j r^j` for j = 0..n_max, from :math:`\log|g_m|`, m < len(log_g)."""
    out = np.empty(n_max + 1)
    k = np.arange(n_terms + 1)
    log_beta_k = k * math.log(beta0) - gammaln(k + 1) if beta0 > 0 else np.where(k == 0, 0.0, -np.inf)
    chunk = max(1, 4_000_000 // (n_terms + 1))
    for s in range(0, n_max + 1, chunk):
        j = np.arange(s, min(n_max + 1, s + chunk))
        terms = 2 * log_g[j[:, None] + k[None, :]] + log_beta_k[None, :]
        out[j] = logsumexp(terms, axis=1) - gammaln(j + 1) + j * log_r
    return out


def _compose(log_e_hat: NDArray[np.float64], h_hat: NDArray[np.float64]) -> NDArray[np.float64]:
    r""":math:`\sum_j \hat e_j \hat h(t)^j` to order ``len(h_hat) - 1`` (Horner, :math:`\hat h_0 = 0`)."""
    n_max = len(h_hat) - 1
    e_hat = np.exp(log_e_hat)
    r = np.array([e_hat[n_max]])
    for j in range(n_max - 1, -1, -1):
        keep = n_max - j + 1
        r = np.convolve(h_hat[:keep], r)[:keep]
        r[0] += e_hat[j]
    return r


def _apply_series(log_g: NDArray[np.float64], c: NDArray[np.float64], n_max: int) -> NDArray[np.float64]:
    """Taylor coefficients of f(c(t)) for the Mehler series with moments exp(log_g)."""
    beta0 = float(c[0])
    h = c.copy()
    h[0] = 0.0
    r = float(h.sum())
    if r <= 0:
        out = np.zeros(n_max + 1)
        k = np.arange(len(log_g))
        out[0] = float(
            np.exp(
                logsumexp(
                    2 * log_g
                    + (k * math.log(beta0) if beta0 > 0 else np.where(k == 0, 0.0, -np.inf))
                    - gammaln(k + 1)
                )
            )
        )
        return out
    q = beta0 + r
    rho0 = beta0 / q
    n_terms = int((rho0 * n_max + 60) / max(1 - rho0, 1e-12)) + 60
    if len(log_g) < n_max + n_terms + 1:
        raise AssertionError("moment array too short")
    log_e_hat = _shifted_log_coefficients(log_g, beta0, math.log(r), n_max, n_terms)
    return _compose(log_e_hat, h / r)


_MAX_MOMENTS = 20000  # cost of the re-expansion ~ N x moments per layer


def _terms_needed(c: NDArray[np.float64], n_max: int) -> int:
    beta0, r = float(c[0]), float(c[1:].sum())
    if r <= 0:
        return 200
    rho0 = beta0 / (beta0 + r)
    return n_max + int(min((rho0 * n_max + 60) / max(1 - rho0, 1e-12), 1e12)) + 62


def mlp_taylor_coefficients(mlp: Any, kind: str, n_max: int, d: int | None) -> NDArray[np.float64]:
    r"""Taylor coefficients :math:`b_0..b_{n_{max}}` of an MLP's NNGP or NTK as a function of t.

    Follows the layer recursion of :mod:`fieldcurve.kernels` on truncated power series; the
    activation maps are Mehler series composed as described in the module docstring.
    """
    act = mlp.activation
    want_ntk = kind == "ntk"
    standard = mlp.parameterization == "standard"
    k = np.zeros(n_max + 1)
    if n_max >= 1:
        k[1] = 1.0
    q = 1.0
    theta = np.zeros(n_max + 1)
    n_in = d
    for layer in range(mlp.depth + 1):
        w, b = mlp.weight_vars[layer], mlp.bias_vars[layer]
        if want_ntk and standard:
            theta = n_in * k + w * theta
            theta[0] += 1.0 if mlp.has_bias[layer] else 0.0
        k = w * k
        k[0] += b
        q = w * q + b
        if want_ntk and not standard:
            theta = k + w * theta
        if layer == mlp.depth:
            break
        if q <= 0:
            k = np.zeros(n_max + 1)
            k[0] = float(act.dual(0.0, 0.0, 0.0))
            theta = theta * float(act.dual_derivative(0.0, 0.0, 0.0))
            q = k[0]
            n_in = mlp.width
            continue
        m_needed = _terms_needed(k, n_max) + 1
        if m_needed > _MAX_MOMENTS:
            # a nearly constant pre-activation kernel (beta_0 / q -> 1): the re-expansion about
            # beta_0 would need ~ N / (1 - beta_0 / q) moments; the other routes take over
            raise ArithmeticError(
                f"layer {layer + 1}: the series needs {m_needed} Gaussian moments (constant part"
                f" {k[0] / max(q, 1e-300):.6f} of the pre-activation kernel), more than {_MAX_MOMENTS}"
            )
        log_g = act.log_moments(q, m_needed)
        if want_ntk:
            d_series = _apply_series(log_g[1:], k, n_max)
            theta = np.convolve(theta, d_series)[: n_max + 1]
        k = _apply_series(log_g, k, n_max)
        q = float(act.dual(q, q, q))
        n_in = mlp.width
    return theta if want_ntk else k
