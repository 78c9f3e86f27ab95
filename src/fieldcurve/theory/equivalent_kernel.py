r"""The equivalent-kernel (EK) approximation and its renormalised form.

Equivalent kernel (Sollich & Williams 2005): at large P the posterior mean of GP regression
with noise (ridge) :math:`\delta` is the kernel smoother with learnabilities
:math:`\mathcal L_l = \lambda_l/(\lambda_l + \kappa_{EK})`, :math:`\kappa_{EK} = \delta/P`, and

.. math:: E_g^{EK} = \sum_l \Bigl[(1-\mathcal L_l)^2 v_l^2 + \sigma^2\,\frac{N_l\mathcal L_l^2}{P}\Bigr]
          \quad(+\ \text{power beyond }l_{max}),

the bias of the mean predictor plus the variance the label noise puts into each mode (the
replica mode error without the :math:`1/(1-\gamma)` amplification).

Renormalised EK (after Cohen, Malka & Ringel 2021): the modes the data cannot resolve act as
additional white noise on the others. Modes with :math:`\lambda_i < \kappa` are "high"; their
summed eigenvalues (their share of :math:`k(x,x)`, including the spectrum's tail mass beyond
lmax) join the ridge,

.. math:: \kappa_{rEK} = \frac{\delta + \sum_{i:\,\lambda_i<\kappa_{rEK}} m_i\lambda_i}{P},

solved self-consistently over the sorted eigenvalues. Comparison with the replica /
eigenlearning result of :mod:`fieldcurve.theory.eigenlearning`, whose equation is
:math:`P\kappa = \delta + \kappa\sum_i m_i\lambda_i/(\lambda_i+\kappa)`: (i) the replica
equation counts every mode smoothly, the rEK splits modes sharply at :math:`\lambda = \kappa`;
(ii) the replica result has the low modes' term :math:`\kappa\,\#\{\lambda_i > \kappa\}`, the
degrees of freedom spent on learned modes, which the rEK drops; (iii) the replica error carries
the variance factor :math:`\mathcal E_0 = 1/(1-\gamma)` and the noise term
:math:`(\mathcal E_0-1)\sigma^2`, absent from both EK forms (they describe the mean predictor
averaged over data sets). All three agree once P is much larger than the number of learned
modes (:math:`\mathcal E_0 \to 1`); the EK fails badly when :math:`\delta \to 0`
(:math:`\kappa_{EK} = 0` predicts perfect learning of every mode with :math:`\lambda > 0`).
See ``docs/equivalent_kernel.md`` for a measured comparison.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fieldcurve.spectrum import Spectrum
from fieldcurve.targets import Target
from fieldcurve.theory._spectral import check_inputs, check_uncertainty, levels, spectral_uncertainty
from fieldcurve.theory.eigenlearning import LearningCurve

__all__ = ["equivalent_kernel_curve"]


def _renormalised_kappa(lam: np.ndarray, mult: np.ndarray, ridge: float, P: np.ndarray) -> np.ndarray:
    """Fixed point of kappa = (ridge + sum_{lam_i < kappa} m_i lam_i)/P, per P (vectorised)."""
    order = np.argsort(lam)
    lam_s, mass = lam[order], np.cumsum((mult * lam)[order])  # mass[k] = sum of the k+1 smallest
    out = np.empty(len(P))
    for j, p in enumerate(P):
        # the map kappa -> (ridge + M(kappa))/p is non-decreasing; iterate from the bottom
        kappa = ridge / p
        for _ in range(len(lam_s) + 2):
            k = np.searchsorted(lam_s, kappa, side="left")  # modes with lam < kappa
            new = (ridge + (mass[k - 1] if k > 0 else 0.0)) / p
            if new == kappa:
                break
            kappa = new
        out[j] = kappa
    return out


def equivalent_kernel_curve(
    spec: Spectrum,
    target: Target,
    P: ArrayLike,
    ridge: float = 0.0,
    *,
    renormalised: bool = False,
    tail_factor: float = 8.0,
    max_uncertainty: float = 0.05,
) -> LearningCurve:
    r"""Learning curve of the (renormalised) equivalent-kernel approximation.

    ``ridge`` is :math:`\delta` (for a GP posterior mean, the noise variance). The spectrum's
    tail beyond lmax enters the renormalised form through the same power-law model as the
    replica result (its leftover mass is always "high"). Returns a
    :class:`~fieldcurve.theory.eigenlearning.LearningCurve` with ``overfitting`` = 1 and
    ``kappa`` = :math:`\kappa_{EK}` or :math:`\kappa_{rEK}`; ``test_error_noisy`` adds
    :math:`\sigma^2`; ``train_error`` is NaN (the EK forms do not predict it). With
    :math:`\kappa = 0` (ridge 0) and label noise the EK counts the noise of every mode: refused
    (``ValueError``) unless the spectrum has no mass beyond lmax (finite rank). Unresolved
    eigenvalues and the tail model enter ``test_error_uncertainty`` and ``max_uncertainty`` is
    enforced exactly as in :func:`~fieldcurve.theory.eigenlearning.learning_curve`.
    """
    ridge, P = check_inputs(spec, target, ridge, P)
    if not (isinstance(max_uncertainty, (int, float)) and max_uncertainty > 0):
        raise ValueError(f"max_uncertainty must be positive, got {max_uncertainty!r}")
    v2 = target.power_array(spec.lmax)
    beyond = target.power_beyond(spec.lmax)

    def evaluate(s: Spectrum, factor: float = tail_factor) -> dict[str, np.ndarray]:
        lam, mult, leftover, _ = levels(s, factor)
        if renormalised:
            kappa = _renormalised_kappa(lam, mult, ridge + leftover, P)
        else:
            kappa = ridge / P
        lam_d = s.eigenvalues
        pos = kappa > 0
        L = np.empty((len(P), len(lam_d)))
        L[~pos] = (lam_d > 0).astype(float)
        L[pos] = lam_d[None, :] / np.add.outer(kappa[pos], lam_d)
        bias = ((1 - L) ** 2 * v2[None, :]).sum(axis=1) + beyond
        L_all = np.ones((len(P), len(lam)))
        L_all[pos] = lam[None, :] / np.add.outer(kappa[pos], lam)
        variance = target.noise * (L_all**2 @ mult) / P
        return {"kappa": kappa, "bias": bias, "test_error": bias + variance}

    out = evaluate(spec)
    if target.noise > 0 and spec.tail_mass > 0 and np.any(out["kappa"] == 0):
        # a finite-rank spectrum (no mass beyond lmax) has a finite number of modes: the EK's
        # variance sigma^2 M / P is then exact; with mass beyond lmax M is the tail model's guess
        raise ValueError(
            "the equivalent kernel with kappa = 0 (ridge 0) adds the label noise of every one of the"
            " kernel's modes, a sum that diverges for a kernel with mass beyond lmax; use ridge > 0"
            " (the noise variance, for a GP)"
        )
    test = out["test_error"]
    uncertainty, parts = spectral_uncertainty(
        spec, v2, test, lambda s, f=tail_factor: evaluate(s, f)["test_error"]
    )
    check_uncertainty(test, uncertainty, parts, P, spec, max_uncertainty, "")
    return LearningCurve(
        P=P,
        test_error=test,
        test_error_noisy=test + target.noise,
        train_error=np.full(len(P), np.nan),
        kappa=out["kappa"],
        overfitting=np.ones(len(P)),
        bias=out["bias"],
        tail_ratio=np.zeros(len(P)),
        degrees=spec.degrees,
        ridge=ridge,
        noise=target.noise,
        eigenvalues=spec.eigenvalues,
        log_multiplicities=np.full(len(spec.eigenvalues), -np.inf),  # no noise share per degree
        target_powers=v2,
        meta={
            "target_degrees": target.degrees,
            "spectrum": spec.name,
            "d": spec.d,
            "target": target.name,
            "approximation": "rEK" if renormalised else "EK",
            "uncertainty_parts": {k: v.tolist() for k, v in parts.items()},
        },
        test_error_uncertainty=uncertainty,
    )
