r"""Choose network hyperparameters from theory: rank configurations by their predicted test error.

For every discrete choice (depth, activation) the continuous hyperparameters — weight and bias
variances :math:`\sigma_w^2, \sigma_b^2` and, in the kernel regime, the ridge :math:`\delta` —
are optimised with :func:`scipy.optimize.minimize` (Nelder–Mead on :math:`\log\sigma_w^2`,
:math:`\sigma_b^2` and :math:`\log\delta`, bounded by the search ranges, started from the best
point of a coarse grid). The objective is the infinite-width prediction of
:func:`fieldcurve.network_learning_curve` (sphere targets) or
:func:`fieldcurve.dataset_learning_curve` (data sets):

* with a sample budget ``P``: :math:`\log E_g(P)`;
* with a target error ``target_error`` :math:`\varepsilon`: the number of samples needed,
  :math:`P^*(\varepsilon) = \min\{P: E_g(P) \le \varepsilon\}`, from the learning curve on a
  log grid of P (log-log interpolation between grid points; infinite if never reached).

Regimes as in :func:`fieldcurve.network_learning_curve`: ``"gd"`` (network trained by gradient
descent: NTK regression plus the initialisation term), ``"bayes"`` (posterior mean, noise = the
label noise), ``"kernel"`` (ridge regression with the NTK or NNGP). At infinite width the
prediction does not depend on the width; finite-width corrections exist for the Bayesian regime
(:func:`fieldcurve.finite_width_learning_curve`) but are too costly for a search and are not used.
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fieldcurve.activations import get_activation
from fieldcurve.kernels import MLP, nngp_kernel, ntk_kernel
from fieldcurve.targets import Target

__all__ = ["TuneResult", "tune"]

_P_GRID = np.unique(np.round(np.geomspace(1, 1e6, 241)))


@dataclass(frozen=True)
class TuneResult:
    """Configurations ranked by the objective (best first) and the landscape of the best one.

    ``ranking``: one dict per discrete configuration with its optimised ``weight_var``,
    ``bias_var``, ``ridge`` and ``test_error`` (at ``P``) or ``samples_needed`` (for
    ``target_error``); ``landscape``: the objective on a grid of (weight_var, bias_var) for the
    best configuration (``weight_var``, ``bias_var``, ``values``).
    """

    objective: str
    P: int | None
    target_error: float | None
    regime: str
    ranking: list[dict]
    landscape: dict = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def best(self) -> dict:
        return self.ranking[0]

    def to_dict(self) -> dict:
        return {
            "objective": self.objective,
            "P": self.P,
            "target_error": self.target_error,
            "regime": self.regime,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "ranking": self.ranking,
            "landscape": {k: np.asarray(v).tolist() for k, v in self.landscape.items()},
        }


def _range(value: Any, name: str, *, positive: bool) -> tuple[float, float]:
    """A fixed value (lo == hi) or a (lo, hi) search range, checked."""
    lo, hi = (value, value) if np.isscalar(value) else tuple(value)
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be a number or a range (lo, hi) with lo <= hi, got {value!r}")
    if lo < 0 or (positive and lo <= 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'}, got {value!r}")
    return lo, hi


class _Objective:
    """Predicted error (or samples needed) of one configuration, with a cache."""

    def __init__(
        self, target: Any, d: int | None, regime: str, kind: str, P: int | None, eps: float | None, lmax: int
    ):
        self.target, self.d, self.regime, self.kind = target, d, regime, kind
        self.P, self.eps, self.lmax = P, eps, lmax
        self.calls = 0
        self._cache: dict[tuple, float] = {}

    def curve(self, mlp: MLP, ridge: float, P: Any) -> np.ndarray:
        from fieldcurve.data import Dataset
        from fieldcurve.theory import dataset_learning_curve, dataset_spectrum, network_learning_curve

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # unresolved tiny eigenvalues: harmless here
            if isinstance(self.target, Dataset):
                if self.regime == "gd":
                    spec = dataset_spectrum(ntk_kernel(mlp), self.target, init_kernel=nngp_kernel(mlp))
                    return dataset_learning_curve(spec, P).test_error
                kernel = (
                    nngp_kernel(mlp) if (self.regime == "bayes" or self.kind == "nngp") else ntk_kernel(mlp)
                )
                spec = dataset_spectrum(kernel, self.target)
                return dataset_learning_curve(spec, P, ridge=ridge).test_error
            return network_learning_curve(
                mlp, self.target, P, d=self.d, regime=self.regime, lmax=self.lmax, ridge=ridge, kind=self.kind
            ).test_error

    def __call__(self, depth: int, act: str, wv: float, bv: float, ridge: float) -> float:
        key = (depth, act, round(wv, 12), round(bv, 12), round(ridge, 12))
        if key in self._cache:
            return self._cache[key]
        self.calls += 1
        mlp = MLP(depth, act, wv, bv)
        if self.P is not None:
            value = float(self.curve(mlp, ridge, [self.P])[0])
        else:
            value = _samples_needed(self._grid(), self.curve(mlp, ridge, self._grid()), self.eps)
        self._cache[key] = value
        return value

    def _grid(self) -> np.ndarray:
        from fieldcurve.data import Dataset

        if isinstance(self.target, Dataset):
            return _P_GRID[_P_GRID < self.target.size]
        return _P_GRID


def _samples_needed(P: np.ndarray, E: np.ndarray, eps: float) -> float:
    """Smallest P with E(P) <= eps, interpolated log-log between grid points (inf if never)."""
    below = np.nonzero(E <= eps)[0]
    if not len(below):
        return math.inf
    i = below[0]
    if i == 0:
        return float(P[0])
    x0, x1, y0, y1 = np.log(P[i - 1]), np.log(P[i]), np.log(E[i - 1]), np.log(E[i])
    t = (np.log(eps) - y0) / (y1 - y0) if y1 != y0 else 1.0
    return float(np.exp(x0 + t * (x1 - x0)))


def tune(
    target: Any,
    *,
    P: int | None = None,
    target_error: float | None = None,
    d: int | None = None,
    regime: str = "gd",
    kind: str = "ntk",
    depths: Any = (1, 2, 3),
    activations: Any = ("relu", "tanh", "erf", "gelu"),
    weight_var: Any = (0.5, 4.0),
    bias_var: Any = (0.0, 1.0),
    ridge: Any = (1e-4, 10.0),
    lmax: int | None = None,
    landscape: int = 12,
    max_evaluations: int = 30,
    widths: Any = None,
    width_trials: int = 2,
    seed: int = 0,
) -> TuneResult:
    r"""Rank network configurations by their predicted test error (see the module docstring).

    Parameters
    ----------
    target
        A :class:`fieldcurve.Target` (inputs uniform on the :math:`\sqrt d`-sphere) or a
        :class:`fieldcurve.data.Dataset`.
    P, target_error
        Exactly one: the sample budget (minimise :math:`E_g(P)`), or the error to reach
        (minimise the samples needed).
    depths, activations
        Discrete choices, searched exhaustively.
    weight_var, bias_var, ridge
        A fixed value or a (lo, hi) range; ``ridge`` is searched only in the kernel regime
        (gradient descent is ridgeless; the Bayesian regime's ridge is the label noise of a sphere
        target, or on a data set the fixed ``ridge`` given, read as the noise variance).
    landscape
        Grid size per axis of the (weight_var, bias_var) landscape of the best configuration
        (0 for none).
    max_evaluations
        Objective evaluations per discrete configuration in the local optimisation.
    widths
        Finite widths to compare (Bayesian regime, sphere target, budget P only): for every
        ranked configuration, :math:`E_g(P; n) = E_g^\infty(P) + \Delta E_g(P)/n` from
        :func:`fieldcurve.finite_width_learning_curve` (``width_trials`` sampled training sets,
        seeded by ``seed``), stored as ``entry["finite_width"][n]`` with its Monte Carlo error and
        validity flag, and ``entry["best_width"]``. The variances are optimised at infinite width;
        the correction's coefficient does not depend on n, so all widths cost one evaluation.
    """
    from fieldcurve.data import Dataset

    t0 = time.perf_counter()
    if not isinstance(target, (Target, Dataset)):
        raise TypeError("target must be a fieldcurve Target or Dataset")
    if (P is None) == (target_error is None):
        raise ValueError("give exactly one of P (sample budget) and target_error")
    if P is not None and (isinstance(P, bool) or not isinstance(P, (int, np.integer)) or P < 1):
        raise ValueError(f"P must be a positive integer, got {P!r}")
    if isinstance(target, Dataset) and P is not None and P >= target.size:
        raise ValueError(f"P = {P} must be below the data set size {target.size}")
    if target_error is not None and not (math.isfinite(target_error) and target_error > 0):
        raise ValueError(f"target_error must be positive, got {target_error!r}")
    if regime not in ("gd", "bayes", "kernel"):
        raise ValueError(f"regime must be 'gd', 'bayes' or 'kernel', got {regime!r}")
    if regime == "bayes" and isinstance(target, Target) and not target.noise > 0:
        raise ValueError("the bayes regime needs label noise (the posterior's noise variance)")
    if widths is not None:
        if regime != "bayes" or not isinstance(target, Target) or P is None:
            raise ValueError(
                "widths: the width enters the prediction only through the finite-width correction of the"
                " Bayesian posterior (regime='bayes', a sphere target and a budget P)"
            )
        widths = [int(n) for n in np.atleast_1d(widths)]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be positive integers, got {widths!r}")
    depths = [int(x) for x in np.atleast_1d(depths)]
    if not depths or min(depths) < 1:
        raise ValueError(f"depths must be positive integers, got {depths!r}")
    activations = [str(a) for a in np.atleast_1d(activations)]
    for a in activations:
        get_activation(a)  # raises ValueError naming an unknown activation
    wv_r = _range(weight_var, "weight_var", positive=True)
    bv_r = _range(bias_var, "bias_var", positive=False)
    rd_r = _range(ridge, "ridge", positive=True) if regime == "kernel" else (0.0, 0.0)
    if isinstance(target, Target):
        d = target.d if d is None else d
        if d is None:
            raise ValueError("d is required (the target does not fix it)")
        lmax = max(12, max(target.powers, default=0) + 8) if lmax is None else lmax
    bayes_ridge = None
    if regime == "bayes":  # the posterior's noise variance: the label noise, or the fixed ridge on data
        if isinstance(target, Target):
            bayes_ridge = target.noise
        elif np.isscalar(ridge) and float(ridge) > 0:
            bayes_ridge = float(ridge)
        else:
            raise ValueError(
                "on a data set the bayes regime needs the noise variance as a fixed positive ridge"
            )
    obj = _Objective(target, d, regime, kind, P, target_error, lmax or 0)

    def evaluate(depth: int, act: str, u: np.ndarray) -> float:
        wv, bv, rd = _from_unit(u, wv_r, bv_r, rd_r)
        value = obj(depth, act, wv, bv, bayes_ridge if bayes_ridge is not None else rd)
        return math.log(value) if value > 0 else -1e300

    free = [lo < hi for lo, hi in (wv_r, bv_r, rd_r)]
    ranking = []
    for depth, act in itertools.product(depths, activations):
        starts = [np.array(u) for u in itertools.product(*[(0.2, 0.5, 0.8) if f else (0.0,) for f in free])]
        values = [evaluate(depth, act, u) for u in starts]
        best_u = starts[int(np.argmin(values))]
        best_v = min(values)
        if any(free) and math.isfinite(best_v):

            def penalised(u: np.ndarray, depth: int = depth, act: str = act) -> float:
                inside = np.clip(u, 0.0, 1.0)
                return evaluate(depth, act, inside) + 10 * float(np.sum((u - inside) ** 2))

            from scipy.optimize import minimize  # loaded when tuning runs, not at import

            res = minimize(
                penalised,
                best_u,
                method="Nelder-Mead",
                options={
                    "maxfev": max_evaluations,
                    "xatol": 1e-3,
                    "fatol": 1e-4,
                    "initial_simplex": _simplex(best_u),
                },
            )
            if res.fun < best_v:
                best_u, best_v = np.clip(res.x, 0.0, 1.0), evaluate(depth, act, np.clip(res.x, 0.0, 1.0))
        wv, bv, rd = _from_unit(best_u, wv_r, bv_r, rd_r)
        entry = {
            "depth": depth,
            "activation": act,
            "weight_var": wv,
            "bias_var": bv,
            "ridge": bayes_ridge if bayes_ridge is not None else rd,
        }
        value = math.exp(best_v) if best_v > -1e299 else 0.0
        entry["test_error" if P is not None else "samples_needed"] = value
        ranking.append(entry)
    key = "test_error" if P is not None else "samples_needed"
    ranking.sort(key=lambda e: e[key])
    if widths is not None:
        from fieldcurve.theory.finite_width import VALID_RELATIVE_CORRECTION, finite_width_learning_curve

        for e in ranking:
            mlp = MLP(e["depth"], e["activation"], e["weight_var"], e["bias_var"])
            fw = finite_width_learning_curve(
                mlp,
                target,
                [P],
                width=widths[0],
                seed=seed,
                d=d,
                trials=width_trials,
                n_test=200,
                unit_samples=8192,
                samples=256,
                lmax=lmax,
            )
            coef, se = float(fw.correction[0]), float(fw.correction_se[0])
            e["finite_width"] = {
                n: {
                    "test_error": e["test_error"] + coef / n,
                    "se": se / n,
                    "valid": abs(coef) / n <= VALID_RELATIVE_CORRECTION * e["test_error"],
                }
                for n in widths
            }
            valid = [n for n in widths if e["finite_width"][n]["valid"]]
            e["best_width"] = min(valid, key=lambda n: e["finite_width"][n]["test_error"]) if valid else None
    land: dict = {}
    if landscape and (free[0] or free[1]):
        b = ranking[0]
        ws = np.geomspace(*wv_r, landscape) if free[0] else np.array([wv_r[0]])
        bs = np.linspace(*bv_r, landscape) if free[1] else np.array([bv_r[0]])
        vals = np.array([[obj(b["depth"], b["activation"], w, c, b["ridge"]) for c in bs] for w in ws])
        land = {"weight_var": ws, "bias_var": bs, "values": vals}
    return TuneResult(
        objective=key,
        P=P,
        target_error=target_error,
        regime=regime,
        ranking=ranking,
        landscape=land,
        evaluations=obj.calls,
        seconds=time.perf_counter() - t0,
    )


def _from_unit(u: np.ndarray, wv_r: tuple, bv_r: tuple, rd_r: tuple) -> tuple[float, float, float]:
    """Unit-cube coordinates -> (weight_var, bias_var, ridge): log scale for the variances of the
    weights and the ridge, linear for the bias variance (which may be 0)."""
    it = iter(np.atleast_1d(u))
    vals = []
    for (lo, hi), log in ((wv_r, True), (bv_r, False), (rd_r, True)):
        if lo == hi:
            vals.append(lo)
            continue
        t = float(next(it))
        vals.append(math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo))) if log else lo + t * (hi - lo))
    return vals[0], vals[1], vals[2]


def _simplex(u: np.ndarray) -> np.ndarray:
    k = len(u)
    simplex = np.tile(u, (k + 1, 1))
    for i in range(k):
        simplex[i + 1, i] += 0.15 if u[i] < 0.85 else -0.15
    return simplex
