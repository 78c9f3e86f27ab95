r"""Finite-width statistics of deep MLPs at initialisation: the 1/width expansion for one input.

Conventions (Roberts, Yaida & Hanin, *The Principles of Deep Learning Theory*, 2022 — PDLT —
ch. 4–5; Yaida 2019). Preactivations :math:`z^{(\ell+1)}_i = b_i + \sum_j W_{ij}\sigma(z^{(\ell)}_j)`
with :math:`W \sim \mathcal N(0, C_W/n)`, :math:`b\sim\mathcal N(0, C_b)` — :class:`fieldcurve.MLP`'s
``weight_var`` and ``bias_var`` of each Dense layer, in either parameterisation — and
:math:`z^{(1)} = b + Wx`, :math:`W\sim\mathcal N(0, C_W/d)`. Layers :math:`\ell = 1 \dots L+1`,
the last being the output; all hidden layers have width :math:`n`.

Given layer :math:`\ell`, the preactivations of layer :math:`\ell+1` are exactly Gaussian with the
random variance :math:`S_{\ell+1} = C_b + \frac{C_W}{n}\sum_j \sigma(z^{(\ell)}_j)^2`. Expanding in
:math:`1/n` with :math:`\mathbb E S = K + G/n + O(n^{-2})`, :math:`\mathrm{Var}\,S = V/n + O(n^{-2})`:

.. math::
    K^{(\ell+1)} &= C_b + C_W\langle\sigma^2\rangle_{K^{(\ell)}},\\
    V^{(\ell+1)} &= C_W^2\bigl(\langle\sigma^4\rangle - \langle\sigma^2\rangle^2\bigr)_{K^{(\ell)}}
                   + \chi_\parallel^{(\ell)\,2}\,V^{(\ell)},\\
    G^{(\ell+1)} &= \chi_\parallel^{(\ell)}\,G^{(\ell)}
                   + \tfrac{C_W}{2}\,\partial_K^2\langle\sigma^2\rangle_{K^{(\ell)}}\,V^{(\ell)},

with :math:`K^{(1)} = C_b + C_W|x|^2/d`, :math:`V^{(1)} = G^{(1)} = 0`, the parallel and
perpendicular susceptibilities :math:`\chi_\parallel = C_W\,\partial_K\langle\sigma^2\rangle_K` and
:math:`\chi_\perp = C_W\langle\sigma'^2\rangle_K` (PDLT eqs. 4.90–4.118 and §5.1; :math:`\langle\cdot
\rangle_K` is the average over :math:`z\sim\mathcal N(0,K)`). Then :math:`\mathbb E[z^2] = K + G/n`
(``kernel``, ``kernel_nlo``) and the normalised fourth cumulant is

.. math:: \frac{\mathbb E z^4}{3(\mathbb E z^2)^2} - 1 = \frac{\mathbb E S^2}{(\mathbb E S)^2} - 1
          = \frac{V}{nK^2} + O(n^{-2}).

The Gaussian averages are one-dimensional integrals, computed by Gauss–Legendre rules on
:math:`[-12, 0]` and :math:`[0, 12]` standard deviations (split at the kink of piecewise-linear
activations), 1e-13 relative for the activations here (tested against closed forms), with
:math:`\partial_K\langle f\rangle = \langle f\,(z^2-K)\rangle/(2K^2)` and
:math:`\partial_K^2\langle f\rangle = \langle f\,(z^4-6Kz^2+3K^2)\rangle/(4K^4)`.

**NTK mean at next-to-leading order** (one input, NTK parameterisation; derived in
``docs/notes/ntk_finite_width.md``). Write the NTK of a neuron of layer :math:`M` as a sum over
the layers :math:`\hat\Theta = \sum_{\ell\le M} B_\ell S_\ell` with :math:`B_\ell = |\partial
z_M/\partial z_\ell|^2` (backward norm, :math:`B_M = 1`) and :math:`S_\ell` the fan-in factor
above. Splitting :math:`W_{\ell+1}` into its component along :math:`s = \sigma(z_\ell)` (which
makes :math:`z_{\ell+1}`) and the independent rest gives, *exactly*, with
:math:`c_\ell = (z_\ell - b_\ell)\cdot\partial z_M/\partial z_\ell`,

.. math::
    \mathbb E[B_\ell\,|\,z_\ell] = \frac{C_W}{n}\Bigl(\sum_i\sigma_i'^2 - \sum_i\sigma_i'^2\hat s_i^2\Bigr)
        \beta_{\ell+1}(S_{\ell+1}) + \frac{\sum_i\sigma_i'^2\sigma_i^2}{|s|^4}\,\gamma_{\ell+1}(S_{\ell+1}),

where :math:`\beta_\ell(S) = \mathbb E[B_\ell|S_\ell = S]`, :math:`\gamma_\ell(S) = \mathbb
E[c_\ell^2|S_\ell=S]` and :math:`\theta_\ell(S) = \mathbb E[\sum_{m\ge\ell}B_mS_m|S_\ell=S] =
S\beta_\ell(S) + \mathbb E[\theta_{\ell+1}(S_{\ell+1})|S]`: a backward recursion of functions of
one variable. Expanding :math:`\mathbb E[g(S_{\ell+1})|S] = g(F) + g''(F)\,\mathcal V(S)/(2n)`,
:math:`F(S) = C_b + C_W\langle\sigma^2\rangle_S`, :math:`\mathcal V = C_W^2(\langle\sigma^4\rangle -
\langle\sigma^2\rangle^2)`, the leading order is the usual :math:`\beta^0_\ell = \chi_\perp\beta^0_{\ell+1}`,
:math:`\theta^0_\ell = S\beta^0_\ell + \theta^0_{\ell+1}\circ F`, and at :math:`O(1/n)`, on the
infinite-width path :math:`S = K^{(\ell)}`:

.. math::
    \beta^1_\ell &= \chi_\perp\beta^1_{\ell+1} + \tfrac12\chi_\perp\beta^{0\,\prime\prime}_{\ell+1}\mathcal V
        + C_W^2\,\mathrm{Cov}(\sigma'^2,\sigma^2)\,\beta^{0\,\prime}_{\ell+1}
        - C_W\frac{\langle\sigma'^2\sigma^2\rangle}{\langle\sigma^2\rangle}\beta^0_{\ell+1}
        + \frac{\langle\sigma'^2\sigma^2\rangle}{\langle\sigma^2\rangle^2}\gamma^0_{\ell+1},\\
    \theta^1_\ell &= K^{(\ell)}\beta^1_\ell + \theta^1_{\ell+1}
        + \tfrac12\theta^{0\,\prime\prime}_{\ell+1}\mathcal V,\\
    \gamma^0_\ell &= \frac{\langle\tilde z\sigma'\sigma\rangle^2}{\langle\sigma^2\rangle^2}\gamma^0_{\ell+1}
        + C_W\Bigl(\langle\tilde z^2\sigma'^2\rangle - \frac{\langle\tilde z\sigma'\sigma\rangle^2}
        {\langle\sigma^2\rangle}\Bigr)\beta^0_{\ell+1},

with :math:`\beta_M = 1`, :math:`\theta_M(S) = S`, :math:`\gamma^0_M = K^{(M)} - C_b^{(M)}`,
:math:`\tilde z = z - b_\ell` (so :math:`\langle\tilde z h(z)\rangle = (1 - C_b/K)\langle zh\rangle`
and :math:`\langle\tilde z^2h\rangle = (1-C_b/K)C_b\langle h\rangle + (1-C_b/K)^2\langle z^2h\rangle`).
Then :math:`\mathbb E\hat\Theta = \Theta + \theta^1_1/n + O(n^{-2})` (``ntk``, ``ntk_nlo``). The
derivatives of :math:`\beta^0, \theta^0` in :math:`S` follow by the chain rule from those of
:math:`\chi_\perp(S)` and :math:`F(S)`. Checks: for deep linear networks the correction vanishes
identically (forward and backward norms are independent, exact at any width), as it does for
bias-free ReLU networks; tanh, erf and ReLU with biases agree with
:func:`monte_carlo_ntk` extrapolated in :math:`1/n` (tests).

**Standard parameterisation.** The network function, hence K, G, V, is the same; the NTK is
:math:`\hat\Theta = \sum_\ell B_\ell(|\sigma(z_{\ell-1})|^2 + [\text{bias}_\ell])` with
:math:`|\sigma(z_{\ell-1})|^2 = n(S_\ell - C_b)/C_W` (:math:`|x|^2` for the first layer), i.e.
:math:`\sum_\ell B_\ell(a_\ell S_\ell + c_\ell)`. The backward recursion above is linear in the
per-layer weights, so it carries over with :math:`\theta_M(S) = a_MS + c_M` and the layer term
:math:`(a_\ell S + c_\ell)\beta_\ell` in place of :math:`S\beta_\ell`; likewise the variance
responses. Since :math:`a_\ell\propto n`, :math:`\Theta` and the shift grow like :math:`n`
(relative accuracy :math:`O(n^{-2})` for the mean); checked against :func:`monte_carlo_ntk` of
explicit standard-parameterisation networks (tests).

**NTK variance at leading order** (``ntk_variance`` = :math:`\lim n\,\mathrm{Var}\,\hat\Theta`, one
input). At :math:`O(n^{-1/2})` the fluctuation of :math:`\hat\Theta = \sum_\ell B_\ell S_\ell` is
linear in independent fresh noises of each hidden layer :math:`\ell`: a forward one,
:math:`\xi_\ell = \frac{C_W}{n}\sum_i(\sigma_i^2 - \langle\sigma^2\rangle)` entering
:math:`\delta S_{\ell+1} = \chi_\parallel\delta S_\ell + \xi_\ell`, and a backward one,
:math:`\zeta_\ell = \frac{C_W}{n}\sum_i(\sigma_i'^2\eta_i^2 - \langle\sigma'^2\rangle)` with
:math:`\eta_i` the standard normal orthogonal part of :math:`W^\top\delta`, entering
:math:`\delta B_\ell = \chi_\perp\delta B_{\ell+1} + \beta_{\ell+1}(\chi_\perp'\delta S_\ell + \zeta_\ell)`;
per unit :math:`\mathrm{Var}\,\xi = C_W^2(\langle\sigma^4\rangle - \langle\sigma^2\rangle^2)`,
:math:`\mathrm{Var}\,\zeta = C_W^2(3\langle\sigma'^4\rangle - \langle\sigma'^2\rangle^2)`,
:math:`\mathrm{Cov} = C_W^2(\langle\sigma^2\sigma'^2\rangle - \langle\sigma^2\rangle\langle\sigma'^2\rangle)`.
Then :math:`n\mathrm{Var}\,\hat\Theta = \sum_\ell c_\ell^\top\Sigma_\ell c_\ell` with :math:`c_\ell` the
responses of :math:`\delta\hat\Theta = \sum_\ell(\beta_\ell\delta S_\ell + K_\ell\delta B_\ell)` to the two
noises (PDLT ch. 8 gives the same object as the :math:`A`, :math:`B` tensors). Closed forms: deep
linear, bias-free, :math:`C_W = 1`, :math:`|x|^2/d = 1`: :math:`2\sum_{j=1}^{L}[(L+1-j)^2 + j^2]`;
bias-free ReLU at :math:`C_W = 2`: :math:`\sum_j[20(L+1-j)^2 + 20j^2 + 8j(L+1-j)]` (the
:math:`\propto L^3/n` growth behind Hanin & Nica's :math:`e^{5L/n}` law). Checked against
:func:`monte_carlo_ntk` (tests).

Exact results (no expansion) for piecewise-linear activations
:math:`\sigma = a\min(z,0) + b\max(z,0)` (ReLU, leaky ReLU, linear): :math:`\sigma(z)^2 = S\,r`
with :math:`r` independent of the scale, :math:`m = \mathbb E r = (a^2+b^2)/2`,
:math:`q = \mathbb E r^2 = 3(a^4+b^4)/2`, so the first two moments of :math:`S` follow exactly:

.. math::
    \mathbb E S_{\ell+1} = C_b + C_W m\,\mathbb E S_\ell,\qquad
    \mathbb E S_{\ell+1}^2 = C_b^2 + 2C_bC_Wm\,\mathbb E S_\ell
        + C_W^2\Bigl(m^2 + \frac{q-m^2}{n}\Bigr)\mathbb E S_\ell^2 .

Bias-free this is the product :math:`\prod_{\ell' < \ell}(1 + c/n) - 1`, :math:`c = q/m^2 - 1`
(5 for ReLU, 2 for deep linear networks: :math:`\prod(1 + 2/n_\ell)`), and :math:`G = 0`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldcurve._checks import check_variance
from fieldcurve.activations import Activation, get_activation
from fieldcurve.kernels import MLP

__all__ = [
    "CriticalPoint",
    "FiniteWidthStatistics",
    "NTKMatrixMonteCarlo",
    "NTKMonteCarlo",
    "critical_initialization",
    "finite_width_statistics",
    "gaussian_average",
    "monte_carlo_ntk",
    "monte_carlo_ntk_matrix",
    "monte_carlo_statistics",
]

_CUT = 12.0  # standard deviations


@functools.lru_cache(maxsize=8)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [-1, 1] (computed on first use, not at import)."""
    return np.polynomial.legendre.leggauss(n)


def gaussian_average(fn: Any, K: float) -> float:
    r""":math:`\langle f(z)\rangle_K = \mathbb E\,f(z)`, :math:`z\sim\mathcal N(0, K)`, by Gauss–Legendre
    on each half-line (cut at 12 standard deviations); ``K`` = 0 gives :math:`f(0)`."""
    if K <= 0:
        return float(fn(np.zeros(1))[0])
    s = math.sqrt(K)
    total = 0.0
    for lo, hi in ((-_CUT, 0.0), (0.0, _CUT)):
        nodes, weights = _gauss_legendre(160)
        u = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
        w = 0.5 * (hi - lo) * weights * np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
        total += float(np.dot(w, fn(s * u)))
    return total


def _abrelu_ab(act: Activation) -> tuple[float, float] | None:
    if act.abrelu_params is not None:
        return act.abrelu_params
    if act.name == "identity":
        return (1.0, 1.0)
    return None


@dataclass(frozen=True)
class _LayerMoments:
    m2: float  # <s^2>
    m4: float  # <s^4>
    d1: float  # d<s^2>/dK
    d2: float  # d^2<s^2>/dK^2
    dsq: float  # <s'^2>


def _moments(act: Activation, K: float) -> _LayerMoments:
    ab = _abrelu_ab(act)
    if ab is not None:  # closed forms: s^2 = K r, E r = (a^2+b^2)/2, E r^2 = 3(a^4+b^4)/2
        a, b = ab
        m, q = (a * a + b * b) / 2, 3 * (a**4 + b**4) / 2
        return _LayerMoments(m2=m * K, m4=q * K * K, d1=m, d2=0.0, dsq=m)
    f = act.fn
    m2 = gaussian_average(lambda z: f(z) ** 2, K)
    m4 = gaussian_average(lambda z: f(z) ** 4, K)
    if K > 0:
        d1 = gaussian_average(lambda z: f(z) ** 2 * (z * z - K), K) / (2 * K * K)
        d2 = gaussian_average(lambda z: f(z) ** 2 * (z**4 - 6 * K * z * z + 3 * K * K), K) / (4 * K**4)
    else:
        d1 = d2 = math.nan
    dsq = gaussian_average(lambda z: act.derivative(z) ** 2, K)
    return _LayerMoments(m2=m2, m4=m4, d1=d1, d2=d2, dsq=dsq)


@dataclass(frozen=True)
class _NTKMoments:
    """Gaussian averages at one layer's variance K for the NTK recursion (see module docstring)."""

    dsq: float  # <s'^2>
    dsq_1: float  # d<s'^2>/dK
    dsq_2: float  # d^2<s'^2>/dK^2
    dsq_sq: float  # <s'^2 s^2>
    z_ds_s: float  # <z s' s>
    z2_dsq: float  # <z^2 s'^2>
    dsq2: float  # <s'^4>


def _ntk_moments(act: Activation, K: float) -> _NTKMoments:
    fd, f = act.derivative, act.fn
    dsq = gaussian_average(lambda z: fd(z) ** 2, K)
    return _NTKMoments(
        dsq=dsq,
        dsq_1=gaussian_average(lambda z: fd(z) ** 2 * (z * z - K), K) / (2 * K * K),
        dsq_2=gaussian_average(lambda z: fd(z) ** 2 * (z**4 - 6 * K * z * z + 3 * K * K), K) / (4 * K**4),
        dsq_sq=gaussian_average(lambda z: (fd(z) * f(z)) ** 2, K),
        z_ds_s=gaussian_average(lambda z: z * fd(z) * f(z), K),
        z2_dsq=gaussian_average(lambda z: (z * fd(z)) ** 2, K),
        dsq2=gaussian_average(lambda z: fd(z) ** 4, K),
    )


_Weights = tuple[NDArray[np.float64], NDArray[np.float64]]


def _ntk_weights(mlp: MLP, top: int, width: int, d: int | None, norm2: float) -> _Weights:
    r"""Coefficients :math:`(a_\ell, c_\ell)`, :math:`\ell = 1..` ``top``, of the NTK as
    :math:`\hat\Theta = \sum_\ell B_\ell(a_\ell S_\ell + c_\ell)` (index 0 unused).

    NTK parameterisation: :math:`a = 1`, :math:`c = 0`. Standard parameterisation: the Dense
    :math:`\ell` contributes :math:`B_\ell(|\sigma(z_{\ell-1})|^2 + [\text{bias}])` and
    :math:`|\sigma(z_{\ell-1})|^2 = n(S_\ell - C_b)/C_W`, so :math:`a_\ell = n/C_W^{(\ell)}`,
    :math:`c_\ell = [\text{bias}] - nC_b^{(\ell)}/C_W^{(\ell)}`; the first layer's
    :math:`|x|^2 = d\,|x|^2/d` is a constant (:math:`a_1 = 0`).
    """
    a, c = np.zeros(top + 1), np.zeros(top + 1)
    if mlp.parameterization == "ntk":
        a[1:] = 1.0
        return a, c
    for m in range(1, top + 1):
        bias = 1.0 if mlp.has_bias[m - 1] else 0.0
        if m == 1:
            c[m] = d * norm2 + bias
        else:
            cw = mlp.weight_vars[m - 1]
            a[m] = width / cw
            c[m] = bias - width * mlp.bias_vars[m - 1] / cw
    return a, c


def _ntk_mean_nlo(
    mlp: MLP, K: NDArray[np.float64], top: int, weights: _Weights | None = None
) -> tuple[float, float]:
    r"""(Theta, theta^1) of a neuron of preactivation layer ``top`` (1-based) for one input on the
    infinite-width path K (module docstring: backward recursion of beta, theta, gamma), for the
    NTK :math:`\sum_\ell B_\ell(a_\ell S_\ell + c_\ell)` (``weights`` = (a, c) from
    :func:`_ntk_weights`; default the NTK parameterisation, a = 1, c = 0)."""
    act = mlp.activation
    a, c = (np.ones(top + 1), np.zeros(top + 1)) if weights is None else weights
    b0, b1, b2, B1 = 1.0, 0.0, 0.0, 0.0  # beta^0 and its S-derivatives, beta^1 at layer m+1
    # theta^0 (theta_M(S) = a_M S + c_M), its S-derivatives, theta^1
    t0, t1, t2, T1 = a[top] * K[top - 1] + c[top], a[top], 0.0, 0.0
    g0 = K[top - 1] - mlp.bias_vars[top - 1]  # gamma^0_M = K - C_b of the top layer
    for m in range(top - 1, 0, -1):  # map out of layer m (1-based) into m + 1
        cw = mlp.weight_vars[m]
        k = float(K[m - 1])
        mo, nm = _moments(act, k), _ntk_moments(act, k)
        chi, chi1, chi2 = cw * nm.dsq, cw * nm.dsq_1, cw * nm.dsq_2
        F1, F2 = cw * mo.d1, cw * mo.d2
        Vloc = cw * cw * (mo.m4 - mo.m2**2)
        cov = nm.dsq_sq - nm.dsq * mo.m2
        # the next layer's quantities b*, t*, g0, B1, T1 enter; this layer's replace them
        beta1 = (
            chi * B1
            + 0.5 * chi * b2 * Vloc
            + cw * cw * cov * b1
            - cw * nm.dsq_sq / mo.m2 * b0
            + nm.dsq_sq / mo.m2**2 * g0
        )
        lin = a[m] * k + c[m]  # this layer's coefficient of B_m on the path
        theta1 = lin * beta1 + T1 + 0.5 * t2 * Vloc
        frac = 1.0 - mlp.bias_vars[m - 1] / k  # Var(z - b) / Var z of this layer
        zt_ds_s = frac * nm.z_ds_s
        zt2_dsq = frac * mlp.bias_vars[m - 1] * nm.dsq + frac * frac * nm.z2_dsq
        gamma0 = (zt_ds_s / mo.m2) ** 2 * g0 + cw * (zt2_dsq - zt_ds_s**2 / mo.m2) * b0
        nb0 = chi * b0
        nb1 = chi1 * b0 + chi * b1 * F1
        nb2 = chi2 * b0 + 2 * chi1 * b1 * F1 + chi * (b2 * F1 * F1 + b1 * F2)
        nt0 = lin * nb0 + t0
        nt1 = a[m] * nb0 + lin * nb1 + t1 * F1
        nt2 = 2 * a[m] * nb1 + lin * nb2 + t2 * F1 * F1 + t1 * F2
        b0, b1, b2, B1 = nb0, nb1, nb2, beta1
        t0, t1, t2, T1 = nt0, nt1, nt2, theta1
        g0 = gamma0
    return float(t0), float(T1)


def _ntk_variance(mlp: MLP, K: NDArray[np.float64], top: int, weights: _Weights | None = None) -> float:
    r"""lim n Var(NTK) of a neuron of preactivation layer ``top`` for one input: the NTK's
    fluctuation is linear in the fresh noises of every hidden layer (module docstring); for the
    NTK :math:`\sum_\ell B_\ell(a_\ell S_\ell + c_\ell)` (``weights``, as in
    :func:`_ntk_mean_nlo`)."""
    act = mlp.activation
    M = top
    wa, wc = (np.ones(top + 1), np.zeros(top + 1)) if weights is None else weights
    if M <= 1:
        return 0.0
    mos = [(_moments(act, float(K[m - 1])), _ntk_moments(act, float(K[m - 1]))) for m in range(1, M)]
    chi_par = [mlp.weight_vars[m] * mos[m - 1][0].d1 for m in range(1, M)]
    chi_perp = [mlp.weight_vars[m] * mos[m - 1][1].dsq for m in range(1, M)]
    dchi_perp = [mlp.weight_vars[m] * mos[m - 1][1].dsq_1 for m in range(1, M)]
    beta = np.ones(M + 1)  # beta[l] = E B_l at infinite width, l = 1 .. M
    for m in range(M - 1, 0, -1):
        beta[m] = chi_perp[m - 1] * beta[m + 1]

    def response(src: int, kind: str) -> float:
        """d Theta / d(fresh noise of layer src): kind 'f' feeds S_{src+1}, 'b' feeds B_src."""
        dS = np.zeros(M + 1)
        if kind == "f":
            dS[src + 1] = 1.0
            for m in range(src + 1, M):
                dS[m + 1] = chi_par[m - 1] * dS[m]
        dB = np.zeros(M + 2)
        for m in range(M - 1, 0, -1):  # delta B_m = chi_perp dB_{m+1} + beta_{m+1}(chi_perp' dS_m + noise)
            dB[m] = chi_perp[m - 1] * dB[m + 1] + beta[m + 1] * dchi_perp[m - 1] * dS[m]
            if kind == "b" and m == src:
                dB[m] += beta[m + 1]
        return float(
            sum(wa[m] * beta[m] * dS[m] + (wa[m] * K[m - 1] + wc[m]) * dB[m] for m in range(1, M + 1))
        )

    total = 0.0
    for m in range(1, M):
        mo, nm = mos[m - 1]
        cw = mlp.weight_vars[m]
        cov = (
            cw
            * cw
            * np.array(
                [
                    [mo.m4 - mo.m2**2, nm.dsq_sq - mo.m2 * nm.dsq],
                    [nm.dsq_sq - mo.m2 * nm.dsq, 3 * nm.dsq2 - nm.dsq**2],
                ]
            )
        )
        c = np.array([response(m, "f"), response(m, "b")])
        total += float(c @ cov @ c)
    return total


@dataclass(frozen=True)
class FiniteWidthStatistics:
    r"""Per preactivation layer l = 1 .. depth+1 (arrays of length depth + 1; see module docstring).

    Attributes
    ----------
    kernel : K (leading order), ``kernel_nlo`` : G (E z^2 = K + G/n), ``vertex`` : V,
    fourth_cumulant : V/(n K^2), ``fourth_cumulant_exact`` / ``kernel_nlo_exact`` : exact values
    where known (piecewise-linear activations), else None; ``chi_parallel``, ``chi_perp`` : the
    susceptibilities of the map from layer l to l+1 (nan for the output layer); ``ntk`` :
    the infinite-width NTK :math:`\Theta` of a neuron of layer l and ``ntk_nlo`` its finite-width
    shift, :math:`\mathbb E\hat\Theta = \Theta + \mathrm{ntk\_nlo}/n`;
    ``ntk_variance`` : :math:`n\,\mathrm{Var}\,\hat\Theta` at leading order; all three in the
    MLP's parameterisation (``meta["parameterization"]``; see :func:`finite_width_statistics`).
    """

    width: int
    depth: int
    kernel: NDArray[np.float64]
    kernel_nlo: NDArray[np.float64]
    vertex: NDArray[np.float64]
    fourth_cumulant: NDArray[np.float64]
    chi_parallel: NDArray[np.float64]
    chi_perp: NDArray[np.float64]
    fourth_cumulant_exact: NDArray[np.float64] | None
    kernel_nlo_exact: NDArray[np.float64] | None
    ntk: NDArray[np.float64] | None = None
    ntk_nlo: NDArray[np.float64] | None = None
    ntk_variance: NDArray[np.float64] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def depth_to_width(self) -> float:
        """The expansion parameter L/n."""
        return self.depth / self.width

    def to_dict(self) -> dict:
        layers = []
        for i in range(self.depth + 1):
            layers.append(
                {
                    "layer": i + 1,
                    "kernel": float(self.kernel[i]),
                    "kernel_nlo": float(self.kernel_nlo[i]),
                    "fourth_cumulant": float(self.fourth_cumulant[i]),
                    "fourth_cumulant_exact": (
                        None if self.fourth_cumulant_exact is None else float(self.fourth_cumulant_exact[i])
                    ),
                    "vertex": float(self.vertex[i]),
                    "chi_parallel": _num(self.chi_parallel[i]),
                    "chi_perp": _num(self.chi_perp[i]),
                    "ntk": None if self.ntk is None else float(self.ntk[i]),
                    "ntk_nlo": None if self.ntk_nlo is None else float(self.ntk_nlo[i]),
                    "ntk_variance": None if self.ntk_variance is None else float(self.ntk_variance[i]),
                }
            )
        return {
            "width": self.width,
            "depth": self.depth,
            "depth_to_width": self.depth_to_width,
            "layers": layers,
            **self.meta,
        }


def _num(x: float) -> float | None:
    return None if not math.isfinite(x) else float(x)


def _check_width(width: Any) -> int:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)):
        raise TypeError(f"width must be a positive integer, got {width!r}")
    if width <= 0:
        raise ValueError(f"width must be a positive integer, got {width}")
    return int(width)


def _check_standard(mlp: MLP, n: int, d: Any, what: str) -> int | None:
    r"""For the standard parameterisation: ``mlp.width`` must be ``n`` (the NTK depends on it),
    ``d`` a positive integer (the first layer's NTK term is :math:`|x|^2 = d\,|x|^2/d`) and
    every weight variance after the first positive. Returns d (None in the NTK parameterisation)."""
    if mlp.parameterization != "standard":
        return None
    if mlp.width is not None and mlp.width != n:
        raise ValueError(
            f"width = {n} but mlp.width = {mlp.width}: the standard-parameterisation NTK depends on"
            " the width, give the same value"
        )
    if d is None:
        raise ValueError(f"d (the input dimension) is required for {what} with parameterization='standard'")
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    if any(v <= 0 for v in mlp.weight_vars[1:]):
        raise ValueError(
            f"{what} with parameterization='standard' needs weight_var > 0 after the first layer,"
            f" got {list(mlp.weight_vars)}"
        )
    return int(d)


def finite_width_statistics(
    mlp: MLP, width: int, *, input_norm2: float = 1.0, d: int | None = None
) -> FiniteWidthStatistics:
    r"""K, G, V and the fourth cumulant of every layer for one input with :math:`|x|^2/d` =
    ``input_norm2`` (1 on the :math:`\sqrt d`-sphere); formulas in the module docstring.

    The NNGP-side statistics (K, G, V, cumulants, susceptibilities) are those of the network
    function, the same in both parameterisations. The NTK-side ones follow ``mlp``'s
    parameterisation. In the standard parameterisation (``d`` required, ``mlp.width`` must equal
    ``width``) the NTK is :math:`\sum_\ell B_\ell(|\sigma(z_{\ell-1})|^2 + [\text{bias}])`,
    the same backward recursion with per-layer coefficients (:func:`_ntk_weights`, module
    docstring); ``ntk`` is ``ntk_kernel(mlp)``'s diagonal, which grows like n, and
    :math:`\mathbb E\hat\Theta = \Theta + \mathrm{ntk\_nlo}/n` holds to relative
    :math:`O(n^{-2})` with ``ntk_nlo`` itself of order n; ``ntk_variance`` is
    :math:`n\,\mathrm{Var}\,\hat\Theta` at leading order (of order :math:`n^2`).

    Warns (``RuntimeWarning``) when depth/width exceeds 0.5 or the leading-order cumulant
    exceeds 0.5: the 1/n series is then unreliable.
    """
    import warnings

    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    n = _check_width(width)
    norm2 = check_variance(input_norm2, "input_norm2")
    d = _check_standard(mlp, n, d, "finite_width_statistics")
    act = mlp.activation
    L = mlp.depth
    K = np.empty(L + 1)
    G = np.zeros(L + 1)
    V = np.zeros(L + 1)
    chi_par = np.full(L + 1, np.nan)
    chi_perp = np.full(L + 1, np.nan)
    K[0] = mlp.bias_vars[0] + mlp.weight_vars[0] * norm2
    for l in range(L):
        cw, cb = mlp.weight_vars[l + 1], mlp.bias_vars[l + 1]
        mo = _moments(act, K[l])
        chi_par[l] = cw * mo.d1
        chi_perp[l] = cw * mo.dsq
        K[l + 1] = cb + cw * mo.m2
        V[l + 1] = cw * cw * (mo.m4 - mo.m2**2) + chi_par[l] ** 2 * V[l]
        G[l + 1] = chi_par[l] * G[l] + 0.5 * cw * mo.d2 * V[l]
    small = np.flatnonzero(~(K >= np.finfo(float).tiny))
    if small.size:  # input validation: the NTK moments divide by K
        raise ValueError(
            f"the preactivation variance K of layer {int(small[0]) + 1} is {K[small[0]]:.3g} (zero or"
            " below double precision's normal range): weight_var/bias_var too small for the 1/width"
            " statistics, which need K > 0"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        cumulant = np.where(K > 0, V / (n * K * K), 0.0)
    exact = exact_nlo = None
    ab = _abrelu_ab(act)
    if ab is not None:
        a, b = ab
        m, q = (a * a + b * b) / 2, 3 * (a**4 + b**4) / 2
        ES, ES2 = np.empty(L + 1), np.empty(L + 1)
        ES[0], ES2[0] = K[0], K[0] ** 2
        for l in range(L):
            cw, cb = mlp.weight_vars[l + 1], mlp.bias_vars[l + 1]
            ES[l + 1] = cb + cw * m * ES[l]
            ES2[l + 1] = cb * cb + 2 * cb * cw * m * ES[l] + cw * cw * (m * m + (q - m * m) / n) * ES2[l]
        with np.errstate(divide="ignore", invalid="ignore"):
            exact = np.where(ES > 0, ES2 / ES**2 - 1, 0.0)
        exact_nlo = n * (ES - K)  # zero: E S is exactly K for piecewise-linear activations
    ntk = np.empty(L + 1)
    ntk_nlo = np.empty(L + 1)
    ntk_var = np.empty(L + 1)
    for top in range(1, L + 2):
        weights = _ntk_weights(mlp, top, n, d, norm2)
        ntk[top - 1], ntk_nlo[top - 1] = _ntk_mean_nlo(mlp, K, top, weights)
        ntk_var[top - 1] = _ntk_variance(mlp, K, top, weights)
    ratio = L / n
    if ratio > 0.5 or np.nanmax(cumulant) > 0.5:
        warnings.warn(
            f"depth/width = {ratio:.2g} and leading-order fourth cumulant up to {np.nanmax(cumulant):.2g}:"
            " the 1/width expansion is unreliable here",
            RuntimeWarning,
            stacklevel=2,
        )
    return FiniteWidthStatistics(
        width=n,
        depth=L,
        kernel=K,
        kernel_nlo=G,
        vertex=V,
        fourth_cumulant=cumulant,
        chi_parallel=chi_par,
        chi_perp=chi_perp,
        fourth_cumulant_exact=exact,
        kernel_nlo_exact=exact_nlo,
        ntk=ntk,
        ntk_nlo=ntk_nlo,
        ntk_variance=ntk_var,
        meta={
            "activation": act.name,
            "weight_var": list(mlp.weight_vars),
            "bias_var": list(mlp.bias_vars),
            "parameterization": mlp.parameterization,
        },
    )


# ----------------------------------------------------------------------------- Monte Carlo
@dataclass(frozen=True)
class MonteCarloStatistics:
    """Monte Carlo over random networks: per layer, E z^2 and the fourth cumulant with standard
    errors, and n (E z^2 - K) (the NLO kernel estimate) with its standard error."""

    networks: int
    second_moment: NDArray[np.float64]
    second_moment_se: NDArray[np.float64]
    fourth_cumulant: NDArray[np.float64]
    fourth_cumulant_se: NDArray[np.float64]


def monte_carlo_statistics(
    mlp: MLP, width: int, networks: int, *, seed: int, input_norm2: float = 1.0, chunk: int = 200_000
) -> MonteCarloStatistics:
    r"""Exact simulation of ``networks`` random networks on one input: given layer :math:`\ell`, the
    :math:`n` preactivations of layer :math:`\ell+1` are i.i.d. :math:`\mathcal N(0, S_{\ell+1})`, so
    each network needs only :math:`n` Gaussian draws per layer. Rao–Blackwellised estimators:
    :math:`\mathbb E z^2 = \mathbb E S`, :math:`\mathbb E z^4 = 3\mathbb E S^2`; the cumulant
    :math:`\mathbb E S^2/(\mathbb E S)^2 - 1` gets its standard error by the delta method."""
    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    n = _check_width(width)
    if isinstance(networks, bool) or not isinstance(networks, (int, np.integer)) or networks < 2:
        raise ValueError(f"networks must be an integer >= 2, got {networks!r}")
    rng = np.random.default_rng(seed)
    L = mlp.depth
    f = mlp.activation.fn
    sums = np.zeros((L + 1, 5))  # S, S^2, S^3, S^4 ... we need S, S^2, (S^2)^2, S*S^2
    done = 0
    while done < networks:
        m = min(chunk, networks - done)
        S = np.full(m, mlp.bias_vars[0] + mlp.weight_vars[0] * input_norm2)
        for l in range(L + 1):
            sums[l] += [S.sum(), (S**2).sum(), (S**4).sum(), (S**3).sum(), 0.0]
            if l == L:
                break
            z = rng.standard_normal((m, n)) * np.sqrt(S)[:, None]
            S = mlp.bias_vars[l + 1] + mlp.weight_vars[l + 1] * np.mean(f(z) ** 2, axis=1)
        done += m
    N = float(networks)
    mS, mS2, mS4, mS3 = sums[:, 0] / N, sums[:, 1] / N, sums[:, 2] / N, sums[:, 3] / N
    var_S, var_S2, cov = mS2 - mS**2, mS4 - mS2**2, mS3 - mS * mS2
    cum = mS2 / mS**2 - 1
    dA, dB = 1 / mS**2, -2 * mS2 / mS**3
    cum_var = (var_S2 * dA**2 + var_S * dB**2 + 2 * cov * dA * dB) / N
    return MonteCarloStatistics(
        networks=networks,
        second_moment=mS,
        second_moment_se=np.sqrt(np.maximum(var_S, 0) / N),
        fourth_cumulant=cum,
        fourth_cumulant_se=np.sqrt(np.maximum(cum_var, 0)),
    )


@dataclass(frozen=True)
class NTKMonteCarlo:
    r"""Monte Carlo of the NTK of random width-n networks at one input: ``mean`` ± ``se`` of
    :math:`\hat\Theta`, the infinite-width ``ntk`` :math:`\Theta`, and the finite-width shift
    :math:`n(\mathbb E\hat\Theta - \Theta)` (``shift`` ± ``shift_se``)."""

    width: int
    networks: int
    mean: float
    se: float
    ntk: float

    @property
    def shift(self) -> float:
        return self.width * (self.mean - self.ntk)

    @property
    def shift_se(self) -> float:
        return self.width * self.se


def monte_carlo_ntk(
    mlp: MLP,
    width: int,
    networks: int,
    *,
    seed: int,
    input_norm2: float = 1.0,
    chunk: int | None = None,
    d: int | None = None,
) -> NTKMonteCarlo:
    r"""The empirical NTK :math:`\hat\Theta(x, x) = \sum_\theta (\partial f/\partial\theta)^2` of
    ``networks`` random networks (explicit weights, forward and backward pass vectorised over
    networks) at one input with :math:`|x|^2/d` = ``input_norm2``. NTK parameterisation:

    .. math:: \hat\Theta = \sum_{\ell=1}^{L+1} |\delta_\ell|^2\,\bigl(C_b^{(\ell)} + C_W^{(\ell)}
        |\sigma(z_{\ell-1})|^2/n_{\ell-1}\bigr),\qquad \delta_\ell = \partial f/\partial z_\ell,

    with :math:`|\sigma(z_0)|^2/n_0 = |x|^2/d`; standard parameterisation (``d`` required,
    ``mlp.width`` must equal ``width``): :math:`\hat\Theta = \sum_\ell|\delta_\ell|^2
    (|\sigma(z_{\ell-1})|^2 + [\text{bias}_\ell])` with :math:`|\sigma(z_0)|^2 = |x|^2`
    (``MLP.has_bias``). The infinite-width limit is ``ntk_kernel``'s
    diagonal. Exact for deep linear networks: the forward and backward norms are independent, so
    :math:`\mathbb E\hat\Theta = \Theta` at any width (tested). For other activations this is
    the oracle of the NTK's finite-width mean, whose 1/n theory is ``ntk_nlo`` of
    :func:`finite_width_statistics`.
    """
    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    n = _check_width(width)
    if isinstance(networks, bool) or not isinstance(networks, (int, np.integer)) or networks < 2:
        raise ValueError(f"networks must be an integer >= 2, got {networks!r}")
    norm2 = check_variance(input_norm2, "input_norm2")
    d = _check_standard(mlp, n, d, "monte_carlo_ntk")
    standard = d is not None
    rng = np.random.default_rng(seed)
    act, L = mlp.activation, mlp.depth
    wv, bv = mlp.weight_vars, mlp.bias_vars
    hb = [1.0 if h else 0.0 for h in mlp.has_bias]
    chunk = chunk or max(1, min(networks, 2_000_000 // (n * n * max(L, 1)) + 1))
    total = total2 = 0.0
    done = 0
    while done < networks:
        B = min(chunk, networks - done)
        z = math.sqrt(bv[0]) * rng.standard_normal((B, n)) + math.sqrt(wv[0] * norm2) * rng.standard_normal(
            (B, n)
        )
        zs, Ws = [z], []
        for l in range(1, L):  # preactivations of hidden layer l+1 (zs[l]) from layer l
            W = rng.standard_normal((B, n, n))
            Ws.append(W)
            z = math.sqrt(bv[l]) * rng.standard_normal((B, n)) + math.sqrt(wv[l] / n) * np.einsum(
                "bij,bj->bi", W, act.fn(zs[-1])
            )
            zs.append(z)
        v = rng.standard_normal((B, n))  # readout weights
        # output layer L+1: delta = 1, inputs sigma(z_L) = sigma(zs[L-1])
        sq = lambda a: np.einsum("bi,bi->b", a, a)  # noqa: E731
        if L == 0:  # a linear model: the readout sees the input
            theta = np.full(B, hb[0] + d * norm2 if standard else bv[0] + wv[0] * norm2)
            total += float(theta.sum())
            total2 += float((theta * theta).sum())
            done += B
            continue
        h2 = sq(act.fn(zs[-1]))
        theta = hb[L] + h2 if standard else bv[L] + wv[L] * h2 / n
        delta = math.sqrt(wv[L] / n) * v * act.derivative(zs[-1])  # d f / d z_L
        for l in range(L - 1, -1, -1):  # parameters producing zs[l] = z_{l+1}
            h2 = d * norm2 if (standard and l == 0) else (norm2 if l == 0 else sq(act.fn(zs[l - 1])))
            fan_in = hb[l] + h2 if standard else bv[l] + wv[l] * (h2 if l == 0 else h2 / n)
            theta = theta + sq(delta) * fan_in
            if l > 0:
                delta = (
                    math.sqrt(wv[l] / n)
                    * np.einsum("bij,bi->bj", Ws[l - 1], delta)
                    * act.derivative(zs[l - 1])
                )
        total += float(theta.sum())
        total2 += float((theta * theta).sum())
        done += B
    mean = total / networks
    var = max(total2 / networks - mean * mean, 0.0)
    from fieldcurve.kernels import ntk_kernel

    dim = d if standard else 2  # NTK parameterisation: the diagonal depends on |x|^2/d only
    x = np.zeros((1, dim))
    x[0, 0] = math.sqrt(dim * norm2)
    ntk = float(ntk_kernel(mlp).gram(x)[0, 0])
    return NTKMonteCarlo(width=n, networks=networks, mean=mean, se=math.sqrt(var / networks), ntk=ntk)


@dataclass(frozen=True)
class NTKMatrixMonteCarlo:
    r"""Monte Carlo of the NTK of random width-n networks on a set of inputs: ``mean`` ± ``se``
    (N×N) of :math:`\hat\Theta(x_a, x_b)`, the infinite-width ``ntk`` Gram matrix, and the shift
    :math:`n(\mathbb E\hat\Theta - \Theta)` (``shift`` ± ``shift_se``)."""

    width: int
    networks: int
    mean: NDArray[np.float64]
    se: NDArray[np.float64]
    ntk: NDArray[np.float64]

    @property
    def shift(self) -> NDArray[np.float64]:
        return self.width * (self.mean - self.ntk)

    @property
    def shift_se(self) -> NDArray[np.float64]:
        return self.width * self.se


def monte_carlo_ntk_matrix(
    mlp: MLP, X: Any, width: int, networks: int, *, seed: int, chunk: int | None = None
) -> NTKMatrixMonteCarlo:
    r"""The empirical NTK :math:`\hat\Theta(x_a, x_b)` of ``networks`` random width-``width``
    networks (explicit weights, all inputs through the same network) on the rows of ``X``. NTK
    parameterisation: :math:`\hat\Theta_{ab} = \sum_\ell \delta_\ell(a)\cdot\delta_\ell(b)\,
    (C_b + C_W\,\sigma(z_{\ell-1}(a))\cdot\sigma(z_{\ell-1}(b))/n_{\ell-1})`, with
    :math:`\sigma(z_0) = x` and :math:`n_0 = d`; standard parameterisation (``mlp.width`` must
    equal ``width``): the factor is :math:`[\text{bias}_\ell] + \sigma(z_{\ell-1}(a))\cdot
    \sigma(z_{\ell-1}(b))` (``MLP.has_bias``). The oracle of the NTK's finite-width mean off
    the diagonal; :func:`monte_carlo_ntk` is the cheaper one-input version."""
    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    n = _check_width(width)
    if isinstance(networks, bool) or not isinstance(networks, (int, np.integer)) or networks < 2:
        raise ValueError(f"networks must be an integer >= 2, got {networks!r}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or not np.all(np.isfinite(X)):
        raise ValueError(f"X must be a finite 2-D array (points x d), got shape {X.shape}")
    N, d = X.shape
    standard = _check_standard(mlp, n, d, "monte_carlo_ntk_matrix") is not None
    rng = np.random.default_rng(seed)
    act, L = mlp.activation, mlp.depth
    wv, bv = mlp.weight_vars, mlp.bias_vars
    hb = [1.0 if h else 0.0 for h in mlp.has_bias]
    chunk = chunk or max(1, min(networks, 1_000_000 // (n * (n + d) * max(L, 1) * N) + 1))
    total = np.zeros((N, N))
    total2 = np.zeros((N, N))
    gram = lambda a, b: np.einsum("bin,bjn->bij", a, b)  # noqa: E731
    done = 0
    while done < networks:
        B = min(chunk, networks - done)
        W1 = rng.standard_normal((B, n, d))
        z = math.sqrt(wv[0] / d) * np.einsum("bkd,id->bik", W1, X) + math.sqrt(bv[0]) * rng.standard_normal(
            (B, 1, n)
        )
        zs, Ws = [z], []
        for l in range(1, L):
            W = rng.standard_normal((B, n, n))
            Ws.append(W)
            z = math.sqrt(wv[l] / n) * np.einsum("bkj,bij->bik", W, act.fn(zs[-1])) + math.sqrt(
                bv[l]
            ) * rng.standard_normal((B, 1, n))
            zs.append(z)
        v = rng.standard_normal((B, 1, n))
        if L == 0:  # a linear model: the readout sees the input
            theta = np.broadcast_to(hb[0] + X @ X.T if standard else bv[0] + wv[0] * (X @ X.T) / d, (B, N, N))
            total += theta.sum(0)
            total2 += (theta * theta).sum(0)
            done += B
            continue
        h = act.fn(zs[-1])
        theta = hb[L] + gram(h, h) if standard else bv[L] + wv[L] * gram(h, h) / n
        delta = math.sqrt(wv[L] / n) * v * act.derivative(zs[-1])  # (B, N, n)
        for l in range(L - 1, -1, -1):
            inner = (X @ X.T)[None] if l == 0 else gram(act.fn(zs[l - 1]), act.fn(zs[l - 1]))
            fan_in = hb[l] + inner if standard else bv[l] + wv[l] * inner / (d if l == 0 else n)
            theta = theta + gram(delta, delta) * fan_in
            if l > 0:
                delta = (
                    math.sqrt(wv[l] / n)
                    * np.einsum("bkj,bik->bij", Ws[l - 1], delta)
                    * act.derivative(zs[l - 1])
                )
        total += theta.sum(0)
        total2 += (theta * theta).sum(0)
        done += B
    mean = total / networks
    var = np.maximum(total2 / networks - mean * mean, 0.0)
    from fieldcurve.kernels import ntk_kernel

    return NTKMatrixMonteCarlo(
        width=n, networks=networks, mean=mean, se=np.sqrt(var / networks), ntk=ntk_kernel(mlp).gram(X)
    )


# ----------------------------------------------------------------------------- criticality
@dataclass(frozen=True)
class CriticalPoint:
    """Critical initialisation (chi_parallel = chi_perp = 1 at the fixed point K*)."""

    bias_var: float
    weight_var: float
    fixed_point: float | None  # K*; None for the scale-invariant class (any K is fixed)
    universality_class: str
    note: str


def critical_initialization(activation: Any) -> CriticalPoint:
    r"""(bias_var, weight_var) with :math:`\chi_\parallel = \chi_\perp = 1` (PDLT ch. 5).

    Since :math:`\partial_K\langle\sigma^2\rangle = \langle\sigma'^2\rangle + \langle\sigma\sigma''
    \rangle`, the two susceptibilities agree where :math:`\langle\sigma\sigma''\rangle_{K^*} = 0`;
    then :math:`C_W = 1/\langle\sigma'^2\rangle_{K^*}` and :math:`C_b = K^* - C_W\langle\sigma^2
    \rangle_{K^*}` must be non-negative. Classes: *scale-invariant* (:math:`a\min(z,0)+b\max(z,0)`:
    :math:`C_b = 0`, :math:`C_W = 2/(a^2+b^2)`, every K fixed); :math:`K^* = 0` (:math:`\sigma(0) =
    \sigma''(0) = 0 \ne \sigma'(0)`, e.g. tanh, erf, sin: :math:`C_b = 0`, :math:`C_W =
    1/\sigma'(0)^2`); otherwise (e.g. GELU and SiLU/swish, whose :math:`\sigma''(0) \ne 0`) a root
    :math:`K^* > 0` is searched on :math:`[10^{-4}, 10^{4}]`. Raises ``ValueError`` naming
    the reason when no critical point exists (e.g. sigmoid: :math:`\sigma(0) \ne 0`).
    """
    act = get_activation(activation)
    ab = _abrelu_ab(act)
    if ab is not None:
        a, b = ab
        if a * a + b * b == 0:
            raise ValueError("the zero activation has no critical point")
        return CriticalPoint(
            0.0,
            2.0 / (a * a + b * b),
            None,
            "scale-invariant",
            "every K is a fixed point; chi_parallel = chi_perp = C_W (a^2 + b^2)/2",
        )
    s0 = float(act.fn(np.zeros(1))[0])
    ds0 = float(act.derivative(np.zeros(1))[0])
    h2 = 1e-4
    dds0 = float((act.derivative(np.array([h2])) - act.derivative(np.array([-h2])))[0]) / (2 * h2)
    if abs(s0) < 1e-12 and abs(ds0) > 1e-12 and abs(dds0) < 1e-6:
        return CriticalPoint(
            0.0,
            1.0 / ds0**2,
            0.0,
            "K* = 0",
            "sigma(0) = 0: the fixed point K* = 0 is approached as a power law in depth",
        )

    def h(logK: float) -> float:
        K = math.exp(logK)
        d1 = gaussian_average(lambda z: act.fn(z) ** 2 * (z * z - K), K) / (2 * K * K)
        return d1 - gaussian_average(lambda z: act.derivative(z) ** 2, K)

    grid = np.linspace(math.log(1e-4), math.log(1e4), 161)
    vals = np.array([h(g) for g in grid])
    for i in range(len(grid) - 1):
        if np.sign(vals[i]) != np.sign(vals[i + 1]) and np.isfinite(vals[i]) and np.isfinite(vals[i + 1]):
            from scipy.optimize import brentq

            K = math.exp(brentq(h, grid[i], grid[i + 1], xtol=1e-14))
            cw = 1.0 / gaussian_average(lambda z: act.derivative(z) ** 2, K)
            cb = K - cw * gaussian_average(lambda z: act.fn(z) ** 2, K)
            if cb >= 0:
                return CriticalPoint(cb, cw, K, "K* > 0", "chi_parallel = chi_perp = 1 at the fixed point K*")
    raise ValueError(
        f"activation {act.name!r} has no critical initialisation: sigma(0) = {s0:.3g} != 0 and"
        " <sigma sigma''>_K has no zero with a non-negative bias variance for K in [1e-4, 1e4]"
    )
