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

The piecewise-linear family :math:`\phi(x) = a\min(x,0) + b\max(x,0)` (ReLU, leaky ReLU,
:math:`|x|`) has a shorter exact route: its Mehler series satisfies
:math:`f''(c) = \frac{(b-a)^2}{2\pi q}(1-\rho^2)^{-1/2}`, :math:`\rho = c/q` (Cho & Saul 2009),
so :math:`f(c(t))` and :math:`f'(c(t))` follow from the power series of
:math:`(1-\rho(t)^2)^{-1/2}` by a recurrence with non-negative terms and two integrations
(:func:`_abrelu_layer`): :math:`O(N^2)` per layer instead of :math:`O(N^3)` and no moments.
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
    worst_edge = -np.inf
    for s in range(0, n_max + 1, chunk):
        j = np.arange(s, min(n_max + 1, s + chunk))
        terms = 2 * log_g[j[:, None] + k[None, :]] + log_beta_k[None, :]
        total = logsumexp(terms, axis=1)
        with np.errstate(invalid="ignore"):
            worst_edge = max(worst_edge, float(np.max(np.max(terms[:, -8:], axis=1) - total)))
        out[j] = total - gammaln(j + 1) + j * log_r
    if worst_edge > _LOG_EDGE:
        # the omitted terms k > n_terms would change some e_j beyond round-off
        raise ArithmeticError(
            f"re-expansion about beta_0 = {beta0:.6g} truncated at {n_terms} terms too early"
            f" (last terms {math.exp(worst_edge):.1e} of the sum)"
        )
    return out


_LOG_EDGE = -46.0  # the last re-expansion terms must stay below 1e-20 of each e_j


def _reexpansion_terms(rho0: float, n_max: int) -> int:
    r"""Terms :math:`k` of :math:`e_j = \sum_k g_{j+k}^2\beta_0^k/(j!\,k!)` kept for :math:`j\le N`.

    For moments growing like :math:`g_m^2 \sim m!\,q^{-m}` (a jump in :math:`\phi` or its
    derivatives, the slowest decay) the terms follow a negative binomial law in :math:`k`
    with mean :math:`(j+1)\rho_0/(1-\rho_0)` and standard deviation
    :math:`\sqrt{(j+1)\rho_0}/(1-\rho_0)`; 14 deviations beyond the mean at :math:`j = N`
    plus a margin. :func:`_shifted_log_coefficients` checks the last terms.
    """
    spread = (n_max + 1) * rho0
    return int(min((spread + 14 * math.sqrt(spread) + 60) / max(1 - rho0, 1e-12), 1e12)) + 60


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
    n_terms = _reexpansion_terms(rho0, n_max)
    if len(log_g) < n_max + n_terms + 1:
        raise AssertionError("moment array too short")
    log_e_hat = _shifted_log_coefficients(log_g, beta0, math.log(r), n_max, n_terms)
    return _compose(log_e_hat, h / r)


def _inverse_sqrt_one_minus(G: NDArray[np.float64], one_minus: float) -> NDArray[np.float64]:
    r"""Taylor coefficients of :math:`y = (1 - G(t))^{-1/2}` for :math:`G` with non-negative
    coefficients and :math:`G_0 < 1`; ``one_minus`` is :math:`1 - G_0`, passed in so that the
    caller can form it without cancellation.

    From :math:`(1-G)y' = \tfrac12 G'y`:

    .. math:: n(1-G_0)\,y_n = \tfrac12\sum_{j<n} G_{n-j}\,(n + j)\,y_j,

    a sum of non-negative terms: each :math:`y_n` carries a relative error of a few ulp per
    order (:math:`\lesssim n\epsilon`). Solved by blocks of :data:`_BLOCK` orders: the orders
    before a block enter by two Toeplitz matrix-vector products, the block itself by forward
    substitution of its lower-triangular system (whose off-diagonal entries are :math:`\le 0`, so
    the substitution too adds only non-negative terms).
    """
    from scipy.linalg import solve_triangular

    n_max = len(G) - 1
    y = np.empty(n_max + 1)
    y[0] = one_minus**-0.5
    jy = np.zeros(n_max + 1)  # j y_j
    for s in range(1, n_max + 1, _BLOCK):
        e = min(n_max + 1, s + _BLOCK)
        n = np.arange(s, e, dtype=np.float64)
        # sum_{j<s} G_{n-j} y_j for n in [s, e): 'valid' correlations of length s
        window = G[1:e]
        rhs = 0.5 * (n * np.correlate(window, y[s - 1 :: -1]) + np.correlate(window, jy[s - 1 :: -1]))
        i = np.arange(e - s)
        lag = i[:, None] - i[None, :]
        lower = np.where(lag > 0, -0.5 * G[np.maximum(lag, 0)] * (n[:, None] + n[None, :]), 0.0)
        lower[i, i] = n * one_minus
        y[s:e] = solve_triangular(lower, rhs, lower=True, check_finite=False)
        jy[s:e] = n * y[s:e]
    return y


_BLOCK = 128


def _integrate(p: NDArray[np.float64], constant: float) -> NDArray[np.float64]:
    r"""Coefficients of :math:`c + \int_0^t P`, truncated to ``len(p)`` terms."""
    out = np.empty(len(p))
    out[0] = constant
    out[1:] = p[:-1] / np.arange(1, len(p))
    return out


def _theta_minus_sin(theta: float) -> float:
    r""":math:`\theta - \sin\theta` without cancellation (series below 0.5)."""
    if theta >= 0.5:
        return theta - math.sin(theta)
    th2, term, total = theta * theta, theta, 0.0
    for k in range(1, 12):
        term *= th2 / ((2 * k) * (2 * k + 1))  # theta^(2k+1) / (2k+1)!
        total += term if k % 2 else -term
    return total


def _abrelu_layer(
    c: NDArray[np.float64], q: float, gap: float, a: float, b: float
) -> tuple[NDArray[np.float64], NDArray[np.float64], float, float]:
    r"""One layer :math:`c(t) \mapsto f(c(t))` of :math:`\phi(x) = a\min(x,0) + b\max(x,0)`.

    :math:`f(c) = \mathbb E[\phi(u)\phi(v)]` at variances :math:`q = c(1)` and covariance
    :math:`c`; ``gap`` is :math:`q - c_0 = \sum_{n\ge1}c_n` (of the untruncated series), carried
    through the layers without cancellation. With :math:`\rho = c/q`,
    :math:`\theta_0 = \arccos\rho_0 = 2\arcsin\sqrt{\mathrm{gap}/2q}` and
    :math:`y = (1-\rho^2)^{-1/2}` (:func:`_inverse_sqrt_one_minus`, :math:`1-\rho_0^2 =
    \sin^2\theta_0`):

    .. math::
        f'(c(t)) = \frac{(a+b)^2}{4} + \frac{(a-b)^2}{2\pi}\Bigl(\frac\pi2 - \theta_0\Bigr)
                  + \frac{(a-b)^2}{2\pi}\int_0^t y\,\rho'\,ds,\qquad
        f(c(t)) = f(c_0) + \int_0^t f'(c(s))\,c'(s)\,ds,

    :math:`f(c_0) = \frac{(a-b)^2}{2\pi}q\sin\theta_0 + f'(c_0)c_0` (Cho & Saul 2009), and for
    the next layer :math:`f(q) = \frac{a^2+b^2}{2}q` and
    :math:`f(q) - f(c_0) = f'(c_0)\,\mathrm{gap} + \frac{(a-b)^2}{2\pi}q(\theta_0 - \sin\theta_0)`.
    Every step adds or multiplies non-negative numbers: each coefficient to a few ulp per order,
    also for nearly constant kernels (:math:`\rho_0 \to 1`).

    Returns
    -------
    f, fprime, q_next, gap_next
        Coefficients of :math:`f(c(t))` and :math:`f'(c(t))`, :math:`f(q)` and :math:`f(q) - f(c_0)`.
    """
    n_max = len(c) - 1
    rho = c / q
    jump = (a - b) ** 2 / (2 * math.pi)
    theta0 = 2.0 * math.asin(min(1.0, math.sqrt(gap / (2.0 * q))))
    sin_theta0 = math.sqrt((gap / q) * (2.0 - gap / q))
    y = _inverse_sqrt_one_minus(np.convolve(rho, rho)[: n_max + 1], sin_theta0**2)
    rho0 = float(c[0]) / q
    # arcsin(rho_0) = pi/2 - theta_0, from whichever side has no cancellation (0 exactly at rho_0 = 0)
    asin_rho0 = math.asin(rho0) if rho0 < 0.5 else math.pi / 2 - theta0
    fp0 = (a + b) ** 2 / 4 + jump * asin_rho0
    fprime = _integrate(jump * np.convolve(y, rho[1:] * np.arange(1, n_max + 1))[: n_max + 1], fp0)
    f0 = jump * q * sin_theta0 + fp0 * float(c[0])
    f = _integrate(np.convolve(fprime, c[1:] * np.arange(1, n_max + 1))[: n_max + 1], f0)
    gap_next = fp0 * gap + jump * q * _theta_minus_sin(theta0)
    return f, fprime, (a * a + b * b) / 2 * q, gap_next


_MAX_MOMENTS = 20000  # cost of the re-expansion ~ N x moments per layer


def _terms_needed(c: NDArray[np.float64], n_max: int) -> int:
    beta0, r = float(c[0]), float(c[1:].sum())
    if r <= 0:
        return 200
    return n_max + _reexpansion_terms(beta0 / (beta0 + r), n_max) + 2


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
    gap = 1.0  # q - k_0 of the untruncated series
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
        gap = w * gap
        if want_ntk and not standard:
            theta = k + w * theta
        if layer == mlp.depth:
            break
        if q <= 0:
            k = np.zeros(n_max + 1)
            k[0] = float(act.dual(0.0, 0.0, 0.0))
            theta = theta * float(act.dual_derivative(0.0, 0.0, 0.0))
            q, gap = k[0], 0.0
            n_in = mlp.width
            continue
        if act.abrelu_params is not None and n_max >= 1 and gap > 0:
            k, fprime, q, gap = _abrelu_layer(k, q, gap, *act.abrelu_params)
            if want_ntk:
                theta = np.convolve(theta, fprime)[: n_max + 1]
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
        gap = q - float(k[0])
        n_in = mlp.width
    return theta if want_ntk else k
