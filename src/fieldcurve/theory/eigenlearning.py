r"""Learning curves of kernel ridge regression from the spectrum: the eigenlearning / replica theory.

Setting (see the README's conventions): kernel ridge regression
:math:`\hat f(x) = K(x, X)(K(X,X) + \delta I)^{-1}y` on :math:`P` points drawn uniformly on the
:math:`\sqrt d`-sphere, labels :math:`y = f^*(x) + \varepsilon`, :math:`\mathrm{Var}\,\varepsilon =
\sigma^2`. The kernel has eigenvalues :math:`\lambda_l` with multiplicities :math:`N_l = N(d,l)`
(uniform probability measure); the target has power :math:`v_l^2` per degree.

The omniscient-risk / replica / eigenlearning result (Bordelon, Canatar & Pehlevan 2020;
Canatar, Bordelon & Pehlevan 2021; Simon, Dickens, Karkada & DeWeese 2021–23; Jacot et al.
2020): the effective ridge :math:`\kappa > 0` solves

.. math:: \sum_l N_l\,\frac{\lambda_l}{\lambda_l + \kappa} + \frac{\delta}{\kappa} = P,

the learnability of degree :math:`l` is :math:`\mathcal L_l = \lambda_l/(\lambda_l + \kappa)`, the
overfitting coefficient is :math:`\mathcal E_0 = P/(P - \sum_l N_l\mathcal L_l^2) = 1/(1-\gamma)`,
and

.. math::
    E_g = \mathcal E_0\Bigl[\sum_l (1-\mathcal L_l)^2 v_l^2 + \sigma^2\Bigr] - \sigma^2,
    \qquad E_{train} = \Bigl(\frac{\delta}{P\kappa}\Bigr)^2\,(E_g + \sigma^2),

where :math:`E_g = \mathbb E_x[(\hat f - f^*)^2]` (against the clean target, averaged over
training sets) and :math:`E_g + \sigma^2` is the error on noisy test labels. Per degree
(Canatar, Bordelon & Pehlevan 2021, eq. for :math:`E_\rho`, in eigenlearning notation), with
:math:`B = \sum_l(1-\mathcal L_l)^2v_l^2`:

.. math:: E_l = (1-\mathcal L_l)^2 v_l^2 + \frac{N_l\mathcal L_l^2}{P}\,\mathcal E_0\,(B + \sigma^2),

the degree's own unlearned power plus its share of the effective noise (label noise *and* the
unlearned power of all other degrees); :math:`\sum_l E_l` over all modes is :math:`E_g`.
Ridgeless (:math:`\delta = 0`) with :math:`P` at or beyond the
number :math:`M_+` of modes with :math:`\lambda > 0` interpolates: :math:`\kappa = 0`,
:math:`\mathcal E_0 = P/(P - M_+)`.

Tail model: the degrees beyond the spectrum's ``lmax`` carry the mass :math:`T` =
``Spectrum.tail_mass``. They are extended by a power law fitted to the last computed degrees
(per parity, with the exact multiplicities :math:`N(d,l)`) up to ``tail_factor`` × lmax, scaled
so their mass does not exceed :math:`T`; whatever mass remains acts as a ridge (modes with
:math:`\lambda \ll \kappa` contribute :math:`\lambda/\kappa` each). The result reports
``tail_ratio`` = (largest eigenvalue beyond lmax) / κ; predictions are reliable where it is small.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldcurve._checks import check_variance
from fieldcurve.spectrum import Spectrum
from fieldcurve.sphere import log_multiplicity
from fieldcurve.targets import Target

__all__ = ["LearningCurve", "learning_curve", "solve_kappa"]


@dataclass(frozen=True)
class LearningCurve:
    r"""A predicted learning curve (arrays over the P grid; per-degree arrays are (len(P), lmax+1)).

    Attributes
    ----------
    P : sample sizes.
    test_error : :math:`E_g`, excess error against the clean target.
    test_error_noisy : :math:`E_g + \sigma^2`, error on noisy test labels.
    train_error : training mean squared error.
    kappa : effective ridge :math:`\kappa`.
    overfitting : :math:`\mathcal E_0 = 1/(1-\gamma)`.
    learnability : :math:`\mathcal L_l` per degree.
    error_per_degree : :math:`E_l` per degree (module docstring); the modes beyond lmax and
        target power beyond lmax make up the rest of ``test_error``.
    bias : :math:`B = \sum_l (1-\mathcal L_l)^2 v_l^2` (target power beyond lmax included).
    tail_ratio : largest eigenvalue beyond lmax divided by :math:`\kappa`.
    """

    P: NDArray[np.float64]
    test_error: NDArray[np.float64]
    test_error_noisy: NDArray[np.float64]
    train_error: NDArray[np.float64]
    kappa: NDArray[np.float64]
    overfitting: NDArray[np.float64]
    bias: NDArray[np.float64]
    tail_ratio: NDArray[np.float64]
    degrees: NDArray[np.int64]
    ridge: float
    noise: float
    eigenvalues: NDArray[np.float64] = field(repr=False)
    log_multiplicities: NDArray[np.float64] = field(repr=False)
    target_powers: NDArray[np.float64] = field(repr=False)
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def learnability(self) -> NDArray[np.float64]:
        r""":math:`\mathcal L_l = \lambda_l/(\lambda_l + \kappa)`, shape (len(P), lmax + 1)."""
        lam = self.eigenvalues
        out = np.empty((len(self.P), len(lam)))
        pos = self.kappa > 0
        out[~pos] = (lam > 0).astype(float)
        out[pos] = lam[None, :] / np.add.outer(self.kappa[pos], lam)
        return out

    @property
    def error_per_degree(self) -> NDArray[np.float64]:
        r""":math:`E_l = (1-\mathcal L_l)^2v_l^2 + N_l\mathcal L_l^2\,\mathcal E_0(B+\sigma^2)/P`."""
        L = self.learnability
        with np.errstate(over="ignore"):
            n = np.exp(self.log_multiplicities)
        share = np.where(np.isfinite(n) & (L > 0), n[None, :] * L**2 / self.P[:, None], 0.0)
        return (1 - L) ** 2 * self.target_powers[None, :] + share * self.test_error_noisy[:, None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (per-degree arrays restricted to degrees with target power)."""
        shown = self.meta.get("target_degrees", [])
        rows = []
        for i, p in enumerate(self.P):
            rows.append(
                {
                    "P": float(p),
                    "test_error": float(self.test_error[i]),
                    "test_error_noisy": float(self.test_error_noisy[i]),
                    "train_error": float(self.train_error[i]),
                    "kappa": float(self.kappa[i]),
                    "overfitting": float(self.overfitting[i]),
                    "tail_ratio": float(self.tail_ratio[i]),
                    "error_per_degree": {str(l): float(self.error_per_degree[i, l]) for l in shown},
                    "learnability": {str(l): float(self.learnability[i, l]) for l in shown},
                }
            )
        return {"ridge": self.ridge, "noise": self.noise, "points": rows}


# --------------------------------------------------------------------------- levels and tail
def _levels(spec: Spectrum, tail_factor: float) -> tuple[NDArray, NDArray, float, float]:
    """(eigenvalues, multiplicities) of the computed degrees plus the power-law tail extension
    (grouped into at most a few hundred levels), the leftover tail mass (acts as ridge), and the
    largest eigenvalue beyond lmax."""
    lam = spec.eigenvalues.astype(np.float64)
    with np.errstate(over="ignore"):
        mult = np.exp(spec.log_multiplicities)
    keep = (lam > 0) & np.isfinite(mult) & (lam * mult > 0)
    lam_k, mult_k = lam[keep], mult[keep]
    tail = max(float(spec.tail_mass), 0.0)
    lmax = spec.lmax
    if tail <= 0 or lmax < 4:
        return lam_k, mult_k, tail, 0.0
    ext_l: list[NDArray] = []
    ext_lam: list[NDArray] = []
    for parity in (0, 1):
        ls = np.arange(max(2, lmax // 2), lmax + 1)
        ls = ls[(ls % 2 == parity) & (spec.eigenvalues[ls] > 0)]
        if len(ls) < 3 or ls[-1] < lmax - 1:
            continue
        slope, icpt = np.polyfit(np.log(ls), spec.log_eigenvalues[ls], 1)
        if not slope < 0:
            continue
        new_l = np.arange(lmax + 1 + ((lmax + 1 + parity) % 2), int(tail_factor * lmax) + 1, 2)
        if new_l.size == 0:
            continue
        ext_l.append(new_l)
        ext_lam.append(np.exp(icpt + slope * np.log(new_l)))
    if not ext_l:
        return lam_k, mult_k, tail, 0.0
    new_l = np.concatenate(ext_l)
    new_lam = np.concatenate(ext_lam)
    with np.errstate(over="ignore"):
        new_mult = np.exp(log_multiplicity(spec.d, new_l))
    ok = np.isfinite(new_mult) & (new_lam > 0)
    new_l, new_lam, new_mult = new_l[ok], new_lam[ok], new_mult[ok]
    mass = float(np.sum(new_lam * new_mult))
    if mass > tail:  # the power law would exceed the known tail: scale it down
        new_lam *= tail / mass
        mass = tail
    largest = float(new_lam.max()) if new_lam.size else 0.0
    # group into log-spaced bins of eigenvalue (mass-preserving), at most ~400 levels
    if new_lam.size > 400:
        edges = np.geomspace(new_lam.min(), new_lam.max() * (1 + 1e-12), 401)
        idx = np.clip(np.searchsorted(edges, new_lam, side="right") - 1, 0, 399)
        g_mult = np.bincount(idx, weights=new_mult, minlength=400)
        g_mass = np.bincount(idx, weights=new_mult * new_lam, minlength=400)
        nz = g_mult > 0
        new_lam, new_mult = g_mass[nz] / g_mult[nz], g_mult[nz]
    return (
        np.concatenate([lam_k, new_lam]),
        np.concatenate([mult_k, new_mult]),
        max(tail - mass, 0.0),
        largest,
    )


# --------------------------------------------------------------------------- kappa
_SERIES_RATIO = 1e-3  # levels this far below / above every kappa of a solve use a power series
_SERIES_TERMS = 6  # truncation error <= (K + 2) * ratio^(K + 1) relative, ~1e-20
_TABLE_POINTS = 160  # log-kappa table used to start Newton


class _ModeSums:
    r""":math:`g = \sum_i m_i\mathcal L_i` and :math:`s_2 = \sum_i m_i\mathcal L_i^2` with
    :math:`\mathcal L_i = \lambda_i/(\lambda_i + \kappa)`, for many :math:`\kappa` at once.

    Levels with :math:`\lambda_i \le r\kappa_{lo}` or :math:`\lambda_i \ge \kappa_{hi}/r`
    (:math:`r` = ``_SERIES_RATIO``) enter through their power moments — the geometric series
    :math:`\mathcal L = \sum_{k\ge1}(-1)^{k-1}(\lambda/\kappa)^k`, :math:`\mathcal L^2 =
    \sum_{k\ge2}(-1)^k(k-1)(\lambda/\kappa)^k` and their counterparts in :math:`\kappa/\lambda`
    — so the cost per :math:`\kappa` is the number of levels *near* the range, not all of them.
    A :math:`\kappa` outside :math:`[\kappa_{lo}/10, 10\kappa_{hi}]` is summed exactly.
    """

    def __init__(self, lam: NDArray, mult: NDArray, k_lo: float, k_hi: float) -> None:
        self.lam_all, self.mult_all = lam, mult
        self.k_lo, self.k_hi = k_lo, k_hi
        low = lam <= _SERIES_RATIO * k_lo
        high = lam >= k_hi / _SERIES_RATIO
        mid = ~(low | high)
        self.lam, self.mult = lam[mid], mult[mid]
        k = np.arange(_SERIES_TERMS + 1)
        rho = lam[low] / k_lo  # <= r
        sig = k_hi / lam[high]  # <= r
        low_mom = (mult[low][None, :] * rho[None, :] ** k[:, None]).sum(axis=1)
        high_mom = (mult[high][None, :] * sig[None, :] ** k[:, None]).sum(axis=1)
        sign = (-1.0) ** k
        # coefficients of z^k, z = k_lo / kappa, and of w^k, w = kappa / k_hi
        self.low_g = np.where(k >= 1, -sign * low_mom, 0.0)
        self.low_s2 = np.where(k >= 2, sign * (k - 1) * low_mom, 0.0)
        self.high_g = sign * high_mom
        self.high_s2 = sign * (k + 1) * high_mom
        self.powers = k
        self.n_series = int(low.sum() + high.sum())

    def __call__(self, kappa: NDArray) -> tuple[NDArray, NDArray]:
        kappa = np.asarray(kappa, dtype=np.float64)
        inside = (kappa >= self.k_lo * 0.1) & (kappa <= self.k_hi * 10)
        g = np.empty_like(kappa)
        s2 = np.empty_like(kappa)
        if inside.any():
            kin = kappa[inside]
            gi, si = _exact_sums(kin, self.lam, self.mult)
            z = (self.k_lo / kin)[:, None] ** self.powers[None, :]
            w = (kin / self.k_hi)[:, None] ** self.powers[None, :]
            g[inside] = gi + z @ self.low_g + w @ self.high_g
            s2[inside] = si + z @ self.low_s2 + w @ self.high_s2
        if not inside.all():
            g[~inside], s2[~inside] = _exact_sums(kappa[~inside], self.lam_all, self.mult_all)
        return g, s2


def _exact_sums(kappa: NDArray, lam: NDArray, mult: NDArray) -> tuple[NDArray, NDArray]:
    """(sum m L, sum m L^2) by direct summation: one (len(kappa), len(lam)) temporary."""
    frac = np.add.outer(kappa, lam)
    np.divide(lam, frac, out=frac)
    g = frac @ mult
    np.multiply(frac, frac, out=frac)
    return g, frac @ mult


def _g_and_slope(kappa: NDArray, lam: NDArray, mult: NDArray, ridge: float) -> tuple[NDArray, NDArray]:
    """g(kappa) = sum m lam/(lam + kappa) + ridge/kappa and its derivative in log kappa."""
    g, s2 = _exact_sums(kappa, lam, mult)
    return g + ridge / kappa, -(g - s2) - ridge / kappa


def solve_kappa(
    lam: ArrayLike, mult: ArrayLike, ridge: float, P: ArrayLike, *, rtol: float = 1e-13
) -> NDArray[np.float64]:
    r"""Solve :math:`\sum_i m_i\lambda_i/(\lambda_i+\kappa) + \delta/\kappa = P` for every P at once.

    The left side decreases strictly in :math:`\kappa`; the solver tabulates it on a log grid,
    inverts by monotone cubic Hermite interpolation, and polishes with safeguarded Newton steps in
    :math:`\log\kappa` (vectorised over P) to relative accuracy ``rtol``. Levels far from every
    :math:`\kappa` of the request enter through power moments (:class:`_ModeSums`, truncation
    error below 1e-18 relative), so a long spectrum costs little more than its active part.
    Returns 0 where :math:`\delta = 0` and :math:`P \ge \sum m_i` (interpolation).
    """
    lam = np.asarray(lam, dtype=np.float64)
    mult = np.asarray(mult, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    return _solve_kappa(lam, mult, ridge, P, rtol)[0]


def _solve_kappa(
    lam: NDArray, mult: NDArray, ridge: float, P: NDArray, rtol: float = 1e-13
) -> tuple[NDArray, NDArray]:
    """(kappa, sum m L^2) for every P (kappa = 0 and sum m L^2 = number of modes when interpolating)."""
    n_modes = float(mult.sum())
    kappa = np.zeros_like(P)
    s2_out = np.full_like(P, n_modes)
    active = P < n_modes if ridge == 0 else np.ones(P.shape, dtype=bool)
    if not active.any():
        return kappa, s2_out
    Pa = P[active]
    total = float(np.sum(lam * mult)) + ridge
    hi = total / Pa.min() * 2 + 1e-300
    lo = max(float(lam.min()) * 1e-12, 1e-300) if ridge == 0 else min(ridge / Pa.max() * 0.5, hi * 1e-20)
    while _g_and_slope(np.array([lo]), lam, mult, ridge)[0][0] <= Pa.max():
        lo *= 1e-4
        if lo < 1e-300:
            break
    grid = np.geomspace(lo, hi, _TABLE_POINTS)
    g_t, s2_t = _ModeSums(lam, mult, lo, hi)(grid)
    vals = g_t + ridge / grid
    dvals = -(g_t - s2_t) - ridge / grid  # d g / d log kappa
    # inverse cubic Hermite interpolation of log kappa as a function of log g (monotone)
    x = -np.log(vals)
    y = np.log(grid)
    dydx = -vals / dvals  # d log k / d(-log g)
    xq = -np.log(Pa)
    idx = np.clip(np.searchsorted(x, xq) - 1, 0, len(x) - 2)
    h = x[idx + 1] - x[idx]
    t = (xq - x[idx]) / h
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    u = h00 * y[idx] + h10 * h * dydx[idx] + h01 * y[idx + 1] + h11 * h * dydx[idx + 1]
    sums = _ModeSums(lam, mult, float(np.exp(u.min() - 1.0)), float(np.exp(u.max() + 1.0)))
    s2 = np.empty_like(Pa)
    todo = np.arange(len(Pa))
    for _ in range(60):
        kap = np.exp(u[todo])
        g, s2_now = sums(kap)
        s2[todo] = s2_now
        g = g + ridge / kap
        dg = -(g - s2_now)  # = -(g_modes - s2) - ridge / kappa
        step = np.clip((g - Pa[todo]) / dg, -2.0, 2.0)
        u[todo] -= step
        todo = todo[np.abs(step) >= rtol]
        if todo.size == 0:
            break
    kappa[active] = np.exp(u)
    s2_out[active] = s2
    return kappa, s2_out


# --------------------------------------------------------------------------- main entry
def learning_curve(
    spec: Spectrum,
    target: Target,
    P: ArrayLike | Sequence[float],
    ridge: float = 0.0,
    *,
    tail_factor: float = 8.0,
) -> LearningCurve:
    r"""Predicted learning curve of kernel ridge regression (eigenlearning / replica theory).

    Parameters
    ----------
    spec
        Kernel spectrum (:func:`fieldcurve.spectrum`), for the target's input dimension.
    target
        :class:`~fieldcurve.targets.Target` (power per degree and label noise).
    P
        Sample sizes (positive integers; arrays are evaluated at once).
    ridge
        :math:`\delta \ge 0` in :math:`\hat f = K_{xX}(K_{XX} + \delta I)^{-1}y`.
    tail_factor
        The power-law tail model extends the spectrum to ``tail_factor`` × lmax.

    Returns
    -------
    LearningCurve
        See the module docstring for every formula.
    """
    ridge, P = _check_inputs(spec, target, ridge, P)
    lmax = spec.lmax
    beyond = target.power_beyond(lmax)
    if beyond > 0:
        warnings.warn(
            f"{beyond / target.total_power:.1%} of the target's power lies beyond lmax = {lmax};"
            " it is counted as unlearnable (raise lmax)",
            RuntimeWarning,
            stacklevel=2,
        )
    lam, mult, leftover, largest_tail = _levels(spec, tail_factor)
    return _curve(
        lam,
        mult,
        leftover,
        largest_tail,
        spec.eigenvalues,
        spec.log_multiplicities,
        target.power_array(lmax),
        beyond,
        target.noise,
        P,
        ridge,
        meta={
            "target_degrees": target.degrees,
            "spectrum": spec.name,
            "d": spec.d,
            "target": target.name,
            "leftover_tail_ridge": leftover,
        },
        degrees=spec.degrees,
    )


def _check_inputs(spec: Any, target: Any, ridge: float, P: ArrayLike) -> tuple[float, NDArray]:
    """Validate a (spectrum, target, ridge, P) request; returns the ridge and P as arrays."""
    if not isinstance(spec, Spectrum):
        raise TypeError("spec must be a fieldcurve Spectrum")
    if not isinstance(target, Target):
        raise TypeError("target must be a fieldcurve Target")
    if target.d is not None and target.d != spec.d:
        raise ValueError(f"spectrum is for d = {spec.d} but the target is for d = {target.d}")
    return check_variance(ridge, "ridge"), _check_sizes(P)


def _check_sizes(P: ArrayLike) -> NDArray[np.float64]:
    """P as a 1-D float array of positive integers (clear errors otherwise)."""
    raw = np.atleast_1d(np.asarray(P))
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"P must be numbers (sample sizes), got {P!r}")
    arr = raw.astype(np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError("P must be a non-empty 1-D array of finite sample sizes")
    if np.any(arr <= 0) or np.any(arr != np.round(arr)):
        raise ValueError("P must contain positive integers")
    return arr


def _curve(
    lam: NDArray,
    mult: NDArray,
    leftover: float,
    largest_tail: float,
    deg_eigs: NDArray,
    deg_log_mult: NDArray,
    v2: NDArray,
    beyond: float,
    sigma2: float,
    P: NDArray,
    ridge: float,
    *,
    meta: dict,
    degrees: NDArray,
) -> LearningCurve:
    """The eigenlearning formulas on explicit levels (shared by sphere and data-set spectra)."""
    lmax = len(deg_eigs) - 1
    eff_ridge = ridge + leftover
    kappa, sum_L2 = _solve_kappa(lam, mult, eff_ridge, P)
    pos = kappa > 0
    with np.errstate(divide="ignore"):
        e0 = np.where(P > sum_L2, P / (P - sum_L2), np.inf)
    # the bias needs only the degrees with target power
    tdeg = np.flatnonzero(v2[: lmax + 1] > 0)
    lam_t = deg_eigs[tdeg]
    L_t = np.empty((len(P), len(tdeg)))
    L_t[~pos] = (lam_t > 0).astype(float)
    L_t[pos] = lam_t[None, :] / np.add.outer(kappa[pos], lam_t)
    bias = ((1 - L_t) ** 2 * v2[tdeg][None, :]).sum(axis=1) + beyond
    noisy = e0 * (bias + sigma2)
    test = noisy - sigma2
    with np.errstate(divide="ignore", invalid="ignore"):
        # the tail's leftover mass acts like a ridge in the kappa equation only: the regression
        # itself still uses the ridge delta, so the training error is (delta / (P kappa))^2 ...
        train = np.where(kappa > 0, (ridge / (P * kappa)) ** 2 * noisy, 0.0)
        tail_ratio = np.where(kappa > 0, largest_tail / kappa, np.inf if largest_tail > 0 else 0.0)
    return LearningCurve(
        P=P,
        test_error=test,
        test_error_noisy=noisy,
        train_error=train,
        kappa=kappa,
        overfitting=e0,
        bias=bias,
        tail_ratio=tail_ratio,
        degrees=degrees,
        ridge=ridge,
        noise=sigma2,
        eigenvalues=deg_eigs,
        log_multiplicities=deg_log_mult,
        target_powers=v2,
        meta=meta,
    )
