r"""Bordelon, Canatar & Pehlevan, ICML 2020, "Spectrum dependent learning curves in kernel
regression and wide neural networks": theory against kernel regression.

Kernel: the NTK of a 3-hidden-layer bias-free ReLU network (``fc.MLP(3, "relu", 2.0, 0.0)``)
on the :math:`\sqrt{10}`-sphere. Targets: pure degrees :math:`l = 1, 2, 4` (power 1) and a mixed
target with power 1 in each; ridgeless, no noise. Theory (the paper's self-consistent
:math:`\kappa`, in eigenlearning notation):

.. math:: \sum_l N_l\,\frac{\lambda_l}{\lambda_l+\kappa} = P,\qquad
          E_l = (1-\mathcal L_l)^2 v_l^2 + \frac{N_l\mathcal L_l^2}{P}\,\frac{B}{1-\gamma},
          \qquad \gamma = \frac1P\sum_l N_l\mathcal L_l^2,

with :math:`\mathcal L_l = \lambda_l/(\lambda_l+\kappa)`, :math:`B = \sum_l(1-\mathcal L_l)^2v_l^2`
and :math:`E_g = \sum_l E_l` (``fc.learning_curve``). For the mixed target the per-degree errors
show the spectral bias: degree 1 is learned first, then 2, then 4. Experiments: exact kernel
regression (``fc.empirical_learning_curve``), mean ± standard error, with the exact per-degree
projection of the fit.
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

NAME = "bordelon2020"
D = 10
LMAX = 40
PURE = (1, 2, 4)
MIXED = {1: 1.0, 2: 1.0, 4: 1.0}
THEORY_P = (2, 20_000)
COLOURS = {1: "tab:blue", 2: "tab:orange", 4: "tab:green"}


@dataclass(frozen=True)
class _Size:
    trials: int
    P: tuple[int, ...]
    n_test: int


_FULL = _Size(trials=30, P=(5, 10, 20, 40, 80, 160, 320, 640, 1280, 2500), n_test=2000)
_QUICK = _Size(trials=10, P=(5, 10, 20, 40, 80, 160, 320, 640, 1000), n_test=1000)


def make(out_dir: Path, *, quick: bool, seed: int, progress: bool) -> FigureResult:
    """Compute and write the figure (see the module docstring)."""
    log = Progress(NAME, progress)
    size = _QUICK if quick else _FULL
    kernel = fc.ntk_kernel(fc.MLP(3, "relu", 2.0, 0.0))
    spec = fc.spectrum(kernel, D, LMAX)
    Pt = log_grid(*THEORY_P, 400)
    Pe = np.array(size.P, dtype=float)
    table = CurveTable()
    fig, (ax, ax2) = new_figure(2, 6.2, 4.9)
    parts: dict[str, dict] = {}

    for k, l in enumerate(PURE):
        target = fc.Target.from_degree_powers({l: 1.0}, d=D)
        th = fc.learning_curve(spec, target, Pt)
        th_e = fc.learning_curve(spec, target, Pe)
        log(f"pure degree {l}: {size.trials} trials up to P = {int(Pe.max())}")
        emp = fc.empirical_learning_curve(
            kernel,
            target,
            Pe,
            d=D,
            trials=size.trials,
            seed=subseed(seed, 1, k),
            n_test=size.n_test,
            per_degree=False,
        )
        curve = f"pure l={l}"
        parts[curve] = agreement(th_e.test_error, emp.test_error, emp.test_error_sem)
        table.theory("a", curve, Pt, th.test_error)
        table.points("a", curve, "kernel_regression", Pe, emp.test_error, emp.test_error_sem, th_e.test_error)
        ax.plot(Pt, th.test_error, "-", color=COLOURS[l], lw=1.5, label=f"theory, pure degree {l}")
        ax.errorbar(Pe, emp.test_error, yerr=emp.test_error_sem, fmt="o", ms=4, color=COLOURS[l], capsize=2)
    ax.plot([], [], "o", color="grey", label=f"kernel regression ({size.trials} trials)")
    ax.set(
        xscale="log",
        yscale="log",
        ylim=(1e-4, 2),
        xlabel="P",
        ylabel="$E_g$",
        title="(a) pure-degree targets (power 1), ridgeless, no noise",
    )
    ax.legend(fontsize=8)

    target = fc.Target.from_degree_powers(MIXED, d=D)
    log(f"mixed target: {size.trials} trials with per-degree errors")
    th, th_e, emp = theory_and_experiment(
        kernel, spec, target, Pt, Pe, d=D, trials=size.trials, seed=subseed(seed, 2), n_test=size.n_test
    )
    halves: dict[str, float | None] = {}
    for j, l in enumerate(emp.degrees):
        m, s = emp.error_per_degree[:, j], emp.error_per_degree_sem[:, j]
        curve = f"mixed E_{l}"
        parts[curve] = agreement(th_e.error_per_degree[:, l], m, s)
        halves[str(l)] = half_point(Pt, th.error_per_degree[:, l] / MIXED[l])
        table.theory("b", curve, Pt, th.error_per_degree[:, l])
        table.points("b", curve, "kernel_regression", Pe, m, s, th_e.error_per_degree[:, l])
        ax2.plot(Pt, th.error_per_degree[:, l], "-", color=COLOURS[l], lw=1.5, label=f"theory $E_{l}$")
        ax2.errorbar(Pe, m, yerr=s, fmt="o", ms=4, color=COLOURS[l], capsize=2)
    parts["mixed E_g"] = agreement(th_e.test_error, emp.test_error, emp.test_error_sem)
    table.theory("b", "mixed E_g", Pt, th.test_error)
    table.points(
        "b", "mixed E_g", "kernel_regression", Pe, emp.test_error, emp.test_error_sem, th_e.test_error
    )
    ax2.plot(Pt, th.test_error, "--", color="black", lw=1.5, label="theory total $E_g$")
    ax2.errorbar(Pe, emp.test_error, yerr=emp.test_error_sem, fmt="s", ms=4, color="black", capsize=2)
    ax2.plot([], [], "o", color="grey", label="kernel regression, exact projection")
    ax2.set(
        xscale="log",
        yscale="log",
        ylim=(1e-4, 4),
        xlabel="P",
        ylabel="error",
        title="(b) power 1 in each of l = 1, 2, 4: per-degree errors",
    )
    ax2.legend(fontsize=8)
    fig.suptitle("Bordelon, Canatar & Pehlevan 2020: NTK of a 3-hidden-layer ReLU network (no bias), d = 10")

    stats = {k: agreement_stats([v]) for k, v in parts.items()}
    summary = {
        "quick": quick,
        "seed": seed,
        "d": D,
        "trials": size.trials,
        "P_experiment": list(size.P),
        "agreement": {**stats, "all": agreement_stats(parts.values())},
        "mixed_half_points": halves,
        "median_rel_error": agreement_stats(parts.values())["median_rel_error"],
        "fraction_within": agreement_stats(parts.values())["fraction_within"],
    }
    return finish(NAME, out_dir, fig, table, summary, log)
