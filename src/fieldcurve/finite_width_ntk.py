r"""The NTK mean at O(1/width) on a set of inputs.

The entry :math:`\hat\Theta(x_a, x_b)` of a network's NTK depends on the network only through its
values on the two inputs, so the one-input derivation of :mod:`fieldcurve.finite_width` (notes:
``docs/notes/ntk_finite_width.md``) carries over with the kernel of the pair,
:math:`S_\ell = [[S_{aa}, S_{ab}], [S_{ab}, S_{bb}]]`, as the Markov state. For each pair
:math:`a \ne b`, with :math:`\phi = \sigma(z)`, :math:`z\sim\mathcal N(0, K^{(\ell)})` the pair's
preactivations at layer :math:`\ell`, :math:`Q = \langle\phi\phi^\top\rangle`, :math:`R = Q^{-1}`, the
backward overlap :math:`B_\ell = \delta_\ell(a)\cdot\delta_\ell(b)` and the forward-backward overlaps
:math:`C_{ca} = (z_\ell(c) - b_\ell)\cdot\delta_\ell(a)`, projecting :math:`W_{\ell+1}` on the span of
:math:`\phi(a), \phi(b)` gives the exact identity

.. math::
    \mathbb E[B_\ell|z_\ell] = \sum_i\sigma'_i(a)\sigma'_i(b)\Bigl[\tfrac{C_W}{n}B_{\ell+1}(I-\Pi)_{ii}
        + u_i(a)u_i(b)\Bigr],\qquad u(a) = \Phi(\Phi^\top\Phi)^{-1}C^{(\ell+1)}_{\cdot a},

and expanding :math:`\beta_\ell(S) = \mathbb E[B_\ell|S]`, :math:`\theta_\ell(S) = \mathbb E[\sum_{m\ge
\ell}B_mS_{m,ab}|S]` and :math:`\Gamma_{\ell,cd} = \mathbb E[C_{ca}C_{db}]` to :math:`O(1/n)` on the
infinite-width path (:math:`\Delta = S_{\ell+1} - F(S_\ell)` is the fresh fluctuation with
covariance :math:`\mathcal V/n` of the 3-vector :math:`(S_{aa}, S_{ab}, S_{bb})`,
:math:`\chi = C_W\langle\sigma'_a\sigma'_b\rangle`):

.. math::
    \beta^1_\ell &= \chi\beta^1_{\ell+1} + \tfrac12\chi\,\mathrm{tr}(\nabla^2\beta^0_{\ell+1}\mathcal V)
        + \nabla\beta^0_{\ell+1}\cdot C_W^2\mathrm{Cov}(\sigma'_a\sigma'_b, \phi\phi^\top)
        - C_W\langle\sigma'_a\sigma'_b\,\phi^\top R\phi\rangle\beta^0_{\ell+1}
        + \sum_{cd}\langle\sigma'_a\sigma'_b(R\phi)_c(R\phi)_d\rangle\Gamma^0_{\ell+1,cd},\\
    \theta^1_\ell &= K_{ab}\beta^1_\ell + \theta^1_{\ell+1}
        + \tfrac12\mathrm{tr}(\nabla^2\theta^0_{\ell+1}\mathcal V),\\
    \Gamma^0_{\ell,cd} &= \sum_{ef}T^a_{ce}T^b_{df}\Gamma^0_{\ell+1,ef} + C_W\beta^0_{\ell+1}
        \bigl(\langle\tilde z_c\tilde z_d\sigma'_a\sigma'_b\rangle - Y^a_cRY^{b\top}_d\bigr),

with :math:`T^a_{ce} = \langle\tilde z_c\sigma'_a(R\phi)_e\rangle`, :math:`Y^a_c = \langle\tilde z_c
\sigma'_a\phi\rangle`, :math:`\tilde z = z - b_\ell`, and :math:`\beta_M = 1`, :math:`\theta_M(S) =
S_{ab}`, :math:`\Gamma_{M,cd} = K_{cd} - C_b`. The functions :math:`\beta^0_{\ell+1}(S)`,
:math:`\theta^0_{\ell+1}(S)` are the infinite-width backward product and NTK of the network above
layer :math:`\ell+1` started from the pair kernel :math:`S`; their gradients and Hessians, in the
coordinates :math:`(S_{aa}, S_{bb}, \rho)`, are Richardson-extrapolated central differences (steps
2e-3 and 1e-3; about 1e-8 relative) of the closed-form or 1e-14-accurate two-point duals. In
these coordinates the large second derivatives in :math:`\rho` of kinked activations near
:math:`\rho = 1` meet the small variance of :math:`\rho`, instead of cancelling between the
entries of :math:`S`. The Gaussian averages are two-dimensional rules in polar coordinates, split
at the angles where :math:`z_a = 0` or :math:`z_b = 0` (the kinks of piecewise-linear
activations), about 1e-13 relative.

Unlike one input, piecewise-linear activations (ReLU) do shift the off-diagonal NTK at
:math:`O(1/n)`: :math:`\langle\sigma'_a\sigma'_b\rangle` depends on the correlation of the pair.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fieldcurve.finite_width import _abrelu_ab, _check_width, _ntk_mean_nlo
from fieldcurve.kernels import MLP

__all__ = ["NTKCorrection", "ntk_correction"]

_R_MAX = 12.0


@functools.lru_cache(maxsize=4)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [-1, 1] (computed on first use, not at import)."""
    return np.polynomial.legendre.leggauss(n)


_FD_STEP = 2e-3
_MIN_GAP_KINKED = 1e-5  # warn below this 1 - |rho| at some layer (piecewise-linear activations)
_MIN_GAP_SMOOTH = 1e-8


# ----------------------------------------------------------------------------- 2-D averages
def _gauss2(K: NDArray) -> tuple[NDArray, NDArray]:
    """Nodes z (M, 2) and weights (M,) of E f(z), z ~ N(0, K): polar coordinates of the whitened
    variable, Gauss–Legendre in the angle on each sector between the lines z_a = 0 and z_b = 0
    and in the radius on [0, 12]."""
    Lc = np.linalg.cholesky(K)
    tb = math.atan2(-Lc[1, 0], Lc[1, 1]) % math.pi
    cuts = np.sort(np.array([math.pi / 2, 3 * math.pi / 2, tb, tb + math.pi]) % (2 * math.pi))
    edges = np.r_[cuts, cuts[0] + 2 * math.pi]
    xt, wt = _gauss_legendre(48)
    xr, wr = _gauss_legendre(64)
    r = 0.5 * _R_MAX * (xr + 1)
    w_r = 0.5 * _R_MAX * wr * r * np.exp(-0.5 * r * r) / (2 * math.pi)
    ts, w_ts = [], []
    for lo, hi in itertools.pairwise(edges):
        if hi - lo < 1e-14:
            continue
        ts.append(0.5 * (hi - lo) * xt + 0.5 * (hi + lo))
        w_ts.append(0.5 * (hi - lo) * wt)
    t, w_t = np.concatenate(ts), np.concatenate(w_ts)
    x = np.stack([np.outer(np.cos(t), r).ravel(), np.outer(np.sin(t), r).ravel()], axis=1)
    return x @ Lc.T, np.outer(w_t, w_r).ravel()


@dataclass(frozen=True)
class _PairMoments:
    chi: float  # C_W <s'_a s'_b>
    V: NDArray  # (3, 3) C_W^2 Cov(w), w = (s_a^2, s_a s_b, s_b^2)
    c3: NDArray  # (3,) C_W^2 Cov(s'_a s'_b, w)
    proj1: float  # <s'_a s'_b phi^T R phi>
    P2: NDArray  # (2, 2) <s'_a s'_b (R phi)_c (R phi)_d>
    Ta: NDArray  # (2, 2) <zt_c s'_a (R phi)_e>
    Tb: NDArray  # (2, 2) <zt_d s'_b (R phi)_f>
    U: NDArray  # (2, 2) <zt_c zt_d s'_a s'_b>
    YRY: NDArray  # (2, 2) Y^a_c R Y^b_d


def _pair_moments(act: Any, K: NDArray, cw: float, cb_own: float) -> _PairMoments:
    z, w = _gauss2(K)
    phi, dphi = act.fn(z), act.derivative(z)
    E = lambda f: np.tensordot(w, f, axes=(0, 0))  # noqa: E731
    Q = E(phi[:, :, None] * phi[:, None, :])
    R = np.linalg.inv(Q)
    dd = dphi[:, 0] * dphi[:, 1]
    wv = np.stack([phi[:, 0] ** 2, phi[:, 0] * phi[:, 1], phi[:, 1] ** 2], axis=1)
    mw = E(wv)
    V = cw * cw * (E(wv[:, :, None] * wv[:, None, :]) - np.outer(mw, mw))
    c3 = cw * cw * (E(dd[:, None] * wv) - E(dd) * mw)
    Rphi = phi @ R  # (M, 2), R symmetric
    proj1 = E(dd * np.einsum("mi,mi->m", phi, Rphi))
    P2 = E(dd[:, None, None] * Rphi[:, :, None] * Rphi[:, None, :])
    # z~ = z - b: E[z~ | z] = A z, Cov(z~ | z) = C - A C^T with C = K - cb J
    C = K - cb_own
    A = C @ np.linalg.inv(K)
    Cc = C - A @ C.T
    zt = z @ A.T  # conditional means (M, 2)
    Ta = E(zt[:, :, None] * dphi[:, 0, None, None] * Rphi[:, None, :])
    Tb = E(zt[:, :, None] * dphi[:, 1, None, None] * Rphi[:, None, :])
    U = E(dd[:, None, None] * (zt[:, :, None] * zt[:, None, :] + Cc[None]))
    Ya = E(zt[:, :, None] * dphi[:, 0, None, None] * phi[:, None, :])  # (c, component)
    Yb = E(zt[:, :, None] * dphi[:, 1, None, None] * phi[:, None, :])
    return _PairMoments(
        chi=cw * float(E(dd)), V=V, c3=c3, proj1=float(proj1), P2=P2, Ta=Ta, Tb=Tb, U=U, YRY=Ya @ R @ Yb.T
    )


# ----------------------------------------------------------------------------- infinite-width parts
def _forward_pair(mlp: MLP, S: NDArray, start: int, top: int) -> tuple[float, float]:
    """(beta^0, theta^0) of the network above preactivation layer ``start`` (1-based) started from
    the pair kernel S = (S_aa, S_ab, S_bb), up to layer ``top``."""
    act = mlp.activation
    aa, ab, bb = (float(v) for v in S)
    beta, theta = 1.0, ab  # theta of the starting layer alone is its fan-in S_ab
    for m in range(start, top):  # map out of layer m: Theta' = S'_ab + chi Theta
        cw, cb = mlp.weight_vars[m], mlp.bias_vars[m]
        chi = cw * float(act.dual_derivative(aa, ab, bb))
        aa, ab, bb = (
            cb + cw * float(act.dual(aa, aa, aa)),
            cb + cw * float(act.dual(aa, ab, bb)),
            cb + cw * float(act.dual(bb, bb, bb)),
        )
        theta = ab + chi * theta
        beta *= chi
    return beta, theta


@dataclass(frozen=True)
class _Taylor:
    """First and second derivatives of a function g of the pair kernel S = (S_aa, S_ab, S_bb),
    held in the coordinates y = (S_aa, S_bb, rho), rho = S_ab / sqrt(S_aa S_bb)."""

    S: NDArray
    grad_y: NDArray  # (3,)
    hess_y: NDArray  # (3, 3)

    def _jacobian(self) -> tuple[NDArray, NDArray]:
        """dy/dS (3x3) and the Hessian of rho in S (3x3); S ordered (aa, ab, bb)."""
        aa, ab, bb = self.S
        r = math.sqrt(aa * bb)
        rho = ab / r
        J = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [-rho / (2 * aa), 1 / r, -rho / (2 * bb)]])
        Hr = np.array(
            [
                [3 * rho / (4 * aa * aa), -1 / (2 * aa * r), rho / (4 * aa * bb)],
                [-1 / (2 * aa * r), 0.0, -1 / (2 * bb * r)],
                [rho / (4 * aa * bb), -1 / (2 * bb * r), 3 * rho / (4 * bb * bb)],
            ]
        )
        return J, Hr

    def first(self, c: NDArray) -> float:
        """grad_S g . c."""
        J, _ = self._jacobian()
        return float(self.grad_y @ (J @ c))

    def half_second(self, V: NDArray) -> float:
        """1/2 tr(Hess_S g V) = 1/2 tr(Hess_y g J V J^T) + 1/2 g_rho tr(Hess_S rho V): in these
        coordinates the large second derivatives in rho of kinked activations (ReLU) meet the small
        variance of rho of nearly parallel inputs, instead of cancelling between S-entries."""
        J, Hr = self._jacobian()
        return 0.5 * float(np.sum(self.hess_y * (J @ V @ J.T))) + 0.5 * float(self.grad_y[2] * np.sum(Hr * V))


def _derivatives(fn: Any, S: NDArray) -> tuple[_Taylor, _Taylor]:
    """Central differences of the two outputs of fn (a function of S = (aa, ab, bb)) in the
    coordinates (S_aa, S_bb, rho); the rho step shrinks with 1 - |rho| so that every evaluation
    stays inside |rho| < 1."""
    aa, ab, bb = S
    y0 = np.array([aa, bb, ab / math.sqrt(aa * bb)])
    fy = lambda y: np.array(fn(np.array([y[0], y[2] * math.sqrt(y[0] * y[1]), y[1]])))  # noqa: E731
    h = np.array([_FD_STEP * aa, _FD_STEP * bb, min(_FD_STEP, (1.0 - abs(y0[2])) / 8)])
    f0 = fy(y0)
    e = np.eye(3)

    def differences(h: NDArray) -> tuple[NDArray, NDArray]:
        g = np.zeros((2, 3))
        H = np.zeros((2, 3, 3))
        for i in range(3):
            fp, fm = fy(y0 + h[i] * e[i]), fy(y0 - h[i] * e[i])
            g[:, i] = (fp - fm) / (2 * h[i])
            H[:, i, i] = (fp - 2 * f0 + fm) / h[i] ** 2
            for j in range(i):
                fpp, fpm = fy(y0 + h[i] * e[i] + h[j] * e[j]), fy(y0 + h[i] * e[i] - h[j] * e[j])
                fmp, fmm = fy(y0 - h[i] * e[i] + h[j] * e[j]), fy(y0 - h[i] * e[i] - h[j] * e[j])
                H[:, i, j] = H[:, j, i] = (fpp - fpm - fmp + fmm) / (4 * h[i] * h[j])
        return g, H

    (g1, H1), (g2, H2) = differences(h), differences(h / 2)
    g, H = (4 * g2 - g1) / 3, (4 * H2 - H1) / 3  # Richardson: O(h^4) truncation
    S = np.asarray(S, dtype=np.float64)
    return _Taylor(S, g[0], H[0]), _Taylor(S, g[1], H[1])


def _pair_path(mlp: MLP, K1: NDArray) -> list[NDArray]:
    """The pair kernel (2x2) of layers 1 .. depth+1 at infinite width."""
    act = mlp.activation
    Ks = [K1]
    for m in range(1, mlp.depth + 1):
        cw, cb = mlp.weight_vars[m], mlp.bias_vars[m]
        K = Ks[-1]
        aa, ab, bb = K[0, 0], K[0, 1], K[1, 1]
        new = np.array(
            [
                [cb + cw * float(act.dual(aa, aa, aa)), cb + cw * float(act.dual(aa, ab, bb))],
                [0.0, cb + cw * float(act.dual(bb, bb, bb))],
            ]
        )
        new[1, 0] = new[0, 1]
        Ks.append(new)
    return Ks


def _pair_nlo(mlp: MLP, Ks: list[NDArray], top: int) -> tuple[float, float]:
    """(Theta_ab, theta^1_ab) of a neuron of layer ``top`` for one pair (module docstring)."""
    B1, T1 = 0.0, 0.0
    KM = Ks[top - 1]
    G0 = KM - mlp.bias_vars[top - 1]  # Gamma^0_M
    beta0 = 1.0
    for m in range(top - 1, 0, -1):  # map out of layer m into m + 1
        cw = mlp.weight_vars[m]
        K, Kn = Ks[m - 1], Ks[m]
        Sn = np.array([Kn[0, 0], Kn[0, 1], Kn[1, 1]])
        tb, tt = _derivatives(lambda S, m=m: _forward_pair(mlp, S, m + 1, top), Sn)
        mo = _pair_moments(mlp.activation, K, cw, mlp.bias_vars[m - 1])
        b0 = beta0  # beta^0_{m+1} on the path
        beta1 = (
            mo.chi * B1
            + mo.chi * tb.half_second(mo.V)
            + tb.first(mo.c3)
            - cw * mo.proj1 * b0
            + float(np.sum(mo.P2 * G0))
        )
        T1 = K[0, 1] * beta1 + T1 + tt.half_second(mo.V)
        G0 = mo.Ta @ G0 @ mo.Tb.T + cw * b0 * (mo.U - mo.YRY)
        B1 = beta1
        beta0 = mo.chi * b0
    _, theta0 = _forward_pair(mlp, np.array([Ks[0][0, 0], Ks[0][0, 1], Ks[0][1, 1]]), 1, top)
    return theta0, T1


# ----------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class NTKCorrection:
    r"""Infinite-width NTK Gram matrix ``ntk`` :math:`\Theta` on the inputs and its finite-width
    shift ``ntk_nlo`` :math:`H`: :math:`\mathbb E\hat\Theta = \Theta + H/n + O(n^{-2})`."""

    ntk: NDArray[np.float64]
    ntk_nlo: NDArray[np.float64]

    def mean(self, width: int) -> NDArray[np.float64]:
        """:math:`\\Theta + H/n` at hidden width ``width``."""
        return self.ntk + self.ntk_nlo / _check_width(width)


def ntk_correction(mlp: MLP, X: Any) -> NTKCorrection:
    r"""The NTK of ``mlp`` (NTK parameterisation) on the rows of ``X`` and its :math:`O(1/n)` mean
    shift :math:`H_{ab}`, pair by pair (module docstring; the diagonal by the one-input recursion of
    :func:`fieldcurve.finite_width_statistics`). Cost :math:`O(N^2 L^2)` small dense operations
    (about 0.05 s per pair and layer here: 4 s for 8 inputs at depth 3). Accuracy: the finite
    differences limit it to about 1e-8 relative (measured against the exact result for a quadratic
    network, ``derivations/ntk_finite_width.py``). Nearly parallel inputs: smooth activations stay
    accurate down to 1 - rho = 1e-8 at every layer, piecewise-linear ones down to 1e-5 (checked by
    the approach to the diagonal value); closer pairs raise a ``RuntimeWarning``. Checked against
    :func:`fieldcurve.monte_carlo_ntk_matrix` (tests).
    """
    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or not np.all(np.isfinite(X)):
        raise ValueError(f"X must be a finite 2-D array (points x d), got shape {X.shape}")
    if mlp.parameterization != "ntk":
        raise ValueError(
            "ntk_correction: the multi-input O(1/width) NTK mean (ntk_nlo on several inputs) is not"
            " derived for parameterization='standard' (mlp.parameterization must be 'ntk'); use"
            " finite_width_statistics(mlp, width, d=d) for one input or monte_carlo_ntk_matrix"
        )
    N, d = X.shape
    G = mlp.bias_vars[0] + mlp.weight_vars[0] * (X @ X.T) / d
    top = mlp.depth + 1
    ntk = np.empty((N, N))
    nlo = np.empty((N, N))
    worst = (0.0, -1, -1)
    min_gap = _MIN_GAP_KINKED if _abrelu_ab(mlp.activation) is not None else _MIN_GAP_SMOOTH
    for a in range(N):
        diag = np.array([K[0, 0] for K in _pair_path(mlp, np.full((2, 2), G[a, a]))])
        ntk[a, a], nlo[a, a] = _ntk_mean_nlo(mlp, diag, top)
        for b in range(a):
            if 1.0 - abs(G[a, b]) / math.sqrt(G[a, a] * G[b, b]) < 1e-12:  # parallel inputs
                if abs(G[a, a] - G[b, b]) > 1e-12 * G[a, a] or G[a, b] < 0:
                    raise ValueError(
                        f"X rows {b} and {a} are (anti)parallel but not equal: their pair kernel is"
                        " singular and the pair recursion does not apply"
                    )
                ntk[a, b], nlo[a, b] = ntk[a, a], nlo[a, a]  # the same input twice
                ntk[b, a], nlo[b, a] = ntk[a, b], nlo[a, b]
                continue
            K1 = np.array([[G[a, a], G[a, b]], [G[a, b], G[b, b]]])
            path = _pair_path(mlp, K1)
            gap = min(1.0 - abs(K[0, 1]) / math.sqrt(K[0, 0] * K[1, 1]) for K in path)
            if gap < min_gap:
                worst = max(worst, (1.0 - gap, a, b))
            ntk[a, b], nlo[a, b] = _pair_nlo(mlp, path, top)
            ntk[b, a], nlo[b, a] = ntk[a, b], nlo[a, b]
    if worst[1] >= 0:
        warnings.warn(
            f"inputs {worst[2]} and {worst[1]} are nearly parallel (correlation {worst[0]:.10f} at some"
            " layer): the pair recursion cancels large terms there and its shift is inaccurate",
            RuntimeWarning,
            stacklevel=2,
        )
    return NTKCorrection(ntk=ntk, ntk_nlo=nlo)
