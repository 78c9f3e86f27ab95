"""fieldcurve benchmarks: Gram matrices and kernel spectra against plain baselines.

Usage::

    python benchmarks/run.py [--quick] [--out benchmarks/results.md] [--repeats 3]

Writes a Markdown table (benchmark, candidate time, baseline time, ratio, goal, pass/fail,
notes) plus the machine/BLAS description to ``--out`` and prints it. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mpmath
import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import baselines  # noqa: E402
import gramcases  # noqa: E402
import sysinfo  # noqa: E402

import fieldcurve  # noqa: E402
from fieldcurve.spectrum import spectrum  # noqa: E402

GRAM_D, GRAM_SEED, SPHERE_SEED = 50, 0, 1
AGREEMENT = 1e-10  # required relative agreement, Gram off-diagonal and spectrum vs mpmath
SPEC_DEPTH, SPEC_WEIGHT_VAR, SPEC_BIAS_VAR = 5, 2.0, 0.0

SIZES = {
    "full": {"gram_n": 4000, "lmax": 200, "dims": (10, 100, 1000), "gram_points": 2000, "mp_degrees": 5},
    "quick": {"gram_n": 1000, "lmax": 50, "dims": (10, 100), "gram_points": 1000, "mp_degrees": 3},
}


@dataclass
class Row:
    benchmark: str
    candidate: str
    baseline: str
    ratio: str
    goal: str
    verdict: str
    notes: str


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3g} s"


def fmt_ratio(r: float) -> str:
    return f"{r:.3g}×" if r >= 1e-3 else f"{r:.2e}×"


def verdict(goal_met: bool, accurate: bool = True) -> str:
    if goal_met and accurate:
        return "PASS"
    reasons = [name for name, ok in (("goal", goal_met), ("accuracy", accurate)) if not ok]
    return f"FAIL ({', '.join(reasons)})"


def race(
    baseline: Callable[[], Any], candidate: Callable[[], Any], repeats: int
) -> tuple[list[float], list[float], Any, Any]:
    """Time both in this process, interleaved (B C, C B, B C, ...); returns all times and the
    first result of each."""
    times: dict[str, list[float]] = {"b": [], "c": []}
    first: dict[str, Any] = {}
    for r in range(repeats):
        order = (("b", baseline), ("c", candidate))
        for key, fn in order if r % 2 == 0 else order[::-1]:
            gc.collect()
            t0 = time.perf_counter()
            out = fn()
            times[key].append(time.perf_counter() - t0)
            if key not in first:
                first[key] = out
            del out
            log(f"  {'baseline' if key == 'b' else 'candidate'} run {r + 1}: {times[key][-1]:.3f} s")
    return times["b"], times["c"], first["b"], first["c"]


# --------------------------------------------------------------------------- (a) Gram matrices
def _rel_diff(cand: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """(max relative difference off the diagonal, on the diagonal)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(cand - base) / np.abs(base)
    diag = float(np.max(np.diagonal(rel)))
    np.fill_diagonal(rel, 0.0)
    return float(np.max(rel)), diag


def _memprobe(which: str, n: int) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "memprobe.py"), which, str(n), str(GRAM_D), str(GRAM_SEED)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"memory probe {which} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def bench_gram(n: int, repeats: int) -> list[Row]:
    log(f"(a) Gram matrices: n={n}, d={GRAM_D}")
    X = baselines.gaussian_inputs(n, GRAM_D, GRAM_SEED)
    cand_fn, cand_label = gramcases.candidate()
    base_fn, _ = gramcases.baseline()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t_base, t_cand, (b_nngp, b_ntk), (c_nngp, c_ntk) = race(
            lambda: base_fn(X), lambda: cand_fn(X), repeats
        )
    nngp_off, nngp_diag = _rel_diff(c_nngp, b_nngp)
    ntk_off, ntk_diag = _rel_diff(c_ntk, b_ntk)
    del b_nngp, b_ntk, c_nngp, c_ntk
    accurate = max(nngp_off, ntk_off) <= AGREEMENT
    best_b, best_c = min(t_base), min(t_cand)
    ratio = best_c / best_b
    name = f"Gram NNGP+NTK, depth-5 ReLU, n={n}, d={GRAM_D}"
    notes = (
        f"candidate = `{cand_label}`; max rel. diff off-diagonal NNGP {nngp_off:.1e},"
        f" NTK {ntk_off:.1e} (need ≤ {AGREEMENT:g}); diagonal NNGP {nngp_diag:.1e},"
        f" NTK {ntk_diag:.1e}; all runs cand. {', '.join(f'{t:.2f}' for t in t_cand)} s,"
        f" base. {', '.join(f'{t:.2f}' for t in t_base)} s"
        + (f"; {len(caught)} warning(s) from candidate: {caught[0].message}" if caught else "")
    )
    rows = [
        Row(
            name + " — time",
            fmt_s(best_c),
            fmt_s(best_b),
            fmt_ratio(ratio),
            "≤ 0.5×",
            verdict(ratio <= 0.5, accurate),
            notes,
        )
    ]

    log("  peak memory (fresh subprocesses)")
    mem = {w: _memprobe(w, n) for w in ("candidate", "baseline")}
    out_bytes = mem["candidate"]["output_bytes"]
    mb = 1e6
    c_peak, b_peak = mem["candidate"]["tracemalloc_peak"], mem["baseline"]["tracemalloc_peak"]
    rss_src = mem["candidate"].get("rss_peak_source", "ru_maxrss")
    rss_note = ", ".join(
        f"{w} {mem[w]['rss_delta'] / mb:.0f} MB" + ("" if mem[w]["rss_reliable"] else " (unreliable)")
        for w in ("candidate", "baseline")
    )
    rows.append(
        Row(
            name + " — peak memory",
            f"{c_peak / mb:.0f} MB",
            f"{b_peak / mb:.0f} MB",
            fmt_ratio(c_peak / b_peak),
            f"cand. ≤ 3× output ({3 * out_bytes / mb:.0f} MB)",
            verdict(c_peak <= 3 * out_bytes),
            f"tracemalloc peak, outputs included; output (two {n}×{n} float64) ="
            f" {out_bytes / mb:.0f} MB;"
            f" candidate = {c_peak / out_bytes:.2f}× output, baseline = {b_peak / out_bytes:.2f}×"
            f" output; peak RSS ({rss_src}) − RSS before call: {rss_note}",
        )
    )
    return rows


# --------------------------------------------------------------------------- (b) spectrum
def _mp_lambda(kernel: Any, d: int, l: int, log_lam: float, k1: float) -> dict[str, Any]:
    """mpmath Funk–Hecke λ_l at the lowest tried precision that agrees with fieldcurve."""
    dps = max(15, math.ceil((math.log(k1) - log_lam) / math.log(10)) + 12)
    total = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        value, err = baselines.funk_hecke_mpmath(kernel, d, l, dps)
        dt = time.perf_counter() - t0
        total += dt
        with mpmath.workdps(dps):
            rel = float(abs(value / mpmath.exp(mpmath.mpf(log_lam)) - 1))
            quad_rel = float(abs(err / value)) if value != 0 else math.inf
        if rel <= AGREEMENT:
            break
        dps += 15
    return {"l": l, "dps": dps, "time": dt, "total_time": total, "rel": rel, "quad_rel": quad_rel}


def bench_spectrum(d: int, lmax: int, points: int, n_mp: int, repeats: int) -> list[Row]:
    log(f"(b) spectrum d={d}, lmax={lmax}")
    kernel = fieldcurve.ntk_kernel(fieldcurve.MLP(SPEC_DEPTH, "relu", SPEC_WEIGHT_VAR, SPEC_BIAS_VAR))
    X = baselines.sphere_points(points, d, SPHERE_SEED)
    caught: list[warnings.WarningMessage] = []

    def candidate() -> Any:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            spec = spectrum(kernel, d, lmax)
        caught.extend(w)
        return spec

    _, gram = baselines.relu_nngp_ntk_numpy(X, SPEC_DEPTH, SPEC_WEIGHT_VAR, SPEC_BIAS_VAR)
    gram /= points

    def brute_force() -> np.ndarray:  # one eigvalsh of the points x points Gram (issue 12's unit)
        return np.linalg.eigvalsh(gram)

    t_base, t_cand, eig, spec = race(brute_force, candidate, repeats)
    best_b, best_c = min(t_base), min(t_cand)
    lam = np.exp(spec.log_eigenvalues)
    top_rel = abs(eig[-1] / lam[0] - 1)
    # the brute-force Gram must be the same kernel: compare with fieldcurve on a subset
    sub = X[: min(points, 200)]
    t_sub = np.clip(sub @ sub.T / d, -1.0, 1.0)
    _, ntk_sub = baselines.relu_nngp_ntk_numpy(sub, SPEC_DEPTH, SPEC_WEIGHT_VAR, SPEC_BIAS_VAR)
    same = np.abs(kernel(t_sub, d) / ntk_sub - 1)
    np.fill_diagonal(same, 0.0)  # rounded t = 1 - eps on the diagonal: k has a sqrt(1 - t) term
    same_kernel = float(np.max(same))
    methods = dict(Counter(spec.methods))
    est = float(np.max(spec.relative_errors))
    warn_note = f"; {len(caught)} warning(s): {caught[0].message}" if caught else ""
    name = f"spectrum NTK depth-5 ReLU, d={d}, lmax={lmax}"
    rows = [
        Row(
            f"{name} vs one eigvalsh of a {points}×{points} Gram",
            fmt_s(best_c),
            fmt_s(best_b),
            fmt_ratio(best_c / best_b),
            "≤ 0.1×",
            verdict(best_c <= 0.1 * best_b),
            f"candidate first (cold) call {t_cand[0]:.3g} s; baseline = numpy eigvalsh (Gram built untimed)"
            f" (its Gram vs fieldcurve `kernel(t)`, off-diagonal: max rel. diff {same_kernel:.1e});"
            f" top eigenvalue/P vs λ_0 rel. diff {top_rel:.1e} (brute force is crude);"
            f" fieldcurve routes {methods}, max estimated rel. error {est:.1e}{warn_note}",
        )
    ]

    degrees = sorted({round(x) for x in np.linspace(0, lmax, n_mp)})
    mp_rows = []
    for l in degrees:
        res = _mp_lambda(kernel, d, l, float(spec.log_eigenvalues[l]), spec.kernel_at_one)
        log(f"  mpmath l={l}: {res['time']:.2f} s at {res['dps']} digits, rel diff {res['rel']:.1e}")
        mp_rows.append(res)
    per_degree = float(np.mean([r["time"] for r in mp_rows]))
    base_mp = per_degree * (lmax + 1)
    worst = max(r["rel"] for r in mp_rows)
    retried = [r["l"] for r in mp_rows if r["total_time"] > r["time"]]
    detail = ", ".join(f"l={r['l']}: {r['rel']:.1e} ({r['dps']} dps, {r['time']:.2f} s)" for r in mp_rows)
    rows.append(
        Row(
            f"{name} vs mpmath.quad Funk–Hecke",
            fmt_s(best_c),
            f"{base_mp:.3g} s (extrap.)",
            fmt_ratio(best_c / base_mp),
            "≤ 0.01×",
            verdict(best_c / base_mp <= 0.01, worst <= AGREEMENT),
            f"baseline = mean {per_degree:.3g} s/degree over l ∈ {degrees} × {lmax + 1} degrees;"
            f" fieldcurve vs mpmath rel. diff: {detail}; max {worst:.1e} (need ≤ {AGREEMENT:g})"
            + (
                f"; mpmath first tried fewer digits for l ∈ {retried} (failed tries untimed)"
                if retried
                else ""
            ),
        )
    )
    return rows


# --------------------------------------------------------------------------- (c) learning curves
def _synthetic_spectrum(d: int, lmax: int) -> Any:
    """A ReLU-NTK-like spectrum (lambda_l ~ l^-d) with exact multiplicities and a small tail."""
    from fieldcurve.spectrum import Spectrum
    from fieldcurve.sphere import log_multiplicity

    deg = np.arange(lmax + 1)
    lam = 0.3 * (deg + 1.0) ** (-float(d))
    logn = log_multiplicity(d, deg)
    tail = 0.01
    return Spectrum(
        d=d,
        degrees=deg,
        eigenvalues=lam,
        log_eigenvalues=np.log(lam),
        multiplicities=np.exp(logn),
        log_multiplicities=logn,
        kernel_at_one=float(np.sum(np.exp(logn) * lam) + tail),
        tail_mass=tail,
        error_estimates=np.zeros(lmax + 1),
        methods=("synthetic",) * (lmax + 1),
        name="synthetic l^-d spectrum",
    )


def bench_learning_curve(lmax: int, n_p: int, repeats: int) -> list[Row]:
    """1000 values of P on a 2000-degree spectrum: vectorised solver vs brentq point by point;
    and the Monte Carlo measurement of a (smaller) curve beside it."""
    from scipy.optimize import brentq

    import fieldcurve as fc
    from fieldcurve.theory.eigenlearning import _levels, learning_curve

    d = 5
    spec = _synthetic_spectrum(d, lmax)
    tgt = fc.Target.from_degree_powers({1: 1.0, 2: 0.5, 3: 0.25}, noise=0.01, d=d)
    P = np.geomspace(10, 1e6, n_p).round()
    lam, mult, leftover, _ = _levels(spec, 8.0)
    v2 = tgt.power_array(lmax)

    def baseline() -> np.ndarray:
        out = np.empty(len(P))
        for i, p in enumerate(P):

            def f(x: float, p: float = p) -> float:
                return float(np.sum(mult * lam / (lam + x)) + leftover / x - p)

            k = brentq(f, 1e-300, 1e6, xtol=1e-300, rtol=1e-13)
            L = lam / (lam + k)
            e0 = p / (p - np.sum(mult * L * L))
            Ld = spec.eigenvalues / (spec.eigenvalues + k)
            out[i] = e0 * (np.sum((1 - Ld) ** 2 * v2) + tgt.noise) - tgt.noise
        return out

    def candidate() -> np.ndarray:
        return learning_curve(spec, tgt, P).test_error

    tb, tc, rb, rc = race(baseline, candidate, repeats)
    err = float(np.max(np.abs(rc / rb - 1)))
    ratio = min(tc) / min(tb)
    rows = [
        Row(
            f"learning curve, {n_p} P values, {lmax + 1} degrees",
            fmt_s(min(tc)),
            fmt_s(min(tb)) + " (brentq per P)",
            fmt_ratio(ratio),
            "≤ 0.2×, few ms",
            verdict(ratio <= 0.2, err < 1e-9),
            f"max relative difference {err:.1e}",
        )
    ]
    # Monte Carlo of a curve beside it (kernel regression, 10 trials, P <= 1000)
    kernel = fc.ntk_kernel(fc.MLP(2, "relu", 2.0, 0.0))
    mc_P = np.array([10, 30, 100, 300, 1000])
    spec_small = fc.spectrum(kernel, d, 40)
    t0 = time.perf_counter()
    fc.empirical_learning_curve(kernel, tgt, mc_P, d=d, trials=10, seed=0, n_test=1000, per_degree=False)
    t_mc = time.perf_counter() - t0
    t0 = time.perf_counter()
    learning_curve(spec_small, tgt, mc_P)
    t_th = time.perf_counter() - t0
    rows.append(
        Row(
            "theory vs Monte Carlo of the same 5-point curve (P ≤ 1000, 10 trials)",
            fmt_s(t_th),
            fmt_s(t_mc) + " (kernel regression)",
            fmt_ratio(t_th / t_mc),
            "(report)",
            "PASS",
            "information: cost of measuring instead of predicting",
        )
    )
    return rows


# --------------------------------------------------------------------------- (d) smooth activations
def bench_smooth_gram(n: int, repeats: int) -> list[Row]:
    """Gram of a quadrature-only activation (tanh, depth 3) against the ReLU closed form, same
    inputs on the sphere, same process; goal <= 3x. Accuracy: the tanh Gram's top-left block
    against the direct 2-D quadrature (Activation.dual_quadrature path, 1e-12)."""
    log(f"(d) tanh Gram vs ReLU closed form: n={n}, d=30, depth 3")
    X = fieldcurve.sample_sphere(n, 30, seed=SPHERE_SEED)
    relu = fieldcurve.MLP(3, "relu", 2.0, 0.1)
    tanh = fieldcurve.MLP(3, "tanh", 2.0, 0.1)
    b_t, c_t, _, cand = race(
        lambda: fieldcurve.nngp_ntk_gram(relu, X), lambda: fieldcurve.nngp_ntk_gram(tanh, X), repeats
    )
    m = 40
    ref = _quadrature_gram(tanh, X[:m])
    err = max(float(np.max(np.abs(c[:m, :m] - r)) / np.abs(r).max()) for c, r in zip(cand, ref, strict=True))
    ratio = min(c_t) / min(b_t)
    return [
        Row(
            f"Gram NNGP+NTK, tanh depth 3, {n} points (sphere) / ReLU closed form",
            fmt_s(min(c_t)),
            fmt_s(min(b_t)),
            fmt_ratio(ratio),
            "≤ 3×",
            verdict(ratio <= 3, err <= 1e-12),
            f"max rel. deviation from the 2-D quadrature on {m}×{m}: {err:.1e}",
        )
    ]


def _quadrature_gram(mlp: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NNGP and NTK (NTK parameterisation) by the plain recursion with the public 2-D
    quadrature duals (Activation.dual_quadrature): an independent reference for the tables."""
    act = mlp.activation
    K = X @ X.T / X.shape[1]
    T = np.zeros_like(K)
    for layer in range(mlp.depth + 1):
        K = mlp.weight_vars[layer] * K + mlp.bias_vars[layer]
        T = K + mlp.weight_vars[layer] * T
        if layer == mlp.depth:
            break
        q = np.diag(K)
        k11, k22 = np.broadcast_to(q[:, None], K.shape), np.broadcast_to(q[None, :], K.shape)
        T = T * act.dual_quadrature(k11, K, k22, derivative=True)
        K = act.dual_quadrature(k11, K, k22)
    return K, T


def _import_seconds(statement: str, repeats: int) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeats):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(res.stdout.strip().splitlines()[-1]))
    return min(times)


def bench_import(repeats: int) -> list[Row]:
    """``import fieldcurve`` in a fresh interpreter against ``import numpy, scipy.special,
    scipy.linalg`` (best of 2 x repeats each, alternated); goal <= 1.5x."""
    log("(e) import time")
    base, cand = [], []
    for _ in range(max(2, repeats)):
        base.append(_import_seconds("import numpy, scipy.special, scipy.linalg", 1))
        cand.append(_import_seconds("import fieldcurve", 1))
    ratio = min(cand) / min(base)
    return [
        Row(
            "import fieldcurve / import numpy, scipy.special, scipy.linalg",
            fmt_s(min(cand)),
            fmt_s(min(base)),
            fmt_ratio(ratio),
            "≤ 1.5×",
            verdict(ratio <= 1.5),
            "fresh interpreters, best of the alternated runs",
        )
    ]


def self_checks() -> list[str]:
    """Untimed consistency checks of the baselines themselves."""
    with mpmath.workdps(40):
        t = mpmath.mpf("0.3")
        a = baselines.legendre_mp(37, t, 10)
        b = baselines.legendre_mp_gegenbauer(37, t, 10)
        legendre_rel = float(abs(a / b - 1))
    return [f"P_37^(10)(0.3): recurrence vs mpmath.gegenbauer/gegenbauer(1) rel. diff {legendre_rel:.1e}"]


# --------------------------------------------------------------------------- report
def _fmt_load(load: tuple[float, ...]) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


def to_markdown(
    rows: list[Row], info: dict[str, Any], mode: str, repeats: int, checks: list[str], elapsed: float
) -> str:
    header = [
        "benchmark",
        "candidate time",
        "baseline time",
        "ratio (candidate/baseline)",
        "goal",
        "pass/fail",
        "notes (accuracy)",
    ]
    lines = [
        f"# fieldcurve benchmarks ({mode} run)",
        "",
        sysinfo.to_markdown(info),
        f"- timing: best of {repeats} per contestant, interleaved in one process"
        f" (mpmath baseline: one timed run per sampled degree); total wall time {elapsed:.0f} s",
        f"- load average (1, 5, 15 min) at start: {_fmt_load(info['loadavg'])}; at end:"
        f" {_fmt_load(os.getloadavg())} — above the CPU count means other processes competed"
        " for the cores during the run",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for r in rows:
        cells = [r.benchmark, r.candidate, r.baseline, r.ratio, r.goal, r.verdict, r.notes]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Baseline self-checks:", *(f"- {c}" for c in checks), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (1000 inputs, lmax 50, d in {10, 100}); < 1 minute"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results.md",
        help="Markdown file to write (default benchmarks/results.md)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per contestant, best taken (default 3)"
    )
    parser.add_argument(
        "--only",
        choices=("gram", "spectrum", "curve", "smooth", "import"),
        default=None,
        help="run one benchmark family only",
    )
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    start = time.perf_counter()
    info = sysinfo.describe(HERE.parent)
    rows: list[Row] = []
    if args.only in (None, "gram"):
        rows += bench_gram(size["gram_n"], args.repeats)
    if args.only in (None, "curve"):
        rows += bench_learning_curve(2000 if mode == "full" else 500, 1000, args.repeats)
    if args.only in (None, "smooth"):
        rows += bench_smooth_gram(1500 if mode == "full" else 500, args.repeats)
    if args.only in (None, "import"):
        rows += bench_import(args.repeats)
    if args.only in (None, "spectrum"):
        for d in size["dims"]:
            rows += bench_spectrum(d, size["lmax"], size["gram_points"], size["mp_degrees"], args.repeats)
    text = to_markdown(rows, info, mode, args.repeats, self_checks(), time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    log(f"written to {args.out}")
    return 0 if all(r.verdict == "PASS" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
