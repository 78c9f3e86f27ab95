r"""Cohen, Malka & Ringel, Phys. Rev. Research 3, 023034 (2021), "Learning curves for
overparameterized deep neural networks: a field theory perspective": the equivalent kernel (EK)
and its renormalised form (rEK) against GP regression and the eigenlearning / replica result.

Setting: GP regression (kernel ridge regression with ridge :math:`\delta = \sigma^2`, the noise
variance, i.e. the posterior mean) with the NNGP kernel of a 2-hidden-layer ReLU network with
bias (``fc.MLP(2, "relu", 2.0, 0.1)``) on the :math:`\sqrt{10}`-sphere; target the cubic
polynomial :math:`f^*(x) = x_1 + x_2x_3 + x_4x_5x_6` (exact power per degree from
``fc.Target.from_polynomial``: 1, 10/12 and 100/168 in degrees 1, 2, 3), noise
:math:`\sigma^2 \in \{0.1, 1\}`. Predictions (``fc.equivalent_kernel_curve``,
``fc.learning_curve``), with :math:`\mathcal L_l = \lambda_l/(\lambda_l+\kappa)`:

.. math::
    E_g^{EK} = \sum_l\Bigl[(1-\mathcal L_l)^2v_l^2 + \sigma^2\frac{N_l\mathcal L_l^2}{P}\Bigr],
    \qquad \kappa_{EK} = \frac{\delta}{P},\qquad
    \kappa_{rEK} = \frac{\delta + \sum_{i:\lambda_i<\kappa_{rEK}} m_i\lambda_i}{P},

(the renormalised EK lets the modes the data cannot resolve act as extra noise), and the
eigenlearning result :math:`E_g = \mathcal E_0[\sum_l(1-\mathcal L_l)^2v_l^2 + \sigma^2]-\sigma^2`
with :math:`P\kappa = \delta + \kappa\sum_i m_i\lambda_i/(\lambda_i+\kappa)`. The EK forms are
large-P approximations (no variance factor :math:`\mathcal E_0`); they should approach the
experiment as P grows, the rEK faster than the EK. Experiments: exact GP regression
(``fc.empirical_learning_curve``) on random targets with the same power per degree (the
expected error depends on the target only through these powers, by rotation invariance).
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
    log_grid,
    new_figure,
    subseed,
)

NAME = "cohen2021"
D = 10
LMAX = 40
POLYNOMIAL = "x1 + x2*x3 + x4*x5*x6"
NOISES = (0.1, 1.0)
THEORY_P = (5, 100_000)
STYLES = {"eigenlearning": ("-", "black"), "EK": ("--", "tab:blue"), "rEK": ("-.", "tab:orange")}


@dataclass(frozen=True)
class _Size:
    trials: int
    P: tuple[int, ...]
    n_test: int


_FULL = _Size(trials=30, P=(10, 20, 40, 80, 160, 320, 640, 1280, 2500, 4000), n_test=2000)
_QUICK = _Size(trials=10, P=(10, 40, 160, 640, 2000), n_test=1000)


def make(out_dir: Path, *, quick: bool, seed: int, progress: bool) -> FigureResult:
    """Compute and write the figure (see the module docstring)."""
    log = Progress(NAME, progress)
    size = _QUICK if quick else _FULL
    kernel = fc.nngp_kernel(fc.MLP(2, "relu", 2.0, 0.1))
    spec = fc.spectrum(kernel, D, LMAX)
    poly = fc.Target.from_polynomial(POLYNOMIAL, D)
    Pt = log_grid(*THEORY_P, 300)
    Pe = np.array(size.P, dtype=float)
    table = CurveTable()
    fig, axes = new_figure(3, 5.2, 4.6)
    parts: dict[str, list[dict]] = {name: [] for name in STYLES}
    per_noise: dict[str, dict] = {}
    largest_P: dict[str, dict] = {}

    for k, (s2, ax) in enumerate(zip(NOISES, axes[:2], strict=True)):
        target = fc.Target(powers=poly.powers, noise=s2, d=D, name=f"{POLYNOMIAL}, noise {s2:g}")

        def curves(P: np.ndarray, target: fc.Target = target, s2: float = s2) -> dict[str, np.ndarray]:
            return {
                "eigenlearning": fc.learning_curve(spec, target, P, ridge=s2).test_error,
                "EK": fc.equivalent_kernel_curve(spec, target, P, ridge=s2).test_error,
                "rEK": fc.equivalent_kernel_curve(spec, target, P, ridge=s2, renormalised=True).test_error,
            }

        th, th_e = curves(Pt), curves(Pe)
        log(f"noise = ridge = {s2:g}: {size.trials} trials of GP regression up to P = {int(Pe.max())}")
        emp = fc.empirical_learning_curve(
            kernel,
            target,
            Pe,
            d=D,
            ridge=s2,
            trials=size.trials,
            seed=subseed(seed, 1, k),
            n_test=size.n_test,
            per_degree=False,
        )
        panel = f"noise={s2:g}"
        stats = {}
        for name, (fmt, col) in STYLES.items():
            ag = agreement(th_e[name], emp.test_error, emp.test_error_sem)
            parts[name].append(ag)
            stats[name] = agreement_stats([ag])
            table.theory(panel, name, Pt, th[name])
            ax.plot(Pt, th[name], fmt, color=col, lw=1.5, label=name)
            ratio = th_e[name] / emp.test_error - 1
            table.points(
                "relative_error",
                f"{name} noise={s2:g}",
                "theory_over_experiment",
                Pe,
                ratio,
                th_e[name] * emp.test_error_sem / emp.test_error**2,
            )
            axes[2].plot(Pe, ratio, fmt, color=col, marker="o" if k == 0 else "s", ms=4, lw=1)
        largest_P[panel] = {
            "P": float(Pe[-1]),
            **{name: float(abs(th_e[name][-1] / emp.test_error[-1] - 1)) for name in STYLES},
        }
        per_noise[panel] = stats
        table.points(
            panel,
            "GP regression",
            "kernel_regression",
            Pe,
            emp.test_error,
            emp.test_error_sem,
            th_e["eigenlearning"],
        )
        ax.errorbar(
            Pe,
            emp.test_error,
            yerr=emp.test_error_sem,
            fmt="o",
            color="tab:red",
            ms=4,
            capsize=2,
            label=f"GP regression ({size.trials} trials)",
        )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="P",
            ylabel="$E_g$",
            title=f"({'ab'[k]}) noise σ² = ridge = {s2:g}",
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    ax = axes[2]
    ax.axhline(0, color="grey", lw=0.8)
    for name, (fmt, col) in STYLES.items():
        ax.plot([], [], fmt, color=col, label=name)
    ax.plot([], [], "o", color="grey", label=f"σ² = {NOISES[0]:g}")
    ax.plot([], [], "s", color="grey", label=f"σ² = {NOISES[1]:g}")
    ax.set(
        xscale="log", xlabel="P", ylabel="theory / experiment − 1", title="(c) relative error of each theory"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.suptitle(
        "Cohen, Malka & Ringel 2021: EK and renormalised EK, NNGP of a 2-hidden-layer ReLU network,"
        f" d = {D}, target $x_1 + x_2x_3 + x_4x_5x_6$"
    )
    summary = {
        "quick": quick,
        "seed": seed,
        "d": D,
        "target_powers": poly.powers,
        "noises": list(NOISES),
        "trials": size.trials,
        "P_experiment": list(size.P),
        "agreement": {**per_noise, "all": {name: agreement_stats(p) for name, p in parts.items()}},
        "median_rel_error": {name: agreement_stats(p)["median_rel_error"] for name, p in parts.items()},
        "rel_error_at_largest_P": largest_P,
    }
    return finish(NAME, out_dir, fig, table, summary, log)
