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
from fieldcurve.theory.eigenlearning import LearningCurve, _check_inputs, _levels

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
) -> LearningCurve:
    r"""Learning curve of the (renormalised) equivalent-kernel approximation.

    ``ridge`` is :math:`\delta` (for a GP posterior mean, the noise variance). The spectrum's
    tail beyond lmax enters the renormalised form through the same power-law model as the
    replica result (its leftover mass is always "high"). Returns a
    :class:`~fieldcurve.theory.eigenlearning.LearningCurve` with ``overfitting`` = 1 and
    ``kappa`` = :math:`\kappa_{EK}` or :math:`\kappa_{rEK}`; ``test_error_noisy`` adds
    :math:`\sigma^2`.
    """
    ridge, P = _check_inputs(spec, target, ridge, P)
    lam, mult, leftover, _ = _levels(spec, tail_factor)
    if renormalised:
        kappa = _renormalised_kappa(lam, mult, ridge + leftover, P)
    else:
        kappa = ridge / P
    v2 = target.power_array(spec.lmax)
    beyond = target.power_beyond(spec.lmax)
    lam_d = spec.eigenvalues
    with np.errstate(divide="ignore", invalid="ignore"):
        L = np.where(
            kappa[:, None] > 0,
            lam_d[None, :] / np.add.outer(kappa, lam_d),
            (lam_d > 0).astype(float)[None, :],
        )
    bias = ((1 - L) ** 2 * v2[None, :]).sum(axis=1) + beyond
    with np.errstate(divide="ignore", invalid="ignore"):
        L_all = np.where(kappa[:, None] > 0, lam[None, :] / np.add.outer(kappa, lam), 1.0)
    variance = target.noise * (L_all**2 @ mult) / P
    test = bias + variance
    return LearningCurve(
        P=P,
        test_error=test,
        test_error_noisy=test + target.noise,
        train_error=np.full(len(P), np.nan),
        kappa=kappa,
        overfitting=np.ones(len(P)),
        bias=bias,
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
        },
    )
