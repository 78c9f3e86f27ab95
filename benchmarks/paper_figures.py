"""Reproduce two published learning-curve figures with fieldcurve: theory and kernel regression.

Usage::

    python benchmarks/paper_figures.py [--quick] [--outdir docs/figures] [--only canatar|bordelon]

(a) Canatar, Bordelon & Pehlevan, Nat. Commun. 12, 2914 (2021), "Spectral bias and task-model
    alignment explain generalization in kernel regression and infinitely wide neural networks":
    one-hidden-layer bias-free ReLU NTK (``fc.MLP(1, "relu", 2.0, 0.0)``), d = 25, a pure
    degree-1 target (power 1), ridgeless, label noise sigma^2 in {0, 0.5, 2}. Noise makes the
    curve non-monotonic: peaks where P crosses the number of modes learned so far,
    1 + N(25, 1) = 26 and 26 + N(25, 2) = 350 (odd degrees >= 3 have lambda = 0 for this kernel).
(b) Bordelon, Canatar & Pehlevan, ICML 2020, "Spectrum dependent learning curves in kernel
    regression and wide neural networks": 3-hidden-layer bias-free ReLU NTK in d = 10, pure-degree
    targets l = 1, 2, 4 (power 1, ridgeless, no noise), and a mixed target with power 1 in each of
    l = 1, 2, 4 with its per-degree errors E_l (spectral bias: degree 1 is learned first).

Theory: ``fc.learning_curve``; experiments: ``fc.empirical_learning_curve`` (exact kernel
regression, mean +- standard error over trials, fixed seeds). Writes a PNG and a CSV per figure
and ``paper_figures.md`` (agreement table) to ``--outdir``. As in accuracy_learning_curves.py,
``OPENBLAS_NUM_THREADS`` defaults to 1 (BLAS threads competing with other processes on the
2 cores slow the Cholesky factorisations down by up to 10x).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import fieldcurve as fc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
REL_TOL, Z_TOL = 0.15, 3.0
N_TEST = 2000
LMAX = 40

CANATAR = {
    "d": 25,
    "noises": (0.0, 0.5, 2.0),
    "theory_P": (3, 30_000),
    "P": {
        "full": (
            3,
            5,
            8,
            12,
            16,
            20,
            23,
            26,
            30,
            35,
            45,
            60,
            90,
            150,
            250,
            320,
            350,
            400,
            500,
            700,
            1000,
            1500,
            2500,
            4000,
        ),
        "quick": (3, 8, 16, 26, 35, 60, 150, 350, 500, 1000),
    },
    "trials": {"full": 40, "quick": 8},
    "seed": 2021,
}
BORDELON = {
    "d": 10,
    "pure_degrees": (1, 2, 4),
    "mixed": {1: 1.0, 2: 1.0, 4: 1.0},
    "theory_P": (2, 20_000),
    "P": {
        "full": (5, 10, 20, 40, 80, 160, 320, 640, 1280, 2500, 4000),
        "quick": (5, 20, 80, 320, 1000),
    },
    "trials": {"full": 30, "quick": 6},
    "seed": 2020,
}


def log(t0: float, msg: str) -> None:
    print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def agreement(theory: np.ndarray, measured: np.ndarray, sem: np.ndarray) -> dict:
    rel = np.abs(theory - measured) / measured
    z = np.abs(theory - measured) / np.where(sem > 0, sem, np.nan)
    ok = (rel <= REL_TOL) | (z <= Z_TOL)
    return {"rel": rel, "z": z, "ok": ok}


def theory_grid(lo: int, hi: int, n: int = 400) -> np.ndarray:
    return np.unique(np.round(np.geomspace(lo, hi, n)))


def local_maxima(P: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
    i = np.flatnonzero((y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:])) + 1
    return [(float(P[j]), float(y[j])) for j in i]


def measured_rise(P: np.ndarray, y: np.ndarray, se: np.ndarray) -> dict:
    """Second-peak check: the measured minimum over 90 <= P <= 250 (the theory's dip) against the
    measured maximum over 320 <= P <= 700 (the theory's peak near 26 + N(25,2) = 350)."""
    lo = np.flatnonzero((P >= 90) & (P <= 250))
    hi = np.flatnonzero((P >= 320) & (P <= 700))
    if lo.size == 0 or hi.size == 0:
        return {}
    i = lo[np.argmin(y[lo])]
    j = hi[np.argmax(y[hi])]
    return {
        "P_min": int(P[i]),
        "min": float(y[i]),
        "se_min": float(se[i]),
        "P_max": int(P[j]),
        "max": float(y[j]),
        "se_max": float(se[j]),
        "z": float((y[j] - y[i]) / np.hypot(se[i], se[j])),
    }


# ----------------------------------------------------------------------------- (a) Canatar 2021
def canatar(mode: str, outdir: Path, t0: float) -> dict:
    cfg = CANATAR
    d = cfg["d"]
    kernel = fc.ntk_kernel(fc.MLP(1, "relu", 2.0, 0.0))
    spec = fc.spectrum(kernel, d, LMAX)
    log(
        t0,
        f"(a) spectrum d={d} lmax={LMAX}: lambda_0..4 = "
        + ", ".join(f"{x:.3g}" for x in spec.eigenvalues[:5]),
    )
    Pt = theory_grid(*cfg["theory_P"])
    Pe = np.array(cfg["P"][mode])
    trials = cfg["trials"][mode]
    curves = []
    for k, s2 in enumerate(cfg["noises"]):
        tgt = fc.Target.from_degree_powers({1: 1.0}, noise=s2, d=d)
        th = fc.learning_curve(spec, tgt, Pt, ridge=0.0)
        th_e = fc.learning_curve(spec, tgt, Pe, ridge=0.0)
        emp = fc.empirical_learning_curve(
            kernel,
            tgt,
            Pe,
            d=d,
            ridge=0.0,
            trials=trials,
            seed=cfg["seed"] + k,
            n_test=N_TEST,
            per_degree=False,
        )
        ag = agreement(th_e.test_error, emp.test_error, emp.test_error_sem)
        curves.append(
            {
                "noise": s2,
                "Pt": Pt,
                "theory": th.test_error,
                "Pe": Pe,
                "theory_e": th_e.test_error,
                "measured": emp.test_error,
                "sem": emp.test_error_sem,
                **ag,
                "peaks": local_maxima(Pt, th.test_error),
                "minima": local_maxima(Pt, -th.test_error),
                "rise": measured_rise(Pe, emp.test_error, emp.test_error_sem) if s2 > 0 else {},
                "jitter": emp.meta.get("max_jitter", 0.0),
            }
        )
        log(
            t0,
            f"(a) sigma^2 = {s2:g}: {trials} trials, median rel. err. {np.median(ag['rel']):.1%},"
            f" {int(ag['ok'].sum())}/{len(ag['ok'])} within 15% or 3 SE; theory peaks at P ="
            f" {[int(p) for p, _ in curves[-1]['peaks']]}",
        )

    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    colours = ("tab:blue", "tab:orange", "tab:red")
    for c, col in zip(curves, colours, strict=True):
        ax.plot(c["Pt"], c["theory"], "-", color=col, lw=1.5, label=f"theory, σ² = {c['noise']:g}")
        ax.errorbar(
            c["Pe"],
            c["measured"],
            yerr=c["sem"],
            fmt="o",
            ms=4,
            color=col,
            elinewidth=1,
            capsize=2,
            label=f"kernel regression, σ² = {c['noise']:g} ({trials} trials)",
        )
    for p, txt in ((26, " P = 1 + N(25,1) = 26"), (350, " P = 26 + N(25,2) = 350")):
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
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="P (training samples)",
        ylabel="$E_g$ (clean target)",
        title="Canatar, Bordelon & Pehlevan 2021: ReLU NTK (1 hidden layer, no bias), d = 25,\n"
        "degree-1 target, ridgeless, label noise σ²",
    )
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    png = outdir / "canatar2021_double_descent.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    with (outdir / "canatar2021_double_descent.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "noise", "P", "test_error", "sem", "theory_at_P", "rel_error"])
        for c in curves:
            for p, e in zip(c["Pt"], c["theory"], strict=True):
                w.writerow(["theory", c["noise"], int(p), f"{e:.8g}", "", "", ""])
            for i, p in enumerate(c["Pe"]):
                w.writerow(
                    [
                        "kernel_regression",
                        c["noise"],
                        int(p),
                        f"{c['measured'][i]:.8g}",
                        f"{c['sem'][i]:.4g}",
                        f"{c['theory_e'][i]:.8g}",
                        f"{c['rel'][i]:.4g}",
                    ]
                )
    return {"curves": curves, "png": png, "trials": trials, "spectrum": spec}


# ----------------------------------------------------------------------------- (b) Bordelon 2020
def bordelon(mode: str, outdir: Path, t0: float) -> dict:
    cfg = BORDELON
    d = cfg["d"]
    kernel = fc.ntk_kernel(fc.MLP(3, "relu", 2.0, 0.0))
    spec = fc.spectrum(kernel, d, LMAX)
    Pt = theory_grid(*cfg["theory_P"])
    Pe = np.array(cfg["P"][mode])
    trials = cfg["trials"][mode]
    pure = []
    for k, l in enumerate(cfg["pure_degrees"]):
        tgt = fc.Target.from_degree_powers({l: 1.0}, d=d)
        th = fc.learning_curve(spec, tgt, Pt)
        th_e = fc.learning_curve(spec, tgt, Pe)
        emp = fc.empirical_learning_curve(
            kernel, tgt, Pe, d=d, trials=trials, seed=cfg["seed"] + k, n_test=N_TEST, per_degree=False
        )
        ag = agreement(th_e.test_error, emp.test_error, emp.test_error_sem)
        pure.append(
            {
                "degree": l,
                "theory": th.test_error,
                "theory_e": th_e.test_error,
                "measured": emp.test_error,
                "sem": emp.test_error_sem,
                **ag,
            }
        )
        log(
            t0,
            f"(b) pure degree {l}: median rel. err. {np.median(ag['rel']):.1%},"
            f" {int(ag['ok'].sum())}/{len(ag['ok'])} within 15% or 3 SE",
        )
    tgt = fc.Target.from_degree_powers(cfg["mixed"], d=d)
    th = fc.learning_curve(spec, tgt, Pt)
    th_e = fc.learning_curve(spec, tgt, Pe)
    emp = fc.empirical_learning_curve(
        kernel,
        tgt,
        Pe,
        d=d,
        trials=trials,
        seed=cfg["seed"] + 10,
        n_test=N_TEST,
        per_degree=True,
        spectrum_for_degrees=spec,
    )
    mixed = {
        "total": {
            "theory": th.test_error,
            "theory_e": th_e.test_error,
            "measured": emp.test_error,
            "sem": emp.test_error_sem,
            **agreement(th_e.test_error, emp.test_error, emp.test_error_sem),
        }
    }
    for j, l in enumerate(emp.degrees):
        m, s = emp.error_per_degree[:, j], emp.error_per_degree_sem[:, j]
        mixed[l] = {
            "theory": th.error_per_degree[:, l],
            "theory_e": th_e.error_per_degree[:, l],
            "measured": m,
            "sem": s,
            **agreement(th_e.error_per_degree[:, l], m, s),
        }
    log(
        t0,
        "(b) mixed target: "
        + "; ".join(
            f"{k}: median rel. err. {np.median(v['rel']):.1%}, {int(v['ok'].sum())}/{len(v['ok'])} ok"
            for k, v in mixed.items()
        ),
    )

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.5, 5.0))
    colours = {1: "tab:blue", 2: "tab:orange", 4: "tab:green", "total": "black"}
    for c in pure:
        col = colours[c["degree"]]
        ax.plot(Pt, c["theory"], "-", color=col, lw=1.5, label=f"theory, pure degree {c['degree']}")
        ax.errorbar(
            Pe,
            c["measured"],
            yerr=c["sem"],
            fmt="o",
            ms=4,
            color=col,
            capsize=2,
            label=f"kernel regression, degree {c['degree']} ({trials} trials)",
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="P",
        ylabel="$E_g$ / $v_l^2$",
        ylim=(1e-4, 2),
        title="pure-degree targets (power 1), ridgeless, no noise",
    )
    ax.legend(fontsize=8)
    for key, v in mixed.items():
        col = colours[key]
        name = "total $E_g$" if key == "total" else f"$E_{key}$"
        ax2.plot(Pt, v["theory"], "-" if key != "total" else "--", color=col, lw=1.5, label=f"theory {name}")
        ax2.errorbar(Pe, v["measured"], yerr=v["sem"], fmt="o", ms=4, color=col, capsize=2)
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="P",
        ylabel="error",
        ylim=(1e-4, 4),
        title="mixed target, power 1 in each of l = 1, 2, 4: per-degree errors\n"
        "(points: kernel regression, exact per-degree projection)",
    )
    ax2.legend(fontsize=8)
    fig.suptitle("Bordelon, Canatar & Pehlevan 2020: 3-hidden-layer ReLU NTK (no bias), d = 10", fontsize=11)
    fig.tight_layout()
    png = outdir / "bordelon2020_spectral_bias.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    with (outdir / "bordelon2020_spectral_bias.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["target", "quantity", "source", "P", "value", "sem", "theory_at_P", "rel_error"])
        rows = [(f"pure l={c['degree']}", "E_g", c) for c in pure]
        rows += [("mixed l=1,2,4", "E_g" if k == "total" else f"E_{k}", v) for k, v in mixed.items()]
        for name, q, v in rows:
            for p, e in zip(Pt, v["theory"], strict=True):
                w.writerow([name, q, "theory", int(p), f"{e:.8g}", "", "", ""])
            for i, p in enumerate(Pe):
                w.writerow(
                    [
                        name,
                        q,
                        "kernel_regression",
                        int(p),
                        f"{v['measured'][i]:.8g}",
                        f"{v['sem'][i]:.4g}",
                        f"{v['theory_e'][i]:.8g}",
                        f"{v['rel'][i]:.4g}",
                    ]
                )
    return {"pure": pure, "mixed": mixed, "png": png, "trials": trials, "P": Pe}


# ----------------------------------------------------------------------------- report
def _row(name: str, v: dict) -> str:
    return (
        f"| {name} | {np.median(v['rel']):.1%} | {np.max(v['rel']):.1%} |"
        f" {int(v['ok'].sum())}/{len(v['ok'])} |"
    )


def _all_row(rel: np.ndarray, ok: np.ndarray) -> str:
    return f"| **all** | **{np.median(rel):.1%}** | {np.max(rel):.1%} | {int(ok.sum())}/{len(ok)} |"


def report(a: dict | None, b: dict | None, mode: str, elapsed: float) -> str:
    lines = [
        f"# Paper figures ({mode} run, {elapsed:.0f} s)",
        "",
        "Relative error = |theory − measured| / measured at the experimental P values; a point"
        " agrees if within 15% or 3 standard errors.",
        "",
    ]
    if a is not None:
        rel = np.concatenate([c["rel"] for c in a["curves"]])
        ok = np.concatenate([c["ok"] for c in a["curves"]])
        lines += [
            "## (a) Canatar, Bordelon & Pehlevan 2021",
            "",
            f"![Canatar 2021]({a['png'].name}) — data: `canatar2021_double_descent.csv`",
            "",
            "| curve | median rel. err. | max rel. err. | within 15% or 3 SE |",
            "|---|---|---|---|",
        ]
        lines += [_row(f"σ² = {c['noise']:g}", c) for c in a["curves"]]
        lines += [_all_row(rel, ok), "", "Local maxima of the theory curve (P, E_g):", ""]
        for c in a["curves"]:
            pk = ", ".join(f"P = {p:.0f}: {e:.3g}" for p, e in c["peaks"]) or "none (monotone)"
            mn = ", ".join(f"P = {p:.0f}: {-e:.3g}" for p, e in c["minima"])
            lines.append(f"* σ² = {c['noise']:g}: maxima {pk}" + (f"; minima {mn}" if mn else ""))
        lines += [
            "",
            "Measured rise from the dip (min over 90 ≤ P ≤ 250) to the second peak"
            " (max over 320 ≤ P ≤ 700) for the noisy curves; z = rise / √(SE₁² + SE₂²) (the P"
            " values of one trial share training points, so the two means are correlated):",
            "",
        ]
        for c in a["curves"]:
            r = c["rise"]
            if r:
                lines.append(
                    f"* σ² = {c['noise']:g}: P = {r['P_min']}: {r['min']:.4g} ± {r['se_min']:.2g}"
                    f" → P = {r['P_max']}: {r['max']:.4g} ± {r['se_max']:.2g} (z = {r['z']:+.1f})"
                )
        lines.append("")
    if b is not None:
        rel = np.concatenate([c["rel"] for c in b["pure"]] + [v["rel"] for v in b["mixed"].values()])
        ok = np.concatenate([c["ok"] for c in b["pure"]] + [v["ok"] for v in b["mixed"].values()])
        lines += [
            "## (b) Bordelon, Canatar & Pehlevan 2020",
            "",
            f"![Bordelon 2020]({b['png'].name}) — data: `bordelon2020_spectral_bias.csv`",
            "",
            "| curve | median rel. err. | max rel. err. | within 15% or 3 SE |",
            "|---|---|---|---|",
        ]
        lines += [_row(f"pure degree {c['degree']}: E_g", c) for c in b["pure"]]
        lines += [
            _row("mixed: total E_g" if k == "total" else f"mixed: E_{k}", v) for k, v in b["mixed"].items()
        ]
        lines += [_all_row(rel, ok), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer P values and trials (smoke test)")
    ap.add_argument("--outdir", type=Path, default=ROOT / "docs" / "figures")
    ap.add_argument("--only", choices=("canatar", "bordelon"), default=None)
    args = ap.parse_args(argv)
    mode = "quick" if args.quick else "full"
    args.outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    log(t0, f"{mode} run, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    a = canatar(mode, args.outdir, t0) if args.only in (None, "canatar") else None
    b = bordelon(mode, args.outdir, t0) if args.only in (None, "bordelon") else None
    text = report(a, b, mode, time.perf_counter() - t0)
    (args.outdir / "paper_figures.md").write_text(text)
    print(text)
    log(t0, f"wrote {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
