r"""Learning curves of infinitely wide networks in their two training regimes.

* **Gradient descent to convergence on MSE** (lazy / NTK regime, Jacot et al. 2018; Lee et al.
  2019), not centred: the trained function is
  :math:`f_\infty(x) = f_0(x) + \Theta(x,X)\Theta(X,X)^{-1}(y - f_0(X))` with the network at
  initialisation :math:`f_0 \sim \mathrm{GP}(0, K)` (NNGP :math:`K`) independent of the data.
  The cross term vanishes in expectation over :math:`f_0`, so

  .. math:: E_g^{GD} = E_g^{\Theta}(f^*, \sigma^2) + E_g^{\Theta}(f_0, 0),

  ridgeless kernel regression with the NTK on the target, plus the same regression on the
  initial function, a target whose expected power per degree is :math:`N(d,l)\lambda_l^{K}`
  (NNGP and NTK are both diagonal in spherical harmonics). Since :math:`E_g` is linear in the
  target powers at fixed :math:`\kappa`, both terms come from one eigenlearning solve with the
  powers :math:`v_l^2 + N(d,l)\lambda_l^K`; the NNGP mass beyond ``lmax`` counts as unlearnable
  power.
* **Bayesian network** (Langevin dynamics at temperature :math:`\sigma^2`, prior = the
  initialisation): the posterior mean is GP regression with the NNGP kernel and noise variance
  :math:`\sigma^2`, i.e. kernel ridge regression with :math:`K` and ridge :math:`\delta = \sigma^2`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from fieldcurve.kernels import MLP, nngp_kernel, ntk_kernel
from fieldcurve.spectrum import Spectrum, spectrum
from fieldcurve.targets import Target
from fieldcurve.theory import _spectral
from fieldcurve.theory.eigenlearning import LearningCurve, learning_curve

__all__ = ["network_learning_curve"]

_REGIMES = ("kernel", "gd", "bayes")


def network_learning_curve(
    mlp: MLP,
    target: Target,
    P: ArrayLike,
    *,
    d: int | None = None,
    regime: str = "gd",
    lmax: int | None = None,
    ridge: float = 0.0,
    kind: str = "ntk",
    max_uncertainty: float = 0.05,
    spectrum_options: Mapping[str, Any] | None = None,
) -> LearningCurve:
    r"""Predicted test error of an infinitely wide ``mlp`` trained on P samples.

    Parameters
    ----------
    mlp, target, P
        Network, target (power per degree and label noise), sample sizes.
    d
        Input dimension (default ``target.d``).
    regime
        ``"gd"``: gradient descent to convergence from random initialisation (NTK regression plus
        the initialisation-variance term, see the module docstring); ``"bayes"``: posterior
        mean of the Bayesian network = GP regression with the NNGP kernel and noise
        :math:`\sigma^2`; ``"kernel"``: kernel ridge regression with ``kind`` and ``ridge``.
    lmax
        Highest degree of the spectra (default: 10 above the target's highest degree, at
        least 40).
    spectrum_options
        Keyword arguments for :func:`fieldcurve.spectrum` (e.g. ``rtol``, ``series_terms``);
        eigenvalues that miss their ``rtol`` enter the uncertainty.
    max_uncertainty
        As in :func:`~fieldcurve.theory.eigenlearning.learning_curve`. In the ``"gd"`` regime the
        uncertainty also covers the NNGP's unresolved eigenvalues (the initial function's power
        per degree): :math:`E_g` is linear in the target powers at fixed :math:`\kappa`, so moving
        them all to the ends of their error intervals together (with the NNGP mass beyond lmax
        moving the other way) gives its exact range.

    Returns
    -------
    LearningCurve
        For ``"gd"``, ``meta["init_power"]`` holds the initial function's power per degree.
    """
    if regime not in _REGIMES:
        raise ValueError(f"regime must be one of {_REGIMES}, got {regime!r}")
    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    if not isinstance(target, Target):
        raise TypeError("target must be a fieldcurve Target")
    if kind not in ("ntk", "nngp"):
        raise ValueError(f"kind must be 'ntk' or 'nngp', got {kind!r}")
    d = d if d is not None else target.d
    if d is None:
        raise ValueError("d is required (the target is not tied to an input dimension)")
    if lmax is None:
        lmax = max(40, max(target.powers, default=0) + 10)
    options = dict(spectrum_options or {})
    if regime == "bayes":
        spec = spectrum(nngp_kernel(mlp), d, lmax, **options)
        return learning_curve(spec, target, P, ridge=target.noise, max_uncertainty=max_uncertainty)
    if regime == "kernel":
        kernel = ntk_kernel(mlp) if kind == "ntk" else nngp_kernel(mlp)
        return learning_curve(
            spectrum(kernel, d, lmax, **options), target, P, ridge=ridge, max_uncertainty=max_uncertainty
        )
    if not (isinstance(max_uncertainty, (int, float)) and max_uncertainty > 0):
        raise ValueError(f"max_uncertainty must be positive, got {max_uncertainty!r}")
    ntk_spec = spectrum(ntk_kernel(mlp), d, lmax, **options)
    nngp_spec = spectrum(nngp_kernel(mlp), d, lmax, **options)
    if target.power_beyond(lmax) > 0:
        warnings.warn(
            f"{target.power_beyond(lmax) / target.total_power:.1%} of the target's power lies beyond"
            f" lmax = {lmax}; it is counted as unlearnable (raise lmax)",
            RuntimeWarning,
            stacklevel=2,
        )

    def with_init(nngp: Spectrum) -> tuple[Target, dict[int, float], float]:
        init = {int(l): float(w) for l, w in zip(nngp.degrees, nngp.weights, strict=True) if w > 0}
        powers: dict[int, Any] = dict(target.powers)
        for l, w in init.items():
            powers[l] = powers.get(l, 0.0) + w
        beyond = max(float(nngp.tail_mass), 0.0)
        if beyond > 0:
            # the initial function's power above lmax: unlearnable, carried as one extra degree
            powers[lmax + 1] = powers.get(lmax + 1, 0.0) + beyond
        combined = Target(powers=powers, noise=target.noise, d=d, name=f"{target.name} + init")
        return combined, init, beyond

    def gd_curve(nngp: Spectrum) -> LearningCurve:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*beyond lmax.*", category=RuntimeWarning)
            return learning_curve(
                ntk_spec, with_init(nngp)[0], np.asarray(P), ridge=0.0, max_uncertainty=np.inf
            )

    curve = gd_curve(nngp_spec)
    _, init, beyond = with_init(nngp_spec)
    bad = _spectral.unresolved_degrees(nngp_spec)
    init_dev = np.zeros(len(curve.P))
    for direction in (-1, 1):
        varied = gd_curve(_spectral.varied_spectrum(nngp_spec, bad, direction)) if bad.size else curve
        init_dev = np.maximum(init_dev, np.abs(varied.test_error - curve.test_error))
    parts = {k: np.asarray(v, dtype=float) for k, v in curve.meta["uncertainty_parts"].items()}
    total = curve.test_error_uncertainty + init_dev
    ntk_part = parts["unresolved"] + parts["tail"]
    if np.any(init_dev > ntk_part):
        init_parts = {"unresolved": total, "tail": np.zeros_like(total), "degrees": bad.astype(float)}
        _spectral.check_uncertainty(
            curve.test_error,
            total,
            init_parts,
            curve.P,
            nngp_spec,
            max_uncertainty,
            "NNGP (initial function)",
        )
    _spectral.check_uncertainty(
        curve.test_error,
        total,
        {**parts, "unresolved": parts["unresolved"] + init_dev},
        curve.P,
        ntk_spec,
        max_uncertainty,
        "NTK",
    )
    meta = dict(curve.meta)
    meta.update(
        {
            "regime": "gd",
            "init_power": init,
            "init_power_beyond_lmax": beyond,
            "target_degrees": target.degrees,
            "target": target.name,
            "uncertainty_parts": {**curve.meta["uncertainty_parts"], "init_unresolved": init_dev.tolist()},
        }
    )
    return replace(curve, meta=meta, test_error_uncertainty=total)
