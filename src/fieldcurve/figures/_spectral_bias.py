r"""Spectral bias of kernel regression: degrees are learned one after another as P grows
(Bordelon, Canatar & Pehlevan 2020; Canatar, Bordelon & Pehlevan 2021).

Kernel: the NTK of a 2-hidden-layer bias-free ReLU network (``fc.MLP(2, "relu", 2.0, 0.0)``) on
the :math:`\sqrt{20}`-sphere; target with power 1 in each of degrees 1–4, ridgeless, no noise.
The per-degree relative error is

.. math:: \frac{E_l(P)}{E_l(0)} = (1-\mathcal L_l)^2 + \frac{N_l\mathcal L_l^2}{P}\,
          \frac{B}{(1-\gamma)\,v_l^2},\qquad \mathcal L_l = \frac{\lambda_l}{\lambda_l+\kappa},

(``LearningCurve.error_per_degree`` divided by :math:`E_l(0) = v_l^2`). Because
:math:`\lambda_l` falls with l, :math:`\kappa` must fall below :math:`\lambda_l` before degree l
is learned, so the sample size :math:`P_{1/2}(l)` at which :math:`E_l/E_l(0) = 1/2` increases with
the degree, roughly like the number of modes up to degree l,
:math:`\sum_{k\le l}N(d,k)`. Experiments: exact kernel regression with the exact per-degree
projection of the fit (``fc.empirical_learning_curve(..., per_degree=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import fieldcurve as fc
from fieldcurve.figures._common import (
    CurveTable,
    FigureResult,
    Progress,
    agreement,
    agreement_stats,
    finish,
    half_point,
    log_grid,
    new_figure,
    subseed,
    theory_and_experiment,
)

NAME = "spectral_bias"
D = 20
LMAX = 40
DEGREES = (1, 2, 3, 4)
THEORY_P = (1, 300_000)
COLOURS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green", 4: "tab:red"}


@dataclass(frozen=True)
class _Size:
    trials: int
    P: tuple[int, ...]
    n_test: int


_FULL = _Size(trials=16, P=(10, 20, 40, 80, 160, 320, 640, 1280, 2500, 4000), n_test=500)
_QUICK = _Size(trials=10, P=(10, 20, 40, 80, 160, 320, 640, 1200), n_test=200)


def make(out_dir: Path, *, quick: bool, seed: int, progress: bool) -> FigureResult:
    """Compute and write the figure (see the module docstring)."""
    log = Progress(NAME, progress)
    size = _QUICK if quick else _FULL
    kernel = fc.ntk_kernel(fc.MLP(2, "relu", 2.0, 0.0))
    spec = fc.spectrum(kernel, D, LMAX)
    powers = dict.fromkeys(DEGREES, 1.0)
    target = fc.Target.from_degree_powers(powers, d=D)
    Pt = log_grid(*THEORY_P, 500)
    Pe = np.array(size.P, dtype=float)
    log(f"{size.trials} trials of kernel regression with per-degree errors up to P = {int(Pe.max())}")
    th, th_e, emp = theory_and_experiment(
        kernel, spec, target, Pt, Pe, d=D, trials=size.trials, seed=subseed(seed, 1), n_test=size.n_test
    )
    table = CurveTable()
    fig, (ax, ax2) = new_figure(2, 6.2, 4.8)
    parts = {}
    half_theory: dict[str, float | None] = {}
    half_measured: dict[str, float | None] = {}
    for j, l in enumerate(emp.degrees):
        r_th = th.error_per_degree[:, l] / powers[l]
        r_th_e = th_e.error_per_degree[:, l] / powers[l]
        m = emp.error_per_degree[:, j] / powers[l]
        s = emp.error_per_degree_sem[:, j] / powers[l]
        parts[f"l={l}"] = agreement(r_th_e, m, s)
        half_theory[str(l)] = half_point(Pt, r_th)
        half_measured[str(l)] = half_point(Pe, m)
        table.theory("relative_error", f"l={l}", Pt, r_th)
        table.points("relative_error", f"l={l}", "kernel_regression", Pe, m, s, r_th_e)
        ax.plot(Pt, r_th, "-", color=COLOURS[l], lw=1.5, label=f"theory, degree {l}")
        ax.errorbar(Pe, m, yerr=s, fmt="o", ms=4, color=COLOURS[l], capsize=2)
        if half_theory[str(l)] is not None:
            ax.plot([half_theory[str(l)]], [0.5], "v", color=COLOURS[l], ms=7)
    ax.axhline(0.5, color="grey", ls=":", lw=0.8)
    ax.plot([], [], "o", color="grey", label=f"kernel regression ({size.trials} trials)")
    ax.plot([], [], "v", color="grey", label="$P_{1/2}$: $E_l/E_l(0) = 1/2$")
    ax.set(
        xscale="log",
        ylim=(0, 1.08),
        xlabel="P",
        ylabel="$E_l(P) / E_l(0)$",
        title="(a) per-degree relative errors, power 1 in each of l = 1..4",
    )
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)

    degs = np.array(DEGREES, dtype=float)
    cum_modes = np.cumsum([fc.multiplicity(D, l) for l in range(max(DEGREES) + 1)])[list(DEGREES)]
    ht = np.array([np.nan if half_theory[str(l)] is None else half_theory[str(l)] for l in DEGREES])
    hm = np.array([np.nan if half_measured[str(l)] is None else half_measured[str(l)] for l in DEGREES])
    table.theory("half_points", "theory P_1/2", degs, ht)
    table.theory("half_points", "modes up to degree l", degs, cum_modes, source="reference")
    ok = np.isfinite(hm)
    table.points(
        "half_points",
        "measured P_1/2",
        "interpolated",
        degs[ok],
        hm[ok],
        np.full(ok.sum(), np.nan),
        ht[ok],
    )
    ax2.plot(degs, ht, "o-", color="black", label="theory $P_{1/2}(l)$")
    ax2.plot(
        degs[ok], hm[ok], "s", color="tab:red", ms=8, mfc="none", label="kernel regression (interpolated)"
    )
    ax2.plot(degs, cum_modes, "^:", color="grey", label="modes up to degree l: $\\sum_{k\\leq l} N(d,k)$")
    ax2.set(
        yscale="log",
        xticks=degs,
        xlabel="degree l",
        ylabel="P",
        title="(b) sample size at which degree l is half learned",
    )
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3, which="both")
    fig.suptitle(f"Spectral bias: NTK of a 2-hidden-layer ReLU network (no bias), d = {D}, ridgeless")

    values = [v for v in ht if np.isfinite(v)]
    summary = {
        "quick": quick,
        "seed": seed,
        "d": D,
        "trials": size.trials,
        "P_experiment": list(size.P),
        "half_points_theory": half_theory,
        "half_points_measured": half_measured,
        "modes_up_to_degree": {str(l): int(c) for l, c in zip(DEGREES, cum_modes, strict=True)},
        "order_increasing": bool(len(values) == len(DEGREES) and np.all(np.diff(values) > 0)),
        "agreement": {
            **{k: agreement_stats([v]) for k, v in parts.items()},
            "all": agreement_stats(parts.values()),
        },
    }
    return finish(NAME, out_dir, fig, table, summary, log)
