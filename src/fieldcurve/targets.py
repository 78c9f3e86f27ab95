r"""Target functions on the sphere, described by their power per degree.

A target :math:`f^*` on the :math:`\sqrt d`-sphere is summarised, for learning-curve theory of
rotation-invariant kernels, by its power per degree

.. math:: v_l^2 = \sum_m \langle f^*, Y_{lm}\rangle^2 = \lVert \Pi_l f^* \rVert^2

(uniform probability measure), plus the variance :math:`\sigma_\varepsilon^2` of the label noise
(labels :math:`y = f^*(x) + \varepsilon`). Every target can be *sampled* as a concrete function
with exactly the stated power per degree (:meth:`Target.sample`), for experiments.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldcurve._checks import check_dimension, check_finite_array, check_nonneg_int, check_variance
from fieldcurve._limits import MAX_MAGNITUDE
from fieldcurve.sphere import harmonic_features, multiplicity

__all__ = ["SampledTarget", "Target"]


@dataclass(frozen=True)
class Target:
    r"""Power per degree :math:`v_l^2` of a target function, and the label-noise variance.

    Parameters
    ----------
    powers
        Mapping degree -> :math:`v_l^2 \ge 0`.
    noise
        Label-noise variance :math:`\sigma_\varepsilon^2 \ge 0`.
    d
        Input dimension, if the target is tied to one (polynomial and teacher targets are).
    name
        Label for tables and plots.
    """

    powers: Mapping[int, float]
    noise: float = 0.0
    d: int | None = None
    name: str = "target"
    meta: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.powers, Mapping):
            raise TypeError("powers must be a mapping degree -> power")
        clean: dict[int, float] = {}
        for l, v in self.powers.items():
            l = check_nonneg_int(l, "degree")
            clean[l] = check_variance(v, f"power of degree {l}")
        object.__setattr__(self, "powers", dict(sorted(clean.items())))
        object.__setattr__(self, "noise", check_variance(self.noise, "noise"))
        if self.d is not None:
            object.__setattr__(self, "d", check_dimension(self.d))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_degree_powers(
        cls, powers: Mapping[int, float], noise: float = 0.0, d: int | None = None, name: str | None = None
    ) -> Target:
        r"""Target with the given :math:`v_l^2` per degree, e.g. ``{1: 1.0, 2: 0.5}``."""
        if not isinstance(powers, Mapping):
            raise TypeError(f"powers must be a mapping degree -> power, got {type(powers).__name__}")
        target = cls(powers=powers, noise=noise, d=d)  # validates before the label is built
        label = name or "powers " + ", ".join(f"l={l}: {v:g}" for l, v in target.powers.items())
        object.__setattr__(target, "name", label)
        return target

    @classmethod
    def from_kernel(cls, kernel: Any, d: int, lmax: int, *, scale: float = 1.0, noise: float = 0.0) -> Target:
        r"""A teacher: a draw from the GP with covariance ``scale`` × kernel (e.g. a random wide
        network's output), whose expected power per degree is :math:`N(d,l)\lambda_l` times
        ``scale``.

        Degrees above ``lmax`` are dropped; their share, ``scale`` × ``Spectrum.tail_mass``, is in
        ``meta["tail_power"]`` (with its uncertainty in ``meta["tail_power_error"]``), so the powers
        plus the tail power add up to ``scale`` × :math:`k(1)` (the total power of the teacher,
        :math:`\sum_l N(d,l)\lambda_l = k(1)`) within that uncertainty.

        Raises
        ------
        ValueError
            If eigenvalues the spectrum could not resolve (``Spectrum.resolved``) make the powers
            uncertain by more than :math:`10^{-6}` of the total power: the message names the
            degrees and the ``lmax`` below them that avoids them.
        """
        from fieldcurve.spectrum import spectrum

        scale = check_variance(scale, "scale")
        spec = spectrum(kernel, d, lmax)
        log_w = spec.log_multiplicities + spec.log_eigenvalues
        positive = np.isfinite(log_w)
        with np.errstate(divide="ignore"):
            log_err = spec.log_multiplicities + np.log(spec.error_estimates)
        unresolved = positive & ~spec.resolved
        # the resolved flag compares linear values: recheck underflowed eigenvalues in logs
        unresolved &= ~(log_err - np.where(positive, log_w, 0.0) <= math.log(spec.rtol))
        k1 = max(float(spec.kernel_at_one), 0.0)
        power_err = float(np.sum(np.exp(log_err[unresolved]))) if unresolved.any() else 0.0
        if power_err > 1e-6 * k1:
            bad = [int(l) for l in np.flatnonzero(unresolved)]
            shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
            raise ValueError(
                f"teacher {spec.name}: the eigenvalues of degrees {shown} are not resolved, so its"
                f" power per degree is uncertain by {power_err / k1:.1e} of the total k(1) ="
                f" {k1:.6g}; use lmax below {bad[0]} (their power then goes to meta['tail_power'])"
            )
        with np.errstate(over="ignore"):
            weights = np.where(positive, np.exp(np.where(positive, log_w, 0.0)), 0.0)
        powers = {int(l): float(scale * w) for l, w in zip(spec.degrees, weights, strict=True) if w > 0}
        return cls(
            powers=powers,
            noise=noise,
            d=d,
            name=f"teacher: {spec.name}",
            meta={
                "tail_power": scale * spec.tail_mass,
                "tail_power_error": scale * (spec.tail_mass_error + power_err),
                "power_error": scale * power_err,
            },
        )

    @classmethod
    def from_polynomial(cls, expr: Any, d: int, *, noise: float = 0.0, name: str | None = None) -> Target:
        r"""Exact power per degree of a polynomial in :math:`x_1..x_d` (sympy), on the
        :math:`\sqrt d`-sphere.

        Each homogeneous part :math:`p` of degree m is split into harmonics,
        :math:`p = \sum_j |x|^{2j}h_{m-2j}`, by the projection (Stein & Weiss 1971, ch. IV)

        .. math:: h_m = \sum_{j\ge0} \frac{(-1)^j\,\Gamma(d/2+m-j-1)}{4^j\,j!\,\Gamma(d/2+m-1)}
                  |x|^{2j}\Delta^j p,

        applied recursively to :math:`(p - h_m)/|x|^2`; on the sphere :math:`|x|^2 = d`. The power
        :math:`\lVert\Pi_l f\rVert^2` is then integrated exactly with the sphere's monomial moments
        :math:`\mathbb E[\prod_i x_i^{a_i}] = d^{|a|/2}\,\frac{\Gamma(d/2)}{\Gamma(d/2+|a|/2)}
        \prod_i\frac{\Gamma((a_i+1)/2)}{\Gamma(1/2)}` (all :math:`a_i` even), in rational
        arithmetic. Symbols are ``x1 .. xd`` (or ``x_1 .. x_d``); unused ones may be omitted.
        """
        import sympy

        from fieldcurve import _polynomial

        d = check_dimension(d)

        def variable(symbol: str) -> int:
            m = re.fullmatch(r"x_?([1-9][0-9]*)", symbol)
            if not m or int(m.group(1)) > d:
                raise ValueError(
                    f"polynomial: unknown symbol {symbol!r}; a polynomial may contain only x1..x{d}"
                    " (or x_1..), numbers, + - * / ** ^ and parentheses"
                )
            return int(m.group(1))

        if isinstance(expr, str):
            poly, keys = _polynomial.parse_polynomial(expr, variable)
            label = " ".join(expr.split())
        elif isinstance(expr, sympy.Basic):
            poly, keys = _polynomial.from_sympy(expr, variable)
            label = str(expr)
        else:
            raise TypeError(f"expr must be a string or a sympy expression, got {type(expr).__name__}")
        exact, parts = _polynomial.sphere_powers(poly, d)
        for l, v in exact.items():
            if v > MAX_MAGNITUDE:
                exponent = math.log10(v.numerator) - math.log10(v.denominator)
                raise ValueError(
                    f"polynomial: the power of degree {l} (about 1e{exponent:.0f}) exceeds the limit"
                    f" {MAX_MAGNITUDE:g}"
                )
        return cls(
            powers={l: float(v) for l, v in exact.items()},
            noise=noise,
            d=d,
            name=name or f"polynomial {label}",
            meta={
                "exact_powers": {l: sympy.Rational(v.numerator, v.denominator) for l, v in exact.items()},
                "harmonic_parts": parts,
                "variables": [f"x{i}" for i in keys],
            },
        )

    @classmethod
    def from_function(
        cls,
        f: Any,
        d: int,
        lmax: int,
        *,
        n: int = 4000,
        batches: int = 20,
        seed: int | np.random.Generator,
        noise: float = 0.0,
        name: str | None = None,
    ) -> Target:
        r"""Power per degree of any vectorised function ``f(X)`` on the sphere, by Monte Carlo.

        Estimator: for each degree l, the U-statistic

        .. math:: \hat v_l^2 = \frac{1}{n(n-1)}\sum_{i\ne j} f(x_i) f(x_j)\,N(d,l)\,P_l(x_i\cdot x_j/d)

        over ``n`` uniform points, an unbiased estimate of
        :math:`\mathbb E_{x,y}[f(x)f(y)Z_l(x,y)] = \lVert\Pi_l f\rVert^2` (reproducing property
        of the zonal harmonic :math:`Z_l`). The points are split into ``batches`` independent
        groups; the reported power is the mean of the per-batch U-statistics and
        ``meta["power_sem"]`` their standard error. Negative estimates (noise around a zero
        power) are kept in ``meta["raw_power"]`` and clipped to 0 in ``powers``.
        ``meta["total_power"]`` is the plain Monte Carlo mean of :math:`f^2` (whose excess over
        the sum of the powers is the power beyond ``lmax``).
        """
        from fieldcurve.sphere import legendre, sample_sphere

        d = check_dimension(d)
        lmax = check_nonneg_int(lmax, "lmax")
        n = check_nonneg_int(n, "n")
        batches = check_nonneg_int(batches, "batches")
        if batches < 2 or n < 4 * batches:
            raise ValueError("need batches >= 2 and at least 4 points per batch (n >= 4 batches)")
        if not callable(f):
            raise TypeError("f must be a callable of an (n, d) array")
        X = sample_sphere(n, d, seed=seed)
        values = np.asarray(f(X), dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"f must return one value per row, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("f returned NaN or inf")
        per_batch = np.empty((batches, lmax + 1))
        for b, idx in enumerate(np.array_split(np.arange(n), batches)):
            Xb, fb = X[idx], values[idx]
            t = np.clip(Xb @ Xb.T / d, -1.0, 1.0)
            P = legendre(lmax, t, d)
            m = len(idx)
            for l in range(lmax + 1):
                Z = float(multiplicity(d, l)) * P[l]
                total = fb @ Z @ fb - np.sum(fb * fb * np.diag(Z))
                per_batch[b, l] = total / (m * (m - 1))
        raw = per_batch.mean(axis=0)
        sem = per_batch.std(axis=0, ddof=1) / np.sqrt(batches)
        powers = {l: float(max(v, 0.0)) for l, v in enumerate(raw)}
        return cls(
            powers=powers,
            noise=noise,
            d=d,
            name=name or getattr(f, "__name__", "function"),
            meta={
                "raw_power": raw,
                "power_sem": sem,
                "total_power": float(np.mean(values**2)),
                "estimator": "batched U-statistic",
                "n": n,
                "batches": batches,
            },
        )

    # ------------------------------------------------------------------ properties
    @property
    def degrees(self) -> list[int]:
        """Degrees with non-zero power."""
        return [l for l, v in self.powers.items() if v > 0]

    @property
    def total_power(self) -> float:
        r""":math:`\lVert f^*\rVert^2 = \sum_l v_l^2`."""
        return float(sum(self.powers.values()))

    def power_array(self, lmax: int) -> NDArray[np.float64]:
        """:math:`v_l^2` for l = 0..lmax (zeros where absent)."""
        out = np.zeros(lmax + 1)
        for l, v in self.powers.items():
            if l <= lmax:
                out[l] = v
        return out

    def power_beyond(self, lmax: int) -> float:
        """Power in degrees above ``lmax``."""
        return float(sum(v for l, v in self.powers.items() if l > lmax))

    # ------------------------------------------------------------------ sampling
    def sample(
        self, d: int | None = None, *, seed: int | np.random.Generator, max_features: int = 64
    ) -> SampledTarget:
        r"""A concrete function with exactly this power per degree.

        For each degree l with power :math:`v_l^2`, ``k = min(N(d,l), max_features)``
        orthonormal degree-l harmonics :math:`F_{l,a}` (:func:`fieldcurve.harmonic_features`)
        get Gaussian coefficients rescaled so that :math:`\sum_a c_{l,a}^2 = v_l^2` exactly:
        :math:`f(x) = \sum_l\sum_a c_{l,a}F_{l,a}(x)`. Rotation-invariant learning curves depend on
        the target only through :math:`v_l^2`, so any such draw is representative.
        """
        d = self._resolve_d(d)
        max_features = check_nonneg_int(max_features, "max_features")
        if max_features < 1:
            raise ValueError("max_features must be >= 1")
        rng = np.random.default_rng(seed)
        parts = []
        for l, v in self.powers.items():
            if v <= 0:
                continue
            k = min(multiplicity(d, l), max_features)
            c = rng.standard_normal(k)
            c *= math.sqrt(v) / np.linalg.norm(c)
            parts.append((l, int(rng.integers(2**31)), c))
        return SampledTarget(d=d, components=tuple(parts), noise=self.noise)

    def _resolve_d(self, d: int | None) -> int:
        if d is None:
            if self.d is None:
                raise ValueError("d is required: this target is not tied to an input dimension")
            return self.d
        d = check_dimension(d)
        if self.d is not None and d != self.d:
            raise ValueError(f"target is defined for d = {self.d}, not d = {d}")
        return d


@dataclass(frozen=True)
class SampledTarget:
    r"""A concrete target :math:`f(x) = \sum_l\sum_a c_{l,a}F_{l,a}(x)` (see :meth:`Target.sample`)."""

    d: int
    components: tuple[tuple[int, int, NDArray[np.float64]], ...]
    noise: float = 0.0

    def __call__(self, X: ArrayLike) -> NDArray[np.float64]:
        """Evaluate at the rows of ``X`` (on the :math:`\\sqrt d`-sphere)."""
        X = check_finite_array(X, "X", ndim=2)
        if X.shape[1] != self.d:
            raise ValueError(f"X has dimension {X.shape[1]}, the target lives in d = {self.d}")
        out = np.zeros(X.shape[0])
        for l, feature_seed, c in self.components:
            out += harmonic_features(X, l, len(c), seed=feature_seed) @ c
        return out

    def degree_part(self, X: ArrayLike, degree: int) -> NDArray[np.float64]:
        """The degree-``degree`` component :math:`\\Pi_l f` at the rows of ``X``."""
        X = check_finite_array(X, "X", ndim=2)
        if X.shape[1] != self.d:
            raise ValueError(f"X has dimension {X.shape[1]}, the target lives in d = {self.d}")
        out = np.zeros(X.shape[0])
        for l, feature_seed, c in self.components:
            if l == degree:
                out += harmonic_features(X, l, len(c), seed=feature_seed) @ c
        return out

    @property
    def powers(self) -> dict[int, float]:
        return {l: float(c @ c) for l, _, c in self.components}

    def labels(self, X: ArrayLike, *, seed: int | np.random.Generator) -> NDArray[np.float64]:
        r"""Noisy labels :math:`y = f(x) + \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, \sigma^2)`."""
        clean = self(X)
        rng = np.random.default_rng(seed)
        return clean + math.sqrt(self.noise) * rng.standard_normal(clean.shape)
