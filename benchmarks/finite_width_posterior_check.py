"""The O(1/width) Bayesian posterior against the exact finite-width posterior and Langevin chains.

One data set (the width_sweep target: degrees 1 and 2 with power 1 and 0.5, label noise 0.2,
d = 10, P = 20, 200 test points), one-hidden-layer ReLU networks with biases (C_W = 2, C_b = 0.1),
noise variance 0.2. For widths 16 and 32 it measures the posterior mean's test error three ways:

* exact: importance sampling over the hidden weights (prior draws) with the readout integrated
  analytically (given the hidden units the output is a GP with kernel C_b + C_W S S^T / n);
* theory: the GP error plus dE/n from ``fieldcurve.posterior_correction``;
* Langevin: ``fieldcurve validate``'s sampler (4 chains) with 12000 steps (the chain length of the
  width-1024 checks) and with 100000 steps.

Usage: ``python benchmarks/finite_width_posterior_check.py [--draws 200000]`` (about 15 minutes
on 2 cores); writes ``benchmarks/finite_width_posterior_check.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import fieldcurve as fc
from fieldcurve.validation.config import load_config
from fieldcurve.validation.runner import execute_run

OUT = Path(__file__).with_suffix(".md")
CONFIG = {
    "experiment": {"name": "fw_check", "seed": 0, "tolerance": 0.5},
    "network": {"depth": 1, "activation": "relu", "weight_var": 2.0, "bias_var": 0.1, "width": [16, 32]},
    "training": {"method": "langevin", "noise_var": 0.2, "ensemble": 4, "dtype": "float64"},
    "target": {"d": 10, "powers": {"1": 1.0, "2": 0.5}, "noise": 0.2},
    "sweep": {"P": [20], "seeds": 1, "n_test": 200},
}


def exact_posterior_mean(X, y, T, n, draws, seed, chunk=5000):
    """Self-normalised importance sampling over the hidden weights; returns mean and ESS."""
    rng = np.random.default_rng(seed)
    Z = np.concatenate([X, T])
    P, d = len(y), X.shape[1]
    logws, means = [], []
    for _ in range(draws // chunk):
        W = rng.standard_normal((chunk, n, d)) * np.sqrt(2.0 / d)
        b = rng.standard_normal((chunk, n, 1)) * np.sqrt(0.1)
        S = np.maximum(W @ Z.T + b, 0.0)
        K = 0.1 + 2.0 * np.einsum("rki,rkj->rij", S, S) / n
        Kt = K[:, :P, :P] + 0.2 * np.eye(P)
        chol = np.linalg.cholesky(Kt)
        alpha = np.linalg.solve(Kt, np.broadcast_to(y[:, None], (chunk, P, 1)))[..., 0]
        logws.append(-0.5 * alpha @ y - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(1))
        means.append(np.einsum("rti,ri->rt", K[:, P:, :P], alpha))
    logw = np.concatenate(logws)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    return w @ np.concatenate(means), 1.0 / np.sum(w**2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=200_000)
    args = ap.parse_args()
    t0 = time.perf_counter()
    exp = load_config(CONFIG)
    run = exp.runs()[0]
    from fieldcurve.validation.runner import _draw

    X, Y, T, Yt = _draw(run, np.random.default_rng(run.seed))
    y, yt = Y[:, 0], Yt[:, 0]
    mlp = fc.MLP(1, "relu", 2.0, 0.1)
    pc = fc.posterior_correction(
        mlp, X, y, T, noise_var=0.2, width=16, seed=1, y_test=yt, unit_samples=262_144
    )
    rows = []
    for n in (16, 32):
        m, ess = exact_posterior_mean(X, y, T, n, args.draws, seed=n)
        exact = float(np.mean((m - yt) ** 2))
        lang = {}
        for steps, burn, thin in ((12_000, 4_000, 40), (100_000, 20_000, 200)):
            cfg = {
                **CONFIG,
                "training": {**CONFIG["training"], "steps": steps, "burn_in": burn, "thin": thin},
            }
            r = next(r for r in load_config(cfg).runs() if r.width == n)
            lang[steps] = execute_run(r)["test_error"]
        rows.append((n, exact, ess, pc.test_error_gp + pc.test_error_nlo / n, lang[12_000], lang[100_000]))
        print(rows[-1], f"{time.perf_counter() - t0:.0f} s", flush=True)
    e_gp = pc.test_error_gp
    lines = [
        "# O(1/width) posterior vs exact finite-width posterior vs Langevin",
        "",
        f"`python benchmarks/finite_width_posterior_check.py --draws {args.draws}` "
        f"({time.perf_counter() - t0:.0f} s). One-hidden-layer ReLU (C_W = 2, C_b = 0.1), d = 10, P = 20,",
        "noise 0.2, 200 test points; test error of the posterior mean against the clean target.",
        f"GP (infinite width): {e_gp:.5f}; O(1/n) coefficient dE = {pc.test_error_nlo:.4f} ± "
        f"{pc.test_error_nlo_se:.4f}.",
        "",
        "| width | exact (importance sampling) | ESS | theory E_GP + dE/n | Langevin 12k steps"
        " | Langevin 100k |",
        "|---|---|---|---|---|---|",
    ]
    for n, exact, ess, th, l12, l100 in rows:
        lines.append(
            f"| {n} | {exact:.5f} ({exact / e_gp - 1:+.1%}) | {ess:.0f} | {th:.5f} ({th / e_gp - 1:+.1%}) |"
            f" {l12:.5f} ({l12 / e_gp - 1:+.1%}) | {l100:.5f} ({l100 / e_gp - 1:+.1%}) |"
        )
    lines += [
        "",
        "Percentages: gap to the GP on the same data. The 12000-step chains recover only part of",
        "the finite-width gap; 10^5 steps recover it: the finite-width part of the posterior",
        "relaxes slowly, so validation chains must be long (see the width_sweep config).",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
