r"""Xiao, Hu, Misiakiewicz, Lu & Pennington, NeurIPS 2022, "Precise learning curves and
higher-order scaling limits for dot product kernel regression": multiple descent in the
polynomial regime :math:`P \sim d^k`.

Kernel: :math:`k(t) = e^{t/2}` of the cosine :math:`t = x\cdot x'/d` (``fc.exponential_kernel(2.0)``),
whose degree-l eigenspace carries the mass :math:`N(d,l)\lambda_l \approx 2^{-l}/l!` at large d;
target with power 1 in each of degrees 1, 2, 3, label noise :math:`\sigma^2 = 1` and a small
ridge :math:`\delta = 10^{-3}`. The theory (``fc.learning_curve``, the eigenlearning / replica
estimate; not the paper's own scaling-limit formulas) solves

.. math:: P\kappa = \delta + \kappa\sum_l N(d,l)\frac{\lambda_l}{\lambda_l+\kappa},\qquad
          E_g = \frac{\sum_l(1-\mathcal L_l)^2v_l^2 + \sigma^2}{1-\gamma} - \sigma^2 .

With :math:`N(d,l) \approx d^l/l!` modes per degree, :math:`\kappa` drops by a factor of
about d each time P passes the number of modes learned so far,
:math:`M_k = \sum_{l\le k}N(d,l)`; there the variance factor :math:`1/(1-\gamma)` peaks and the
noise (and the unlearned higher degrees, which act as noise) produce a peak in :math:`E_g`, at
:math:`P \approx M_1 = 1 + d` and :math:`P \approx M_2 \approx d^2/2`, separated by plateaus
where the next degree is not yet learnable. Panel (a): theory at d = 100 and 200 over
:math:`d^{0.5} \le P \le d^{2.5}`; panel (b): theory against exact kernel ridge regression
(``fc.empirical_learning_curve``) at a small d where :math:`P > M_2` is affordable.
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
)

NAME = "multiple_descent"
SCALE = 2.0
POWERS = {1: 1.0, 2: 1.0, 3: 1.0}
NOISE = 1.0
RIDGE = 1e-3
LMAX = 14
THEORY_DIMS = (100, 200)
COLOURS = {100: "tab:blue", 200: "tab:purple"}


@dataclass(frozen=True)
class _Size:
    d: int
    trials: int
    P: tuple[int, ...]
    n_test: int


_FULL = _Size(
    d=40,
    trials=40,
    P=(10, 20, 30, 41, 50, 70, 100, 150, 250, 400, 600, 860, 1000, 1300, 2000, 3000),
    n_test=2000,
)
_QUICK = _Size(
    d=30,
    trials=20,
    P=(8, 16, 24, 31, 40, 60, 100, 200, 350, 495, 650, 900, 1500),
    n_test=1000,
)


def _modes(d: int) -> tuple[int, int, int, int]:
    """N(d,1), N(d,2) and the cumulative counts M_1 = 1 + N(d,1), M_2 = M_1 + N(d,2)."""
    n1, n2 = fc.multiplicity(d, 1), fc.multiplicity(d, 2)
    return n1, n2, 1 + n1, 1 + n1 + n2


def _theory(d: int, P: np.ndarray) -> fc.LearningCurve:
    spec = fc.spectrum(fc.exponential_kernel(SCALE), d, LMAX)
    target = fc.Target.from_degree_powers(POWERS, noise=NOISE, d=d)
    return fc.learning_curve(spec, target, P, ridge=RIDGE)


def _describe(d: int, P: np.ndarray, E: np.ndarray) -> dict:
    """Local maxima and minima of a theory curve and the first two peaks relative to N(d,k)
    and to the cumulative mode counts M_k."""
    n1, n2, m1, m2 = _modes(d)
    maxima = [p for p, _ in local_extrema(P, E, "max")]
    minima = [p for p, _ in local_extrema(P, E, "min")]
    out = {"N(d,1)": n1, "N(d,2)": n2, "M_1": m1, "M_2": m2, "maxima": maxima, "minima": minima}
    for k, (n, m) in enumerate(((n1, m1), (n2, m2)), start=1):
        # the peak nearest (in log P) to M_k
        if maxima:
            p = min(maxima, key=lambda x, m=m: abs(np.log(x / m)))
            out[f"peak_{k}"] = p
            out[f"peak_{k}/N(d,{k})"] = p / n
            out[f"peak_{k}/M_{k}"] = p / m
        else:
            out[f"peak_{k}"] = None
    return out


def make(out_dir: Path, *, quick: bool, seed: int, progress: bool) -> FigureResult:
    """Compute and write the figure (see the module docstring)."""
    log = Progress(NAME, progress)
    size = _QUICK if quick else _FULL
    table = CurveTable()
    fig, (ax, ax2) = new_figure(2, 6.2, 4.8)
    summary: dict = {
        "quick": quick,
        "seed": seed,
        "kernel": f"exp(t/{SCALE:g})",
        "target_powers": POWERS,
        "noise": NOISE,
        "ridge": RIDGE,
        "theory": {},
    }
    for d in THEORY_DIMS:
        Pt = log_grid(d**0.5, d**2.5, 600)
        th = _theory(d, Pt)
        info = _describe(d, Pt, th.test_error)
        summary["theory"][str(d)] = info
        log(f"theory d = {d}: maxima at P = {[round(p) for p in info['maxima']]}")
        col = COLOURS[d]
        table.theory("theory", f"d={d}", Pt, th.test_error)
        ax.plot(Pt, th.test_error, "-", color=col, lw=1.5, label=f"d = {d}")
        for m in (info["M_1"], info["M_2"]):
            ax.axvline(m, color=col, ls=":", lw=0.9)
        for p in info["maxima"]:
            ax.plot([p], [float(np.interp(p, Pt, th.test_error)) * 1.08], "v", color=col, ms=6)
    ax.plot([], [], ":", color="grey", label="$M_1 = 1+N(d,1)$, $M_2 = M_1+N(d,2)$")
    ax.plot([], [], "v", color="grey", label="local maxima")
    ax.set(
        xscale="log",
        xlabel="P",
        ylabel="$E_g$",
        title="(a) theory, $d^{0.5} \\leq P \\leq d^{2.5}$",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)

    d = size.d
    Pt = log_grid(d**0.5 / 2, 2 * d**2.5, 500)
    Pe = np.array(size.P, dtype=float)
    th = _theory(d, Pt)
    th_e = _theory(d, Pe)
    info = _describe(d, Pt, th.test_error)
    log(f"d = {d}: {size.trials} trials of kernel regression up to P = {int(Pe.max())}")
    emp = fc.empirical_learning_curve(
        fc.exponential_kernel(SCALE),
        fc.Target.from_degree_powers(POWERS, noise=NOISE, d=d),
        Pe,
        d=d,
        ridge=RIDGE,
        trials=size.trials,
        seed=subseed(seed, 1),
        n_test=size.n_test,
        per_degree=False,
    )
    ag = agreement(th_e.test_error, emp.test_error, emp.test_error_sem)
    # measured rise into the second peak: experimental point nearest the theory's dip before
    # M_2 against the one nearest the peak near M_2
    dips = [p for p in info["minima"] if info["M_1"] < p < info["M_2"]]
    rise = {}
    if dips and info["peak_2"] is not None:
        i = int(np.argmin(np.abs(np.log(Pe / dips[-1]))))
        j = int(np.argmin(np.abs(np.log(Pe / info["peak_2"]))))
        e, s = emp.test_error, emp.test_error_sem
        rise = {
            "P_dip": float(Pe[i]),
            "P_peak": float(Pe[j]),
            "dip": float(e[i]),
            "peak": float(e[j]),
            "z": float((e[j] - e[i]) / np.hypot(s[i], s[j])),
        }
    summary["experiment"] = {
        "d": d,
        "trials": size.trials,
        "P_experiment": list(size.P),
        "theory": info,
        "agreement": agreement_stats([ag]),
        "measured_rise_to_second_peak": rise,
    }
    table.theory(f"d={d}", "theory", Pt, th.test_error)
    table.points(
        f"d={d}",
        "kernel_regression",
        "kernel_regression",
        Pe,
        emp.test_error,
        emp.test_error_sem,
        th_e.test_error,
    )
    ax2.plot(Pt, th.test_error, "-", color="black", lw=1.5, label="theory")
    ax2.errorbar(
        Pe,
        emp.test_error,
        yerr=emp.test_error_sem,
        fmt="o",
        color="tab:red",
        ms=4,
        capsize=2,
        label=f"kernel ridge regression ({size.trials} trials)",
    )
    for m, txt in ((info["M_1"], "$M_1$"), (info["M_2"], "$M_2$")):
        ax2.axvline(m, color="grey", ls=":", lw=0.9)
        ax2.text(m, 0.02, " " + txt, color="grey", fontsize=9, transform=ax2.get_xaxis_transform())
    ax2.set(xscale="log", xlabel="P", ylabel="$E_g$", title=f"(b) d = {d}: theory vs experiment")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8)
    fig.suptitle(
        f"Multiple descent (Xiao et al. 2022): kernel $e^{{t/{SCALE:g}}}$, power 1 in degrees 1-3,"
        f" noise σ² = {NOISE:g}, ridge {RIDGE:g}"
    )
    return finish(NAME, out_dir, fig, table, summary, log)
