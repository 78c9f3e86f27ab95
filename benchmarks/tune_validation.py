"""Does the configuration chosen by theory train as well as the best one of the grid?

For each task, a grid of network configurations (depth x activation x weight variance) is
(a) ranked by the infinite-width GD prediction (`fieldcurve.network_learning_curve` /
`dataset_learning_curve`, what `fieldcurve tune` optimises) and (b) trained for real: width-512
networks, full-batch gradient descent to convergence from standard initialisation
(`fieldcurve.validation`), `--seeds` data sets per configuration. Reported per task: the trained
test error of the theory's choice against the best trained configuration (goal: within 10%), the
rank correlation between predicted and trained errors, and the cost ratio theory / training.

Usage: ``python benchmarks/tune_validation.py [--seeds 2] [--only NAME]``; writes
``benchmarks/tune_validation.md``.
"""

from __future__ import annotations

import argparse
import itertools
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import fieldcurve as fc
from fieldcurve.validation.config import load_config
from fieldcurve.validation.runner import execute_run

OUT = Path(__file__).with_suffix(".md")
GRID = {"depth": (1, 2), "activation": ("relu", "erf"), "weight_var": (0.5, 1.0, 2.0, 4.0)}
BIAS_VAR = 0.1
WIDTH = 512
TASKS = {
    "low_degree": {"target": {"d": 10, "powers": {"1": 1.0, "2": 0.5}, "noise": 0.05}, "P": 100},
    "high_degree": {"target": {"d": 10, "powers": {"2": 0.5, "3": 1.0}, "noise": 0.05}, "P": 200},
    "digits": {"target": {"dataset": "digits"}, "P": 200},
}


def predicted(task: dict, depth: int, act: str, wv: float) -> float:
    mlp = fc.MLP(depth, act, wv, BIAS_VAR)
    P = task["P"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if "powers" in task["target"]:
            t = task["target"]
            target = fc.Target.from_degree_powers(
                {int(k): v for k, v in t["powers"].items()}, noise=t["noise"], d=t["d"]
            )
            return float(fc.network_learning_curve(mlp, target, [P], regime="gd", lmax=20).test_error[0])
        from fieldcurve.data import load_digits

        data = load_digits()
        spec = fc.dataset_spectrum(fc.ntk_kernel(mlp), data, init_kernel=fc.nngp_kernel(mlp))
        return float(fc.dataset_learning_curve(spec, [P]).test_error[0])


def trained(task: dict, depth: int, act: str, wv: float, seeds: int) -> list[float]:
    cfg = {
        "experiment": {"name": "tune_validation", "seed": 7},
        "network": {
            "depth": depth,
            "activation": act,
            "weight_var": wv,
            "bias_var": BIAS_VAR,
            "width": WIDTH,
        },
        "training": {"method": "gd", "tol": 1e-5, "max_steps": 50_000, "dtype": "float32"},
        "target": task["target"],
        "sweep": {"P": [task["P"]], "seeds": seeds, "n_test": 1000},
    }
    return [execute_run(r)["test_error"] for r in load_config(cfg).runs()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    configs = list(itertools.product(*GRID.values()))
    lines = [
        "# Theory-chosen vs best trained configuration",
        "",
        f"`python benchmarks/tune_validation.py --seeds {args.seeds}`. Grid: depth {GRID['depth']},"
        f" activation {GRID['activation']}, σ_w² {GRID['weight_var']}, σ_b² = {BIAS_VAR}; width {WIDTH},"
        " full-batch GD to convergence (float32) from standard initialisation; test error = mean over"
        f" {args.seeds} data sets (1000 test points; digits: held-out points).",
        "",
        "| task | P | theory's choice | its trained error | best trained | its error | gap | Spearman ρ"
        " (predicted vs trained) | theory time | training time | cost ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    details: list[str] = []
    for name, task in TASKS.items():
        if args.only and name != args.only:
            continue
        t0 = time.perf_counter()
        pred = [predicted(task, *c) for c in configs]
        t_theory = time.perf_counter() - t0
        t0 = time.perf_counter()
        meas = []
        for c in configs:
            errs = trained(task, *c, args.seeds)
            meas.append(float(np.mean(errs)))
            print(name, c, f"predicted {pred[len(meas) - 1]:.4g} trained {meas[-1]:.4g}", flush=True)
        t_train = time.perf_counter() - t0
        choice, best = int(np.argmin(pred)), int(np.argmin(meas))
        rho = spearmanr(pred, meas).statistic
        fmt = lambda c: f"L={c[0]} {c[1]} σ_w²={c[2]:g}"  # noqa: E731
        gap = meas[choice] / meas[best] - 1
        lines.append(
            f"| {name} | {task['P']} | {fmt(configs[choice])} | {meas[choice]:.4g} | {fmt(configs[best])} |"
            f" {meas[best]:.4g} | {gap:+.1%} | {rho:.2f} | {t_theory:.1f} s | {t_train:.0f} s |"
            f" {t_theory / t_train:.2g} |"
        )
        details += ["", f"{name}: predicted / trained per configuration:", ""]
        details += [f"- {fmt(c)}: {p:.4g} / {m:.4g}" for c, p, m in zip(configs, pred, meas, strict=True)]
        OUT.write_text("\n".join(lines + details) + "\n")  # after every task: nothing lost
        print("\n".join(lines + details), flush=True)


if __name__ == "__main__":
    main()
