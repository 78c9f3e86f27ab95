r"""Shared helpers of the figure modules: result type, tidy CSV, agreement statistics, plotting.

Agreement between a theory value :math:`t` and a Monte Carlo mean :math:`m` with standard error
:math:`s` is reported as the relative error :math:`|t-m|/|m|` and the z-score :math:`|t-m|/s`; a
point "agrees" when it is within ``rel_tol`` (15%) *or* ``z_tol`` (3) standard errors, the
criterion of ``benchmarks/paper_figures.py``.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CSV_COLUMNS",
    "REL_TOL",
    "Z_TOL",
    "CurveTable",
    "FigureResult",
    "Progress",
    "agreement",
    "agreement_stats",
    "finish",
    "half_point",
    "local_extrema",
    "log_grid",
    "new_figure",
    "single_threaded_blas",
    "subseed",
    "to_jsonable",
]

CSV_COLUMNS: tuple[str, ...] = ("panel", "curve", "source", "x", "y", "y_sem", "theory_at_x")
"""Columns of every figure's tidy CSV (one row per plotted point):

``panel`` (which axes), ``curve`` (which line or point set), ``source`` (``theory``, ``exact``
or ``reference`` for computed lines; ``kernel_regression`` or ``monte_carlo`` for measured means;
``theory_over_experiment`` and ``interpolated`` for quantities derived from them), ``x`` and
``y`` (the plotted coordinates, unscaled), ``y_sem`` (standard error of a measured mean, empty
for lines) and ``theory_at_x`` (the figure's reference theory at the same x, for measured rows;
else empty)."""

REL_TOL = 0.15
Z_TOL = 3.0


@dataclass(frozen=True)
class FigureResult:
    """What :func:`fieldcurve.figures.make_figure` wrote.

    Attributes
    ----------
    name : figure name (a key of :data:`fieldcurve.figures.FIGURES`).
    png : path of the image.
    csv : path of the tidy data (columns :data:`CSV_COLUMNS`).
    summary : JSON-serialisable numbers (peak positions, agreement statistics, sizes, timing).
    """

    name: str
    png: Path
    csv: Path
    summary: dict = field(repr=False)


class Progress:
    """Timestamped progress messages on stderr (silent unless ``enabled``)."""

    def __init__(self, name: str, enabled: bool) -> None:
        self.name = name
        self.enabled = enabled
        self.t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds since construction."""
        return time.perf_counter() - self.t0

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{self.name} {self.elapsed:7.1f} s] {message}", file=sys.stderr, flush=True)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread for the duration (``threadpoolctl``, when installed; else a
    no-op). The experiments factorise many matrices of a few thousand rows: one thread is about
    as fast as two on an idle machine and up to 15x faster when other processes share the cores
    (measured: Cholesky of a 2000 x 2000 matrix, 0.1 s vs 1.6 s next to a busy process)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def subseed(seed: int, *keys: int) -> int:
    """A reproducible 32-bit seed for one random stream of a figure, derived from the user's
    ``seed`` and integer ``keys`` (``numpy.random.SeedSequence``), so that streams differ."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def log_grid(lo: float, hi: float, n: int) -> NDArray[np.float64]:
    """About ``n`` distinct integers log-spaced between ``lo`` and ``hi`` (theory grids in P)."""
    return np.unique(np.round(np.geomspace(lo, hi, n)))


def local_extrema(x: ArrayLike, y: ArrayLike, kind: str = "max") -> list[tuple[float, float]]:
    """Interior local maxima (``kind="max"``) or minima (``"min"``) of a sampled curve, as
    ``(x, y)`` pairs; a plateau of equal values counts once (at its first point)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    s = y if kind == "max" else -y
    idx = np.flatnonzero((s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:])) + 1
    return [(float(x[i]), float(y[i])) for i in idx]


def agreement(
    theory: ArrayLike,
    measured: ArrayLike,
    sem: ArrayLike,
    *,
    rel_tol: float = REL_TOL,
    z_tol: float = Z_TOL,
) -> dict[str, NDArray[np.float64]]:
    r"""Point-wise relative error :math:`|t-m|/|m|`, z-score :math:`|t-m|/s` (nan where
    :math:`s = 0`) and the agreement flag (within ``rel_tol`` or ``z_tol``)."""
    t = np.asarray(theory, dtype=float)
    m = np.asarray(measured, dtype=float)
    s = np.asarray(sem, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(t - m) / np.abs(m)
        z = np.where(s > 0, np.abs(t - m) / np.where(s > 0, s, 1.0), np.nan)
    ok = (rel <= rel_tol) | (np.nan_to_num(z, nan=np.inf) <= z_tol)
    return {"rel": rel, "z": z, "ok": ok}


def agreement_stats(parts: Iterable[dict[str, NDArray[np.float64]]]) -> dict[str, float | int]:
    """Median and maximum relative error, maximum z-score and the fraction of points that agree,
    pooled over the outputs of :func:`agreement`."""
    parts = list(parts)
    rel = np.concatenate([p["rel"] for p in parts])
    z = np.concatenate([p["z"] for p in parts])
    ok = np.concatenate([p["ok"] for p in parts])
    return {
        "median_rel_error": float(np.median(rel)),
        "max_rel_error": float(np.max(rel)),
        "max_z": float(np.nanmax(z)) if np.isfinite(z).any() else math.nan,
        "fraction_within": float(np.mean(ok)),
        "points": int(ok.size),
    }


def half_point(P: np.ndarray, ratio: np.ndarray) -> float | None:
    """First P at which ``ratio`` falls below 1/2 (log-linear interpolation), None if never."""
    below = np.flatnonzero(ratio < 0.5)
    if below.size == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(P[0])
    x0, x1 = np.log(P[i - 1]), np.log(P[i])
    y0, y1 = ratio[i - 1], ratio[i]
    return float(np.exp(x0 + (0.5 - y0) * (x1 - x0) / (y1 - y0)))


class CurveTable:
    """Rows of the tidy CSV (see :data:`CSV_COLUMNS`), collected while plotting."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def theory(self, panel: str, curve: str, x: ArrayLike, y: ArrayLike, source: str = "theory") -> None:
        """One row per point of a theory line (no standard error)."""
        for xi, yi in zip(np.asarray(x, float), np.asarray(y, float), strict=True):
            self.rows.append((panel, curve, source, _num(xi), _num(yi), "", ""))

    def points(
        self,
        panel: str,
        curve: str,
        source: str,
        x: ArrayLike,
        y: ArrayLike,
        sem: ArrayLike,
        theory_at_x: ArrayLike | None = None,
    ) -> None:
        """One row per measured point, with its standard error and the reference theory at x."""
        x, y, sem = (np.asarray(a, float) for a in (x, y, sem))
        th = np.full(len(x), np.nan) if theory_at_x is None else np.asarray(theory_at_x, float)
        for row in zip(x, y, sem, th, strict=True):
            self.rows.append((panel, curve, source, *(_num(v) for v in row)))

    def write(self, path: Path) -> Path:
        """Write the CSV (header :data:`CSV_COLUMNS`)."""
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            w.writerows(self.rows)
        return path


def _num(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:.10g}"


def new_figure(ncols: int, width: float = 6.0, height: float = 4.6) -> tuple[Any, Sequence[Any]]:
    """A matplotlib Figure with ``ncols`` axes side by side, drawn by the Agg canvas (no pyplot,
    so the caller's interactive backend is left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays to Python numbers and lists (non-finite floats
    become None), tuples to lists, and mapping keys to strings."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def finish(
    name: str,
    out_dir: Path,
    fig: Any,
    table: CurveTable,
    summary: dict[str, Any],
    progress: Progress,
) -> FigureResult:
    """Save ``<name>.png`` (120 dpi) and ``<name>.csv`` into ``out_dir`` and return the result,
    with the elapsed time added to the summary."""
    png = out_dir / f"{name}.png"
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    csv_path = table.write(out_dir / f"{name}.csv")
    summary = {**summary, "elapsed_seconds": round(progress.elapsed, 2)}
    progress(f"wrote {png} and {csv_path}")
    return FigureResult(name=name, png=png, csv=csv_path, summary=to_jsonable(summary))


def theory_and_experiment(
    kernel: Any,
    spec: Any,
    target: Any,
    P_theory: ArrayLike,
    P_measured: ArrayLike,
    *,
    d: int,
    trials: int,
    seed: int,
    n_test: int,
) -> tuple[Any, Any, Any]:
    """Eigenlearning curves on the theory grid and at the measured sizes, and exact ridgeless
    kernel regression with per-degree errors (``fc.empirical_learning_curve``) at the latter."""
    import fieldcurve as fc

    emp = fc.empirical_learning_curve(
        kernel,
        target,
        P_measured,
        d=d,
        trials=trials,
        seed=seed,
        n_test=n_test,
        per_degree=True,
        spectrum_for_degrees=spec,
    )
    return fc.learning_curve(spec, target, P_theory), fc.learning_curve(spec, target, P_measured), emp
