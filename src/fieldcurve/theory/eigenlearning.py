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
``Spectrum.tail_mass``. They are extended by a power law fitted to the last *resolved* degrees
(per parity, in logarithms, with the exact multiplicities :math:`N(d,l)`) up to ``tail_factor``
× lmax, scaled so their mass does not exceed :math:`T`; whatever mass remains acts as a ridge
(modes with :math:`\lambda \ll \kappa` contribute :math:`\lambda/\kappa` each), as do degrees
whose eigenvalue underflows or whose multiplicity overflows double precision. The result reports
``tail_ratio`` = (largest eigenvalue beyond lmax) / κ.

Validity: the theory treats every mode's feature as Gaussian, but the constant mode (degree 0)
is deterministic — its column of the design matrix is exactly the all-ones vector, of norm
:math:`\sqrt P`, not a Gaussian column of norm :math:`\chi_P`. The difference enters through the
constant mode's share :math:`\gamma_0 = \mathcal L_0^2/P` of :math:`\gamma`: a kernel dominated by
its constant mode (a large bias variance) at P of a few has :math:`\gamma_0 \to 1` and a
predicted :math:`\mathcal E_0 \gg 1` that exact kernel regression does not show (depth-1 GELU
NTK, :math:`\sigma_w^2 = 0.1`, :math:`\sigma_b^2 = 10`, d = 30: :math:`E_g(1) = 21.9` predicted,
3.49 exact). Measured against exact kernel regression (``tests/test_physical_outputs.py``, 300
trials, 8 configurations, P = 1–40): within 10% wherever :math:`\gamma_0 \le 0.25`, and 14% to
6× too high beyond. ``LearningCurve.valid`` flags the points with :math:`\gamma_0 \le 0.25`
(``VALID_CONSTANT_SHARE``); the command line marks the others.

Uncertainty: every prediction carries ``test_error_uncertainty``, the sum of two parts —
(i) the eigenvalues the spectrum could not resolve to its ``rtol`` (``Spectrum.resolved``) moved
to the ends of their error intervals (each unresolved degree with target power on its own, the
others together, both ends; the largest change of :math:`E_g` per group, summed: a first-order
bound), and (ii) the dependence on the tail model: the change of :math:`E_g` when the tail mass
is treated entirely as a ridge instead of the power law. A prediction whose uncertainty exceeds
``max_uncertainty`` × :math:`E_g` is refused with a ``ValueError`` that names the cause (the
unresolved degrees, or lmax) and what to do. :math:`E_g` is computed as
:math:`\mathcal E_0 B + (\mathcal E_0 - 1)\sigma^2` with :math:`\mathcal E_0 - 1 = s_2/h`,
:math:`s_2 = \sum_l N_l\mathcal L_l^2`, :math:`h = \sum_l N_l\mathcal L_l(1-\mathcal L_l) +
\delta/\kappa` (equal to :math:`P - s_2` by the κ equation, summed without cancellation), so it
is never negative and never NaN; ridgeless regression exactly at the interpolation threshold
(:math:`\mathcal E_0 = \infty`) is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldcurve.spectrum import Spectrum
from fieldcurve.targets import Target
from fieldcurve.theory import _spectral
from fieldcurve.theory._spectral import check_sizes, exact_sums, levels, solve

__all__ = ["VALID_CONSTANT_SHARE", "LearningCurve", "learning_curve", "solve_kappa"]

VALID_CONSTANT_SHARE = 0.25


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
    tail_ratio : largest eigenvalue beyond lmax divided by :math:`\kappa` (module docstring).
    test_error_uncertainty : uncertainty of ``test_error`` from unresolved eigenvalues and the tail
        model (module docstring); zeros where there is none.
    error_rest : :math:`E_g - \sum_{l\in S}E_l` over ``S`` = :attr:`shown_degrees` (degree 0 and
        the degrees with target power): the other degrees' share of the effective noise and the
        power beyond lmax.
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
    test_error_uncertainty: NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        if self.test_error_uncertainty is None:
            object.__setattr__(self, "test_error_uncertainty", np.zeros(len(self.P)))

    @property
    def constant_mode_share(self) -> NDArray[np.float64]:
        r""":math:`\gamma_0 = \mathcal L_0^2/P`, the constant mode's share of :math:`\gamma = 1 -
        1/\mathcal E_0` (0 where degree 0 has no eigenvalue or the curve has no degree 0)."""
        if not self.meta.get("constant_mode", False) or self.eigenvalues[0] <= 0:
            return np.zeros(len(self.P))
        return self.learnability[:, 0] ** 2 / self.P

    @property
    def valid(self) -> NDArray[np.bool_]:
        """Points inside the theory's measured validity: ``constant_mode_share <= 0.25``
        (module docstring, "Validity")."""
        return self.constant_mode_share <= VALID_CONSTANT_SHARE

    @property
    def shown_degrees(self) -> list[int]:
        """Degree 0 and the degrees with target power (within lmax) on the sphere; none on a data
        set (its modes are not degrees). Their :math:`E_l` and :attr:`error_rest` add up to E_g."""
        if self.meta.get("target") == "data labels":
            return []
        return sorted({0, *self.meta.get("target_degrees", [])} & set(range(len(self.eigenvalues))))

    @property
    def error_rest(self) -> NDArray[np.float64]:
        """:math:`E_g` minus the per-degree errors of :attr:`shown_degrees` (>= 0): the other
        degrees' share of the effective noise and the target power beyond lmax."""
        shown = self.shown_degrees
        part = self.error_per_degree[:, shown].sum(axis=1) if shown else np.zeros(len(self.P))
        return np.maximum(self.test_error - part, 0.0)

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
        """JSON-ready description (per-degree arrays restricted to :attr:`shown_degrees`)."""
        shown = self.shown_degrees
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
                    "test_error_uncertainty": float(self.test_error_uncertainty[i]),
                    "error_per_degree": {str(l): float(self.error_per_degree[i, l]) for l in shown},
                    "error_rest": float(self.error_rest[i]),
                    "valid": bool(self.valid[i]),
                    "constant_mode_share": float(self.constant_mode_share[i]),
                    "learnability": {str(l): float(self.learnability[i, l]) for l in shown},
                }
            )
        return {"ridge": self.ridge, "noise": self.noise, "points": rows}


# --------------------------------------------------------------------------- kappa
def solve_kappa(
    lam: ArrayLike, mult: ArrayLike, ridge: float, P: ArrayLike, *, rtol: float = 1e-13
) -> NDArray[np.float64]:
    r"""Solve :math:`\sum_i m_i\lambda_i/(\lambda_i+\kappa) + \delta/\kappa = P` for every P at once.

    The left side decreases strictly in :math:`\kappa`; the solver tabulates it on a log grid,
    inverts by monotone cubic Hermite interpolation, and polishes with safeguarded Newton steps in
    :math:`\log\kappa` (vectorised over P) to relative accuracy ``rtol``. Levels far from every
    :math:`\kappa` of the request enter through power moments (truncation error below 1e-18
    relative), so a long spectrum costs little more than its active part. The equation is solved
    on the scale of :math:`\sum_i m_i\lambda_i + \delta`, so tiny and huge kernels behave alike.
    Returns 0 where :math:`\delta = 0` and :math:`P \ge \sum m_i` (interpolation).
    """
    lam = np.asarray(lam, dtype=np.float64)
    mult = np.asarray(mult, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    return solve(lam, mult, float(ridge), P, rtol)


# kept for callers of the former private names
_check_sizes = check_sizes
_exact_sums = exact_sums


# --------------------------------------------------------------------------- main entry
def learning_curve(
    spec: Spectrum,
    target: Target,
    P: ArrayLike | Sequence[float],
    ridge: float = 0.0,
    *,
    tail_factor: float = 8.0,
    max_uncertainty: float = 0.05,
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
    max_uncertainty
        Largest accepted ``test_error_uncertainty`` relative to :math:`E_g` (module docstring).

    Returns
    -------
    LearningCurve
        See the module docstring for every formula.

    Raises
    ------
    ValueError
        Bad input; a prediction whose uncertainty exceeds ``max_uncertainty`` (the message names
        the unresolved degrees or lmax, and what to do); ridgeless regression at the
        interpolation threshold.
    """
    ridge, P = _spectral.check_inputs(spec, target, ridge, P)
    if not (isinstance(max_uncertainty, (int, float)) and max_uncertainty > 0):
        raise ValueError(f"max_uncertainty must be positive, got {max_uncertainty!r}")
    lmax = spec.lmax
    beyond = target.power_beyond(lmax)
    if beyond > 0:
        warnings.warn(
            f"{beyond / target.total_power:.1%} of the target's power lies beyond lmax = {lmax};"
            " it is counted as unlearnable (raise lmax)",
            RuntimeWarning,
            stacklevel=2,
        )
    v2 = target.power_array(lmax)

    def evaluate(s: Spectrum, factor: float = tail_factor) -> NDArray[np.float64]:
        lam, mult, leftover, _ = levels(s, factor)
        return _spectral.formulas(lam, mult, leftover, s.eigenvalues, v2, beyond, target.noise, P, ridge)[
            "test_error"
        ]

    lam, mult, leftover, largest_tail = levels(spec, tail_factor)
    out = _spectral.formulas(lam, mult, leftover, spec.eigenvalues, v2, beyond, target.noise, P, ridge)
    uncertainty, parts = _spectral.spectral_uncertainty(spec, v2, out["test_error"], evaluate)
    _spectral.check_uncertainty(out["test_error"], uncertainty, parts, P, spec, max_uncertainty, "")
    kappa = out["kappa"]
    with np.errstate(divide="ignore", invalid="ignore"):
        tail_ratio = np.where(kappa > 0, largest_tail / np.where(kappa > 0, kappa, 1.0), np.inf)
    tail_ratio = np.where(largest_tail > 0, tail_ratio, 0.0)
    return LearningCurve(
        P=P,
        test_error=out["test_error"],
        test_error_noisy=out["test_error_noisy"],
        train_error=out["train_error"],
        kappa=kappa,
        overfitting=out["overfitting"],
        bias=out["bias"],
        tail_ratio=tail_ratio,
        degrees=spec.degrees,
        ridge=ridge,
        noise=target.noise,
        eigenvalues=spec.eigenvalues,
        log_multiplicities=spec.log_multiplicities,
        target_powers=v2,
        meta={
            "target_degrees": target.degrees,
            "spectrum": spec.name,
            "d": spec.d,
            "target": target.name,
            "leftover_tail_ridge": leftover,
            "constant_mode": True,
            "uncertainty_parts": {k: v.tolist() for k, v in parts.items()},
        },
        test_error_uncertainty=uncertainty,
    )
