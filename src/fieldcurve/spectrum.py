r"""Eigenvalues of dot-product kernels on the sphere (Funk–Hecke), accurate for large d and l.

For a kernel :math:`k(t)` of the cosine :math:`t = x\cdot x'/d` on the :math:`\sqrt d`-sphere, the
integral operator with respect to the uniform probability measure is diagonal in spherical
harmonics: :math:`k(t) = \sum_l \lambda_l \sum_m Y_{lm}(x)Y_{lm}(x') = \sum_l N(d,l)\lambda_l
P_l^{(d)}(t)`, with (Funk–Hecke)

.. math:: \lambda_l = c_d\int_{-1}^{1} k(t)P_l^{(d)}(t)(1-t^2)^{(d-3)/2}\,dt,\qquad
          c_d = \frac{\Gamma(d/2)}{\sqrt\pi\,\Gamma((d-1)/2)},

so that :math:`\sum_l N(d,l)\lambda_l = k(1)`.

Three routes, each with a per-degree error estimate:

``"quadrature"``
    Gauss–Legendre in the angle :math:`\theta = \arccos t` (kernels of ReLU-type networks, whose
    expansions in :math:`t` carry :math:`\sqrt{1\pm t}` terms, are analytic in :math:`\theta`), in
    double precision. Its error is round-off, about :math:`10^{-15}\,c_d\sum_i w_i|k P_l|
    \sin^{d-2}\theta_i`, which exceeds :math:`\lambda_l` once :math:`\lambda_l` falls below about
    :math:`10^{-16}k(1)`; plus the truncation error, estimated by repeating with 1.5× the nodes.
``"series"``
    Cancellation-free power series: :math:`k(t) = \sum_n b_n t^n` with :math:`b_n \ge 0` and
    :math:`t^n` has non-negative Gegenbauer coefficients

    .. math:: \mu_{l,n} = \frac{n!\,\Gamma(d/2)\,\Gamma(\frac{n-l+1}2)}{\sqrt\pi\,2^l\,(n-l)!\,
              \Gamma(\frac{n+l+d}2)}\quad(n - l \text{ even} \ge 0),

    so :math:`\lambda_l = \sum_n b_n\mu_{l,n}` is a sum of positive terms, exact to a few ulp
    in relative terms however small :math:`\lambda_l` is, and carried in logarithms so it never
    underflows. The coefficients beyond :math:`N` carry the mass :math:`R = k(1)-\sum_{n\le N}b_n`;
    because :math:`\mu_{l,n}` decreases in :math:`n` once :math:`n(d-1) > l^2 + l(d-2) - 2d + 2`,
    the neglected part is rigorously at most :math:`R\,\mu_{l,n^*}` (:math:`n^*` the first
    neglected index of the parity of ``l``). Best at large ``d``, where few terms are needed.
``"mpmath"``
    The Gauss–Legendre rule in :math:`\theta` in arbitrary precision (mpmath), with the working
    precision raised until the round-off estimate is below ``rtol`` for every degree (up to
    ``max_dps`` digits). Needs a kernel with an mpmath evaluation (every closed-form activation).

``method="auto"`` (default) runs the series route when the kernel provides Taylor coefficients,
then — if some degree's error estimate still exceeds ``rtol``·|λ_l| — the double-precision
quadrature, keeps for each degree the result with the smallest error estimate, and recomputes
in mpmath only the degrees still worse than ``rtol``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln, logsumexp, roots_legendre

from fieldcurve._checks import check_dimension, check_finite_array, check_nonneg_int
from fieldcurve.kernels import Kernel, as_kernel
from fieldcurve.sphere import legendre, log_multiplicity, multiplicity

__all__ = [
    "Spectrum",
    "gram_spectrum",
    "monomial_log_eigenvalues",
    "spectrum",
    "symbolic_spectrum",
]

_METHODS = ("auto", "quadrature", "series", "mpmath")


@dataclass(frozen=True)
class Spectrum:
    r"""Eigenvalues :math:`\lambda_l` (uniform probability measure) of a kernel on the sphere.

    Attributes
    ----------
    d, degrees
        Dimension and degrees :math:`0..l_{max}`.
    log_eigenvalues
        :math:`\log\lambda_l` (``-inf`` for exact zeros, ``nan`` for a negative value).
    eigenvalues
        :math:`\lambda_l` (may underflow to 0; the logarithm stays exact).
    log_multiplicities, multiplicities
        :math:`\log N(d,l)` and :math:`N(d,l)` as floats (``inf`` if it overflows).
    kernel_at_one
        :math:`k(1)`, the trace :math:`\sum_l N(d,l)\lambda_l`.
    tail_mass
        :math:`k(1) - \sum_{l\le l_{max}} N(d,l)\lambda_l`, clipped to :math:`[0, k(1)]`.
    error_estimates
        Estimated absolute error of each :math:`\lambda_l`; never above :math:`k(1)/N(d,l)`
        (a positive definite kernel has :math:`N(d,l)\lambda_l \le k(1)`; an unresolved value
        beyond that bound is clipped to it).
    tail_mass_error
        :math:`\sum_l N(d,l)\,\mathrm{err}_l`, the uncertainty of ``tail_mass``.
    rtol
        The relative accuracy requested; :attr:`resolved` marks the degrees that reach it.
    methods
        Route that produced each degree (``"quadrature"``, ``"series"`` or ``"mpmath"``).
    """

    d: int
    degrees: NDArray[np.int64]
    eigenvalues: NDArray[np.float64]
    log_eigenvalues: NDArray[np.float64]
    multiplicities: NDArray[np.float64]
    log_multiplicities: NDArray[np.float64]
    kernel_at_one: float
    tail_mass: float
    error_estimates: NDArray[np.float64]
    methods: tuple[str, ...]
    name: str = "kernel"
    meta: dict = field(default_factory=dict, compare=False)
    tail_mass_error: float = 0.0
    rtol: float = 1e-10

    @property
    def resolved(self) -> NDArray[np.bool_]:
        """Degrees whose error estimate is within ``rtol`` of the eigenvalue (exact zeros included)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ok = self.error_estimates <= self.rtol * self.eigenvalues
        return ok | (self.error_estimates == 0)

    @property
    def lmax(self) -> int:
        return int(self.degrees[-1])

    @property
    def relative_errors(self) -> NDArray[np.float64]:
        """Error estimates relative to :math:`|\\lambda_l|` (inf for zeros)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.eigenvalues != 0, self.error_estimates / np.abs(self.eigenvalues), np.inf)

    @property
    def weights(self) -> NDArray[np.float64]:
        """:math:`N(d,l)\\lambda_l`, each degree's share of :math:`k(1)`."""
        with np.errstate(over="ignore"):
            return np.exp(self.log_multiplicities + self.log_eigenvalues)

    def evaluate(self, t: ArrayLike) -> NDArray[np.float64]:
        r"""The kernel rebuilt from the spectrum, :math:`\sum_{l\le l_{max}} N(d,l)\lambda_l P_l(t)`."""
        t = check_finite_array(t, "t")
        P = legendre(self.lmax, t, self.d)
        w = np.nan_to_num(self.weights, nan=0.0)
        return np.tensordot(w, P, axes=1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "name": self.name,
            "d": self.d,
            "kernel_at_one": self.kernel_at_one,
            "tail_mass": self.tail_mass,
            "degrees": [
                {
                    "degree": int(l),
                    "eigenvalue": float(self.eigenvalues[i]),
                    "log_eigenvalue": _json_float(self.log_eigenvalues[i]),
                    "multiplicity": _json_float(self.multiplicities[i]),
                    "log_multiplicity": float(self.log_multiplicities[i]),
                    "error_estimate": _json_float(self.error_estimates[i]),
                    "method": self.methods[i],
                }
                for i, l in enumerate(self.degrees)
            ],
        }


def _json_float(x: float) -> float | str | None:
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


# --------------------------------------------------------------------------- monomials
def monomial_log_eigenvalues(d: int, lmax: int, n_max: int) -> NDArray[np.float64]:
    r""":math:`\log\mu_{l,n}`, the eigenvalues of :math:`t^n`, for :math:`l\le l_{max}`, :math:`n\le n_{max}`.

    Built from :math:`\mu_{l,l} = \prod_{j<l}\frac{j+1}{2j+d}` and
    :math:`\mu_{l,n+2}/\mu_{l,n} = \frac{(n+1)(n+2)}{(n-l+2)(n+l+d)}`, sums of logarithms of
    exact rationals (relative error ~ :math:`10^{-15}\sqrt{n}`); ``-inf`` where :math:`\mu = 0`.
    """
    d = check_dimension(d)
    lmax = check_nonneg_int(lmax, "lmax")
    n_max = check_nonneg_int(n_max, "n_max")
    out = np.full((lmax + 1, n_max + 1), -np.inf)
    j = np.arange(lmax, dtype=np.float64)
    log_diag = np.concatenate([[0.0], np.cumsum(np.log((j + 1) / (2 * j + d)))])
    for l in range(min(lmax, n_max) + 1):
        n = np.arange(l, n_max - 1, 2, dtype=np.float64)  # steps n -> n + 2
        steps = np.log((n + 1) * (n + 2)) - np.log((n - l + 2) * (n + l + d))
        vals = log_diag[l] + np.concatenate([[0.0], np.cumsum(steps)])
        out[l, l::2] = vals[: len(range(l, n_max + 1, 2))]
    return out


def _n_monotone(l: int, d: int) -> float:
    """Index beyond which mu_{l,n} decreases in n."""
    return (l * l + l * (d - 2) - 2 * d + 2) / (d - 1)


# --------------------------------------------------------------------------- routes
@lru_cache(maxsize=32)
def _theta_rule(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x, w = roots_legendre(n)
    return (x + 1) * (np.pi / 2), w * (np.pi / 2)


def _log_cd(d: int) -> float:
    return float(gammaln(d / 2) - 0.5 * math.log(math.pi) - gammaln((d - 1) / 2))


def _quadrature_once(kernel: Kernel, d: int, lmax: int, n: int) -> tuple[NDArray, NDArray]:
    theta, w = _theta_rule(n)
    t = np.cos(theta)
    with np.errstate(divide="ignore"):
        log_weight = np.log(w) + (d - 2) * np.log(np.sin(theta)) + _log_cd(d)
    weight = np.exp(log_weight)
    kt = kernel._eval(t, d, (2 * np.sin(theta / 2) ** 2, 2 * np.cos(theta / 2) ** 2))
    P = legendre(lmax, t, d)
    terms = P * (weight * kt)[None, :]
    return terms.sum(axis=1), np.abs(terms).sum(axis=1)


def _node_count(lmax: int, d: int) -> int:
    return int(1.25 * lmax + 8 * math.sqrt(d) + 64)


def _quadrature(kernel: Kernel, d: int, lmax: int) -> tuple[NDArray, NDArray]:
    n = _node_count(lmax, d)
    lam, mag = _quadrature_once(kernel, d, lmax, n)
    lam2, _ = _quadrature_once(kernel, d, lmax, n + n // 2)
    # round-off of the sum plus the kernel's own evaluation error, which finer rules do not reduce
    err = np.abs(lam2 - lam) + (4e-15 + _evaluation_rtol(kernel)) * mag
    return lam2, err


def _series_terms_needed(lmax: int, d: int, cap: int) -> int:
    r"""Taylor order N for the series route.

    The mass of :math:`\mu_{l,n}` peaks near :math:`n \approx l + l^2/d`; the route starts
    at :math:`1.5\times` that (at most 1024) and doubles while that resolves a twentieth of the
    unresolved degrees, up to the kernel's
    :attr:`~fieldcurve.kernels.Kernel.taylor_order_limit` ``cap`` (768 for :math:`O(N^3)`
    compositions); at small ``d`` the capped series still serves the low degrees and the
    high-precision quadrature takes the rest.
    """
    peak = lmax + lmax * lmax / d
    return int(min(max(1.5 * peak + 40, 128), cap, 1024))


def _series(kernel: Kernel, d: int, lmax: int, n_max: int, k1: float) -> tuple[NDArray, NDArray] | None:
    try:
        log_b = kernel.log_taylor_coefficients(n_max, d)
    except ArithmeticError:  # coefficients not available to the required accuracy at this order
        return None
    if log_b is None:
        return None
    log_b = np.asarray(log_b, dtype=np.float64)
    if np.any(np.isnan(log_b)) or np.any(log_b == np.inf):
        return None  # a negative or non-finite coefficient: the route does not apply
    n_max = len(log_b) - 1
    log_mu = monomial_log_eigenvalues(d, lmax, n_max + 2)
    log_lam = logsumexp(log_b[None, :] + log_mu[:, : n_max + 1], axis=1)
    log_rem = kernel.log_taylor_remainder(n_max, d)
    if log_rem is None:
        log_rem = _estimated_log_remainder(log_b, k1)
    err = np.empty(lmax + 1)
    for l in range(lmax + 1):
        n_star = max(l, n_max + 1 if (n_max + 1 - l) % 2 == 0 else n_max + 2)
        # mu_{l,n} (n >= n_star, same parity) is largest at n_star once decreasing, else at the peak
        n_peak = max(n_star, math.ceil(_n_monotone(l, d)))
        n_peak += (n_peak - l) % 2
        err[l] = math.exp(log_rem + _log_mu(l, n_peak, d)) if log_rem > -math.inf else 0.0
    lam = np.exp(log_lam)
    # coefficient accuracy (Cauchy integrals, Hermite moments) and the rounding of exp(log lambda)
    rtol = kernel.taylor_rtol(n_max, d) or 0.0
    log_round = np.where(
        np.isfinite(log_lam), 4e-16 * np.abs(np.where(np.isfinite(log_lam), log_lam, 0.0)), 0.0
    )
    err = err + (1e-14 + rtol + log_round) * lam
    return log_lam, err


def _log_mu(l: int, n: int, d: int) -> float:
    """log of the t^n eigenvalue in degree l (gammaln form; used for bounds only)."""
    return float(
        gammaln(n + 1)
        + gammaln(d / 2)
        + gammaln((n - l + 1) / 2)
        - 0.5 * math.log(math.pi)
        - l * math.log(2)
        - gammaln(n - l + 1)
        - gammaln((n + l + d) / 2)
    )


def _estimated_log_remainder(log_b: NDArray[np.float64], k1: float) -> float:
    r"""log of :math:`\sum_{n>N} b_n`.

    :math:`k(1) - \sum_{n\le N} b_n` (exact in exact arithmetic) loses everything below
    :math:`10^{-14}k(1)` to round-off; when the last coefficients decay geometrically (ratio
    :math:`\rho`, stable to 1% over 40 terms, both parities), the geometric tail
    :math:`2 b_N\rho/(1-\rho)` is used instead if smaller (an estimate, not a bound) — only
    when the deficit itself is at round-off level.
    """
    total = float(np.exp(logsumexp(log_b)))
    deficit, floor = abs(k1 - total), 1e-14 * abs(k1)
    log_rem = math.log(deficit + floor)
    tail = log_b[-81:]
    # the geometric extrapolation may only sharpen a deficit that is at round-off level: a real
    # deficit (coefficients missing mass, not only a tail) must be carried as it is
    if deficit <= 10 * floor and len(tail) == 81 and np.all(np.isfinite(tail)):
        steps = np.diff(tail[::2]) / 2  # per-index log ratio, even stride avoids parity effects
        if np.all(steps < 0) and np.ptp(steps) < 0.01 * abs(steps.mean()) + 1e-12:
            rho = math.exp(float(steps.mean()))
            if rho < 0.99:
                geo = float(log_b[-1] + log_b[-1] * 0 + math.log(2 * rho / (1 - rho)))
                log_rem = min(log_rem, geo)
    return log_rem


# --------------------------------------------------------------------------- high precision
def _hp_node_count(lmax: int, d: int, dps: int = 30) -> int:
    """Gauss–Legendre nodes in theta for the high-precision route.

    ``lmax + 80`` resolves the oscillation of :math:`P_l(\\cos\\theta)` (measured: ``lmax + 40``
    already converges lambda_200 of a depth-5 ReLU NTK to 1e-34 at d = 2 and 10); the weight
    :math:`\\sin^{d-2}\\theta \\approx e^{-d(\\theta-\\pi/2)^2/2}` needs polynomial degree about
    :math:`\\sqrt{d\\,\\ln 10^{\\mathrm{dps}}}` to be integrated to the working precision.
    """
    return int(lmax + 80 + 1.25 * math.sqrt(d * math.log(10) * (dps + 20)))


@lru_cache(maxsize=8)
def _mp_theta_rule(n: int, dps: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Gauss–Legendre nodes/weights on [0, pi] at ``dps`` digits, as mpmath numbers.

    From python-flint's ``arb.legendre_p_root`` when available, else Newton iteration on the
    Legendre recurrence started from the double-precision nodes.
    """
    nodes, weights = [], []
    try:
        import flint
    except ImportError:
        flint = None
    with mpmath.workdps(dps):
        half_pi = mpmath.pi / 2
        if flint is not None:
            old = flint.ctx.dps
            flint.ctx.dps = dps + 5
            try:
                for k in range(n):
                    x, w = flint.arb.legendre_p_root(n, k, weight=True)
                    nodes.append((mpmath.mpf(x.mid().str(dps + 5, radius=False)) + 1) * half_pi)
                    weights.append(mpmath.mpf(w.mid().str(dps + 5, radius=False)) * half_pi)
            finally:
                flint.ctx.dps = old
            return tuple(nodes), tuple(weights)
        x0, _ = roots_legendre(n)
        for guess in x0:
            x = mpmath.mpf(guess)
            for _ in range(60):
                p0, p1 = mpmath.mpf(1), x
                for k in range(1, n):
                    p0, p1 = p1, ((2 * k + 1) * x * p1 - k * p0) / (k + 1)
                dp = n * (x * p1 - p0) / (x * x - 1)
                dx = p1 / dp
                x -= dx
                if abs(dx) < mpmath.mpf(10) ** (-(dps + 2)):
                    break
            p0, p1 = mpmath.mpf(1), x
            for k in range(1, n):
                p0, p1 = p1, ((2 * k + 1) * x * p1 - k * p0) / (k + 1)
            dp = n * (x * p1 - p0) / (x * x - 1)
            nodes.append((x + 1) * half_pi)
            weights.append(2 / ((1 - x * x) * dp * dp) * half_pi)
    return tuple(nodes), tuple(weights)


def _to_fixed(x: Any, shift: int) -> int:
    """Round-down of an arb midpoint times 2^shift, as a Python int (a shift of its mantissa)."""
    man, exp = x.man_exp()
    total = int(exp) + shift
    man = int(man)
    return man << total if total >= 0 else man >> -total


def _fixed_point_projection(ts: list, fs: list, d: int, top: int, bits: int) -> tuple[list, list]:
    r""":math:`\sum_k f_k P_l(t_k)` and :math:`\sum_k |f_k P_l(t_k)|` for :math:`l \le` ``top``.

    Floating point with ``bits``-bit integer mantissas, one exponent per node, vectorised over
    the nodes (numpy object arrays of Python integers): :math:`q_{l,k} = f_kP_l(t_k)` obeys the
    Gegenbauer recurrence :math:`q_{l+1} = ((2l+d-2)t\,q_l - l\,q_{l-1})/(l+d-2)` itself, each
    node's pair :math:`(q_{l-1}, q_l)` sharing an exponent renormalised whenever its mantissa
    has lost 32 bits — the same relative rounding per node as the arb midpoint arithmetic it
    replaces, at a fraction of the interpreter overhead. The caller's round-off estimate is
    :math:`10^{-\text{dps}}\sum_k|q_{l,k}|` with 20 guard digits in ``bits``. The sums are exact
    dyadic rationals, returned as mpmath numbers.
    """
    T = np.array([_to_fixed(t, bits) for t in ts], dtype=object)
    # per-node scale: q_k = Q_k 2^-scale_k with |Q_k| near 2^bits
    scale = np.array(
        [bits - (int(f.man_exp()[1]) + int(f.man_exp()[0]).bit_length()) if f != 0 else 0 for f in fs],
        dtype=np.int64,
    )
    q_prev = np.array([_to_fixed(f, int(sc)) for f, sc in zip(fs, scale, strict=True)], dtype=object)
    q = (T * q_prev) >> bits
    sums, mags = [], []
    with mpmath.workprec(bits + 64):
        for l in range(top + 1):
            current = q_prev if l == 0 else q
            common = int(scale.max())
            lifts = np.array([1 << int(common - sc) for sc in scale], dtype=object)
            aligned = current * lifts
            sums.append(mpmath.ldexp(mpmath.mpf(int(aligned.sum())), -common))
            mags.append(mpmath.ldexp(mpmath.mpf(int(np.abs(aligned).sum())), -common))
            if l == 0 or l == top:
                continue
            q_prev, q = q, ((2 * l + d - 2) * ((T * q) >> bits) - l * q_prev) // (l + d - 2)
            size = np.array([int(v).bit_length() for v in q], dtype=np.int64)
            low = (size > 0) & (size < bits - 32)
            if low.any():
                lift = np.where(low, bits - size, 0)
                factor = np.array([1 << int(x) for x in lift], dtype=object)
                q_prev, q, scale = q_prev * factor, q * factor, scale + lift
    return sums, mags


def _hp_arb(kernel: Kernel, d: int, n: int, dps: int, degrees: list[int]) -> tuple[list, list, list]:
    """High-precision Funk–Hecke sums in python-flint arb (midpoint arithmetic, 20 guard digits).

    Returns the sums, the sums of absolute terms (for the round-off estimate) and the error the
    kernel evaluations' own ball radii leave in each sum (deep networks lose digits layer by
    layer near t = 1; a NaN ball gives an infinite error and a higher precision).
    """
    import flint
    from flint import arb

    from fieldcurve.activations import ARB_OPS

    top = max(degrees)
    old = flint.ctx.dps
    flint.ctx.dps = dps + 20
    try:
        pi = arb.pi()
        cd = arb(d / 2).gamma() / (pi.sqrt() * arb((d - 1) / 2).gamma())
        ts, fs, radii = [], [], []
        for k in range(n):
            x, w = arb.legendre_p_root(n, k, weight=True)
            theta = ((x + 1) * pi / 2).mid()
            half_s, half_c = (theta / 2).sin(), (theta / 2).cos()
            t = theta.cos().mid()
            gaps = (2 * half_s * half_s, 2 * half_c * half_c)
            value = kernel.mp_eval(t, d, gaps, ops=ARB_OPS)
            weight = (w * pi / 2 * cd * theta.sin() ** (d - 2)).mid()
            radii.append(abs(float(weight)) * float(value.rad()) if value.is_finite() else math.inf)
            if not value.is_finite():
                return [mpmath.nan] * len(degrees), [mpmath.inf] * len(degrees), [mpmath.inf] * len(degrees)
            ts.append(t)
            fs.append((weight * value).mid())
        sums, mags = _fixed_point_projection(ts, fs, d, top, bits=int((dps + 20) * 3.33) + 16)
        # the kernel values' own ball radii, carried through the sums (|P_l| in double suffices)
        spread = np.abs(legendre(top, np.array([float(t) for t in ts]), d)) @ np.array(radii)
        vals = [mpmath.mpf(sums[l]) for l in degrees]
        return vals, [mpmath.mpf(mags[l]) for l in degrees], [mpmath.mpf(float(spread[l])) for l in degrees]
    finally:
        flint.ctx.dps = old


def _hp_mpmath(kernel: Kernel, d: int, n: int, dps: int, degrees: list[int]) -> tuple[list, list, list]:
    """High-precision Funk–Hecke sums in mpmath (20 guard digits)."""
    nodes, weights = _mp_theta_rule(n, dps + 20)
    top = max(degrees)
    with mpmath.workdps(dps + 20):
        cd = mpmath.gamma(mpmath.mpf(d) / 2) / (mpmath.sqrt(mpmath.pi) * mpmath.gamma(mpmath.mpf(d - 1) / 2))
        acc = [mpmath.mpf(0)] * (top + 1)
        mag = [mpmath.mpf(0)] * (top + 1)
        for theta, w in zip(nodes, weights, strict=True):
            t = mpmath.cos(theta)
            gaps = (2 * mpmath.sin(theta / 2) ** 2, 2 * mpmath.cos(theta / 2) ** 2)
            f = w * cd * mpmath.sin(theta) ** (d - 2) * kernel.mp_eval(t, d, gaps)
            p0, p1 = mpmath.mpf(1), t
            acc[0] += f
            mag[0] += abs(f)
            for l in range(1, top + 1):
                term = f * p1
                acc[l] += term
                mag[l] += abs(term)
                p0, p1 = p1, ((2 * l + d - 2) * t * p1 - l * p0) / (l + d - 2)
        return [+acc[l] for l in degrees], [mag[l] for l in degrees], [mpmath.mpf(0)] * len(degrees)


def _high_precision(
    kernel: Kernel,
    d: int,
    lmax: int,
    dps: int,
    degrees: list[int],
    backend: str,
    nodes: int | None = None,
) -> tuple[list, list, list]:
    n = nodes or _hp_node_count(lmax, d, dps)
    if backend == "arb":
        return _hp_arb(kernel, d, n, dps, degrees)
    return _hp_mpmath(kernel, d, n, dps, degrees)


def _hp_backend(kernel: Kernel) -> str:
    from fieldcurve.activations import ARB_OPS

    return "arb" if (ARB_OPS is not None and kernel.supports_arb) else "mpmath"


def _kernel_parity(kernel: Kernel) -> str | None:
    """``"odd"``/``"even"`` when k(t) has that exact symmetry (declared by the kernel), else None."""
    parity = getattr(kernel, "parity", None)
    return parity if parity in ("odd", "even") else None


def _evaluation_rtol(kernel: Kernel) -> float:
    """Relative accuracy of the kernel's double-precision evaluation (4e-15 if not declared)."""
    return float(getattr(kernel, "evaluation_rtol", 4e-15))


def _structural_zeros(kernel: Kernel, d: int, lmax: int) -> frozenset[int]:
    r"""Degrees whose eigenvalue vanishes by the kernel's parity structure.

    :math:`\lambda_l = \sum_{n\ge l,\,n\equiv l\ (2)} b_n\mu_{l,n}` with :math:`\mu_{l,n} > 0`
    and Taylor coefficients :math:`b_n \ge 0`. The Mehler-series composition gives *exact* zeros
    only where a whole class of terms vanishes (a sum of non-negative terms is zero only if every
    term is) — e.g. the odd :math:`b_{n\ge3}` of a one-layer ReLU kernel, whose activation is
    linear plus even. A degree is listed when every :math:`b_n`, :math:`n \equiv l`, from
    :math:`l` to :math:`2\,l_{max} + 60` is exactly zero; :func:`_mp_refine` still requires the
    high-precision quadrature to agree with zero before it declares one.
    """
    try:
        log_b = kernel.log_taylor_coefficients(2 * lmax + 60, d)
    except (NotImplementedError, ValueError, ArithmeticError):
        return frozenset()
    if log_b is None:
        return frozenset()
    zero = np.isneginf(np.asarray(log_b))
    out = set()
    for l in range(lmax + 1):
        same_parity = zero[l::2]
        if same_parity.size >= lmax + 30 - l // 2 and np.all(same_parity):  # missing orders: unknown
            out.add(l)
    return frozenset(out)


def _mp_refine(
    kernel: Kernel,
    d: int,
    lmax: int,
    degrees: list[int],
    rtol: float,
    max_dps: int,
    start_dps: int,
    structural_zeros: frozenset[int] = frozenset(),
) -> dict[int, tuple[float, float, float]]:
    """Raise precision until every degree meets rtol, then check the node count.

    Returns {l: (log|lam|, sign, relative error estimate)}. The round-off estimate of a degree is
    :math:`10^{-\\mathrm{dps}}\\sum_i|w_i f_i P_l(t_i)|` (20 guard digits are carried beyond
    ``dps``); the truncation estimate is the change when the nodes are multiplied by 1.5
    (doubled again, up to 8 times the initial count, while it exceeds ``rtol``).
    """
    out: dict[int, tuple[float, float, float]] = {}
    values: dict[int, Any] = {}
    pending = list(degrees)
    dps = start_dps
    backend = _hp_backend(kernel)
    while pending:
        vals, mags, spreads = _high_precision(kernel, d, lmax, dps, pending, backend)
        still: list[int] = []
        need = dps
        for l, v, m, spread in zip(pending, vals, mags, spreads, strict=True):
            err = m * mpmath.mpf(10) ** (-dps) + spread
            if not (mpmath.isfinite(v) and mpmath.isfinite(err)):
                if dps >= max_dps:
                    values[l] = (mpmath.mpf(0), mpmath.inf)
                else:
                    still.append(l)
                    need = max(need, 2 * dps)
                continue
            if abs(v) <= err:
                # zero within err: by structure (exact zero Taylor class) or at the top precision
                if l in structural_zeros or dps >= max_dps:
                    values[l] = (mpmath.mpf(0), err)
                else:  # only an upper bound so far: double the precision
                    still.append(l)
                    need = max(need, 2 * dps)
            elif err <= rtol * abs(v) or dps >= max_dps:
                values[l] = (v, err)
            else:
                still.append(l)
                need = max(need, int(float(mpmath.log10(err / abs(v)))) + dps - int(math.log10(rtol)) + 5)
        pending = still
        if pending:
            dps = min(max_dps, max(need, dps + 15))
    # truncation check: more nodes must not move any value beyond rtol
    check = [l for l in degrees if values[l][0] != 0]
    n0 = n = _hp_node_count(lmax, d, dps)
    while check:
        n = int(1.5 * n) if n == n0 else 2 * n
        vals, _, _ = _high_precision(kernel, d, lmax, dps, check, backend, n)
        moved = []
        for l, v in zip(check, vals, strict=True):
            old, err = values[l]
            delta = abs(v - old) if mpmath.isfinite(v) else mpmath.inf
            values[l] = (v if mpmath.isfinite(v) else old, err + delta)
            if delta > rtol * abs(v) / 10 and n < 8 * n0:
                moved.append(l)
        check = moved
    for l in degrees:
        v, err = values[l]
        if v == 0:
            out[l] = (-math.inf, 0.0, float(err))  # (log, sign, ABSOLUTE error) for zeros
        else:
            out[l] = (float(mpmath.log(abs(v))), float(mpmath.sign(v)), float(err / abs(v)))
    return out


_ZERO_ATOL = 1e-30  # a structural zero counts as resolved when its bound is below this x k(1)


# --------------------------------------------------------------------------- public entry
def spectrum(
    kernel: Any,
    d: int,
    lmax: int,
    method: str = "auto",
    *,
    rtol: float = 1e-10,
    series_terms: int | None = None,
    max_dps: int = 400,
) -> Spectrum:
    r"""Funk–Hecke eigenvalues :math:`\lambda_0..\lambda_{l_{max}}` of a dot-product kernel.

    Parameters
    ----------
    kernel
        A :class:`~fieldcurve.kernels.Kernel` (``nngp_kernel(mlp)``, ``ntk_kernel(mlp)``,
        :class:`~fieldcurve.kernels.DotProductKernel`), a sympy expression in ``t``, or a callable.
    d
        Input dimension, :math:`d \ge 2`.
    lmax
        Highest degree.
    method
        ``"auto"``, ``"quadrature"``, ``"series"`` or ``"mpmath"``; see the module docstring.
        ``"auto"`` takes, per degree, the most accurate of quadrature and series (by their error
        estimates) and recomputes in mpmath the degrees still worse than ``rtol``.
    rtol
        Target relative accuracy (default :math:`10^{-10}`).
    series_terms
        Taylor order N for the series route (default from ``lmax`` and ``d``).
    max_dps
        Highest mpmath precision (digits) the auto/mpmath routes may use.

    Returns
    -------
    Spectrum

    Raises
    ------
    ValueError
        Bad ``d``/``lmax``/``method``, or a kernel with a clearly negative eigenvalue (not
        positive definite on the sphere; the degree is named).

    Notes
    -----
    Measured accuracy (tests and ``benchmarks/``): relative error below :math:`10^{-10}` against
    closed forms (:math:`t^n`, :math:`(1+t)^p`, :math:`e^{t/s}`) and mpmath Funk–Hecke integrals,
    including eigenvalues far below :math:`10^{-16}\lambda_0`.
    """
    kernel = as_kernel(kernel)
    d = check_dimension(d)
    lmax = check_nonneg_int(lmax, "lmax")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")

    k1 = float(kernel._eval(np.array([1.0]), d)[0])
    if not math.isfinite(k1):
        raise ValueError("kernel value k(1) is not finite")
    if k1 < 0:
        raise ValueError(f"kernel {kernel.name} is not positive definite: k(1) = {k1:.3e} < 0")
    if k1 == 0:
        # |k(t)| <= k(1) for a positive definite kernel: k(1) = 0 means k = 0 everywhere
        mlp = getattr(kernel, "mlp", None)
        if mlp is not None and not any(
            w == 0 and b == 0 for w, b in zip(mlp.weight_vars, mlp.bias_vars, strict=True)
        ):
            raise ValueError(
                f"kernel {kernel.name}: k(1) underflows double precision (no layer is switched off;"
                " the variances are too small)"
            )
        probe = kernel._eval(np.linspace(-1.0, 1.0, 65), d)
        if np.any(probe != 0):
            raise ValueError(
                f"kernel {kernel.name} has k(1) = 0 but is not zero elsewhere: not positive definite"
            )
        return _zero_spectrum(kernel, d, lmax, rtol)
    degrees = np.arange(lmax + 1)
    log_lam = np.full(lmax + 1, np.nan)
    sign = np.ones(lmax + 1)
    err = np.full(lmax + 1, np.inf)
    methods = ["none"] * (lmax + 1)

    def resolved(l: int) -> bool:
        # compared in logarithms: eigenvalues may underflow double precision
        if sign[l] == 0:  # a structural zero, with an absolute error bound
            return bool(err[l] <= _ZERO_ATOL * abs(k1))
        if err[l] == 0:
            return bool(np.isfinite(log_lam[l]) or log_lam[l] == -np.inf)
        if not np.isfinite(err[l]) or np.isnan(log_lam[l]) or log_lam[l] == -np.inf:
            return False
        return bool(math.log(err[l]) <= math.log(rtol) + log_lam[l])

    def unresolved_degrees() -> list[int]:
        return [int(l) for l in degrees if not resolved(int(l))]

    parity = _kernel_parity(kernel)
    if parity is not None:
        # k(t) is exactly odd (even): every even (odd) degree vanishes identically
        vanishing = 0 if parity == "odd" else 1
        zero_log = np.where(degrees % 2 == vanishing, -np.inf, np.nan)
        for l in range(vanishing, lmax + 1, 2):
            log_lam[l], sign[l], err[l], methods[l] = zero_log[l], 1.0, 0.0, "parity"

    def take(route: str, values_log: NDArray, signs: NDArray, errors: NDArray) -> None:
        for l in range(lmax + 1):
            if methods[l] == "parity":
                continue
            if errors[l] < err[l] or methods[l] == "none":
                log_lam[l], sign[l], err[l], methods[l] = values_log[l], signs[l], errors[l], route

    if method in ("auto", "series"):
        cap = kernel.taylor_order_limit
        n_terms = series_terms or _series_terms_needed(lmax, d, cap)
        res = _series(kernel, d, lmax, n_terms, k1)
        if res is None:
            if method == "series":
                raise ValueError(f"{kernel.name} provides no non-negative Taylor coefficients")
        else:
            take("series", res[0], np.ones(lmax + 1), res[1])
            # truncation-limited degrees: a longer series (up to the cap) before other routes,
            # as long as doubling the order (cost ~ 4x) resolves a twentieth of what is left
            before = len(unresolved_degrees())
            while series_terms is None and before and n_terms < cap:
                n_terms = min(cap, 2 * n_terms)
                res = _series(kernel, d, lmax, n_terms, k1)
                if res is None:
                    break
                take("series", res[0], np.ones(lmax + 1), res[1])
                after = len(unresolved_degrees())
                if before - after < max(1, before / 20):
                    break
                before = after
            # a degree whose whole parity class of coefficients is exactly zero: lambda_l = 0,
            # up to the remainder bound (absolute)
            for l in _structural_zeros(kernel, d, lmax):
                if methods[l] == "series" and log_lam[l] == -np.inf:
                    sign[l] = 0.0
    if method == "quadrature" or (method == "auto" and unresolved_degrees()):
        try:
            lam_q, err_q = _quadrature(kernel, d, lmax)
        except ValueError:
            # the kernel cannot be evaluated at the nodes within its limits (e.g. a quadrature
            # dual at a huge variance): in auto mode the series results stand, unresolved ones flagged
            if method == "quadrature" or all(m == "none" for m in methods):
                raise
        else:
            with np.errstate(divide="ignore"):
                take("quadrature", np.log(np.abs(lam_q)), np.sign(lam_q), err_q)
    if method == "mpmath" or (method == "auto" and kernel.has_mp):
        if method == "mpmath" and not kernel.has_mp:
            raise ValueError(f"{kernel.name} has no arbitrary-precision evaluation (mpmath/arb)")
        bad = (
            [int(l) for l in degrees if methods[l] != "parity"]
            if method == "mpmath"
            else unresolved_degrees()
        )
        if bad:
            start = 30
            if method == "auto":
                finite = [log_lam[l] for l in bad if np.isfinite(log_lam[l])]
                if finite:
                    start = int(
                        max(
                            30,
                            (math.log(abs(k1) + 1e-300) - min(finite)) / math.log(10) - math.log10(rtol) + 5,
                        )
                    )
            zeros = _structural_zeros(kernel, d, lmax)
            refined = _mp_refine(kernel, d, lmax, bad, rtol, max_dps, min(start, max_dps), zeros)
            for l, (lv, sg, rel) in refined.items():
                abs_err = rel * math.exp(lv) if math.isfinite(lv) else rel
                if methods[l] != "parity" and (method == "mpmath" or abs_err < err[l]):
                    log_lam[l], sign[l], err[l], methods[l] = lv, sg, abs_err, "mpmath"

    with np.errstate(over="ignore", invalid="ignore"):
        lam = sign * np.exp(log_lam)
    # positive definiteness: a negative eigenvalue beyond its error estimate and round-off
    scale = max(abs(k1), 1e-300)
    for l in range(lmax + 1):
        if lam[l] < 0 and -lam[l] > 3 * err[l] and -lam[l] > 1e-12 * scale:
            raise ValueError(
                f"kernel {kernel.name} is not positive definite on the sphere: eigenvalue of"
                f" degree {l} is {lam[l]:.3e} (error estimate {err[l]:.1e})"
            )
    positive = (sign > 0) & ~np.isnan(log_lam)
    log_out = np.where(positive, log_lam, -np.inf)
    log_n = log_multiplicity(d, degrees)
    # physical bound: N(d,l) lambda_l <= k(1) for a positive definite kernel. An unresolved value
    # beyond it is noise: clip it and let the error cover [0, k(1)/N]; no error exceeds the bound;
    # and together the unresolved weights cannot exceed what the resolved ones leave of k(1).
    if k1 > 0:
        log_bound = math.log(k1) - log_n
        settled = np.array([resolved(l) for l in range(lmax + 1)])
        over = positive & ~settled & (log_out > log_bound)
        err = np.where(over, np.exp(log_bound), err)
        log_out = np.where(over, log_bound, log_out)
        err = np.minimum(err, np.exp(log_bound))
        # jointly: the unresolved weights share what the resolved ones leave of k(1)
        loose = positive & ~settled & np.isfinite(log_out)
        if loose.any():
            with np.errstate(over="ignore", under="ignore"):
                firm = np.exp(log_n + log_out)[positive & settled & np.isfinite(log_out)].sum()
                budget = max(k1 - float(firm), 0.0)
                loose_sum = float(np.exp(logsumexp(log_n[loose] + log_out[loose])))
            if loose_sum > budget:
                shrink = math.log(budget / loose_sum) if budget > 0 else -np.inf
                log_out = np.where(loose, log_out + shrink, log_out)
                err = np.where(loose, np.maximum(err, np.exp(log_bound) * min(1.0, budget / k1)), err)
    with np.errstate(under="ignore"):
        lam_out = np.where(positive, np.exp(log_out), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        final_ok = (err <= rtol * lam_out) | (err == 0)
    unresolved = [l for l in range(lmax + 1) if positive[l] and not final_ok[l]]
    if unresolved and method == "auto":
        warnings.warn(
            f"{len(unresolved)} eigenvalue(s) (degrees {unresolved[:5]}...) could not be resolved to"
            f" rtol={rtol:g}; see Spectrum.error_estimates",
            RuntimeWarning,
            stacklevel=2,
        )
    mult = _multiplicities(d, degrees, log_n)
    finite = np.isfinite(log_out)
    with np.errstate(over="ignore"):
        total = float(np.exp(logsumexp(log_n[finite] + log_out[finite]))) if finite.any() else 0.0
        weighted_err = np.exp(log_n + np.log(np.maximum(err, 1e-300)))
    tail_err = float(np.sum(np.where(err > 0, weighted_err, 0.0)))
    tail = k1 - total
    if tail < -(tail_err + 1e-10 * abs(k1)):
        raise ValueError(
            f"kernel {kernel.name}: the eigenvalues of degrees 0..{lmax} add up to {total:.6e},"
            f" more than k(1) = {k1:.6e} beyond their error estimates ({tail_err:.1e}); the kernel's"
            " values and its Taylor coefficients (or mpmath evaluation) disagree"
        )
    return Spectrum(
        d=d,
        degrees=degrees,
        eigenvalues=lam_out,
        log_eigenvalues=log_out,
        multiplicities=mult,
        log_multiplicities=log_n,
        kernel_at_one=k1,
        tail_mass=min(max(tail, 0.0), max(k1, 0.0)),
        error_estimates=err,
        methods=tuple(methods),
        name=kernel.name,
        tail_mass_error=tail_err,
        rtol=float(rtol),
    )


def _multiplicities(d: int, degrees: NDArray, log_n: NDArray[np.float64]) -> NDArray[np.float64]:
    """N(d, l) as floats: the exact integer below 2^52, else exp(log N) (inf beyond range)."""
    with np.errstate(over="ignore"):
        mult = np.exp(log_n)
    exact = log_n < 36.0
    mult[exact] = [float(multiplicity(d, int(l))) for l in degrees[exact]]
    return mult


def _zero_spectrum(kernel: Kernel, d: int, lmax: int, rtol: float) -> Spectrum:
    """The spectrum of the zero kernel: every eigenvalue exactly 0."""
    degrees = np.arange(lmax + 1)
    log_n = log_multiplicity(d, degrees)
    mult = _multiplicities(d, degrees, log_n)
    return Spectrum(
        d=d,
        degrees=degrees,
        eigenvalues=np.zeros(lmax + 1),
        log_eigenvalues=np.full(lmax + 1, -np.inf),
        multiplicities=mult,
        log_multiplicities=log_n,
        kernel_at_one=0.0,
        tail_mass=0.0,
        error_estimates=np.zeros(lmax + 1),
        methods=("zero",) * (lmax + 1),
        name=kernel.name,
        tail_mass_error=0.0,
        rtol=float(rtol),
    )


def gram_spectrum(K: ArrayLike) -> NDArray[np.float64]:
    r"""Eigenvalues of :math:`K/P` for a :math:`P\times P` Gram matrix, in decreasing order.

    For :math:`P` uniform points on the sphere these approach the operator eigenvalues
    :math:`\lambda_l`, each repeated :math:`N(d,l)` times (Koltchinskii & Giné 2000).
    """
    K = check_finite_array(K, "K", ndim=2)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be square, got shape {K.shape}")
    if not np.allclose(K, K.T, rtol=1e-10, atol=1e-12 * max(1.0, float(np.abs(K).max(initial=0)))):
        raise ValueError("K must be symmetric")
    return np.linalg.eigvalsh(0.5 * (K + K.T) / K.shape[0])[::-1]


# --------------------------------------------------------------------------- symbolic
def _mu_symbolic(l: int, n: int, d: Any) -> Any:
    """Exact eigenvalue of t^n in degree l: n! / (2^l 4^k k! (d/2)_(l+k)), n - l = 2k."""
    import sympy

    if n < l or (n - l) % 2:
        return sympy.Integer(0)
    k = (n - l) // 2
    return sympy.factorial(n) / (2**l * 4**k * sympy.factorial(k) * sympy.rf(sympy.Rational(1, 2) * d, l + k))


def symbolic_spectrum(expr: Any, d: Any, lmax: int) -> list[Any]:
    r"""Exact eigenvalues of a polynomial kernel with sympy, symbolic in ``d`` if ``d`` is a Symbol.

    ``expr`` is a sympy expression in ``t`` or a string; strings are read by fieldcurve's bounded
    polynomial parser (rational coefficients, degree and size limits of the CLI's ``--polynomial``),
    never by ``sympify``.

    For :math:`k(t) = \sum_n b_n t^n`, :math:`\lambda_l = \sum_n b_n\mu_{l,n}` with
    :math:`\mu_{l,l+2k} = \frac{(l+2k)!}{2^l\,4^k\,k!\,(d/2)_{l+k}}` (the Gegenbauer expansion of
    :math:`t^n`; :math:`(a)_m` the rising factorial), a rational function of ``d``.

    Returns a list of simplified sympy expressions for :math:`l = 0..l_{max}`.
    """
    import sympy  # loaded here: the rest of the package does not need it

    lmax = check_nonneg_int(lmax, "lmax")
    t = sympy.Symbol("t")
    if isinstance(expr, str):
        # a user string never reaches sympify: the bounded polynomial parser reads it
        from fieldcurve._polynomial import parse_polynomial

        def variable(name: str) -> str:
            if name != "t":
                raise ValueError(f"expr: unknown variable {name!r} (a polynomial in t)")
            return name

        poly, keys = parse_polynomial(expr, variable, name="expr")
        expr = sum(
            (
                sympy.Rational(c.numerator, c.denominator) * t ** (e[0] if keys else 0)
                for e, c in poly.items()
            ),
            sympy.Integer(0),
        )
    elif isinstance(expr, (int, float, np.integer, np.floating)):
        expr = (
            sympy.Float(float(expr)) if isinstance(expr, (float, np.floating)) else sympy.Integer(int(expr))
        )
    elif not isinstance(expr, sympy.Basic):
        raise TypeError(f"expr must be a string or a sympy expression, got {type(expr).__name__}")
    free = expr.free_symbols
    if free - {t}:
        raise ValueError(f"expr must be a polynomial in the single symbol t, got {expr}")
    if not expr.is_polynomial(t):
        raise ValueError(f"symbolic_spectrum needs a polynomial in t, got {expr}")
    if isinstance(d, (int, np.integer)):
        d = sympy.Integer(check_dimension(int(d)))
    poly = sympy.Poly(expr, t)
    coeffs = {m[0]: c for m, c in zip(poly.monoms(), poly.coeffs(), strict=True)}
    return [
        sympy.factor(
            sympy.simplify(sum((c * _mu_symbolic(l, n, d) for n, c in coeffs.items()), sympy.Integer(0)))
        )
        for l in range(lmax + 1)
    ]
