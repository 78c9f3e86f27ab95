r"""Canatar, Bordelon & Pehlevan, Nat. Commun. 12, 2914 (2021): noise-driven non-monotonic
learning curves and mode-wise errors.

Kernel: the NTK of a one-hidden-layer bias-free ReLU network (``fc.MLP(1, "relu", 2.0, 0.0)``)
on the :math:`\sqrt{25}`-sphere; its odd degrees :math:`l \ge 3` have :math:`\lambda_l = 0`.
Ridgeless regression of a pure degree-1 target (power 1) with label noise
:math:`\sigma^2 \in \{0, 0.5, 2, 5\}`. The theory (eigenlearning / replica) is

.. math:: E_g = \mathcal E_0\Bigl[\sum_l (1-\mathcal L_l)^2 v_l^2 + \sigma^2\Bigr] - \sigma^2,
          \qquad \mathcal E_0 = \frac{P}{P - \sum_l N_l \mathcal L_l^2},

with :math:`\mathcal L_l = \lambda_l/(\lambda_l+\kappa)` and :math:`\kappa` from
:math:`\sum_l N_l\mathcal L_l = P`. The noise term :math:`(\mathcal E_0-1)\sigma^2` peaks
where the variance factor :math:`\mathcal E_0` does, i.e. where P crosses the number of modes
learned so far: near :math:`1 + N(25,1) = 26` and :math:`26 + N(25,2) = 350`, shifted to larger P
by the effective regularisation of the unlearned modes, :math:`\tilde\lambda_l =
\sum_{k>l}N_k\lambda_k / (N_l\lambda_l)` (the paper's analysis of non-monotonic curves).
Below a noise threshold the first peak is absent. Panel (b): the mode errors

.. math:: E_l = (1-\mathcal L_l)^2 v_l^2 + \frac{N_l\mathcal L_l^2}{P}\,\mathcal E_0\,(B+\sigma^2)

for power 1 in each of degrees 1, 2 and 4 with :math:`\sigma^2 = 0.5`. Experiments: exact kernel
regression (``fc.empirical_learning_curve``), mean ± standard error over trials, with the exact
per-degree projection of the fit for panel (b).
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
    local_extrema,
    log_grid,
    new_figure,
    subseed,
    theory_and_experiment,
)

NAME = "canatar2021"
D = 25
LMAX = 40
NOISES = (0.0, 0.5, 2.0, 5.0)
MIXED = {1: 1.0, 2: 1.0, 4: 1.0}
MIXED_NOISE = 0.5
THEORY_P = (2, 30_000)


@dataclass(frozen=True)
class _Size:
    trials: int
    P: tuple[int, ...]
    mixed_trials: int
    mixed_P: tuple[int, ...]
    n_test: int


_FULL = _Size(
    trials=30,
    P=(3, 5, 8, 12, 16, 20, 26, 30, 35, 45, 60, 90, 150, 250, 320, 350, 420, 500, 700, 1000, 1500, 2500),
    mixed_trials=20,
    mixed_P=(5, 10, 15, 20, 30, 40, 60, 80, 120, 160, 250, 320, 450, 640, 1000, 1500, 2500),
    n_test=2000,
)
_QUICK = _Size(
    trials=12,
    P=(3, 8, 16, 26, 40, 60, 100, 150, 250, 420, 600, 1000),
    mixed_trials=10,
    mixed_P=(5, 10, 20, 40, 80, 160, 320, 640, 1000),
    n_test=1000,
)


def _measured_rise(P: np.ndarray, y: np.ndarray, se: np.ndarray) -> dict[str, float]:
    """Second-peak check on the measurements: minimum over 90 <= P <= 250 (the theory's dip)
    against the maximum over 320 <= P <= 700 (its peak), z = rise / sqrt(se1^2 + se2^2)."""
    lo = np.flatnonzero((P >= 90) & (P <= 250))
    hi = np.flatnonzero((P >= 320) & (P <= 700))
    if lo.size == 0 or hi.size == 0:
        return {}
    i = lo[np.argmin(y[lo])]
    j = hi[np.argmax(y[hi])]
    return {
        "P_min": float(P[i]),
        "min": float(y[i]),
        "P_max": float(P[j]),
        "max": float(y[j]),
        "z": float((y[j] - y[i]) / np.hypot(se[i], se[j])),
    }


def make(out_dir: Path, *, quick: bool, seed: int, progress: bool) -> FigureResult:
    """Compute and write the figure (see the module docstring)."""
    log = Progress(NAME, progress)
    size = _QUICK if quick else _FULL
    kernel = fc.ntk_kernel(fc.MLP(1, "relu", 2.0, 0.0))
    spec = fc.spectrum(kernel, D, LMAX)
    lam = spec.eigenvalues
    mult = np.array([fc.multiplicity(D, l) for l in range(LMAX + 1)], dtype=float)
    mass = lam * mult
    tail = float(spec.tail_mass)
    # effective regularisation of the degree-l modes by the unlearned higher ones (ridge 0)
    lam_tilde = {l: (float(mass[l + 1 :].sum()) + tail) / float(mass[l]) for l in (1, 2)}
    Pt = log_grid(*THEORY_P, 400)
    Pe = np.array(size.P, dtype=float)
    table = CurveTable()
    fig, (ax, ax2) = new_figure(2, 6.4, 4.9)
    colours = ("tab:blue", "tab:orange", "tab:red", "tab:purple")

    peaks: dict[str, list[float]] = {}
    minima: dict[str, list[float]] = {}
    per_curve: dict[str, dict] = {}
    parts = []
    rises: dict[str, dict] = {}
    overfitting = None
    for k, (s2, col) in enumerate(zip(NOISES, colours, strict=True)):
        target = fc.Target.from_degree_powers({1: 1.0}, noise=s2, d=D)
        th = fc.learning_curve(spec, target, Pt, ridge=0.0)
        th_e = fc.learning_curve(spec, target, Pe, ridge=0.0)
        if overfitting is None:
            overfitting = th.overfitting
        log(f"noise {s2:g}: {size.trials} trials of kernel regression up to P = {int(Pe.max())}")
        emp = fc.empirical_learning_curve(
            kernel,
            target,
            Pe,
            d=D,
            ridge=0.0,
            trials=size.trials,
            seed=subseed(seed, 1, k),
            n_test=size.n_test,
            per_degree=False,
        )
        ag = agreement(th_e.test_error, emp.test_error, emp.test_error_sem)
        parts.append(ag)
        key = f"{s2:g}"
        curve = f"noise={key}"
        per_curve[curve] = agreement_stats([ag])
        peaks[key] = [p for p, _ in local_extrema(Pt, th.test_error, "max")]
        minima[key] = [p for p, _ in local_extrema(Pt, th.test_error, "min")]
        if s2 > 0:
            rises[key] = _measured_rise(Pe, emp.test_error, emp.test_error_sem)
        table.theory("a", curve, Pt, th.test_error)
        table.points("a", curve, "kernel_regression", Pe, emp.test_error, emp.test_error_sem, th_e.test_error)
        ax.plot(Pt, th.test_error, "-", color=col, lw=1.5, label=f"theory, σ² = {key}")
        ax.errorbar(
            Pe, emp.test_error, yerr=emp.test_error_sem, fmt="o", ms=3.5, color=col, capsize=2, elinewidth=1
        )
        for p, e in local_extrema(Pt, th.test_error, "max"):
            ax.plot([p], [e * 1.25], "v", color=col, ms=6)
    n1 = 1 + fc.multiplicity(D, 1)
    n2 = n1 + fc.multiplicity(D, 2)
    for p, txt in ((n1, f" 1 + N(25,1) = {n1}"), (n2, f" 26 + N(25,2) = {n2}")):
        ax.axvline(p, color="grey", ls=":", lw=0.8)
        ax.text(
            p,
            0.02,
            txt,
            color="grey",
            fontsize=8,
            rotation=90,
            va="bottom",
            transform=ax.get_xaxis_transform(),
        )
    ax.plot([], [], "o", color="grey", label=f"kernel regression ({size.trials} trials)")
    ax.plot([], [], "v", color="grey", label="local maxima of the theory")
    ax.set(
        xscale="log",
        yscale="log",
        ylim=(3e-3, 6),
        xlabel="P (training samples)",
        ylabel="$E_g$ (against the clean target)",
        title="(a) degree-1 target, ridgeless, label noise σ²",
    )
    ax.legend(fontsize=8)

    # (b) mode-wise errors for power in several degrees
    target = fc.Target.from_degree_powers(MIXED, noise=MIXED_NOISE, d=D)
    Pm = np.array(size.mixed_P, dtype=float)
    log(f"mixed target: {size.mixed_trials} trials with per-degree errors up to P = {int(Pm.max())}")
    th, th_e, emp = theory_and_experiment(
        kernel, spec, target, Pt, Pm, d=D, trials=size.mixed_trials, seed=subseed(seed, 2), n_test=size.n_test
    )
    mode_parts = {}
    mode_colours = {1: "tab:blue", 2: "tab:orange", 4: "tab:green"}
    mode_peaks: dict[str, list[float]] = {}
    for j, l in enumerate(emp.degrees):
        m, s = emp.error_per_degree[:, j], emp.error_per_degree_sem[:, j]
        ag = agreement(th_e.error_per_degree[:, l], m, s)
        mode_parts[f"E_{l}"] = ag
        mode_peaks[str(l)] = [p for p, _ in local_extrema(Pt, th.error_per_degree[:, l], "max")]
        table.theory("b", f"E_{l}", Pt, th.error_per_degree[:, l])
        table.points("b", f"E_{l}", "kernel_regression", Pm, m, s, th_e.error_per_degree[:, l])
        ax2.plot(Pt, th.error_per_degree[:, l], "-", color=mode_colours[l], lw=1.5, label=f"theory $E_{l}$")
        ax2.errorbar(Pm, m, yerr=s, fmt="o", ms=3.5, color=mode_colours[l], capsize=2, elinewidth=1)
    ag = agreement(th_e.test_error, emp.test_error, emp.test_error_sem)
    mode_parts["E_g"] = ag
    table.theory("b", "E_g", Pt, th.test_error)
    table.points("b", "E_g", "kernel_regression", Pm, emp.test_error, emp.test_error_sem, th_e.test_error)
    ax2.plot(Pt, th.test_error, "--", color="black", lw=1.2, label="theory total $E_g$")
    ax2.errorbar(Pm, emp.test_error, yerr=emp.test_error_sem, fmt="s", ms=3.5, color="black", capsize=2)
    ax2.plot(
        [], [], "o", color="grey", label=f"kernel regression, exact projection ({size.mixed_trials} trials)"
    )
    ax2.set(
        xscale="log",
        yscale="log",
        ylim=(1e-3, 5),
        xlabel="P",
        ylabel="mode error $E_l$",
        title=f"(b) power 1 in each of l = 1, 2, 4, σ² = {MIXED_NOISE:g}: mode-wise errors",
    )
    ax2.legend(fontsize=8)
    fig.suptitle(
        "Canatar, Bordelon & Pehlevan 2021: NTK of a 1-hidden-layer ReLU network (no bias), d = 25",
        fontsize=11,
    )

    assert overfitting is not None
    summary = {
        "quick": quick,
        "seed": seed,
        "d": D,
        "noises": list(NOISES),
        "trials": size.trials,
        "P_experiment": list(size.P),
        "reference_peaks": {"1+N(d,1)": n1, "1+N(d,1)+N(d,2)": n2},
        "theory_peaks": peaks,
        "theory_minima": minima,
        "overfitting_peaks": [p for p, _ in local_extrema(Pt, overfitting, "max")],
        "effective_regularisation": lam_tilde,
        "measured_second_peak_rise": rises,
        "agreement": {**per_curve, "all": agreement_stats(parts)},
        "mode_errors": {
            "target_powers": MIXED,
            "noise": MIXED_NOISE,
            "trials": size.mixed_trials,
            "P_experiment": list(size.mixed_P),
            "theory_peaks": mode_peaks,
            "agreement": {
                **{k: agreement_stats([v]) for k, v in mode_parts.items()},
                "all": agreement_stats(mode_parts.values()),
            },
        },
        "median_rel_error": agreement_stats([*parts, *mode_parts.values()])["median_rel_error"],
        "fraction_within": agreement_stats([*parts, *mode_parts.values()])["fraction_within"],
    }
    return finish(NAME, out_dir, fig, table, summary, log)
