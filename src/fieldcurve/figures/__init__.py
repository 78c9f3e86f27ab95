"""Reproductions of published figures with fieldcurve: theory against exact experiments.

Each figure is computed from the public API (``import fieldcurve as fc``) and written as a PNG
and a tidy CSV (columns :data:`CSV_COLUMNS`, one row per plotted point); :func:`make_figure`
returns the paths and a JSON-ready summary of the numbers the tests check. Every random draw
takes a seed derived from ``seed``; ``quick=True`` shrinks the experiments (fewer trials and
sample sizes, well under 30 s per figure on two cores) but keeps the theory curves complete.
BLAS runs single-threaded inside :func:`make_figure` (``threadpoolctl``, when installed): the
many small Cholesky factorisations are much slower when BLAS threads compete for the cores.

Example
-------
>>> from fieldcurve.figures import list_figures, make_figure
>>> [name for name, _ in list_figures()]  # doctest: +SKIP
>>> make_figure("canatar2021", "out", quick=True).summary["theory_peaks"]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from pathlib import Path

from fieldcurve.figures._common import CSV_COLUMNS, FigureResult, single_threaded_blas

__all__ = ["CSV_COLUMNS", "FIGURES", "FigureResult", "list_figures", "make_figure"]

FIGURES: dict[str, str] = {
    "canatar2021": (
        "Canatar, Bordelon & Pehlevan, Nat. Commun. 2021: noise-driven non-monotonic learning"
        " curves (1-hidden-layer ReLU NTK, d = 25, degree-1 target) and mode-wise errors"
    ),
    "bordelon2020": (
        "Bordelon, Canatar & Pehlevan, ICML 2020: 3-hidden-layer ReLU NTK, d = 10, pure-degree"
        " and mixed targets, theory vs kernel regression"
    ),
    "cohen2021": (
        "Cohen, Malka & Ringel, PRR 2021: equivalent kernel, renormalised EK and eigenlearning"
        " vs GP regression for a cubic polynomial target with noise"
    ),
    "pdlt_fourth_cumulant": (
        "Roberts, Yaida & Hanin (PDLT): normalised fourth cumulant of preactivations vs depth at"
        " criticality, ReLU vs tanh, theory vs Monte Carlo networks"
    ),
    "spectral_bias": (
        "Spectral bias: per-degree relative errors E_l(P)/E_l(0) of a ReLU NTK (d = 20) for equal"
        " power in degrees 1-4; degrees are learned in order"
    ),
    "multiple_descent": (
        "Xiao, Hu, Misiakiewicz, Lu & Pennington 2022: multiple descent of a dot-product kernel"
        " at large d, peaks near P = N(d,1) and N(d,2)"
    ),
}

_MODULES: dict[str, str] = {
    "canatar2021": "_canatar2021",
    "bordelon2020": "_bordelon2020",
    "cohen2021": "_cohen2021",
    "pdlt_fourth_cumulant": "_pdlt",
    "spectral_bias": "_spectral_bias",
    "multiple_descent": "_multiple_descent",
}


def list_figures() -> list[tuple[str, str]]:
    """``(name, description)`` of every figure, in a fixed order."""
    return list(FIGURES.items())


def make_figure(
    name: str,
    out_dir: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> FigureResult:
    """Compute one figure and write ``<name>.png`` and ``<name>.csv`` into ``out_dir``.

    Parameters
    ----------
    name
        A key of :data:`FIGURES`.
    out_dir
        Output directory (created if missing).
    quick
        Smaller experiments (under 10 s each on two busy cores); the full size takes 40-140 s.
    seed
        Seed of every random draw (sub-streams are derived from it).
    progress
        Print timestamped progress messages on stderr.

    Returns
    -------
    FigureResult
        Paths of the PNG and CSV and the summary numbers.

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the known figures).
    """
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known figures: {', '.join(FIGURES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    module = importlib.import_module(f"fieldcurve.figures.{_MODULES[name]}")
    with single_threaded_blas():
        return module.make(out, quick=bool(quick), seed=seed, progress=bool(progress))
