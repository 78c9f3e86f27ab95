r"""Multi-input finite-width statistics and the O(1/width) correction to the Bayesian posterior.

Notation and derivation: ``docs/notes/finite_width_posterior.md`` (checked there against exact
finite-width posteriors). Conditional on the last hidden layer the output of an MLP is exactly a
Gaussian process with the random kernel :math:`\hat\Sigma_{ij} = C_b + \frac{C_W}{n}\sum_k
\sigma(z_k(x_i))\sigma(z_k(x_j))`; with :math:`K` the infinite-width (NNGP) kernel,

.. math::
    G_{ij} = \lim n\,(\mathbb E\hat\Sigma_{ij} - K_{ij}),\qquad
    V_{(ij)(kl)} = \lim n\,\mathrm{Cov}(\hat\Sigma_{ij}, \hat\Sigma_{kl})

(Roberts, Yaida & Hanin 2022, ch. 4: :math:`G = G^{\{1\}}` and :math:`V` the four-point vertex). The
multi-input recursions (delta method on the layer map :math:`F(S)_{ij} = C_b + C_W\langle\sigma(u_i)
\sigma(u_j)\rangle_{u\sim\mathcal N(0,S)}`):

.. math::
    \mathcal V^{(\ell+1)} = \tfrac{C_W^2}{n}\mathrm{Cov}_{K^{(\ell)}}(\sigma_i\sigma_j, \sigma_k\sigma_l)
        + (DF\otimes DF)[\mathcal V^{(\ell)}],\qquad
    \mathcal G^{(\ell+1)} = DF[\mathcal G^{(\ell)}] + \tfrac12 D^2F[\mathcal V^{(\ell)}].

They are not materialised as :math:`N^4` tensors: :math:`\mathcal V` is represented by samples of
its *fresh* part — one random hidden unit :math:`u\sim\mathcal N(0, K^{(\ell)})` gives
:math:`\xi = C_W(\sigma(u)\sigma(u)^\top - \langle\sigma\sigma^\top\rangle)`, exactly centred — pushed
to the output through the linear maps :math:`DF` (elementwise: entry :math:`(i,j)` depends on
:math:`S_{ii}, S_{ij}, S_{jj}`), so that :math:`V = \sum_\ell \mathbb E[\Xi^{(\ell)}\otimes
\Xi^{(\ell)}]`, and :math:`G` from :math:`\tfrac12\mathbb E\,D^2F[\Xi, \Xi]` along the way. The
derivatives of the two-point dual :math:`k(S_{ii}, S_{ij}, S_{jj})` are the closed-form
:math:`\partial k/\partial S_{ij} = \langle\sigma'\sigma'\rangle` (Price's theorem) and central
differences (relative step 2e-4, error about 1e-7 relative); on the diagonal the exact 1-D
derivatives of :mod:`fieldcurve.finite_width`. Every estimate is unbiased; its standard error
comes from independent replicate groups of samples.

Posterior mean at a test point :math:`\delta` to :math:`O(1/n)` (note, eq. M1; the structure of
PDLT §6.4 and Naveh et al. 2021), with :math:`\tilde K = K_{XX} + \sigma^2 I`,
:math:`\hat y = \tilde K^{-1} y`, :math:`A_\delta = K_{\delta X}\tilde K^{-1}` and the projection
:math:`T_{\delta'\cdots} = T_{\delta\cdots} - A_\delta T_{X\cdots}`:

.. math::
    \mathbb E[f_\delta\,|\,y] = K_{\delta X}\hat y + \frac1n\Bigl[G_{\delta'X}\hat y
        + \tfrac12\,\mathbb E\bigl[\Xi_{\delta'X}\hat y\,(\hat y^\top\Xi_{XX}\hat y
        - \mathrm{tr}\,\tilde K^{-1}\Xi_{XX}) - 2\,\Xi_{\delta'X}\tilde K^{-1}\Xi_{XX}\hat y\bigr]\Bigr].

Everything here is a statistic of the network *function* at initialisation, whose law at
width :math:`n` is the same in the NTK and the standard parameterisation (weights
:math:`\mathcal N(0, C_W/n)` either way; only the NTK and the training dynamics differ), so
``mlp.parameterization`` and ``mlp.bias`` do not enter (tested).

Cost :math:`O(M L^2 (P^2 + TP))` time for :math:`M` samples, :math:`P` training and :math:`T`
test points, memory :math:`O(B(P^2 + TP))` for a batch of :math:`B` samples. The expansion is in
:math:`L P/n` roughly (Hanin & Zlokapa 2024): the correction grows with the training set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
from numpy.typing import NDArray

from fieldcurve._checks import check_variance
from fieldcurve.finite_width import _check_width, _moments
from fieldcurve.kernels import MLP

__all__ = ["KernelFluctuations", "PosteriorCorrection", "kernel_fluctuations", "posterior_correction"]

_EPS = 2e-4  # relative finite-difference step of the dual's derivatives
_GROUPS = 16  # replicate groups for standard errors


# ----------------------------------------------------------------------------- layer jets
@dataclass
class _Jet:
    """Gradient and Hessian of the layer map entry F_ij in (S_ii, S_ij, S_jj) = (a, c, b),
    times C_W, for one block of entries (arrays broadcast to the block shape)."""

    ga: NDArray[np.float64]
    gc: NDArray[np.float64]
    gb: NDArray[np.float64]
    haa: NDArray[np.float64]
    hcc: NDArray[np.float64]
    hbb: NDArray[np.float64]
    hac: NDArray[np.float64]
    hbc: NDArray[np.float64]
    hab: NDArray[np.float64]

    def first(self, a: NDArray, c: NDArray, b: NDArray) -> NDArray:
        """DF[Xi]: the linear map (a, c, b are the perturbations of S_ii, S_ij, S_jj)."""
        return self.ga * a + self.gc * c + self.gb * b

    def half_second(self, a: NDArray, c: NDArray, b: NDArray) -> NDArray:
        """1/2 D^2F[Xi, Xi]."""
        return (
            0.5 * (self.haa * a * a + self.hcc * c * c + self.hbb * b * b)
            + self.hac * a * c
            + self.hbc * b * c
            + self.hab * a * b
        )


def _offdiag_jet(act: Any, cw: float, a: NDArray, c: NDArray, b: NDArray) -> _Jet:
    """Central differences of k(a, c, b) = E[s(u)s(v)] and of dk/dc = E[s'(u)s'(v)]."""
    rho = np.abs(c) / np.sqrt(a * b)
    e = np.minimum(_EPS, np.maximum(1.0 - rho, 1e-12) / 4)  # stay inside |rho| < 1
    ha, hb, hc = e * a, e * b, e * np.sqrt(a * b)
    k, D = act.dual, act.dual_derivative
    k0 = k(a, c, b)
    kap, kam = k(a + ha, c, b), k(a - ha, c, b)
    kbp, kbm = k(a, c, b + hb), k(a, c, b - hb)
    hab = (k(a + ha, c, b + hb) - k(a + ha, c, b - hb) - k(a - ha, c, b + hb) + k(a - ha, c, b - hb)) / (
        4 * ha * hb
    )
    return _Jet(
        ga=cw * (kap - kam) / (2 * ha),
        gb=cw * (kbp - kbm) / (2 * hb),
        gc=cw * D(a, c, b),
        haa=cw * (kap - 2 * k0 + kam) / (ha * ha),
        hbb=cw * (kbp - 2 * k0 + kbm) / (hb * hb),
        hcc=cw * (D(a, c + hc, b) - D(a, c - hc, b)) / (2 * hc),
        hac=cw * (D(a + ha, c, b) - D(a - ha, c, b)) / (2 * ha),
        hbc=cw * (D(a, c, b + hb) - D(a, c, b - hb)) / (2 * hb),
        hab=cw * hab,
    )


def _diag_derivatives(act: Any, cw: float, q: NDArray) -> tuple[NDArray, NDArray]:
    """C_W d<s^2>/dK and C_W d^2<s^2>/dK^2 at each variance in q (exact 1-D rules)."""
    uniq, inv = np.unique(np.round(q, 13), return_inverse=True)
    d1 = np.empty(len(uniq))
    d2 = np.empty(len(uniq))
    for i, v in enumerate(uniq):
        mo = _moments(act, float(v))
        d1[i], d2[i] = mo.d1, mo.d2
    return cw * d1[inv], cw * d2[inv]


@dataclass
class _Layer:
    """Kernel of one preactivation layer on all points (training first, then test) and the jets
    of the map to the next layer on the XX and TX blocks."""

    K: NDArray[np.float64]
    P: int
    jet_XX: _Jet | None = None
    jet_TX: _Jet | None = None
    diag_T: tuple[NDArray, NDArray] | None = None

    @property
    def K_XX(self) -> NDArray:
        return self.K[: self.P, : self.P]

    @property
    def K_TX(self) -> NDArray:
        return self.K[self.P :, : self.P]

    @property
    def K_TT(self) -> NDArray:
        return np.diagonal(self.K)[self.P :]


def _next_kernel(act: Any, cw: float, cb: float, K: NDArray, P: int, full: bool) -> NDArray:
    """The NNGP layer map on all points; with ``full`` False only the XX and TX blocks and the
    diagonal are computed (the output layer needs no more)."""
    q = np.diagonal(K).copy()
    if full:
        out = cb + cw * act.dual(q[:, None], K, q[None, :])
    else:
        out = np.zeros_like(K)
        out[:, :P] = cb + cw * act.dual(q[:, None], K[:, :P], q[None, :P])
        out[:P, P:] = out[P:, :P].T
    uniq, inv = np.unique(np.round(q, 13), return_inverse=True)
    m2 = np.array([_moments(act, float(v)).m2 for v in uniq])
    np.fill_diagonal(out, cb + cw * m2[inv])
    return 0.5 * (out + out.T)


def _layers(mlp: MLP, X: NDArray, T: NDArray) -> list[_Layer]:
    """K^(l) for l = 1 .. L+1 on all points, with the jets of the map out of l = 1 .. L."""
    d, P = X.shape[1], X.shape[0]
    act = mlp.activation
    Z = np.concatenate([X, T])
    layers = [_Layer(K=mlp.bias_vars[0] + mlp.weight_vars[0] * (Z @ Z.T) / d, P=P)]
    for l in range(mlp.depth):
        cw, cb = mlp.weight_vars[l + 1], mlp.bias_vars[l + 1]
        cur = layers[-1]
        q = np.diagonal(cur.K).copy()
        qX, qT = q[:P], q[P:]
        # off-diagonal XX jets (the diagonal gets the exact 1-D derivatives below)
        idx = np.arange(P)
        cXX = cur.K_XX.copy()
        cXX[idx, idx] = 0.0  # placeholder inside |rho| < 1, overwritten
        jet_XX = _offdiag_jet(act, cw, *np.broadcast_arrays(qX[:, None], cXX, qX[None, :]))
        d1X, d2X = _diag_derivatives(act, cw, qX)
        for name in ("ga", "gb", "haa", "hbb", "hac", "hbc", "hab"):
            getattr(jet_XX, name)[idx, idx] = 0.0
        jet_XX.gc[idx, idx] = d1X
        jet_XX.hcc[idx, idx] = d2X
        KTX = cur.K_TX
        cur.jet_TX = (
            _offdiag_jet(act, cw, *np.broadcast_arrays(qT[:, None], KTX, qX[None, :])) if KTX.size else None
        )
        cur.jet_XX = jet_XX
        cur.diag_T = _diag_derivatives(act, cw, qT) if len(qT) else (np.zeros(0), np.zeros(0))
        layers.append(_Layer(K=_next_kernel(act, cw, cb, cur.K, P, full=l < mlp.depth - 1), P=P))
    return layers


# ----------------------------------------------------------------------------- sampling
def _sqrt_psd(K: NDArray) -> NDArray:
    """A lower-triangular R with R R^T = K + eps I, eps = 1e-12 of the largest diagonal entry
    (raised tenfold until the Cholesky factorisation succeeds)."""
    scale = float(np.max(np.diagonal(K)))
    eps = 1e-12 * scale
    while True:
        try:
            return np.linalg.cholesky(K + eps * np.eye(len(K)))
        except np.linalg.LinAlgError:
            eps *= 10
            if eps > 1e-6 * scale:
                raise


_Blocks = tuple[NDArray, NDArray, NDArray]  # (XX, TX, TT diagonal), each with a leading batch axis


def _units(mlp: MLP, l: int, Z: NDArray, B: int, rng: np.random.Generator, root: Any) -> NDArray:
    """sigma(u) for B independent units of hidden layer l (0-based) on all points: the first
    layer's unit is b + w.x exactly; deeper units are u ~ N(0, K^(l)) = root @ z."""
    if l == 0:
        d = Z.shape[1]
        w = rng.standard_normal((B, d)) * math.sqrt(mlp.weight_vars[0] / d)
        b = rng.standard_normal((B, 1)) * math.sqrt(mlp.bias_vars[0])
        u = w @ Z.T + b
    else:
        u = rng.standard_normal((B, root.shape[1])) @ root.T
    return mlp.activation.fn(u)


def _fresh(layers: list[_Layer], l: int, s: NDArray, cw: float, cb: float) -> _Blocks:
    """Fresh fluctuations C_W (s s^T - <s s^T>) of the kernel of layer l+1 (0-based) from the
    units s of hidden layer l, exactly centred."""
    P = layers[0].P
    sX, sT = s[:, :P], s[:, P:]
    nxt = layers[l + 1]
    XX = cw * np.einsum("bi,bj->bij", sX, sX) - (nxt.K_XX - cb)
    TX = cw * np.einsum("bi,bj->bij", sT, sX) - (nxt.K_TX - cb)
    TT = cw * sT * sT - (nxt.K_TT - cb)
    return XX, TX, TT


def _push(
    layer: _Layer, XX: NDArray, TX: NDArray, TT: NDArray, second: bool = True
) -> tuple[_Blocks, _Blocks | None]:
    """DF (and 1/2 D^2F) of the map out of ``layer`` applied to a batch of fluctuations."""
    dX = np.diagonal(XX, axis1=-2, axis2=-1)
    jx, jt = layer.jet_XX, layer.jet_TX
    aXX, bXX = dX[..., :, None], dX[..., None, :]
    aTX, bTX = TT[..., :, None], dX[..., None, :]
    d1T, d2T = layer.diag_T
    first = (
        jx.first(aXX, XX, bXX),
        jt.first(aTX, TX, bTX) if jt is not None else TX,
        d1T * TT,
    )
    if not second:
        return first, None
    half = (
        jx.half_second(aXX, XX, bXX),
        jt.half_second(aTX, TX, bTX) if jt is not None else TX,
        0.5 * d2T * TT * TT,
    )
    return first, half


def _check_inputs(mlp: Any, X: Any, T: Any) -> tuple[NDArray, NDArray]:
    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (points x d), got shape {X.shape}")
    T = np.zeros((0, X.shape[1])) if T is None else np.asarray(T, dtype=np.float64)
    if T.ndim != 2 or T.shape[1] != X.shape[1]:
        raise ValueError(f"X_test must be 2-D with {X.shape[1]} columns, got shape {T.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(T))):
        raise ValueError("X and X_test must be finite")
    if mlp.depth < 1:
        raise ValueError("a network without hidden layers (depth 0) has no finite-width correction")
    return X, T


def _check_samples(samples: Any) -> int:
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2 * _GROUPS:
        raise ValueError(f"samples must be an integer >= {2 * _GROUPS}, got {samples!r}")
    return int(samples)


def _sweep(
    mlp: MLP,
    layers: list[_Layer],
    X: NDArray,
    T: NDArray,
    samples: int,
    seed: int,
    batch: int,
    visit: Any,
    visit_units: Any = None,
    unit_samples: int = 0,
) -> _Blocks:
    """Draw ``samples`` fresh fluctuations from every hidden layer, push them to the output and
    call ``visit(group, XX, TX, TT)`` on each output batch (per-sample blocks; their second
    moments sum to V). With ``visit_units``, the last hidden layer's fluctuations, which reach the
    output unchanged, are handed over as unit values instead, ``visit_units(group, s)``
    (``unit_samples`` of them, in batches of ``16 * batch``). Returns G at the output per
    replicate group, each group estimating G from its own samples."""
    rng = np.random.default_rng(seed)
    L, P, Tn = mlp.depth, X.shape[0], T.shape[0]
    Z = np.concatenate([X, T])
    zeros = lambda: (np.zeros((_GROUPS, P, P)), np.zeros((_GROUPS, Tn, P)), np.zeros((_GROUPS, Tn)))  # noqa: E731
    src = {j: zeros() for j in range(2, L + 1)}  # 1/2 E D^2F sources of G at layers[j]
    for l in range(L):
        cw, cb = mlp.weight_vars[l + 1], mlp.bias_vars[l + 1]
        root = _sqrt_psd(layers[l].K) if l > 0 else None
        fast = visit_units is not None and l == L - 1
        per_group = (unit_samples if fast else samples) // _GROUPS
        for g in range(_GROUPS):
            done = 0
            while done < per_group:
                B = min(16 * batch if fast else batch, per_group - done)
                s = _units(mlp, l, Z, B, rng, root)
                done += B
                if fast:
                    visit_units(g, s)
                    continue
                blocks = _fresh(layers, l, s, cw, cb)
                for j in range(l + 1, L):  # through the map out of layers[j]
                    blocks, half = _push(layers[j], *blocks)
                    for k in range(3):
                        src[j + 1][k][g] += half[k].sum(0) / per_group
                visit(g, *blocks)
    G = zeros()
    for j in range(1, L):  # G at layers[j+1] = DF_j[G at layers[j]] + source
        G, _ = _push(layers[j], *G, second=False)
        G = tuple(G[k] + src[j + 1][k] for k in range(3))
    return G


# ----------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class KernelFluctuations:
    r"""Output-layer statistics on a set of N inputs (estimated by sampling, see module docstring).

    Attributes
    ----------
    kernel : (N, N) infinite-width kernel :math:`K`.
    kernel_nlo, kernel_nlo_se : (N, N) :math:`G` (:math:`\mathbb E\hat\Sigma = K + G/n`) and its
        standard error.
    vertex, vertex_se : (N, N, N, N) :math:`V_{(ij)(kl)} = n\,\mathrm{Cov}(\hat\Sigma_{ij},
        \hat\Sigma_{kl})` at leading order, and its standard error.
    """

    width: int
    depth: int
    kernel: NDArray[np.float64]
    kernel_nlo: NDArray[np.float64]
    kernel_nlo_se: NDArray[np.float64]
    vertex: NDArray[np.float64]
    vertex_se: NDArray[np.float64]

    @property
    def depth_to_width(self) -> float:
        return self.depth / self.width

    def fourth_cumulant(self) -> NDArray[np.float64]:
        r"""Connected four-point function of the outputs, :math:`\frac1n(V_{(ij)(kl)} + V_{(ik)(jl)}
        + V_{(il)(jk)})`."""
        V = self.vertex
        return (V + V.transpose(0, 2, 1, 3) + V.transpose(0, 3, 2, 1)) / self.width


_MAX_VERTEX_POINTS = 40


def kernel_fluctuations(
    mlp: MLP, X: Any, width: int, *, samples: int = 20_000, seed: int, batch: int = 512
) -> KernelFluctuations:
    r"""K, G and the four-point vertex V of the output on the inputs ``X`` (N <= 40 points, since
    V has :math:`N^4` entries; for more points use :func:`posterior_correction`, which never
    forms V). ``samples`` fresh units per hidden layer; the standard errors come from 16
    replicate groups. On the diagonal, :math:`V_{(ii)(ii)}` and :math:`G_{ii}` are the single-input
    ``vertex`` and ``kernel_nlo`` of :func:`fieldcurve.finite_width_statistics`.
    """
    X, T = _check_inputs(mlp, X, None)
    n = _check_width(width)
    samples = _check_samples(samples)
    N = X.shape[0]
    if N > _MAX_VERTEX_POINTS:
        raise ValueError(
            f"X has {N} points; the vertex tensor is limited to {_MAX_VERTEX_POINTS} (N^4 entries)"
        )
    acc = np.zeros((_GROUPS, N, N, N, N))
    per_group = samples // _GROUPS

    def visit(g: int, XX: NDArray, TX: NDArray, TT: NDArray) -> None:
        acc[g] += np.einsum("bij,bkl->ijkl", XX, XX) / per_group

    layers = _layers(mlp, X, T)
    G = _sweep(mlp, layers, X, T, samples, seed, batch, visit)
    sq = math.sqrt(_GROUPS)
    return KernelFluctuations(
        width=n,
        depth=mlp.depth,
        kernel=layers[-1].K_XX.copy(),
        kernel_nlo=G[0].mean(0),
        kernel_nlo_se=G[0].std(0, ddof=1) / sq,
        vertex=acc.mean(0),
        vertex_se=acc.std(0, ddof=1) / sq,
    )


@dataclass(frozen=True)
class PosteriorCorrection:
    r"""GP posterior and its :math:`O(1/n)` correction at the test points.

    ``mean = mean_gp + mean_nlo / width``; ``variance = variance_gp + variance_nlo / width`` (when
    computed). With test labels: ``test_error_gp`` = mean over test points of
    :math:`(m_{GP} - y)^2` and ``test_error_nlo`` its coefficient of :math:`1/n`,
    :math:`2\,\overline{(m_{GP} - y)\,\Delta m}`. Standard errors (``*_se``) are Monte Carlo
    errors of the sampling. ``expansion_parameter`` is :math:`LP/n`, the size of the neglected
    terms' natural scale (the series is trustworthy when the correction is small against the GP
    value, ``relative_correction``).
    """

    width: int
    depth: int
    mean_gp: NDArray[np.float64]
    mean_nlo: NDArray[np.float64]
    mean_nlo_se: NDArray[np.float64]
    variance_gp: NDArray[np.float64] | None = None
    variance_nlo: NDArray[np.float64] | None = None
    variance_nlo_se: NDArray[np.float64] | None = None
    test_error_gp: float | None = None
    test_error_nlo: float | None = None
    test_error_nlo_se: float | None = None
    n_train: int = 0

    @property
    def mean(self) -> NDArray[np.float64]:
        return self.mean_gp + self.mean_nlo / self.width

    @property
    def test_error(self) -> float | None:
        """:math:`E_{GP} + \\Delta E/n` (None without test labels)."""
        if self.test_error_gp is None:
            return None
        return self.test_error_gp + self.test_error_nlo / self.width

    @property
    def expansion_parameter(self) -> float:
        return self.depth * self.n_train / self.width

    @property
    def relative_correction(self) -> float | None:
        if self.test_error_gp is None or self.test_error_gp == 0:
            return None
        return abs(self.test_error_nlo / self.width) / self.test_error_gp


def posterior_correction(
    mlp: MLP,
    X: Any,
    y: Any,
    X_test: Any,
    *,
    noise_var: float,
    width: int,
    seed: int,
    y_test: Any = None,
    samples: int = 8192,
    unit_samples: int = 262_144,
    variance: bool = False,
    batch: int = 64,
) -> PosteriorCorrection:
    r"""Posterior mean (and with ``variance=True`` variance) of a width-``width`` Bayesian MLP at
    ``X_test`` to :math:`O(1/n)`: prior = the initialisation of ``mlp`` (weights
    :math:`\mathcal N(0, C_W/n)`, biases :math:`\mathcal N(0, C_b)`), Gaussian likelihood with
    variance ``noise_var`` — the stationary law of :func:`fieldcurve.validation.langevin_sample`.
    Formula (M1) of the module docstring; the variance is (V1) of the note,

    .. math:: \mathrm{Var}[f_\delta|y] = C^{GP}_{\delta\delta} + \frac1n\Bigl[G_{\delta'\delta'}
        + \mathbb E\bigl(\tfrac12\Xi_{\delta'\delta'}(\hat y^\top\Xi_{XX}\hat y
        - \mathrm{tr}\tilde K^{-1}\Xi_{XX}) + \Xi_{\delta'X}H\Xi_{X\delta'}\bigr)\Bigr],
        \quad H = \hat y\hat y^\top - \tilde K^{-1},

    which costs :math:`O(T P^2)` per sample instead of :math:`O(TP)`. ``samples`` fresh units per
    hidden layer (error :math:`\propto` samples:math:`^{-1/2}`, reported). One output only.
    Accuracy: exact to :math:`O(1/n^2)` up to the Monte Carlo error; checked against the exact
    scale-mixture posterior of deep linear networks and importance-sampled finite networks
    (``tests/test_finite_width_posterior.py``).
    """
    X, T = _check_inputs(mlp, X, X_test)
    n = _check_width(width)
    samples = _check_samples(samples)
    unit_samples = _check_samples(unit_samples)
    s2 = check_variance(noise_var, "noise_var")
    if s2 <= 0:
        raise ValueError("noise_var must be positive")
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (X.shape[0],) or not np.all(np.isfinite(y)):
        raise ValueError(
            f"y must be finite with one value per training point (shape ({X.shape[0]},)), got {y.shape}"
        )
    if y_test is not None:
        y_test = np.asarray(y_test, dtype=np.float64).reshape(-1)
        if y_test.shape != (T.shape[0],) or not np.all(np.isfinite(y_test)):
            raise ValueError(f"y_test must be finite with one value per test point, got shape {y_test.shape}")
    P, Tn = X.shape[0], T.shape[0]
    layers = _layers(mlp, X, T)
    out = layers[-1]
    factor = sla.cho_factor(out.K_XX + s2 * np.eye(P), lower=True)
    Kinv = sla.cho_solve(factor, np.eye(P))
    Kinv = 0.5 * (Kinv + Kinv.T)
    yhat = sla.cho_solve(factor, y)
    A = sla.cho_solve(factor, out.K_TX.T).T  # K_TX Ktilde^-1
    H = np.outer(yhat, yhat) - Kinv
    acc_m = np.zeros((_GROUPS, Tn))
    acc_v = np.zeros((_GROUPS, Tn))
    per_group = samples // _GROUPS

    def visit(g: int, XX: NDArray, TX: NDArray, TT: NDArray) -> None:
        uX = XX @ yhat  # (B, P)
        s1 = uX @ yhat
        tr = np.einsum("bij,ij->b", XX, Kinv)
        w = TX @ yhat - uX @ A.T  # Xi_{delta' X} yhat
        v = uX @ Kinv
        t3 = np.einsum("btp,bp->bt", TX, v) - np.einsum("bpq,bq->bp", XX, v) @ A.T
        acc_m[g] += (0.5 * w * (s1 - tr)[:, None] - t3).sum(0) / per_group
        if variance:
            AX = np.einsum("tp,bpq->btq", A, XX)
            proj = TX - AX  # Xi_{delta' X}
            dd = TT - 2 * np.einsum("tp,btp->bt", A, TX) + np.einsum("btq,tq->bt", AX, A)
            quad = np.einsum("btp,pq,btq->bt", proj, H, proj, optimize=True)
            acc_v[g] += (0.5 * dd * (s1 - tr)[:, None] + quad).sum(0) / per_group

    # the last hidden layer's fresh fluctuations reach the output unchanged: with
    # Xi = C_W (s s^T - Kbar) every contraction is a matrix product over a batch of units
    cw, cb = mlp.weight_vars[-1], mlp.bias_vars[-1]
    Kb_XX, Kb_TX = (out.K_XX - cb) / cw, (out.K_TX - cb) / cw
    Kb_TT = (out.K_TT - cb) / cw
    Kb_y, KbT_y = Kb_XX @ yhat, Kb_TX @ yhat
    y_Kb_y, tr_Kb = float(yhat @ Kb_y), float(np.sum(Kinv * Kb_XX))
    C = Kb_TX - A @ Kb_XX  # E[p s_X^T], p = s_T - A s_X
    c_pp = Kb_TT - 2 * np.einsum("tp,tp->t", A, Kb_TX) + np.einsum("tp,tp->t", A @ Kb_XX, A)  # E p^2
    CH = C @ H
    CHC = np.einsum("tp,tp->t", CH, C)
    per_unit = unit_samples // _GROUPS

    def visit_units(g: int, s: NDArray) -> None:
        sX, sT = s[:, :P], s[:, P:]
        a = sX @ yhat
        uX = cw * (sX * a[:, None] - Kb_y)
        s1 = cw * (a * a - y_Kb_y)
        tr = cw * (np.einsum("bp,bp->b", sX @ Kinv, sX) - tr_Kb)
        w = cw * (sT * a[:, None] - KbT_y) - uX @ A.T
        v = uX @ Kinv
        bv = np.einsum("bp,bp->b", sX, v)
        t3 = cw * (sT * bv[:, None] - v @ Kb_TX.T) - cw * (sX * bv[:, None] - v @ Kb_XX) @ A.T
        acc_m[g] += (0.5 * w * (s1 - tr)[:, None] - t3).sum(0) / per_unit
        if variance:
            pp = sT - sX @ A.T
            sHs = np.einsum("bp,bp->b", sX @ H, sX)
            quad = cw * cw * (pp * pp * sHs[:, None] - 2 * pp * (sX @ CH.T) + CHC)
            dd = cw * (pp * pp - c_pp)
            acc_v[g] += (0.5 * dd * (s1 - tr)[:, None] + quad).sum(0) / per_unit

    G = _sweep(mlp, layers, X, T, samples, seed, batch, visit, visit_units, unit_samples)
    mean_gp = out.K_TX @ yhat
    G_XX, G_TX, G_TT = G
    mean_g = (G_TX - np.einsum("tp,gpq->gtq", A, G_XX)) @ yhat  # (groups, T)
    total_m = acc_m + mean_g
    sq = math.sqrt(_GROUPS)
    kw: dict = {}
    if variance:
        var_gp = out.K_TT - np.einsum("tp,tp->t", A, out.K_TX)
        AG = np.einsum("tp,gpq->gtq", A, G_XX)
        g_dd = G_TT - 2 * np.einsum("tp,gtp->gt", A, G_TX) + np.einsum("gtq,tq->gt", AG, A)
        total_v = acc_v + g_dd
        kw = dict(
            variance_gp=var_gp,
            variance_nlo=total_v.mean(0),
            variance_nlo_se=total_v.std(0, ddof=1) / sq,
        )
    if y_test is not None:
        r = mean_gp - y_test
        dE = 2 * (total_m @ r) / Tn
        kw.update(
            test_error_gp=float(np.mean(r * r)),
            test_error_nlo=float(dE.mean()),
            test_error_nlo_se=float(dE.std(ddof=1) / sq),
        )
    return PosteriorCorrection(
        width=n,
        depth=mlp.depth,
        mean_gp=mean_gp,
        mean_nlo=total_m.mean(0),
        mean_nlo_se=total_m.std(0, ddof=1) / sq,
        n_train=P,
        **kw,
    )
