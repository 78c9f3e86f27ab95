r"""Finite-width learning curves of Bayesian networks: :math:`E_g(P; n) = E_g^\infty(P) + \Delta
E_g(P)/n`.

:math:`E_g^\infty` is the infinite-width (GP) learning curve of :func:`fieldcurve.learning_curve`
with the NNGP kernel and ridge = noise variance. The coefficient :math:`\Delta E_g(P)` is the
average over training sets of the :math:`O(1/n)` change of the posterior mean's test error,

.. math:: \Delta E_g = \mathbb E_{\mathcal D}\,2\,\overline{(m_{GP}(x) - f^*(x))\,\Delta m(x)},

with :math:`\Delta m` from :func:`fieldcurve.posterior_correction` (Roberts, Yaida & Hanin 2022
§6.4; Naveh et al. 2021; derivation in ``docs/notes/finite_width_posterior.md``). No closed form
in the spectrum is known to us, so the training sets are sampled: the correction carries a Monte
Carlo error (reported), the infinite-width part does not.

Where it holds: the expansion is in the depth-to-width ratio times the number of samples, roughly
:math:`LP/n` (Hanin & Zlokapa 2024); the measured width sweep (``docs/validation_results.md``)
shows the corrected curve improving on the infinite-width one while the correction is a small
fraction of the error (``relative_correction`` ≲ 0.2) and overshooting beyond. Points with a
larger relative correction are flagged ``valid = False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldcurve.finite_width import _check_width
from fieldcurve.finite_width_posterior import posterior_correction
from fieldcurve.kernels import MLP, nngp_kernel
from fieldcurve.spectrum import spectrum
from fieldcurve.sphere import sample_sphere
from fieldcurve.targets import Target
from fieldcurve.theory.eigenlearning import learning_curve

__all__ = ["FiniteWidthCurve", "finite_width_learning_curve"]

VALID_RELATIVE_CORRECTION = 0.2


@dataclass(frozen=True)
class FiniteWidthCurve:
    """Bayesian learning curve at width n (see module docstring); arrays over ``P``.

    ``test_error_infinite``: :math:`E_g^\\infty` (theory); ``correction``, ``correction_se``:
    :math:`\\Delta E_g` and its Monte Carlo error; ``test_error``: :math:`E_g^\\infty + \\Delta E_g/n`;
    ``test_error_gp_sampled``: the GP error on the sampled training sets (checks that they are
    representative of the theory); ``relative_correction``: :math:`|\\Delta E_g|/(n E_g^\\infty)`;
    ``valid``: relative correction at most 0.2.
    """

    P: NDArray[np.float64]
    width: int
    depth: int
    test_error_infinite: NDArray[np.float64]
    correction: NDArray[np.float64]
    correction_se: NDArray[np.float64]
    test_error_gp_sampled: NDArray[np.float64]

    @property
    def test_error(self) -> NDArray[np.float64]:
        return self.test_error_infinite + self.correction / self.width

    @property
    def relative_correction(self) -> NDArray[np.float64]:
        return np.abs(self.correction) / (self.width * self.test_error_infinite)

    @property
    def valid(self) -> NDArray[np.bool_]:
        return self.relative_correction <= VALID_RELATIVE_CORRECTION

    @property
    def expansion_parameter(self) -> NDArray[np.float64]:
        """L P / n."""
        return self.depth * self.P / self.width

    def to_dict(self) -> dict:
        return {
            "width": self.width,
            "depth": self.depth,
            "P": self.P.tolist(),
            "test_error_infinite": self.test_error_infinite.tolist(),
            "test_error": self.test_error.tolist(),
            "correction": self.correction.tolist(),
            "correction_se": self.correction_se.tolist(),
            "relative_correction": self.relative_correction.tolist(),
            "valid": self.valid.tolist(),
            "expansion_parameter": self.expansion_parameter.tolist(),
        }


def finite_width_learning_curve(
    mlp: MLP,
    target: Target,
    P: ArrayLike,
    *,
    width: int,
    seed: int,
    d: int | None = None,
    noise_var: float | None = None,
    trials: int = 4,
    n_test: int = 500,
    unit_samples: int = 32_768,
    samples: int = 1024,
    lmax: int | None = None,
    progress: bool = False,
) -> FiniteWidthCurve:
    r"""Learning curve of the width-``width`` Bayesian ``mlp`` (posterior mean; prior = its
    initialisation, likelihood variance ``noise_var``, default the target's label noise) on
    inputs uniform on the :math:`\sqrt d`-sphere.

    ``trials`` training sets of each size (each with ``n_test`` test points against the clean
    target) give :math:`\Delta E_g` and its standard error; ``unit_samples``/``samples`` are the
    Monte Carlo sizes of :func:`fieldcurve.posterior_correction`. The Bayesian network's prior
    over functions does not depend on ``mlp.parameterization`` (nor on ``mlp.bias``), so neither
    does the curve. Cost grows like
    :math:`P^2` per sample: P up to a few thousand.
    """
    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    if not isinstance(target, Target):
        raise TypeError("target must be a fieldcurve Target")
    n = _check_width(width)
    d = target.d if d is None else d
    if d is None:
        raise ValueError("d is required (the target does not fix it)")
    s2 = target.noise if noise_var is None else float(noise_var)
    if not s2 > 0:
        raise ValueError("noise_var must be positive (the Bayesian posterior needs a likelihood variance)")
    for name, v in (("trials", trials), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (2 if name == "trials" else 1):
            raise ValueError(f"{name} must be an integer >= {2 if name == 'trials' else 1}, got {v!r}")
    P = np.atleast_1d(np.asarray(P, dtype=float))
    if P.ndim != 1 or np.any(P < 1) or np.any(P != np.round(P)):
        raise ValueError("P must be positive integers")
    lmax = max(40, max(target.powers, default=0) + 10) if lmax is None else lmax
    inf = learning_curve(spectrum(nngp_kernel(mlp), d, lmax), target, P, ridge=s2).test_error
    rng = np.random.default_rng(seed)
    corr = np.empty((len(P), trials))
    gp = np.empty((len(P), trials))
    todo = [(i, t) for i in range(len(P)) for t in range(trials)]
    seeds = rng.integers(0, 2**63 - 1, size=len(todo))
    it: Any = todo
    if progress:
        from tqdm import tqdm

        it = tqdm(todo, desc=f"finite width {n}", unit="set", disable=None)
    for (i, t), s in zip(it, seeds, strict=True):
        r = np.random.default_rng(s)
        f = target.sample(d, seed=r)
        X = sample_sphere(int(P[i]), d, seed=r)
        y = f.labels(X, seed=r)
        Xt = sample_sphere(n_test, d, seed=r)
        pc = posterior_correction(
            mlp,
            X,
            y,
            Xt,
            noise_var=s2,
            width=n,
            seed=int(r.integers(2**31)),
            y_test=f(Xt),
            unit_samples=unit_samples,
            samples=samples,
        )
        corr[i, t] = pc.test_error_nlo
        gp[i, t] = pc.test_error_gp
    return FiniteWidthCurve(
        P=P,
        width=n,
        depth=mlp.depth,
        test_error_infinite=np.asarray(inf, dtype=float),
        correction=corr.mean(1),
        correction_se=corr.std(1, ddof=1) / np.sqrt(trials),
        test_error_gp_sampled=gp.mean(1),
    )
