"""Are the d = 5 misses of the accuracy benchmark float64 round-off, or limits of the theory?

Usage::

    python benchmarks/d5_precision_check.py            # full check, ~15-20 min on 2 cores
    python benchmarks/d5_precision_check.py --quick    # smoke test (P <= 365, 2 trials), ~2 min

Prints a Markdown summary to stdout (progress to stderr). Findings: d5_precision_check.md.

For the ridgeless d = 5 configurations 9, 12 and 22 of ``accuracy_learning_curves.py`` this
script redraws the *same* trials as the benchmark (seed 1000 + config, P_max = 4000,
n_test = 2000, identical rng stream, so trial k here is trial k there) and

1. repeats the float64 Monte Carlo exactly as ``fc.empirical_learning_curve`` does it
   (``kernel.gram`` + Cholesky via ``fieldcurve.empirical._factor``), checked against a direct
   call of ``fc.empirical_learning_curve`` with the same seed;
2. recomputes the ridgeless interpolant in extended precision: cosines of the (exactly
   normalised) float64 points, kernel values ``kernel.mp_eval(t, d, ops=ARB_OPS)`` and the solve
   ``flint.arb_mat.solve`` (certified ball arithmetic) at ``PREC`` bits, the predictions on the
   first ``N_HP`` test points in arb as well; the error is taken against the float64 target
   values (a degree <= 2 polynomial, accurate to ~1e-16);
3. measures the float64 test error with tiny ridges 1e-14, 1e-12, 1e-10 x tr K / P;
4. reports the float64 Gram spectrum of trial 0 (largest / smallest eigenvalue, number below
   eps * ||K||, number negative) and the kernel spectrum scales (which degrees have
   lambda_l < 1e-16 k(1), i.e. P lambda_l < 1e-16 P k(1)).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import flint  # noqa: E402
import numpy as np  # noqa: E402
import scipy.linalg as sla  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import accuracy_learning_curves as alc  # noqa: E402
import sysinfo  # noqa: E402

import fieldcurve as fc  # noqa: E402
from fieldcurve.activations import ARB_OPS  # noqa: E402
from fieldcurve.empirical import _factor  # noqa: E402
from fieldcurve.sphere import sample_sphere  # noqa: E402

D = 5
P_ALL = (10, 33, 110, 365, 1210, 4000)  # the benchmark grid: fixes the rng stream (P_max = 4000)
N_TEST = alc.N_TEST
SEED0 = alc.SEED0
CHECK = {9: 3, 12: 4, 22: 4}  # configuration -> trials in extended precision
D5_CONFIGS = (1, 4, 6, 9, 12, 15, 19, 22)  # all d = 5 configurations (spectrum table)
RIDGE_FACTORS = (1e-14, 1e-12, 1e-10)
EPS = np.finfo(float).eps

MODES = {
    "full": {"P_hp": (110, 365, 1210), "n_hp": 300, "trials": None},
    "quick": {"P_hp": (110, 365), "n_hp": 100, "trials": 2},
}


def log(msg: str, t0: float) -> None:
    print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def draw_trial(target: fc.Target, rng: np.random.Generator):
    """One trial's draws, in the order of ``fc.empirical_learning_curve``."""
    f = target.sample(D, seed=rng)
    X = sample_sphere(max(P_ALL), D, seed=rng)
    y = f.labels(X, seed=rng)
    Xt = sample_sphere(N_TEST, D, seed=rng)
    return f, X, y, Xt, f(Xt)


def float64_errors(kernel, X, y, Xt, ft, n_hp: int, ridge_scale: float) -> dict:
    """Float64 test errors per P: as the benchmark (all test points), on the first n_hp, with ridges."""
    K = kernel.gram(X)
    out = {"full": [], "sub": [], "jitter": [], "pred_sub": {}, "ridge": {r: [] for r in RIDGE_FACTORS}}
    Kt_all = kernel.gram(Xt, X)
    for p in P_ALL:
        factor, jitter = _factor(K[:p, :p], 0.0)
        alpha = sla.cho_solve(factor, y[:p], check_finite=False)
        pred = Kt_all[:, :p] @ alpha
        out["full"].append(float(np.mean((pred - ft) ** 2)))
        out["sub"].append(float(np.mean((pred[:n_hp] - ft[:n_hp]) ** 2)))
        out["pred_sub"][p] = pred[:n_hp]
        out["jitter"].append(jitter)
        trK = float(np.trace(K[:p, :p])) / p
        for r in RIDGE_FACTORS:
            fr, _ = _factor(K[:p, :p], r * trK * ridge_scale)
            a = sla.cho_solve(fr, y[:p], check_finite=False)
            out["ridge"][r].append(float(np.mean((Kt_all[:, :p] @ a - ft) ** 2)))
    out["K"] = K
    return out


def gram_eigs(K: np.ndarray) -> list[dict]:
    rows = []
    for p in P_ALL:
        if p < 100:
            continue
        ev = np.linalg.eigvalsh(K[:p, :p])
        top = ev[-1]
        rows.append(
            {
                "P": p,
                "max": top,
                "min": ev[0],
                "min_pos": ev[ev > 0].min(),
                "below_eps": int(np.sum(ev < EPS * top)),
                "negative": int(np.sum(ev < 0)),
                "cond": top / ev[0] if ev[0] > 0 else np.inf,
            }
        )
    return rows


def arb_points(Z: np.ndarray) -> list[list]:
    """Rows of Z (float64, taken as exact) normalised to unit length in arb."""
    rows = []
    for z in Z:
        a = [flint.arb(float(v)) for v in z]
        nrm = sum((v * v for v in a), flint.arb(0)).sqrt()
        rows.append([v / nrm for v in a])
    return rows


def extended_errors(kernel, X, y, Xt, ft, P_hp, n_hp: int) -> dict:
    """Ridgeless interpolant and its test error on the first n_hp test points, all in arb."""
    pm = max(P_hp)
    A = flint.arb_mat(arb_points(X[:pm]))
    B = flint.arb_mat(arb_points(Xt[:n_hp]))
    T = A * A.transpose()  # cosines of the training points (exact to PREC bits)
    Tt = B * A.transpose()
    k1 = kernel.mp_eval(flint.arb(1), D, ops=ARB_OPS)
    G = [[None] * pm for _ in range(pm)]
    for i in range(pm):
        G[i][i] = k1
        for j in range(i + 1, pm):
            v = kernel.mp_eval(T[i, j], D, ops=ARB_OPS)
            G[i][j] = v
            G[j][i] = v
    Gt = [[kernel.mp_eval(Tt[i, j], D, ops=ARB_OPS) for j in range(pm)] for i in range(n_hp)]
    out = {"sub": [], "pred": {}, "pred_rad": [], "G_rad": 0.0}
    out["G_rad"] = max(float(G[i][j].rad()) for i in range(0, pm, 7) for j in range(0, pm, 7))
    for p in P_hp:
        Kp = flint.arb_mat([row[:p] for row in G[:p]])
        Ktp = flint.arb_mat([row[:p] for row in Gt])
        yb = flint.arb_mat([[float(v)] for v in y[:p]])
        alpha = Kp.solve(yb)  # certified: raises if the ball matrix is not provably invertible
        pred = Ktp * alpha
        pred_mid = np.array([float(pred[i, 0].mid()) for i in range(n_hp)])
        rad = max(float(pred[i, 0].rad()) for i in range(n_hp))
        err = sum(((pred[i, 0] - flint.arb(float(ft[i]))) ** 2 for i in range(n_hp)), flint.arb(0)) / n_hp
        out["sub"].append(float(err.mid()))
        out["pred"][p] = pred_mid
        out["pred_rad"].append(rad)
    return out


def extended_error_large(kernel, X, y, Xt, ft, p: int, n_hp: int) -> dict:
    """As :func:`extended_errors` at one large P: entries set row by row, uncertified solve.

    ``arb_mat.solve(algorithm="approx")`` returns a PREC-bit floating-point solution without
    error bounds, so the residual ``max |K alpha - y|`` is computed in arb as the check.
    """
    A = flint.arb_mat(arb_points(X[:p]))
    At = A.transpose()
    B = flint.arb_mat(arb_points(Xt[:n_hp]))
    k1 = kernel.mp_eval(flint.arb(1), D, ops=ARB_OPS)
    K = flint.arb_mat(p, p)
    for i in range(p):
        row = flint.arb_mat(1, D, [A[i, m] for m in range(D)]) * At
        K[i, i] = k1
        for j in range(i + 1, p):
            v = kernel.mp_eval(row[0, j], D, ops=ARB_OPS)
            K[i, j] = v
            K[j, i] = v
    Kt = flint.arb_mat(n_hp, p)
    Tt = B * At
    for i in range(n_hp):
        for j in range(p):
            Kt[i, j] = kernel.mp_eval(Tt[i, j], D, ops=ARB_OPS)
    yb = flint.arb_mat([[float(v)] for v in y[:p]])
    alpha = K.solve(yb, algorithm="approx")
    res = K * alpha - yb
    resid = max(abs(float(res[i, 0].mid())) + float(res[i, 0].rad()) for i in range(p))
    pred = Kt * alpha
    err = sum(((pred[i, 0] - flint.arb(float(ft[i]))) ** 2 for i in range(n_hp)), flint.arb(0)) / n_hp
    return {
        "sub": float(err.mid()),
        "pred": np.array([float(pred[i, 0].mid()) for i in range(n_hp)]),
        "resid": resid,
        "alpha_max": max(abs(float(alpha[i, 0].mid())) for i in range(p)),
    }


def first_tiny_degree(spec: fc.Spectrum, thresh: float = 1e-16) -> str:
    lam = spec.eigenvalues / spec.kernel_at_one
    idx = [l for l in range(len(lam)) if 0 < lam[l] < thresh]
    return str(idx[0]) if idx else f"none ≤ {spec.lmax}"


def degree_reached(spec: fc.Spectrum, P: int) -> int:
    """Smallest l whose cumulative multiplicity (over degrees with lambda_l > 0) reaches P."""
    cum = 0.0
    for l in range(spec.lmax + 1):
        if spec.eigenvalues[l] > 0:
            cum += spec.multiplicities[l]
        if cum >= P:
            return l
    return spec.lmax


def fmt(x: float, n: int = 4) -> str:
    return f"{x:.{n}g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="P <= 365, 2 trials, 100 test points")
    ap.add_argument(
        "--no-p4000", action="store_true", help="skip the one-trial P = 4000 arb check of config 12"
    )
    ap.add_argument("--prec", type=int, default=160, help="arb working precision in bits")
    args = ap.parse_args()
    mode = MODES["quick" if args.quick else "full"]
    flint.ctx.prec = args.prec
    t0 = time.perf_counter()
    info = sysinfo.describe(ROOT)
    cfgs = alc.configs()
    P_hp, n_hp = mode["P_hp"], mode["n_hp"]

    md = [
        "# d = 5 misses: float64 round-off or theory?",
        "",
        f"Command: `python benchmarks/d5_precision_check.py{' --quick' if args.quick else ''}`;"
        f" arb precision {args.prec} bits.",
        "",
        sysinfo.to_markdown(info),
        "",
    ]

    # ---------------------------------------------------------------- spectrum scales
    md += [
        "## Spectrum scales (all d = 5 configurations)",
        "",
        "l_P = highest degree needed to fill P interpolation constraints (cumulative multiplicity"
        " over degrees with λ_l > 0). κ = the theory's effective ridge.",
        "",
        "| # | config | first l with λ_l < 1e-16 k(1) | P | l_P | λ_{l_P}/k(1) | κ/k(1) | theory E_g"
        " | bench. E_g (30 trials) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    bench = {}
    csv_path = ROOT / "docs" / "accuracy_learning_curves.csv"
    if csv_path.exists():
        import csv

        with csv_path.open() as fh:
            for row in csv.DictReader(fh):
                bench[(int(row["config"]), int(row["P"]))] = (float(row["measured"]), float(row["sem"]))
    for i in D5_CONFIGS:
        c = cfgs[i]
        spec = fc.spectrum(c.kernel(), D, 40)
        lc = fc.learning_curve(spec, c.target(), P_ALL, ridge=c.ridge)
        for j, p in enumerate(P_ALL):
            if p < 110:
                continue
            lp = degree_reached(spec, p)
            b = bench.get((i, p))
            md.append(
                f"| {i} | {c.label} | {first_tiny_degree(spec) if p == 110 else ''} | {p} | {lp} |"
                f" {spec.eigenvalues[lp] / spec.kernel_at_one:.2e} | {lc.kappa[j] / spec.kernel_at_one:.2e} |"
                f" {fmt(lc.test_error[j])} | {fmt(b[0]) + ' ± ' + fmt(b[1], 2) if b else '—'} |"
            )
    log("spectra done", t0)

    # ---------------------------------------------------------------- the check
    summary_rows = []
    eig_rows = []
    ridge_rows = []
    detail_rows = []
    for ci, n_trials in CHECK.items():
        n_trials = mode["trials"] or n_trials
        c = cfgs[ci]
        kernel, target = c.kernel(), c.target()
        spec = fc.spectrum(kernel, D, 40)
        lc = fc.learning_curve(spec, target, P_ALL, ridge=c.ridge)
        # the same trials through the library (float64), to prove the draws are the benchmark's
        ref = fc.empirical_learning_curve(
            kernel,
            target,
            list(P_ALL),
            d=D,
            ridge=c.ridge,
            trials=n_trials,
            seed=SEED0 + ci,
            n_test=N_TEST,
            per_degree=False,
        )
        log(f"config {ci}: library float64 run done", t0)
        rng = np.random.default_rng(SEED0 + ci)
        f64_full = np.empty((n_trials, len(P_ALL)))
        f64_ridge = {r: np.empty((n_trials, len(P_ALL))) for r in RIDGE_FACTORS}
        f64_sub = np.empty((n_trials, len(P_hp)))
        hp_sub = np.empty((n_trials, len(P_hp)))
        max_dpred = np.zeros(len(P_hp))
        max_rad = np.zeros(len(P_hp))
        for tr in range(n_trials):
            _f, X, y, Xt, ft = draw_trial(target, rng)
            r64 = float64_errors(kernel, X, y, Xt, ft, n_hp, 1.0)
            f64_full[tr] = r64["full"]
            for r in RIDGE_FACTORS:
                f64_ridge[r][tr] = r64["ridge"][r]
            if tr == 0:
                eig_rows += [(ci, row) for row in gram_eigs(r64["K"])]
            del r64["K"]
            log(f"config {ci} trial {tr}: float64 done", t0)
            rhp = extended_errors(kernel, X, y, Xt, ft, P_hp, n_hp)
            for j, p in enumerate(P_hp):
                jj = P_ALL.index(p)
                f64_sub[tr, j] = r64["sub"][jj]
                hp_sub[tr, j] = rhp["sub"][j]
                dpred = np.max(np.abs(r64["pred_sub"][p] - rhp["pred"][p]))
                max_dpred[j] = max(max_dpred[j], dpred)
                max_rad[j] = max(max_rad[j], rhp["pred_rad"][j])
                detail_rows.append(
                    f"| {ci} | {tr} | {p} | {fmt(r64['sub'][jj], 8)} | {fmt(rhp['sub'][j], 8)} |"
                    f" {(r64['sub'][jj] - rhp['sub'][j]) / rhp['sub'][j]:+.1e} | {dpred:.1e} |"
                    f" {rhp['pred_rad'][j]:.0e} |"
                )
            log(f"config {ci} trial {tr}: extended precision done", t0)
        same = np.allclose(f64_full, ref.raw, rtol=1e-10, atol=0)
        for j, p in enumerate(P_ALL):
            b = bench.get((ci, p))
            row = {
                "cfg": ci,
                "P": p,
                "theory": lc.test_error[j],
                "bench": b,
                "f64": f64_full[:, j].mean(),
                "f64_se": f64_full[:, j].std(ddof=1) / np.sqrt(n_trials),
                "same_as_library": same,
            }
            if p in P_hp:
                k = P_hp.index(p)
                rel = (f64_sub[:, k] - hp_sub[:, k]) / hp_sub[:, k]
                row.update(
                    hp_sub=hp_sub[:, k].mean(),
                    f64_sub=f64_sub[:, k].mean(),
                    max_rel=np.max(np.abs(rel)),
                    max_dpred=max_dpred[k],
                    max_rad=max_rad[k],
                )
            summary_rows.append(row)
            rr = [np.max(np.abs(f64_ridge[r][:, j] - f64_full[:, j]) / f64_full[:, j]) for r in RIDGE_FACTORS]
            means = [f64_ridge[r][:, j].mean() for r in RIDGE_FACTORS]
            ridge_rows.append((ci, p, f64_full[:, j].mean(), means, rr))

    # ---------------------------------------------------------------- P = 4000, config 12, trial 0
    big = None
    if not (args.quick or args.no_p4000):
        ci, p = 12, 4000
        c = cfgs[ci]
        kernel, target = c.kernel(), c.target()
        rng = np.random.default_rng(SEED0 + ci)
        _f, X, y, Xt, ft = draw_trial(target, rng)
        r64 = float64_errors(kernel, X, y, Xt, ft, n_hp, 1.0)
        log("P = 4000 check: float64 done", t0)
        rb = extended_error_large(kernel, X, y, Xt, ft, p, n_hp)
        e64 = r64["sub"][P_ALL.index(p)]
        big = (ci, p, e64, rb, float(np.max(np.abs(r64["pred_sub"][p] - rb["pred"]))))
        log("P = 4000 check: extended precision done", t0)

    md += [
        "",
        "## Float64 vs extended precision (ridgeless interpolant)",
        "",
        f"Same trials as the benchmark (first {mode['trials'] or 'k'} trials of seed 1000 + config);"
        f" E_g on the first {n_hp} of the 2000 test points, float64 (library path) and arb at"
        f" {args.prec} bits. *max rel. diff* = max over trials of |E64 − E_arb| / E_arb;"
        " *max |Δf̂|* = largest pointwise difference of the two predictions; *arb radius* = largest"
        " certified error radius of an arb prediction. Ratio = mean E_arb / theory (few trials, so"
        " noisy; the benchmark's 30-trial ratio is in the last column).",
        "",
        "| # | P | trials | E_g float64 | E_g arb | max rel. diff | max \\|Δf̂\\| | arb radius |"
        " theory | arb / theory | bench. / theory |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary_rows:
        if "hp_sub" not in r:
            continue
        ntr = mode["trials"] or CHECK[r["cfg"]]
        b = r["bench"]
        md.append(
            f"| {r['cfg']} | {r['P']} | {ntr} | {fmt(r['f64_sub'], 6)} | {fmt(r['hp_sub'], 6)} |"
            f" {r['max_rel']:.1e} | {r['max_dpred']:.1e} | {r['max_rad']:.0e} | {fmt(r['theory'])} |"
            f" {r['hp_sub'] / r['theory']:.3f} | {b[0] / r['theory'] if b else float('nan'):.3f} |"
        )
    if big is not None:
        ci, p, e64, rb, dp = big
        md += [
            "",
            f'P = {p}, config {ci}, trial 0 only (uncertified `algorithm="approx"` arb solve;'
            f" residual max |Kα − y| = {rb['resid']:.1e}, max |α| = {rb['alpha_max']:.2e}):"
            f" E_g float64 = {fmt(e64, 8)}, E_g arb = {fmt(rb['sub'], 8)}, rel. diff"
            f" {(e64 - rb['sub']) / rb['sub']:+.1e}, max |Δf̂| = {dp:.1e}.",
        ]
    md += [
        "",
        "Per trial:",
        "",
        "| # | trial | P | E_g float64 | E_g arb | rel. diff | max \\|Δf̂\\| | arb radius |",
        "|---|---|---|---|---|---|---|---|",
        *detail_rows,
        "",
        "Float64 reproduction of the benchmark (all 2000 test points) equals"
        " `fc.empirical_learning_curve` with the same seed: "
        + ", ".join(
            f"config {ci}: "
            + ("yes" if any(r["same_as_library"] for r in summary_rows if r["cfg"] == ci) else "NO")
            for ci in CHECK
        )
        + ".",
        "",
        "## Float64 with tiny ridges (all 2000 test points, same trials)",
        "",
        "δ = factor × tr K / P. Entries: mean E_g (max relative change vs ridgeless over trials).",
        "",
        "| # | P | ridgeless | " + " | ".join(f"δ = {r:g}·trK/P" for r in RIDGE_FACTORS) + " |",
        "|---|---|---|" + "---|" * len(RIDGE_FACTORS),
    ]
    for ci, p, e0, er, rr in ridge_rows:
        md.append(
            f"| {ci} | {p} | {fmt(e0)} | "
            + " | ".join(f"{fmt(e)} ({x:.1e})" for e, x in zip(er, rr, strict=True))
            + " |"
        )
    md += [
        "",
        "## Float64 Gram spectrum (trial 0)",
        "",
        "| # | P | λ_max(K) | λ_min(K) | cond | # eig < eps·λ_max | # negative |",
        "|---|---|---|---|---|---|---|",
    ]
    for ci, r in eig_rows:
        md.append(
            f"| {ci} | {r['P']} | {r['max']:.3e} | {r['min']:.3e} | {r['cond']:.2e} |"
            f" {r['below_eps']} | {r['negative']} |"
        )
    md += ["", f"Wall time {time.perf_counter() - t0:.0f} s."]
    print("\n".join(md))


if __name__ == "__main__":
    main()
