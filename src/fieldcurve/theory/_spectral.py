r"""Shared internals of the learning-curve theory (private module; its names are not public API).

* the :math:`\kappa` solver and its mode sums (:func:`solve`, :class:`ModeSums`);
* the eigenlearning formulas on explicit levels (:func:`formulas`), written so that every
  returned error is a sum of non-negative terms (never negative, never NaN);
* the spectrum's levels with the power-law tail model (:func:`levels`);
* the spectrum's unresolved degrees and copies of it with their eigenvalues at the ends of
  their error intervals (:func:`unresolved_degrees`, :func:`varied_spectrum`), used to
  propagate the eigenvalue uncertainty into the predictions.

Formulas and references: :mod:`fieldcurve.theory.eigenlearning`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import logsumexp

from fieldcurve._checks import check_variance
from fieldcurve.spectrum import Spectrum
from fieldcurve.sphere import log_multiplicity
from fieldcurve.targets import Target

__all__: list[str] = []

# --------------------------------------------------------------------------- input checks


def check_sizes(P: ArrayLike) -> NDArray[np.float64]:
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


def check_inputs(spec: Any, target: Any, ridge: float, P: ArrayLike) -> tuple[float, NDArray]:
    """Validate a (spectrum, target, ridge, P) request; returns the ridge and P as arrays."""
    if not isinstance(spec, Spectrum):
        raise TypeError("spec must be a fieldcurve Spectrum")
    if not isinstance(target, Target):
        raise TypeError("target must be a fieldcurve Target")
    if target.d is not None and target.d != spec.d:
        raise ValueError(f"spectrum is for d = {spec.d} but the target is for d = {target.d}")
    return check_variance(ridge, "ridge"), check_sizes(P)


# --------------------------------------------------------------------------- kappa
_SERIES_RATIO = 1e-3  # levels this far below / above every kappa of a solve use a power series
_SERIES_TERMS = 6  # truncation error <= (K + 2) * ratio^(K + 1) relative, ~1e-20
_TABLE_POINTS = 160  # log-kappa table used to start Newton


class ModeSums:
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
            gi, si = exact_sums(kin, self.lam, self.mult)
            z = (self.k_lo / kin)[:, None] ** self.powers[None, :]
            w = (kin / self.k_hi)[:, None] ** self.powers[None, :]
            g[inside] = gi + z @ self.low_g + w @ self.high_g
            s2[inside] = si + z @ self.low_s2 + w @ self.high_s2
        if not inside.all():
            g[~inside], s2[~inside] = exact_sums(kappa[~inside], self.lam_all, self.mult_all)
        return g, s2


def exact_sums(kappa: NDArray, lam: NDArray, mult: NDArray) -> tuple[NDArray, NDArray]:
    """(sum m L, sum m L^2) by direct summation: one (len(kappa), len(lam)) temporary."""
    frac = np.add.outer(kappa, lam)
    np.divide(lam, frac, out=frac)
    g = frac @ mult
    np.multiply(frac, frac, out=frac)
    return g, frac @ mult


def _g_only(kappa: float, lam: NDArray, mult: NDArray, ridge: float) -> float:
    """g(kappa) = sum m lam/(lam + kappa) + ridge/kappa at one kappa."""
    return float(np.sum(mult * (lam / (lam + kappa)))) + ridge / kappa


def solve(lam: NDArray, mult: NDArray, ridge: float, P: NDArray, rtol: float = 1e-13) -> NDArray:
    r"""Solve :math:`\sum_i m_i\lambda_i/(\lambda_i+\kappa) + \delta/\kappa = P` for every P.

    Returns :math:`\kappa` (0 where :math:`\delta = 0` and :math:`P \ge \sum_i m_i`: the
    regression interpolates). The problem is solved on the scale :math:`s = \sum_i m_i\lambda_i
    + \delta` (:math:`\kappa/s` and :math:`\lambda/s` are O(1) or smaller), so kernels with a
    trace of :math:`10^{-60}` or :math:`10^{60}` solve as well as one with trace 1.
    """
    lam = np.asarray(lam, dtype=np.float64)
    mult = np.asarray(mult, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    kappa = np.zeros_like(P)
    n_modes = float(mult.sum())
    active = P < n_modes if ridge == 0 else np.ones(P.shape, dtype=bool)
    if not active.any():
        return kappa
    scale = float(np.sum(lam * mult)) + ridge
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"the kernel's trace plus the ridge must be positive and finite, got {scale!r}")
    lam_s, ridge_s = lam / scale, ridge / scale
    keep = lam_s > 0
    lam_s, mult_s = lam_s[keep], mult[keep]
    Pa = P[active]
    hi = 2.0 / Pa.min() + 1e-300
    if ridge_s > 0:
        lo = min(ridge_s / Pa.max() * 0.5, hi * 1e-20)
    else:
        lo = max(float(lam_s.min()) * 1e-12, 1e-300)
    while _g_only(lo, lam_s, mult_s, ridge_s) <= Pa.max() and lo > 1e-300:
        lo = max(lo * 1e-4, 1e-300)
    grid = np.geomspace(lo, hi, _TABLE_POINTS)
    g_t, s2_t = ModeSums(lam_s, mult_s, lo, hi)(grid)
    vals = g_t + ridge_s / grid
    dvals = -(g_t - s2_t) - ridge_s / grid  # d g / d log kappa
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
    u = np.clip(u, math.log(lo), math.log(hi))
    sums = ModeSums(lam_s, mult_s, float(np.exp(u.min() - 1.0)), float(np.exp(u.max() + 1.0)))
    todo = np.arange(len(Pa))
    for _ in range(80):
        kap = np.exp(u[todo])
        g, s2_now = sums(kap)
        g = g + ridge_s / kap
        dg = -(g - s2_now)  # = -(g_modes - s2) - ridge / kappa
        step = np.clip((g - Pa[todo]) / dg, -2.0, 2.0)
        u[todo] -= step
        todo = todo[np.abs(step) >= rtol]
        if todo.size == 0:
            break
    kappa[active] = np.exp(u) * scale
    return kappa


# --------------------------------------------------------------------------- formulas


def formulas(
    lam: NDArray,
    mult: NDArray,
    leftover: float,
    deg_eigs: NDArray,
    v2: NDArray,
    beyond: float,
    sigma2: float,
    P: NDArray,
    ridge: float,
) -> dict[str, NDArray]:
    r"""The eigenlearning formulas on explicit levels (see :mod:`fieldcurve.theory.eigenlearning`).

    ``lam``, ``mult``: levels (eigenvalue, number of modes); ``leftover``: mass acting as a ridge
    in the :math:`\kappa` equation only; ``deg_eigs``/``v2``: eigenvalue and target power of each
    degree; ``beyond``: target power outside the levels (unlearnable). With
    :math:`h = \sum_i m_i\mathcal L_i(1-\mathcal L_i) + \delta_{eff}/\kappa` (:math:`= P -
    \sum_i m_i\mathcal L_i^2` by the :math:`\kappa` equation) and :math:`s_2 = \sum_i
    m_i\mathcal L_i^2`, :math:`\mathcal E_0 - 1 = s_2/h`, so
    :math:`E_g = \mathcal E_0 B + (\mathcal E_0 - 1)\sigma^2` is a sum of non-negative terms.

    Raises
    ------
    ValueError
        Ridgeless regression at P equal to the number of modes (:math:`\mathcal E_0 = \infty`)
        with a non-zero bias or noise.
    """
    eff_ridge = ridge + leftover
    kappa = solve(lam, mult, eff_ridge, P)
    n_modes = float(mult.sum())
    pos = kappa > 0
    s2 = np.full(len(P), n_modes)
    h = np.zeros(len(P))
    if pos.any():
        kp = kappa[pos]
        L = lam[None, :] / np.add.outer(kp, lam)
        s2[pos] = (L * L) @ mult
        h[pos] = (L * (1.0 - L)) @ mult + eff_ridge / kp
    with np.errstate(divide="ignore", invalid="ignore"):
        e0m1 = np.where(pos, s2 / h, s2 / (P - n_modes))
    tdeg = np.flatnonzero(v2 > 0)
    lam_t = deg_eigs[tdeg]
    L_t = np.empty((len(P), len(tdeg)))
    L_t[~pos] = (lam_t > 0).astype(float)
    L_t[pos] = lam_t[None, :] / np.add.outer(kappa[pos], lam_t)
    bias = ((1 - L_t) ** 2 * v2[tdeg][None, :]).sum(axis=1) + beyond
    bad = ~np.isfinite(e0m1) & ((bias + sigma2) > 0)
    if bad.any():
        p = P[np.flatnonzero(bad)[0]]
        raise ValueError(
            f"ridgeless regression at P = {p:g}, the number of modes with a non-zero eigenvalue,"
            " has an infinite expected test error in this theory (the interpolation peak); use a"
            " ridge > 0 or another P"
        )
    e0m1 = np.where(np.isfinite(e0m1), e0m1, 0.0)
    test = (1.0 + e0m1) * bias + e0m1 * sigma2
    noisy = test + sigma2
    with np.errstate(divide="ignore", invalid="ignore"):
        # the leftover tail mass acts like a ridge in the kappa equation only: the regression
        # itself uses the ridge delta, so the training error is (delta / (P kappa))^2 (E_g + s2)
        train = np.where(pos, (ridge / (P * np.where(pos, kappa, 1.0))) ** 2 * noisy, 0.0)
    return {
        "kappa": kappa,
        "test_error": test,
        "test_error_noisy": noisy,
        "train_error": train,
        "overfitting": 1.0 + e0m1,
        "bias": bias,
    }


# --------------------------------------------------------------------------- levels and tail


def levels(spec: Spectrum, tail_factor: float) -> tuple[NDArray, NDArray, float, float]:
    r"""Levels of the spectrum for the :math:`\kappa` equation, with the power-law tail model.

    Returns ``(eigenvalues, multiplicities, leftover, largest_tail)``: the computed degrees with
    a positive eigenvalue and a finite multiplicity, then the tail extension beyond lmax (a power
    law fitted per parity to the *resolved* eigenvalues of the upper half of the degrees, in
    logarithms, up to ``tail_factor`` × lmax, scaled so its mass does not exceed
    ``spec.tail_mass``; grouped into at most ~400 levels). ``leftover`` is the mass that acts
    as a ridge: the tail mass the extension does not carry, plus degrees whose eigenvalue
    underflows double precision or whose multiplicity overflows it (their
    :math:`N(d,l)\lambda_l`, from the logarithms: such modes have :math:`\lambda \ll \kappa` at
    any finite P). ``largest_tail`` is the largest eigenvalue beyond lmax: the power law's, or,
    when none could be fitted, the bound :math:`T/N(d, l_{max}+1)` (every degree beyond lmax
    has :math:`N(d,l)\lambda_l \le T` and :math:`N(d,l) \ge N(d,l_{max}+1)`).
    """
    lam = spec.eigenvalues.astype(np.float64)
    log_lam = spec.log_eigenvalues
    # the exact integers where representable (exp(log N) is off by an ulp: at P = N(d, l) that
    # decides between the interpolation peak and a huge finite number)
    mult = np.asarray(spec.multiplicities, dtype=np.float64)
    keep = (lam > 0) & np.isfinite(mult) & np.isfinite(lam * mult) & (lam * mult > 0)
    lam_k, mult_k = lam[keep], mult[keep]
    weight_log = spec.log_multiplicities + log_lam
    lost = ~keep & np.isfinite(weight_log)
    extra = float(np.exp(logsumexp(weight_log[lost]))) if lost.any() else 0.0
    tail = max(float(spec.tail_mass), 0.0)
    lmax = spec.lmax
    bound = tail / math.exp(float(log_multiplicity(spec.d, np.array([lmax + 1]))[0])) if tail > 0 else 0.0
    if tail <= 0 or lmax < 4:
        return lam_k, mult_k, tail + extra, bound
    ok_fit = np.isfinite(log_lam) & spec.resolved
    ext_l: list[NDArray] = []
    ext_lam: list[NDArray] = []
    for parity in (0, 1):
        ls = np.arange(max(2, lmax // 2), lmax + 1)
        ls = ls[(ls % 2 == parity) & ok_fit[ls]]
        if len(ls) < 3 or ls[-1] < lmax - 1:
            continue
        slope, icpt = np.polyfit(np.log(ls), log_lam[ls], 1)
        if not (slope < 0 and np.isfinite(icpt)):
            continue
        new_l = np.arange(lmax + 1 + ((lmax + 1 + parity) % 2), int(tail_factor * lmax) + 1, 2)
        if new_l.size == 0:
            continue
        ext_l.append(new_l)
        with np.errstate(under="ignore"):
            ext_lam.append(np.exp(icpt + slope * np.log(new_l)))
    if not ext_l:
        return lam_k, mult_k, tail + extra, bound
    new_l = np.concatenate(ext_l)
    new_lam = np.concatenate(ext_lam)
    with np.errstate(over="ignore"):
        new_mult = np.exp(log_multiplicity(spec.d, new_l))
    ok = np.isfinite(new_mult) & (new_lam > 0) & np.isfinite(new_lam * new_mult)
    new_l, new_lam, new_mult = new_l[ok], new_lam[ok], new_mult[ok]
    mass = float(np.sum(new_lam * new_mult))
    if mass > tail:  # the power law would exceed the known tail: scale it down
        new_lam *= tail / mass
        mass = tail
    largest = float(new_lam.max()) if new_lam.size else bound
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
        max(tail - mass, 0.0) + extra,
        largest,
    )


# --------------------------------------------------------------------------- uncertainty


def unresolved_degrees(spec: Spectrum) -> NDArray[np.int64]:
    """Degrees with a positive eigenvalue whose error estimate exceeds ``spec.rtol`` relative
    (compared in logarithms, so eigenvalues below double precision are judged correctly)."""
    log_lam = spec.log_eigenvalues
    err = spec.error_estimates
    positive = np.isfinite(log_lam)
    with np.errstate(divide="ignore"):
        log_err = np.log(err)  # -inf for an exact value
    log_rel = np.where(positive, log_err - np.where(positive, log_lam, 0.0), -np.inf)
    bad = positive & ~(log_rel <= math.log(spec.rtol))
    return np.flatnonzero(bad)


def varied_spectrum(spec: Spectrum, degrees: NDArray[np.int64], direction: int) -> Spectrum:
    r"""A copy of ``spec`` with the eigenvalues of ``degrees`` at the lower (``direction`` -1) or
    upper (+1) end of their error intervals, within :math:`[0, k(1)/N(d,l)]`, and the tail mass
    :math:`k(1) - \sum_l N(d,l)\lambda_l` recomputed (clipped to :math:`[0, k(1)]`)."""
    log_lam = spec.log_eigenvalues.copy()
    k1 = float(spec.kernel_at_one)
    for l in degrees:
        lv, err = float(log_lam[l]), float(spec.error_estimates[l])
        rel = math.exp(min(math.log(err) - lv, 700.0)) if err > 0 else 0.0
        if direction < 0:
            log_lam[l] = lv + math.log1p(-rel) if rel < 1 else -math.inf
        else:
            new = lv + math.log1p(rel)
            if k1 > 0:
                new = min(new, math.log(k1) - float(spec.log_multiplicities[l]))
            log_lam[l] = new
    finite = np.isfinite(log_lam)
    weights = log_lam[finite] + spec.log_multiplicities[finite]
    total = float(np.exp(logsumexp(weights))) if finite.any() else 0.0
    with np.errstate(under="ignore"):
        lam = np.where(finite, np.exp(np.where(finite, log_lam, 0.0)), 0.0)
    tail = min(max(k1 - total, 0.0), max(k1, 0.0))
    return dataclasses.replace(spec, eigenvalues=lam, log_eigenvalues=log_lam, tail_mass=tail)


def spectral_uncertainty(
    spec: Spectrum,
    v2: NDArray[np.float64],
    nominal: NDArray[np.float64],
    evaluate: Callable[..., NDArray[np.float64]],
) -> tuple[NDArray[np.float64], dict[str, NDArray[np.float64]]]:
    r"""Uncertainty of a prediction from the spectrum: unresolved eigenvalues and the tail model.

    ``evaluate(spectrum, tail_factor)`` recomputes the prediction (an array over P) from a
    modified spectrum. Unresolved degrees (:func:`unresolved_degrees`)
    are grouped — each degree with target power ``v2 > 0`` alone, the others together — and each
    group is moved to both ends of its error intervals; the largest change per group is summed
    (``"unresolved"``). The tail part is the change when the tail mass beyond lmax is all
    treated as a ridge (``tail_factor`` 1: no power-law extension) (``"tail"``).

    Returns
    -------
    (total, parts)
        ``total = parts["unresolved"] + parts["tail"]``; ``parts["degrees"]`` lists the
        unresolved degrees.
    """
    unresolved = np.zeros_like(nominal)
    bad = unresolved_degrees(spec)
    groups = [np.array([l]) for l in bad if l < len(v2) and v2[l] > 0]
    rest = np.array([l for l in bad if not (l < len(v2) and v2[l] > 0)], dtype=np.int64)
    if rest.size:
        groups.append(rest)
    for g in groups:
        dev = np.zeros_like(nominal)
        for direction in (-1, 1):
            dev = np.maximum(dev, np.abs(evaluate(varied_spectrum(spec, g, direction)) - nominal))
        unresolved += dev
    tail = np.zeros_like(nominal)
    if spec.tail_mass > 0:
        tail = np.abs(evaluate(spec, 1.0) - nominal)
    return unresolved + tail, {"unresolved": unresolved, "tail": tail, "degrees": bad.astype(float)}


def check_uncertainty(
    test_error: NDArray[np.float64],
    uncertainty: NDArray[np.float64],
    parts: dict[str, NDArray[np.float64]],
    P: NDArray[np.float64],
    spec: Spectrum,
    max_uncertainty: float,
    what: str,
) -> None:
    """Raise a ValueError naming the cause when ``uncertainty > max_uncertainty * test_error``."""
    scale = np.maximum(test_error, 1e-300)
    over = uncertainty > max_uncertainty * scale
    if not over.any():
        return
    i = int(np.argmax(np.where(over, uncertainty / scale, -1.0)))
    rel = uncertainty[i] / scale[i]
    p = P[i]
    label = f" {what}" if what else ""
    if parts["unresolved"][i] >= parts["tail"][i]:
        degs = [int(l) for l in parts["degrees"]]
        shown = ", ".join(map(str, degs[:8])) + (", ..." if len(degs) > 8 else "")
        rel_err = spec.relative_errors[degs]
        raise ValueError(
            f"the predicted E_g at P = {p:g} is uncertain by {rel:.1%}: the{label} spectrum's"
            f" eigenvalues of degrees {shown} are not resolved (relative errors up to"
            f" {float(np.max(rel_err)):.1e}, rtol {spec.rtol:g}); compute the spectrum with lmax below"
            f" {degs[0]} (the tail model then carries their mass) or with a larger max_dps"
        )
    raise ValueError(
        f"the predicted E_g at P = {p:g} depends on how the{label} spectrum continues beyond lmax ="
        f" {spec.lmax} by {rel:.1%} (power-law tail vs. tail mass as a ridge); raise lmax"
    )
