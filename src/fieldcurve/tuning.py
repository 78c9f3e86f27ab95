r"""Choose network hyperparameters from theory: rank configurations by their predicted test error.

For every discrete choice (depth, activation) the continuous hyperparameters — weight and bias
variances :math:`\sigma_w^2, \sigma_b^2` and, in the kernel regime, the ridge :math:`\delta` —
are optimised: a start design over (:math:`\log\sigma_w^2`, :math:`\sigma_b^2`) inside the search
ranges (the 3 × 3 grid of the ends and middles; on a data set the corners and the centre), then
Nelder–Mead from its best point (bounded, at most ``max_evaluations`` predictions) for the
``refine`` best configurations (all of them on the sphere);
the ridge is optimised for each (:math:`\sigma_w^2, \sigma_b^2`) on the same spectrum (a scan of
9 values of :math:`\log\delta`, then a bounded one-dimensional refinement), which costs no new
spectrum. The objective is the infinite-width prediction of
:func:`fieldcurve.network_learning_curve` (sphere targets) or of
:func:`fieldcurve.dataset_learning_curve` (data sets):

* with a sample budget ``P``: :math:`E_g(P)`;
* with a target error ``target_error`` :math:`\varepsilon`: the number of samples needed,
  :math:`P^*(\varepsilon) = \min\{P: E_g(P) \le \varepsilon\}`, from the learning curve on a
  log grid of P (log-log interpolation between grid points; infinite if never reached).

:math:`E_g = \mathbb E_x[(\hat f(x) - f^*(x))^2]` is the error against the clean target (on a data
set: the held-out error on the points not used for training, labels as targets).

Cost. On the sphere the search computes its spectra to ``rtol`` :math:`10^{-6}` (ample for a
comparison; the cheap end of :func:`fieldcurve.spectrum`) and the reported optimum of every
configuration is recomputed at the default :math:`10^{-10}`. On a data set of M points an
evaluation at a budget P needs no eigenvectors: with :math:`A = K/M` and :math:`\kappa` from the
eigenvalues of :math:`A` (``eigvalsh``), the bias is
:math:`\sum_\rho (1-\mathcal L_\rho)^2 v_\rho^2 = \frac{\kappa^2}{M}\lVert(A+\kappa I)^{-1}Y\rVert_F^2`
and the initial function's term of the gradient-descent regime is
:math:`\frac{C\kappa^2}{M}\mathrm{tr}\,[(A+\kappa I)^{-1}K_0(A+\kappa I)^{-1}]` (one Cholesky
factorisation), the same numbers as :func:`fieldcurve.dataset_learning_curve` at a fraction of an
eigendecomposition (``tests/test_tuning.py``).

Regimes as in :func:`fieldcurve.network_learning_curve`: ``"gd"`` (network trained by gradient
descent: NTK regression plus the initialisation term), ``"bayes"`` (posterior mean, noise = the
label noise), ``"kernel"`` (ridge regression with the NTK or NNGP). At infinite width the
prediction does not depend on the width; the finite-width correction of the Bayesian regime
(:func:`fieldcurve.finite_width_learning_curve`) is added for the best ``width_top``
configurations when ``widths`` are given.

An optimum on the edge of a search range (a variance at its bound, or the ridge) is reported in
``entry["at_bound"]`` and warned about: the best value may lie beyond the range. A prediction the
theory refuses (its uncertainty is too large, or it sits at the interpolation peak) counts as
infinitely bad for the search; a configuration whose optimum is refused reports the reason in
``entry["refused"]``.
"""

from __future__ import annotations

import itertools
import math
import os
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
_SEARCH_RTOL = 1e-6  # spectra of the search; the reported optimum uses the default 1e-10
_BOUND_TOL = 0.005  # an optimum within this fraction of a range's width of its edge is "at the bound"
_UNIT_STARTS = (0.0, 0.5, 1.0)
_RIDGE_SCAN = 9
_SMOOTH = ("tanh", "sigmoid", "silu", "swish", "softplus")  # the costly spectra, scheduled first


@dataclass(frozen=True)
class TuneResult:
    """Configurations ranked by the objective (best first) and the landscape of the best one.

    ``ranking``: one dict per discrete configuration with its optimised ``weight_var``,
    ``bias_var``, ``ridge`` and ``test_error`` (at ``P``) or ``samples_needed`` (for
    ``target_error``), ``at_bound`` (the hyperparameters whose optimum sits on a search bound),
    ``valid`` (the theory's validity at the optimum, sphere targets) and, when the theory refused
    the optimum, ``refused``; ``landscape``: the objective of the best configuration over
    (weight_var, bias_var) — a grid (``values`` 2-D) or the points the search evaluated
    (``scattered``); ``target``, ``d`` and ``error_definition`` say what was optimised;
    ``warnings``: the bound warnings issued.
    """

    objective: str
    P: int | None
    target_error: float | None
    regime: str
    ranking: list[dict]
    landscape: dict = field(default_factory=dict)
    evaluations: int = 0
    seconds: float = 0.0
    target: str = ""
    d: int | None = None
    error_definition: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def best(self) -> dict:
        return self.ranking[0]

    def to_dict(self) -> dict:
        return {
            "objective": self.objective,
            "P": self.P,
            "target_error": self.target_error,
            "regime": self.regime,
            "target": self.target,
            "d": self.d,
            "error_definition": self.error_definition,
            "evaluations": self.evaluations,
            "seconds": self.seconds,
            "warnings": list(self.warnings),
            "ranking": [{k: _json_value(v) for k, v in e.items()} for e in self.ranking],
            "landscape": {k: _json_value(np.asarray(v).tolist()) for k, v in self.landscape.items()},
        }


def _json_value(v: Any) -> Any:
    """inf/NaN as strings (strict JSON), recursively."""
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    return v


def _range(value: Any, name: str, *, positive: bool) -> tuple[float, float]:
    """A fixed value (lo == hi) or a (lo, hi) search range, checked."""
    lo, hi = (value, value) if np.isscalar(value) else tuple(value)
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name} must be a number or a range (lo, hi) with lo <= hi, got {value!r}")
    if lo < 0 or (positive and lo <= 0):
        raise ValueError(f"{name} must be {'positive' if positive else 'non-negative'}, got {value!r}")
    return lo, hi


def _samples_needed(P: np.ndarray, E: np.ndarray, eps: float) -> float:
    """Smallest P with E(P) <= eps, interpolated log-log between grid points (inf if never)."""
    below = np.nonzero(E <= eps)[0]
    if not len(below):
        return math.inf
    i = below[0]
    if i == 0:
        return float(P[0])
    if E[i] <= 0:
        return float(P[i])
    x0, x1, y0, y1 = np.log(P[i - 1]), np.log(P[i]), np.log(E[i - 1]), np.log(E[i])
    t = (np.log(eps) - y0) / (y1 - y0) if y1 != y0 else 1.0
    return float(np.exp(x0 + t * (x1 - x0)))


# --------------------------------------------------------------------------- objectives
class _Refused(Exception):
    """The theory refused this prediction (its ValueError message is the argument)."""


class _SphereModel:
    """Predictions for a Target on the sphere: E_g(P) or the samples needed, per configuration."""

    def __init__(self, target: Target, d: int, regime: str, kind: str, lmax: int, bayes_ridge: float | None):
        self.target, self.d, self.regime, self.kind, self.lmax = target, d, regime, kind, lmax
        self.bayes_ridge = bayes_ridge
        self._spectra: dict[tuple, Any] = {}
        peak = lmax + lmax * lmax / d
        # the search's spectra: rtol 1e-6 and a Taylor order of 3x the degree where the mass of
        # t^n peaks (fieldcurve.spectrum's own rule without its floor of 256 terms)
        self.search_options = {"rtol": _SEARCH_RTOL, "series_terms": int(min(max(3 * peak + 40, 96), 768))}

    def options(self, accurate: bool) -> dict[str, Any]:
        return {} if accurate else dict(self.search_options)

    def _spectrum(self, mlp: MLP, accurate: bool) -> Any:
        from fieldcurve.spectrum import spectrum

        key = (mlp.depth, mlp.activation.name, mlp.weight_vars, mlp.bias_vars, accurate)
        if key not in self._spectra:
            kernel = nngp_kernel(mlp) if (self.regime == "bayes" or self.kind == "nngp") else ntk_kernel(mlp)
            self._spectra[key] = spectrum(kernel, self.d, self.lmax, **self.options(accurate))
        return self._spectra[key]

    def curve(self, mlp: MLP, P: np.ndarray, ridge: float, accurate: bool, strict: bool) -> Any:
        """The learning curve (``strict``: refuse uncertain points, else report them)."""
        from fieldcurve.theory import learning_curve, network_learning_curve

        limit = 0.05 if strict else np.inf
        try:
            if self.regime == "gd":
                return network_learning_curve(
                    mlp,
                    self.target,
                    P,
                    d=self.d,
                    regime="gd",
                    lmax=self.lmax,
                    max_uncertainty=limit,
                    spectrum_options=self.options(accurate),
                )
            r = self.bayes_ridge if self.regime == "bayes" else ridge
            return learning_curve(
                self._spectrum(mlp, accurate), self.target, P, ridge=r, max_uncertainty=limit
            )
        except ValueError as exc:
            raise _Refused(str(exc)) from exc

    def forget(self) -> None:
        self._spectra.clear()


class _DataModel:
    """Predictions on a Dataset (held-out error, empirical-measure theory; module docstring)."""

    def __init__(self, data: Any, regime: str, kind: str, bayes_ridge: float | None):
        self.data, self.regime, self.kind, self.bayes_ridge = data, regime, kind, bayes_ridge
        self.M = data.size
        self.Y = data.Y
        self._cache: dict[tuple, Any] = {}

    def _grams(self, mlp: MLP) -> tuple[np.ndarray, np.ndarray | None]:
        from fieldcurve.theory.dataset import kernel_grams

        if self.regime == "gd":
            K, K0 = kernel_grams([ntk_kernel(mlp), nngp_kernel(mlp)], self.data.X)
            return K, K0
        use_nngp = self.regime == "bayes" or self.kind == "nngp"
        return kernel_grams([nngp_kernel(mlp) if use_nngp else ntk_kernel(mlp)], self.data.X)[0], None

    def _state(self, mlp: MLP, need_vectors: bool) -> dict:
        key = (mlp.depth, mlp.activation.name, mlp.weight_vars, mlp.bias_vars, need_vectors)
        if key not in self._cache:
            self._cache.clear()  # one configuration at a time: M x M matrices are large
            K, K0 = self._grams(mlp)
            A = 0.5 * (K + K.T) / self.M
            state: dict[str, Any] = {"A": A, "K0": K0}
            if need_vectors:
                from fieldcurve.theory import dataset_spectrum

                init = nngp_kernel(mlp) if self.regime == "gd" else None
                kernel = (
                    ntk_kernel(mlp)
                    if self.regime == "gd" or (self.regime == "kernel" and self.kind == "ntk")
                    else nngp_kernel(mlp)
                )
                state["spectrum"] = dataset_spectrum(kernel, self.data, init_kernel=init)
            else:
                state["eigs"] = np.clip(np.linalg.eigvalsh(A), 0.0, None)
            self._cache[key] = state
        return self._cache[key]

    def curve_values(self, mlp: MLP, P: np.ndarray, ridge: float) -> np.ndarray:
        """Held-out E_g over a grid of P (eigendecomposition route)."""
        from fieldcurve.theory import dataset_learning_curve

        r = self.bayes_ridge if self.regime == "bayes" else ridge
        try:
            return dataset_learning_curve(self._state(mlp, True)["spectrum"], P, ridge=r).test_error
        except ValueError as exc:
            raise _Refused(str(exc)) from exc

    def error_at(self, mlp: MLP, P: int, ridge: float) -> float:
        """Held-out E_g at one P without eigenvectors (module docstring); same value as
        :func:`fieldcurve.dataset_learning_curve`."""
        import scipy.linalg as sla

        from fieldcurve.theory import solve_kappa

        r = self.bayes_ridge if self.regime == "bayes" else ridge
        state = self._state(mlp, False)
        eta = state["eigs"]
        pos = eta[eta > 0]
        kappa = float(solve_kappa(pos, np.ones(len(pos)), r, [float(P)])[0])
        if not kappa > 0:  # interpolation (rank-deficient Gram): the eigenvector route handles it
            return float(self.curve_values(mlp, np.array([float(P)]), ridge)[0])
        L = eta / (eta + kappa)
        s2 = float(np.sum(L * L))
        h = float(np.sum(L * (1 - L))) + r / kappa
        e0m1 = s2 / h
        M, A = self.M, state["A"]
        factor = sla.cho_factor(A + kappa * np.eye(M), lower=True, check_finite=False)
        Z = sla.cho_solve(factor, self.Y, check_finite=False)
        bias = kappa**2 * float(np.sum(Z * Z)) / M
        if state["K0"] is not None:
            # tr(R K0 R), R = (A + kappa I)^-1: ||R C0||_F^2 with K0 = C0 C0^T when K0 is positive
            # definite, else sum((R K0) * R)
            try:
                C0 = sla.cholesky(state["K0"], lower=True, check_finite=False)
                W = sla.cho_solve(factor, C0, check_finite=False)
                trace = float(np.sum(W * W))
            except np.linalg.LinAlgError:
                R = sla.cho_solve(factor, np.eye(M), check_finite=False)
                R = 0.5 * (R + R.T)
                trace = float(np.sum((R @ state["K0"]) * R))
            bias += self.Y.shape[1] * kappa**2 * trace / M
        test = (1 + e0m1) * bias
        frac = P / M
        r2 = (r / (P * kappa)) ** 2
        return test * (1 - frac * r2) / (1 - frac)

    def forget(self) -> None:
        self._cache.clear()


class _Search:
    """Objective of one configuration in unit coordinates, with its evaluation log."""

    def __init__(self, owner: _Tuner, depth: int, act: str) -> None:
        self.owner, self.depth, self.act = owner, depth, act
        self.points: list[tuple[float, float, float, float]] = []  # (weight_var, bias_var, ridge, value)
        self.notes: dict[tuple, str] = {}

    def __call__(self, u: np.ndarray) -> float:
        wv, bv = self.owner.from_unit(u)
        value, ridge = self.owner.best_over_ridge(self.depth, self.act, wv, bv, accurate=False, log=self)
        self.points.append((wv, bv, ridge, value))
        return math.log(value) if 0 < value < math.inf else (-1e300 if value == 0 else 1e300)


class _Tuner:
    def __init__(
        self,
        model: _SphereModel | _DataModel,
        *,
        P: int | None,
        eps: float | None,
        regime: str,
        ranges: tuple[tuple[float, float], tuple[float, float], tuple[float, float]],
        grid: np.ndarray,
    ) -> None:
        self.model, self.P, self.eps, self.regime = model, P, eps, regime
        self.wv_r, self.bv_r, self.rd_r = ranges
        self.grid = grid
        self.calls = 0
        self.info: dict[tuple, dict] = {}

    @property
    def free(self) -> list[bool]:
        return [self.wv_r[0] < self.wv_r[1], self.bv_r[0] < self.bv_r[1]]

    @property
    def ridge_free(self) -> bool:
        return self.regime == "kernel" and self.rd_r[0] < self.rd_r[1]

    def from_unit(self, u: np.ndarray) -> tuple[float, float]:
        it = iter(np.atleast_1d(u))
        out = []
        for (lo, hi), log in ((self.wv_r, True), (self.bv_r, False)):
            if lo == hi:
                out.append(lo)
                continue
            t = float(np.clip(next(it), 0.0, 1.0))
            out.append(
                math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo))) if log else lo + t * (hi - lo)
            )
        return out[0], out[1]

    def to_unit(self, wv: float, bv: float) -> list[float]:
        u = []
        if self.free[0]:
            u.append(
                (math.log(wv) - math.log(self.wv_r[0])) / (math.log(self.wv_r[1]) - math.log(self.wv_r[0]))
            )
        if self.free[1]:
            u.append((bv - self.bv_r[0]) / (self.bv_r[1] - self.bv_r[0]))
        return u

    def value(self, depth: int, act: str, wv: float, bv: float, ridge: float, accurate: bool) -> float:
        """E_g(P) or the samples needed; raises _Refused. Unresolved-eigenvalue warnings are
        silenced: their effect is in the prediction's uncertainty, which is checked."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return self._value(depth, act, wv, bv, ridge, accurate)

    def _value(self, depth: int, act: str, wv: float, bv: float, ridge: float, accurate: bool) -> float:
        self.calls += 1
        mlp = MLP(depth, act, wv, bv)
        m = self.model
        if isinstance(m, _DataModel):
            if self.P is not None:
                return m.error_at(mlp, self.P, ridge)
            return _samples_needed(self.grid, m.curve_values(mlp, self.grid, ridge), self.eps)
        if self.P is not None:
            c = m.curve(mlp, np.array([float(self.P)]), ridge, accurate, strict=True)
            self.info[(depth, act, wv, bv, ridge, accurate)] = {
                "valid": bool(c.valid[0]),
                "test_error_uncertainty": float(c.test_error_uncertainty[0]),
            }
            return float(c.test_error[0])
        curve = m.curve(mlp, self.grid, ridge, accurate, strict=False)
        needed = _samples_needed(self.grid, curve.test_error, self.eps)
        if math.isfinite(needed):
            i = int(np.searchsorted(self.grid, needed))
            near = slice(max(i - 1, 0), min(i + 1, len(self.grid)))
            rel = curve.test_error_uncertainty[near] / np.maximum(curve.test_error[near], 1e-300)
            if np.any(rel > 0.05):
                raise _Refused(
                    f"E_g near P = {needed:.4g} is uncertain by {float(np.max(rel)):.1%} (unresolved"
                    " eigenvalues or the tail beyond lmax); raise lmax"
                )
        return needed

    def best_over_ridge(
        self, depth: int, act: str, wv: float, bv: float, *, accurate: bool, log: _Search | None = None
    ) -> tuple[float, float]:
        """(objective, ridge): the ridge optimised on the same spectrum in the kernel regime."""
        from scipy.optimize import minimize_scalar

        fixed = self.rd_r[0]

        def at(ridge: float) -> float:
            try:
                return self.value(depth, act, wv, bv, ridge, accurate)
            except _Refused as exc:
                if log is not None:
                    log.notes[(wv, bv, ridge)] = str(exc)
                return math.inf

        if not self.ridge_free:
            return at(fixed), fixed
        lo, hi = math.log10(self.rd_r[0]), math.log10(self.rd_r[1])
        xs = np.linspace(lo, hi, _RIDGE_SCAN)
        vals = [at(10.0**x) for x in xs]
        i = int(np.argmin(vals))
        if not math.isfinite(vals[i]):
            return math.inf, 10.0 ** xs[i]
        a, b = xs[max(i - 1, 0)], xs[min(i + 1, len(xs) - 1)]
        res = minimize_scalar(
            lambda x: math.log(max(at(10.0**x), 1e-300)),
            bounds=(a, b),
            method="bounded",
            options={"xatol": 0.01, "maxiter": 12},
        )
        x_best = float(res.x)
        v_best = at(10.0**x_best)
        if vals[i] <= v_best:
            x_best, v_best = float(xs[i]), vals[i]
        return v_best, 10.0**x_best

    def design(self) -> list[np.ndarray]:
        """Start points in unit coordinates: the 3 x 3 grid (0, 1/2, 1) per free axis on the sphere;
        on a data set (an eigenvalue problem per point) the corners and the centre."""
        free = self.free
        if not any(free):
            return [np.zeros(0)]
        if isinstance(self.model, _DataModel) and all(free):
            return [np.array(u, dtype=float) for u in ((0, 0), (0, 1), (1, 0), (1, 1), (0.5, 0.5))]
        return [np.array(u) for u in itertools.product(*[_UNIT_STARTS if f else (0.0,) for f in free])]

    def start(self, depth: int, act: str) -> tuple[_Search, np.ndarray, float]:
        """Evaluate the start design: (search log, best point, its log-objective)."""
        search = _Search(self, depth, act)
        starts = self.design()
        values = [search(u) for u in starts]
        k = int(np.argmin(values))
        return search, starts[k], float(values[k])

    def refine(self, search: _Search, best_u: np.ndarray, best_v: float, max_evaluations: int) -> dict:
        """Nelder–Mead from the best start (at most ``max_evaluations`` predictions); the entry."""
        from scipy.optimize import minimize

        if any(self.free) and best_v < 1e299 and max_evaluations > 0:

            def penalised(u: np.ndarray) -> float:
                inside = np.clip(u, 0.0, 1.0)
                return search(inside) + 10 * float(np.sum((u - inside) ** 2))

            res = minimize(
                penalised,
                best_u,
                method="Nelder-Mead",
                options={
                    "maxfev": max_evaluations,
                    "xatol": 1e-2,
                    "fatol": 1e-3,
                    "initial_simplex": _simplex(best_u),
                },
            )
            if res.fun < best_v:
                best_u, best_v = np.clip(res.x, 0.0, 1.0), float(res.fun)
        wv, bv = self.from_unit(best_u)
        entry: dict[str, Any] = {
            "depth": search.depth,
            "activation": search.act,
            "weight_var": wv,
            "bias_var": bv,
        }
        entry["refined"] = bool(any(self.free) and max_evaluations > 0)
        return entry

    def finish(self, entry: dict, search: _Search) -> dict:
        """The reported value: the optimum recomputed at full accuracy (sphere) or as is (data)."""
        depth, act, wv, bv = entry["depth"], entry["activation"], entry["weight_var"], entry["bias_var"]
        key = "test_error" if self.P is not None else "samples_needed"
        recorded = [p for p in search.points if (p[0], p[1]) == (wv, bv)]
        if isinstance(self.model, _DataModel) and recorded:  # the data route is exact: no recomputation
            ridge, value = recorded[-1][2], recorded[-1][3]
        else:
            value, ridge = self.best_over_ridge(depth, act, wv, bv, accurate=True, log=search)
        entry["ridge"] = ridge if self.regime != "bayes" else self.model.bayes_ridge
        entry[key] = value
        if not math.isfinite(value):
            notes = [n for (w, b, _), n in search.notes.items() if (w, b) == (wv, bv)] or list(
                search.notes.values()
            )
            if notes:
                entry["refused"] = notes[-1]
        entry["at_bound"] = self.at_bound(wv, bv, entry["ridge"])
        entry.update(self.info.get((depth, act, wv, bv, ridge, True), {}))
        return entry

    def at_bound(self, wv: float, bv: float, ridge: float) -> list[str]:
        out = []
        checks = [("weight_var", self.wv_r, wv, True), ("bias_var", self.bv_r, bv, False)]
        if self.ridge_free:
            checks.append(("ridge", self.rd_r, ridge, True))
        for name, (lo, hi), v, log in checks:
            if lo == hi:
                continue
            t = (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) if log else (v - lo) / (hi - lo)
            if t <= _BOUND_TOL:
                out.append(f"{name} = {v:.4g} is the lower bound of its range {lo:g}:{hi:g}")
            elif t >= 1 - _BOUND_TOL:
                out.append(f"{name} = {v:.4g} is the upper bound of its range {lo:g}:{hi:g}")
        return out


def _simplex(u: np.ndarray) -> np.ndarray:
    k = len(u)
    simplex = np.tile(u, (k + 1, 1))
    for i in range(k):
        simplex[i + 1, i] += 0.2 if u[i] < 0.8 else -0.2
    return simplex


def _describe(target: Any, d: int | None, P: int | None, eps: float | None, regime: str) -> tuple[str, str]:
    """(target description, error definition) for the output."""
    from fieldcurve.data import Dataset

    where = f"E_g(P = {P})" if P is not None else f"the samples P* with E_g(P*) = {eps:g}"
    if isinstance(target, Dataset):
        what = f"data set {target.name} (M = {target.size}, d = {target.X.shape[1]}, labels as targets)"
        err = (
            f"{where}, E_g = held-out mean squared error on the M - P points not used for training"
            " (empirical-measure eigenlearning theory)"
        )
    else:
        what = f"{target.name}; label noise {target.noise:g}; inputs uniform on the sqrt(d)-sphere, d = {d}"
        err = f"{where}, E_g = E_x[(f_hat(x) - f*(x))^2] against the clean target (noisy labels: E_g + noise)"
    regimes = {
        "gd": "infinitely wide network trained by gradient descent (NTK regression + initialisation term)",
        "bayes": "Bayesian network: GP posterior mean with the NNGP kernel, noise variance as ridge",
        "kernel": "kernel ridge regression",
    }
    return what, f"{err}; {regimes[regime]}"


# --------------------------------------------------------------------------- entry point
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
    landscape: int = 0,
    max_evaluations: int | None = None,
    refine: int | None = None,
    widths: Any = None,
    width_trials: int = 2,
    width_top: int = 1,
    seed: int = 0,
    progress: bool = False,
    workers: int | None = None,
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
        Grid size per axis of the (weight_var, bias_var) landscape of the best configuration;
        0 (default): the landscape is the set of points the search evaluated (no extra cost).
    max_evaluations
        Nelder–Mead evaluations per refined configuration after its start design (default 12 on
        the sphere, 4 on a data set).
    refine
        How many configurations (the best after the start design) Nelder–Mead refines (default:
        all on the sphere; 2 on a data set, where every evaluation is an eigenvalue problem of the
        data set's size: about 1.3 times ``numpy.linalg.eigh`` of its Gram on digits, so the
        default search costs about 30 of them); the others report their best start point
        (``entry["refined"]`` False).
    widths
        Finite widths to compare (Bayesian regime, sphere target, budget P only): for the best
        ``width_top`` configurations, :math:`E_g(P; n) = E_g^\infty(P) + \Delta E_g(P)/n` from
        :func:`fieldcurve.finite_width_learning_curve` (``width_trials`` sampled training sets,
        seeded by ``seed``), stored as ``entry["finite_width"][n]`` with its Monte Carlo error and
        validity flag, and ``entry["best_width"]``. The variances are optimised at infinite width;
        the correction's coefficient does not depend on n, so all widths cost one evaluation.
    progress
        Show a progress bar on stderr (tqdm; off when stderr is not a terminal).
    workers
        Processes that optimise configurations in parallel (default: up to 2, the cores of the
        reference machine; 1 runs in this process). The result does not depend on it.

    Warns
    -----
    RuntimeWarning
        When the best configuration's optimum sits on a search bound, or outside the theory's
        validity (``LearningCurve.valid``).
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
    if kind not in ("ntk", "nngp"):
        raise ValueError(f"kind must be 'ntk' or 'nngp', got {kind!r}")
    if regime == "bayes" and isinstance(target, Target) and not target.noise > 0:
        raise ValueError("the bayes regime needs label noise (the posterior's noise variance)")
    checked = [("width_top", width_top), ("landscape", landscape)]
    checked += [
        (n, v) for n, v in (("max_evaluations", max_evaluations), ("refine", refine)) if v is not None
    ]
    for name, v in checked:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
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
    model: _SphereModel | _DataModel
    if isinstance(target, Target):
        d = target.d if d is None else d
        if d is None:
            raise ValueError("d is required (the target does not fix it)")
        lmax = max(12, max(target.powers, default=0) + 8) if lmax is None else lmax
        model = _SphereModel(target, d, regime, kind, lmax, bayes_ridge)
        grid = _P_GRID
    else:
        d = None
        model = _DataModel(target, regime, kind, bayes_ridge)
        grid = _P_GRID[_P_GRID < target.size]
    configs = list(itertools.product(depths, activations))
    if workers is None:
        workers = min(2, os.cpu_count() or 1, len(configs))
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    total = len(configs) + (width_top if widths else 0) + (1 if landscape else 0)
    from tqdm import tqdm

    bar = tqdm(total=total, desc="tune", unit="config", disable=None if progress else True, leave=False)
    tuner = _Tuner(model, P=P, eps=target_error, regime=regime, ranges=(wv_r, bv_r, rd_r), grid=grid)
    key = "test_error" if P is not None else "samples_needed"
    try:
        if max_evaluations is None:
            max_evaluations = 4 if isinstance(target, Dataset) else 12
        if refine is None:
            refine = 2 if isinstance(target, Dataset) else len(configs)
        ranking, searches, calls = _run_configs(tuner, configs, max_evaluations, refine, int(workers), bar)
        tuner.calls = calls
        ranking.sort(key=lambda e: e[key])
        if widths is not None:
            _add_widths(ranking[:width_top], target, P, d, widths, width_trials, seed, lmax, bar)
        land = _landscape(tuner, ranking[0], searches, landscape, wv_r, bv_r)
        bar.update(1 if landscape else 0)
    finally:
        bar.close()
    if all(not math.isfinite(e[key]) and "refused" in e for e in ranking):
        raise ValueError(f"the theory refused every configuration; e.g. {ranking[0]['refused']}")
    messages = []
    best = ranking[0]
    for note in best["at_bound"]:
        messages.append(
            f"the best configuration (depth {best['depth']}, {best['activation']}) has its optimum on a"
            f" search bound: {note}; the best value may lie beyond it (widen the range)"
        )
    if best.get("valid") is False:
        messages.append(
            f"the best configuration's prediction at P = {P} lies outside the theory's validity (the"
            " constant mode dominates at this P; the theory overestimates E_g there)"
        )
    for m in messages:
        warnings.warn(m, RuntimeWarning, stacklevel=2)
    what, err = _describe(target, d, P, target_error, regime)
    return TuneResult(
        objective=key,
        P=P,
        target_error=target_error,
        regime=regime,
        ranking=ranking,
        landscape=land,
        evaluations=tuner.calls,
        seconds=time.perf_counter() - t0,
        target=what,
        d=d,
        error_definition=err,
        warnings=tuple(messages),
    )


def _add_widths(
    entries: list[dict],
    target: Target,
    P: int,
    d: int,
    widths: list[int],
    trials: int,
    seed: int,
    lmax: Any,
    bar: Any,
) -> None:
    from fieldcurve.theory.finite_width import VALID_RELATIVE_CORRECTION, finite_width_learning_curve

    for e in entries:
        bar.set_postfix_str(f"finite width: depth {e['depth']} {e['activation']}")
        if not math.isfinite(e["test_error"]):
            continue
        mlp = MLP(e["depth"], e["activation"], e["weight_var"], e["bias_var"])
        fw = finite_width_learning_curve(
            mlp,
            target,
            [P],
            width=widths[0],
            seed=seed,
            d=d,
            trials=trials,
            n_test=200,
            unit_samples=8192,
            samples=256,
            lmax=lmax,
        )
        bar.update(1)
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


def _landscape(
    tuner: _Tuner,
    best: dict,
    searches: dict,
    size: int,
    wv_r: tuple[float, float],
    bv_r: tuple[float, float],
) -> dict:
    """Grid landscape of the best configuration (``size`` > 0) or the points its search evaluated."""
    free = tuner.free
    if not any(free):
        return {}
    if size:
        ws = np.geomspace(*wv_r, size) if free[0] else np.array([wv_r[0]])
        bs = np.linspace(*bv_r, size) if free[1] else np.array([bv_r[0]])
        vals = np.empty((len(ws), len(bs)))
        for i, w in enumerate(ws):
            for j, c in enumerate(bs):
                vals[i, j] = tuner.best_over_ridge(best["depth"], best["activation"], w, c, accurate=False)[0]
        tuner.model.forget()
        return {"weight_var": ws, "bias_var": bs, "values": vals}
    pts = [p for p in searches[(best["depth"], best["activation"])] if math.isfinite(p[3])]
    if not pts:
        return {}
    arr = np.array(pts)
    return {"weight_var": arr[:, 0], "bias_var": arr[:, 1], "values": arr[:, 3], "scattered": np.array([1])}


# --------------------------------------------------------------------------- parallel driver
_FORKED: tuple[Any, ...] | None = None  # (tuner, configs, max_evaluations), inherited by the workers


def _start_job(index: int) -> tuple[list, dict, np.ndarray, float, int]:
    """Stage 1 for configuration ``index``: its start design (in a forked worker or here)."""
    assert _FORKED is not None
    tuner, configs = _FORKED
    before = tuner.calls
    search, best_u, best_v = tuner.start(*configs[index])
    tuner.model.forget()
    return search.points, search.notes, best_u, best_v, tuner.calls - before


def _refine_job(
    index: int, points: list, notes: dict, best_u: np.ndarray, best_v: float, budget: int
) -> tuple:
    """Stage 2: Nelder–Mead (``budget`` evaluations, 0 for none) and the reported value."""
    assert _FORKED is not None
    tuner, configs = _FORKED
    before = tuner.calls
    search = _Search(tuner, *configs[index])
    search.points, search.notes = list(points), dict(notes)
    entry = tuner.finish(tuner.refine(search, best_u, best_v, budget), search)
    tuner.model.forget()
    return entry, search.points, tuner.calls - before


def _limit_threads() -> None:
    """One BLAS thread per worker (the workers share the cores)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn/scipy stacks
        pass


def _run_configs(
    tuner: _Tuner, configs: list, max_evaluations: int, refine: int, workers: int, bar: Any
) -> tuple[list[dict], dict[tuple, list], int]:
    """(entries, evaluated points per configuration, evaluations): the start design of every
    configuration, then Nelder–Mead for the ``refine`` best of them, in ``workers`` processes."""
    global _FORKED
    import multiprocessing

    _FORKED = (tuner, configs)
    calls = 0
    try:
        use_pool = workers > 1 and len(configs) > 1 and "fork" in multiprocessing.get_all_start_methods()
        # longest first (smooth activations need arbitrary-precision moments; deeper costs more)
        order = sorted(range(len(configs)), key=lambda i: (configs[i][1] not in _SMOOTH, -configs[i][0]))
        if use_pool:
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("fork")
            pool: Any = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_limit_threads)
        else:
            pool = None
        try:
            starts = _map(pool, _start_job, [(i,) for i in order], bar, 0.5)
            starts = dict(zip(order, starts, strict=True))
            calls += sum(r[4] for r in starts.values())
            ranked = sorted(order, key=lambda i: starts[i][3])
            budget = {i: (max_evaluations if rank < refine else 0) for rank, i in enumerate(ranked)}
            jobs = [(i, *starts[i][:4], budget[i]) for i in order]
            results = _map(pool, _refine_job, jobs, bar, 0.5)
        finally:
            if pool is not None:
                pool.shutdown()
    finally:
        _FORKED = None
    entries, searches = [], {}
    for i, (entry, points, n) in zip(order, results, strict=True):
        entries.append(entry)
        searches[configs[i]] = points
        calls += n
    return entries, searches, calls


def _map(pool: Any, fn: Any, jobs: list[tuple], bar: Any, step: float) -> list:
    """[fn(*job) for job in jobs], in the pool if there is one, ticking the progress bar."""
    if pool is None:
        out = []
        for job in jobs:
            out.append(fn(*job))
            bar.update(step)
        return out
    futures = [pool.submit(fn, *job) for job in jobs]
    from concurrent.futures import as_completed

    for _ in as_completed(futures):
        bar.update(step)
    return [f.result() for f in futures]
