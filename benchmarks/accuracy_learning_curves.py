"""Accuracy of the predicted learning curves against exact kernel regression.

Usage::

    python benchmarks/accuracy_learning_curves.py            # full run, ~25-35 min on 2 cores
    python benchmarks/accuracy_learning_curves.py --quick    # smoke test, ~2 min
    python benchmarks/accuracy_learning_curves.py --out benchmarks/accuracy_learning_curves.md

For each of 24 configurations (a balanced, near-orthogonal subset of the grid activation x kernel
x depth x d x target mix x noise x ridge x bias, listed in ``CONFIGS``) the eigenlearning theory
(``fieldcurve.learning_curve``) is compared with exact kernel ridge regression
(``fieldcurve.empirical_learning_curve``, >= 30 trials) at P = 10 ... 4000. A point *agrees* if
the theory is within 15% of the measured mean or within 3 standard errors of it. Writes a
Markdown report (``--out``), a CSV of every point, a predicted-vs-measured scatter and a panel of
all learning curves (PNGs under docs/). Progress with elapsed time goes to stderr.

BLAS threads: the Monte Carlo is dominated by Cholesky factorisations, which slow down by up to
10x when two BLAS threads compete with another process for the 2 cores. The script therefore
sets ``OPENBLAS_NUM_THREADS=1`` (and OMP/MKL) unless the variable is already set.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import sysinfo  # noqa: E402

import fieldcurve as fc  # noqa: E402

# ----------------------------------------------------------------------------- the design
#: target mixes: power v_l^2 per degree (degrees 0-3)
MIXES: dict[str, dict[int, float]] = {
    "A": {1: 1.0},
    "B": {0: 0.5, 1: 1.0, 2: 0.5},
    "C": {1: 1.0, 2: 0.5, 3: 0.25},
    "D": {0: 0.2, 1: 0.3, 2: 0.5, 3: 1.0},
}
#: weight variance per activation (NTK parameterisation)
WEIGHT_VAR = {"relu": 2.0, "erf": 1.0}
FACTORS = ("activation", "kind", "depth", "d", "mix", "noise", "ridge", "bias_var")
LEVELS = {
    "activation": ("relu", "erf"),
    "kind": ("ntk", "nngp"),
    "depth": (1, 2, 3, 4),
    "d": (5, 10, 30),
    "mix": ("A", "B", "C", "D"),
    "noise": (0.0, 0.1),
    "ridge": (0.0, 1e-2),
    "bias_var": (0.0, 0.1),
}
#: 24 configurations: every factor column is balanced (each level 24/#levels times) and the
#: columns were chosen (random balanced permutations + swap search, seed 2024) to make every
#: pair of factors as evenly crossed as 24 rows allow (pairwise imbalance 8.0, i.e. nearly an
#: orthogonal array). Fixed here so the design never changes.
CONFIGS: tuple[tuple, ...] = (
    # activation, kind, depth, d, mix, noise, ridge, bias_var
    ("relu", "ntk", 1, 10, "A", 0.0, 0.0, 0.1),
    ("relu", "ntk", 2, 5, "C", 0.1, 0.01, 0.1),
    ("relu", "ntk", 2, 30, "A", 0.0, 0.0, 0.0),
    ("relu", "ntk", 3, 30, "B", 0.1, 0.01, 0.1),
    ("relu", "ntk", 4, 5, "D", 0.0, 0.0, 0.0),
    ("relu", "ntk", 4, 10, "C", 0.0, 0.01, 0.0),
    ("relu", "nngp", 1, 5, "A", 0.1, 0.01, 0.0),
    ("relu", "nngp", 1, 10, "D", 0.1, 0.01, 0.0),
    ("relu", "nngp", 2, 30, "D", 0.1, 0.0, 0.1),
    ("relu", "nngp", 3, 5, "B", 0.0, 0.0, 0.1),
    ("relu", "nngp", 3, 30, "C", 0.1, 0.0, 0.0),
    ("relu", "nngp", 4, 10, "B", 0.0, 0.01, 0.1),
    ("erf", "ntk", 1, 5, "B", 0.1, 0.0, 0.0),
    ("erf", "ntk", 1, 30, "C", 0.0, 0.0, 0.1),
    ("erf", "ntk", 2, 10, "A", 0.1, 0.01, 0.1),
    ("erf", "ntk", 3, 5, "D", 0.0, 0.01, 0.1),
    ("erf", "ntk", 3, 10, "D", 0.1, 0.0, 0.0),
    ("erf", "ntk", 4, 30, "B", 0.1, 0.01, 0.0),
    ("erf", "nngp", 1, 30, "D", 0.0, 0.01, 0.1),
    ("erf", "nngp", 2, 5, "C", 0.0, 0.01, 0.0),
    ("erf", "nngp", 2, 10, "B", 0.0, 0.0, 0.0),
    ("erf", "nngp", 3, 30, "A", 0.0, 0.01, 0.0),
    ("erf", "nngp", 4, 5, "A", 0.1, 0.0, 0.1),
    ("erf", "nngp", 4, 10, "C", 0.1, 0.0, 0.1),
)

MODES = {
    "full": {"P": (10, 33, 110, 365, 1210, 4000), "trials": 30},
    "quick": {"P": (10, 33, 110, 365, 1210), "trials": 10},
}
N_TEST = 2000
SEED0 = 1000  # configuration i uses seed SEED0 + i
LMAX_MIN = 40
REL_TOL, Z_TOL = 0.15, 3.0  # a point agrees if within 15% or within 3 standard errors
GOAL_MEDIAN = 0.05


@dataclass
class Config:
    index: int
    activation: str
    kind: str
    depth: int
    d: int
    mix: str
    noise: float
    ridge: float
    bias_var: float

    @property
    def label(self) -> str:
        return (
            f"{self.activation} {self.kind.upper()} L={self.depth} d={self.d} {self.mix}"
            f" s2={self.noise:g} r={self.ridge:g} b={self.bias_var:g}"
        )

    def kernel(self):
        mlp = fc.MLP(self.depth, self.activation, WEIGHT_VAR[self.activation], self.bias_var)
        return fc.ntk_kernel(mlp) if self.kind == "ntk" else fc.nngp_kernel(mlp)

    def target(self) -> fc.Target:
        return fc.Target.from_degree_powers(MIXES[self.mix], noise=self.noise, d=self.d)


def configs() -> list[Config]:
    return [Config(i, *row) for i, row in enumerate(CONFIGS)]


def check_design(cfgs: list[Config]) -> list[str]:
    """Each level of each factor appears at least twice (returns the coverage lines)."""
    lines = []
    for f in FACTORS:
        counts = {lv: sum(1 for c in cfgs if getattr(c, f) == lv) for lv in LEVELS[f]}
        if min(counts.values()) < 2:
            raise AssertionError(f"design covers a level of {f} fewer than twice: {counts}")
        lines.append(f"{f}: " + ", ".join(f"{lv!s} x{n}" for lv, n in counts.items()))
    return lines


# ----------------------------------------------------------------------------- one configuration
def run_config(cfg: Config, Ps: tuple[int, ...], trials: int) -> dict:
    kernel = cfg.kernel()
    target = cfg.target()
    lmax = max(LMAX_MIN, max(target.degrees) + 10)
    t0 = time.perf_counter()
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as wlist:
        warnings.simplefilter("always")
        spec = fc.spectrum(kernel, cfg.d, lmax)
        spec2 = fc.spectrum(kernel, cfg.d, 2 * lmax)
        lc = fc.learning_curve(spec, target, Ps, ridge=cfg.ridge)
        lc2 = fc.learning_curve(spec2, target, Ps, ridge=cfg.ridge)
        dense_P = np.unique(np.round(np.geomspace(2, 2 * max(Ps), 120)))
        dense = fc.learning_curve(spec, target, dense_P, ridge=cfg.ridge)
        t_theory = time.perf_counter() - t0
        emp = fc.empirical_learning_curve(
            kernel,
            target,
            list(Ps),
            d=cfg.d,
            ridge=cfg.ridge,
            trials=trials,
            seed=SEED0 + cfg.index,
            n_test=N_TEST,
            per_degree=False,
        )
        caught = sorted({f"{w.category.__name__}: {w.message}" for w in wlist})
    theory = lc.test_error
    meas, sem = emp.test_error, emp.test_error_sem
    rel = np.abs(theory - meas) / meas
    z = np.abs(theory - meas) / np.where(sem > 0, sem, np.nan)
    ok = (rel <= REL_TOL) | (z <= Z_TOL)
    return {
        "cfg": cfg,
        "P": np.asarray(Ps, dtype=float),
        "theory": theory,
        "measured": meas,
        "sem": sem,
        "rel": rel,
        "z": z,
        "ok": ok,
        "lmax": lmax,
        "lmax_change": float(np.max(np.abs(lc2.test_error - theory) / theory)),
        "tail_ratio": float(np.max(lc.tail_ratio)),
        "jitter": float(emp.meta.get("max_jitter", 0.0)),
        "warnings": caught,
        "dense_P": dense_P,
        "dense": dense.test_error,
        "t_theory": t_theory,
        "t_total": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------- outputs
def _fmt_pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path.resolve(), start)


def write_csv(results: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["config", *FACTORS, "P", "theory", "measured", "sem", "rel_error", "z", "agrees"])
        for r in results:
            c = r["cfg"]
            for i in range(len(r["P"])):
                w.writerow(
                    [
                        c.index,
                        *(getattr(c, f) for f in FACTORS),
                        int(r["P"][i]),
                        f"{r['theory'][i]:.6g}",
                        f"{r['measured'][i]:.6g}",
                        f"{r['sem'][i]:.4g}",
                        f"{r['rel'][i]:.4g}",
                        f"{r['z'][i]:.3g}",
                        int(r["ok"][i]),
                    ]
                )


_FAMILY_COLOURS = {
    ("relu", "ntk"): "tab:blue",
    ("relu", "nngp"): "tab:orange",
    ("erf", "ntk"): "tab:green",
    ("erf", "nngp"): "tab:red",
}


def plot_scatter(results: list[dict], path: Path, title: str) -> None:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 5.4))
    lo, hi = np.inf, 0.0
    for (act, kind), colour in _FAMILY_COLOURS.items():
        first = True
        for r in results:
            c = r["cfg"]
            if (c.activation, c.kind) != (act, kind):
                continue
            th, me, se, ok = r["theory"], r["measured"], r["sem"], r["ok"]
            lo, hi = min(lo, th.min(), me.min()), max(hi, th.max(), me.max())
            ax.errorbar(
                th[ok],
                me[ok],
                yerr=se[ok],
                fmt="o",
                ms=4,
                color=colour,
                alpha=0.8,
                elinewidth=0.8,
                label=f"{act} {kind.upper()}" if first else None,
            )
            if (~ok).any():
                ax.plot(th[~ok], me[~ok], "x", ms=8, color="black", mew=1.5)
            ax2.plot(
                r["P"],
                100 * (th - me) / me,
                "o",
                ms=4,
                color=colour,
                alpha=0.8,
                label=f"{act} {kind.upper()}" if first else None,
            )
            first = False
    line = np.array([lo / 1.5, hi * 1.5])
    ax.plot(line, line, "k-", lw=0.8, label="predicted = measured")
    ax.plot(line, line * (1 + REL_TOL), "k--", lw=0.6, label="±15%")
    ax.plot(line, line * (1 - REL_TOL), "k--", lw=0.6)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="predicted $E_g$ (eigenlearning theory)",
        ylabel="measured $E_g$ (kernel regression, mean ± SE)",
        title="predicted vs measured (x: outside 15% and 3 SE)",
    )
    ax.legend(fontsize=8, loc="upper left")
    ax2.axhline(0, color="k", lw=0.8)
    for s in (-1, 1):
        ax2.axhline(100 * s * REL_TOL, color="k", ls="--", lw=0.6)
    ax2.set(
        xscale="log",
        xlabel="P",
        ylabel="(predicted − measured) / measured  [%]",
        title="relative deviation per point",
    )
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_panels(results: list[dict], path: Path) -> None:
    n = len(results)
    cols = 6
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.5 * rows), squeeze=False)
    for ax, r in zip(axes.ravel(), results, strict=False):
        c = r["cfg"]
        colour = _FAMILY_COLOURS[(c.activation, c.kind)]
        ax.plot(r["dense_P"], r["dense"], "-", color=colour, lw=1.2)
        ax.errorbar(r["P"], r["measured"], yerr=r["sem"], fmt="o", ms=3.5, color="black", elinewidth=0.8)
        bad = ~r["ok"]
        if bad.any():
            ax.plot(r["P"][bad], r["measured"][bad], "x", color="red", ms=9, mew=1.5)
        ax.set(xscale="log", yscale="log")
        ax.set_title(
            f"#{c.index} {c.activation} {c.kind.upper()} L={c.depth} d={c.d}\n"
            f"mix {c.mix}, σ²={c.noise:g}, δ={c.ridge:g}, σ_b²={c.bias_var:g}",
            fontsize=8,
        )
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(
        "E_g vs P: theory (line) and kernel regression (mean ± SE); red x = outside 15% and 3 SE", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(
    results: list[dict],
    args: argparse.Namespace,
    mode: dict,
    info: dict,
    coverage: list[str],
    elapsed: float,
    load_end: tuple,
    paths: dict,
) -> str:
    rel_all = np.concatenate([r["rel"] for r in results])
    ok_all = np.concatenate([r["ok"] for r in results])
    n_pts = len(rel_all)
    med = float(np.median(rel_all))
    frac = float(ok_all.mean())
    out_dir = paths["out"].resolve().parent
    lines = [
        "# Learning-curve accuracy: eigenlearning theory vs exact kernel regression",
        "",
        f"Command: `python benchmarks/accuracy_learning_curves.py{' --quick' if args.quick else ''}`"
        f" ({'quick smoke test' if args.quick else 'full run'}); total wall time {elapsed:.0f} s.",
        "",
        sysinfo.to_markdown(info),
        f"- load average (1, 5, 15 min) at start: {', '.join(f'{x:.2f}' for x in info['loadavg'])};"
        f" at end: {', '.join(f'{x:.2f}' for x in load_end)}",
        "",
        "## Headline",
        "",
        "| measure | goal | measured | pass/fail |",
        "|---|---|---|---|",
        f"| median relative error over all {n_pts} points | ≤ 5% | {_fmt_pct(med)} |"
        f" {'PASS' if med <= GOAL_MEDIAN else 'FAIL'} |",
        f"| fraction of points within 15% or 3 SE | all | {int(ok_all.sum())}/{n_pts} ({_fmt_pct(frac)}) |"
        f" {'PASS' if ok_all.all() else 'FAIL'} |",
        f"| 90th percentile / max relative error | — | {_fmt_pct(float(np.quantile(rel_all, 0.9)))} /"
        f" {_fmt_pct(float(rel_all.max()))} | — |",
        "",
        f"![predicted vs measured]({_rel(paths['png'], out_dir)})",
        "",
        f"All learning curves: [{paths['panels'].name}]({_rel(paths['panels'], out_dir)});"
        f" every point: [{paths['csv'].name}]({_rel(paths['csv'], out_dir)}).",
        "",
        "## Method",
        "",
        f"* Theory: `fc.learning_curve(fc.spectrum(kernel, d, lmax), target, P, ridge)` with"
        f" lmax = max({LMAX_MIN}, max target degree + 10) = {LMAX_MIN} (the power-law tail model"
        " beyond lmax, default `tail_factor` 8). The column *lmax×2* gives the largest relative"
        " change of the prediction when lmax is doubled.",
        f"* Measurement: `fc.empirical_learning_curve(kernel, target, P, d=d, ridge=δ,"
        f" trials={mode['trials']}, seed={SEED0}+config, n_test={N_TEST}, per_degree=False)`:"
        " per trial a fresh target draw with exactly the stated power per degree, fresh training"
        " inputs (nested prefixes for the P values) and test inputs on the √d-sphere; E_g against"
        " the clean target; mean and standard error (SE) over trials.",
        f"* P grid: {', '.join(str(p) for p in mode['P'])}.",
        "* Networks: `fc.MLP(depth, activation, weight_var, bias_var)` with weight_var = 2 (ReLU),"
        " 1 (erf); NTK parameterisation. Target mixes (power v_l² per degree): "
        + "; ".join(f"{k} = {v}" for k, v in MIXES.items())
        + ".",
        "* Relative error = |predicted − measured| / measured. A point *agrees* if relative error"
        " ≤ 15% or |predicted − measured| ≤ 3 SE.",
        "* Design: 24 of the 2·2·4·3·4·2·2·2 = 1536 combinations, every factor column balanced and"
        " every pair of factors crossed as evenly as 24 rows allow (fixed list `CONFIGS` in the"
        " script). Coverage (level × count):",
        "",
        *[f"  * {line}" for line in coverage],
        "",
        "Bias-free erf kernels are odd, so their even-degree eigenvalues vanish: target power in"
        " degrees 0 and 2 (mixes B, C, D) is unlearnable and acts as label noise. The bias-free"
        " depth-1 ReLU NNGP (arc-cosine) kernel has λ_l = 0 for odd l ≥ 3 (mix D's degree 3).",
        "",
        "## Per configuration",
        "",
        "| # | act. | kernel | depth | d | mix | σ² | δ | σ_b² | median rel. err. | max rel. err."
        " | within 15% or 3 SE | max \\|z\\| | lmax×2 | max tail ratio | max jitter | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r["cfg"]
        zmax = np.nanmax(r["z"]) if np.isfinite(r["z"]).any() else float("nan")
        lines.append(
            f"| {c.index} | {c.activation} | {c.kind.upper()} | {c.depth} | {c.d} | {c.mix} | {c.noise:g}"
            f" | {c.ridge:g} | {c.bias_var:g} | {_fmt_pct(float(np.median(r['rel'])))}"
            f" | {_fmt_pct(float(np.max(r['rel'])))} | {int(r['ok'].sum())}/{len(r['ok'])}"
            f" | {zmax:.1f} | {r['lmax_change']:.1e} | {r['tail_ratio']:.1e} | {r['jitter']:.1e}"
            f" | {r['t_total']:.0f} s |"
        )
    lines += [
        "",
        "## By factor level",
        "",
        "| factor | level | configs | points | median rel. err. | within 15% or 3 SE |",
        "|---|---|---|---|---|---|",
    ]
    for f in FACTORS:
        for lv in LEVELS[f]:
            sel = [r for r in results if getattr(r["cfg"], f) == lv]
            if not sel:
                continue
            rel = np.concatenate([r["rel"] for r in sel])
            ok = np.concatenate([r["ok"] for r in sel])
            lines.append(
                f"| {f} | {lv} | {len(sel)} | {len(rel)} | {_fmt_pct(float(np.median(rel)))}"
                f" | {int(ok.sum())}/{len(ok)} |"
            )
    lines += ["", "## Points outside 15% and 3 SE", ""]
    bad_rows = []
    for r in results:
        for i in np.flatnonzero(~r["ok"]):
            bad_rows.append(
                f"| {r['cfg'].index} | {int(r['P'][i])} | {r['theory'][i]:.4g} | {r['measured'][i]:.4g}"
                f" ± {r['sem'][i]:.2g} | {_fmt_pct(float(r['rel'][i]))} | {r['z'][i]:.1f} |"
            )
    if bad_rows:
        lines += [
            "| # | P | predicted | measured ± SE | rel. err. | z |",
            "|---|---|---|---|---|---|",
            *bad_rows,
        ]
    else:
        lines.append("None.")
    warn = sorted({w for r in results for w in r["warnings"]})
    if warn:
        lines += ["", "Warnings raised during the run:", "", *[f"* {w}" for w in warn]]
    lines += [
        "",
        "Columns: *max |z|* = largest |predicted − measured| / SE; *lmax×2* = largest relative"
        " change of the prediction with twice the lmax; *max tail ratio* = largest"
        " `LearningCurve.tail_ratio` (largest modelled eigenvalue beyond lmax / κ; small means the"
        " tail model hardly matters); *max jitter* = largest diagonal jitter the Monte Carlo had"
        " to add to factorise a ridgeless Gram matrix (0 = none); *time* = theory + Monte Carlo.",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="P <= 1210 and 10 trials (~2 min smoke test)")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown report (default benchmarks/accuracy_learning_curves[_quick].md)",
    )
    ap.add_argument(
        "--png",
        type=Path,
        default=None,
        help="scatter plot (default docs/accuracy_learning_curves[_quick].png); the panel"
        " plot and the CSV go next to it",
    )
    ap.add_argument("--only", type=str, default=None, help="comma-separated config indices (debugging)")
    args = ap.parse_args(argv)
    mode = MODES["quick" if args.quick else "full"]
    suffix = "_quick" if args.quick else ""
    out = args.out or HERE / f"accuracy_learning_curves{suffix}.md"
    png = args.png or ROOT / "docs" / f"accuracy_learning_curves{suffix}.png"
    paths = {
        "out": out,
        "png": png,
        "panels": png.with_name(png.stem + "_panels.png"),
        "csv": png.with_suffix(".csv"),
    }
    cfgs = configs()
    coverage = check_design(cfgs)
    if args.only:
        keep = {int(s) for s in args.only.split(",")}
        cfgs = [c for c in cfgs if c.index in keep]
    info = sysinfo.describe(ROOT)
    t_start = time.perf_counter()
    print(
        f"[{0:7.1f} s] {len(cfgs)} configurations, P = {mode['P']}, {mode['trials']} trials,"
        f" OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}",
        file=sys.stderr,
        flush=True,
    )
    results = []
    for k, cfg in enumerate(cfgs):
        r = run_config(cfg, mode["P"], mode["trials"])
        results.append(r)
        print(
            f"[{time.perf_counter() - t_start:7.1f} s] {k + 1:2d}/{len(cfgs)} #{cfg.index:<2d}"
            f" {cfg.label:<48s}"
            f" median {_fmt_pct(float(np.median(r['rel']))):>6s} max {_fmt_pct(float(r['rel'].max())):>6s}"
            f" agree {int(r['ok'].sum())}/{len(r['ok'])} ({r['t_total']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    elapsed = time.perf_counter() - t_start
    write_csv(results, paths["csv"])
    rel_all = np.concatenate([r["rel"] for r in results])
    ok_all = np.concatenate([r["ok"] for r in results])
    title = (
        f"{len(results)} configurations, {len(rel_all)} points: median rel. error"
        f" {_fmt_pct(float(np.median(rel_all)))}, {int(ok_all.sum())}/{len(ok_all)} within 15% or 3 SE"
    )
    plot_scatter(results, paths["png"], title)
    plot_panels(results, paths["panels"])
    report = write_report(results, args, mode, info, coverage, elapsed, os.getloadavg(), paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(report)
    print(
        f"[{time.perf_counter() - t_start:7.1f} s] wrote {out}, {paths['png']}, {paths['panels']},"
        f" {paths['csv']}",
        file=sys.stderr,
    )
    return 0 if ok_all.all() and np.median(rel_all) <= GOAL_MEDIAN else 1


if __name__ == "__main__":
    sys.exit(main())
