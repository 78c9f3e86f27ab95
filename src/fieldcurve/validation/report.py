r"""Compare a stored sweep with fieldcurve's predictions and write the report (Markdown + PNG).

Prediction for each setting (infinite width):

* ``gd`` from the standard initialisation: :func:`fieldcurve.network_learning_curve` with
  ``regime="gd"`` (NTK regression plus the initialisation term); on data sets the same through
  :func:`fieldcurve.dataset_spectrum` with ``init_kernel``;
* ``gd`` from centred or antisymmetric initialisation (:math:`f_0 = 0`): ridgeless NTK regression;
* ``langevin``: GP regression with the NNGP kernel and noise variance ``noise_var`` (the
  posterior mean of the Bayesian network).

Per width and P: measured mean over seeds :math:`\bar E`, standard error (std/√seeds),
prediction :math:`E`, relative error :math:`|E - \bar E|/\bar E`, and :math:`z = (E - \bar E)/SE`;
and, run by run, the trained network against the infinitely wide one *on the same data*
(:func:`fieldcurve.validation.runner.infinite_width_error`): the mean of trained/same-data − 1,
which isolates finite width and training from the learning-curve theory and the data draw.
The experiment passes at a width when the median relative error over P is at most
``experiment.tolerance``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

import fieldcurve as fc
from fieldcurve.validation.config import Experiment, load_config
from fieldcurve.validation.runner import dataset_of, network_of, target_of
from fieldcurve.validation.store import ResultsStore

__all__ = ["predictions", "summarize", "write_report"]


def predictions(config: dict, width: int, P: Any) -> np.ndarray:
    """Infinite-width prediction of the measured test error for the sizes ``P``."""
    P = np.asarray(P, dtype=float)
    mlp = network_of(config, width)
    tr = config["training"]
    if "powers" in config["target"]:
        target = target_of(config)
        d = config["target"]["d"]
        lmax = max(40, max(target.powers, default=0) + 10)
        if tr["method"] == "langevin":
            spec = fc.spectrum(fc.nngp_kernel(mlp), d, lmax)
            return fc.learning_curve(spec, target, P, ridge=tr["noise_var"]).test_error
        if tr["init"] == "standard":
            return fc.network_learning_curve(mlp, target, P, regime="gd", lmax=lmax).test_error
        return fc.learning_curve(fc.spectrum(fc.ntk_kernel(mlp), d, lmax), target, P).test_error
    data = dataset_of(config)
    if tr["method"] == "langevin":
        spec = fc.dataset_spectrum(fc.nngp_kernel(mlp), data)
        return fc.dataset_learning_curve(spec, P, ridge=tr["noise_var"]).test_error
    init = fc.nngp_kernel(mlp) if tr["init"] == "standard" else None
    spec = fc.dataset_spectrum(fc.ntk_kernel(mlp), data, init_kernel=init)
    return fc.dataset_learning_curve(spec, P).test_error


def summarize(store: ResultsStore, experiment: Experiment) -> dict:
    """Aggregate the stored runs per (width, P) and attach predictions and pass/fail."""
    by: dict[tuple[int, int], list[float]] = {}
    extra: dict[tuple[int, int], list[dict]] = {}
    for row in store.rows("done"):
        by.setdefault((row["width"], row["P"]), []).append(row["result"]["test_error"])
        extra.setdefault((row["width"], row["P"]), []).append(row["result"])
    failed = store.counts().get("failed", 0)
    tol = experiment.config["experiment"]["tolerance"]
    widths = {}
    for width in experiment.widths:
        sizes = [P for P in experiment.sizes if (width, P) in by]
        if not sizes:
            continue
        pred = predictions(experiment.config, width, sizes)
        rows = []
        for P, E in zip(sizes, pred, strict=True):
            vals = np.asarray(by[(width, P)])
            mean = float(vals.mean())
            se = float(vals.std(ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else math.nan
            info = extra[(width, P)]
            rows.append(
                {
                    "P": P,
                    "runs": len(vals),
                    "measured": mean,
                    "se": se,
                    "predicted": float(E),
                    "rel_error": abs(E - mean) / abs(mean) if mean != 0 else math.inf,
                    "z": (E - mean) / se if se and se > 0 else math.nan,
                    "converged": all(r.get("converged", True) for r in info),
                    "steps": float(np.mean([r["steps"] for r in info])) if "steps" in info[0] else None,
                    "ess": float(np.min([r["ess"] for r in info])) if "ess" in info[0] else None,
                    **_paired(info),
                }
            )
        median = float(np.median([r["rel_error"] for r in rows]))
        widths[width] = {"rows": rows, "median_rel_error": median, "passed": median <= tol}
    return {
        "experiment": experiment.name,
        "tolerance": tol,
        "widths": widths,
        "failed_runs": failed,
        "passed": bool(widths) and all(w["passed"] for w in widths.values()),
        **_finite_width_summary(extra),
    }


def _finite_width_summary(extra: dict[tuple[int, int], list[dict]]) -> dict:
    r"""Measured finite-width gap vs the :math:`O(1/n)` prediction, on the same data run by run.

    Per run: measured gap :math:`g = E_n/E_{GP} - 1` (trained vs the infinitely wide network on
    the same data) and predicted gap :math:`h = \Delta E/(n E_{GP})`. The gap's sign and size
    depend on the data set, so per (P, width) the errors are root mean squares over runs: of the
    infinite-width prediction :math:`\sqrt{\overline{g^2}}`, of the corrected one
    :math:`\sqrt{\overline{(g-h)^2}}`, their ratio (``improvement``), the regression slope of
    g on h through the origin (1 if the theory is right) and the correlation. The noise floor
    f (the measurement's own scatter) is, when every run stored its Monte Carlo standard error
    (``test_error_se``), the RMS over runs of that error relative to :math:`E_{GP}` at each width;
    otherwise the RMS gap at the largest width, where the predicted gap is smallest.
    ``*_signal`` values remove it in quadrature, :math:`\sqrt{\max(x^2 - f^2, 0)}`. Per P the
    log-log slope of the signal RMS gap against n (-1 for a 1/n law) is fitted over the widths
    whose RMS gap exceeds 1.5 times the floor.
    """
    per_P: dict[int, list[dict]] = {}
    for (width, P), runs in sorted(extra.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        pairs = [
            (
                r["test_error"] / r["infinite_width_same_data"] - 1,
                r["finite_width_nlo"] / (width * r["finite_width_gp"]),
            )
            for r in runs
            if "finite_width_nlo" in r
        ]
        if len(pairs) < 2:
            continue
        g, h = np.array(pairs).T
        sq = math.sqrt(len(g))
        ses = [
            r["test_error_se"] / r["finite_width_gp"]
            for r in runs
            if "finite_width_nlo" in r and "test_error_se" in r
        ]
        noise = float(np.sqrt(np.mean(np.square(ses)))) if len(ses) == len(g) else None
        rms_g, rms_r = float(np.sqrt(np.mean(g * g))), float(np.sqrt(np.mean((g - h) ** 2)))
        per_P.setdefault(P, []).append(
            {
                "width": width,
                "runs": len(g),
                "noise": noise,
                "gap": float(g.mean()),
                "gap_se": float(g.std(ddof=1) / sq),
                "predicted": float(h.mean()),
                "rms_gap": rms_g,
                "rms_predicted": float(np.sqrt(np.mean(h * h))),
                "rms_residual": rms_r,
                "residual": float((g - h).mean()),
                "residual_se": float((g - h).std(ddof=1) / sq),
                "improvement": rms_g / rms_r if rms_r > 0 else math.inf,
                "slope_on_prediction": float(g @ h / (h @ h)) if h @ h > 0 else math.nan,
                "pairs": [[float(a), float(b)] for a, b in zip(g, h, strict=True)],
                "correlation": float(np.corrcoef(g, h)[0, 1])
                if np.std(g) > 0 and np.std(h) > 0
                else math.nan,
            }
        )
    if not per_P:
        return {}
    out = {}
    for P, rows in per_P.items():
        per_run = all(r["noise"] is not None for r in rows)
        for r in rows:
            r["floor"] = r["noise"] if per_run else rows[-1]["rms_gap"]
            r["rms_gap_signal"] = math.sqrt(max(r["rms_gap"] ** 2 - r["floor"] ** 2, 0.0))
            r["rms_residual_signal"] = math.sqrt(max(r["rms_residual"] ** 2 - r["floor"] ** 2, 0.0))
        resolved = [r for r in rows if r["rms_gap"] > 1.5 * r["floor"]]
        slope = math.nan
        if len(resolved) >= 2:
            x = np.log([r["width"] for r in resolved])
            y = np.log([r["rms_gap_signal"] for r in resolved])
            slope = float(np.polyfit(x, y, 1)[0])
        out[P] = {
            "rows": rows,
            "noise_floor": max(r["floor"] for r in rows),
            "noise_source": "per-run Monte Carlo errors" if per_run else "RMS gap at the largest width",
            "slope": slope,
            "widths_in_fit": [r["width"] for r in resolved],
        }
    return {"finite_width": out}


def _paired(info: list[dict]) -> dict:
    """Trained vs the infinite-width network on the same data: mean ratio - 1 and its SE."""
    pairs = [
        (r["test_error"], r["infinite_width_same_data"]) for r in info if "infinite_width_same_data" in r
    ]
    if not pairs:
        return {"same_data": None, "paired_diff": None, "paired_se": None}
    ratio = np.array([m / k - 1 for m, k in pairs])
    se = float(ratio.std(ddof=1) / math.sqrt(len(ratio))) if len(ratio) > 1 else math.nan
    return {
        "same_data": float(np.mean([k for _, k in pairs])),
        "paired_diff": float(ratio.mean()),
        "paired_se": se,
    }


def _fmt(x: Any, spec: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, spec)


def write_report(store_path: str | Path, out_dir: str | Path, config: Any = None) -> dict:
    """Write ``report.md`` and ``report.png`` into ``out_dir`` from a store; returns the summary.

    ``config`` (a path, name or dict) defaults to the configuration saved in the store.
    """
    with ResultsStore(store_path) as store:
        cfg = store.config() if config is None else None
        if config is None and cfg is None:
            raise ValueError(f"{store_path} holds no experiment (no configuration stored)")
        experiment = load_config(cfg if cfg is not None else config)
        summary = summarize(store, experiment)
        counts = store.counts()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / "report.png"
    _plot(summary, experiment, png)
    tr = experiment.config["training"]
    lines = [
        f"# Validation report: {experiment.name}",
        "",
        experiment.config["experiment"].get("description", "") or "",
        "",
        f"- store: `{store_path}` — runs done: {counts.get('done', 0)}, failed: {counts.get('failed', 0)}",
        f"- training: {tr['method']}"
        + (
            f" (init {tr['init']}, tol {tr['tol']:g}, ensemble {tr['ensemble']})"
            if tr["method"] == "gd"
            else f" (noise_var {tr['noise_var']:g}, steps {tr['steps']}, burn-in {tr['burn_in']},"
            f" thin {tr['thin']}, chains {tr['ensemble']})"
        ),
        f"- tolerance: median relative error over P ≤ {summary['tolerance']:g}",
        f"- test error: {_error_definition(experiment)}",
        f"- fieldcurve {fc.__version__}",
        "",
    ]
    for width, w in summary["widths"].items():
        verdict = "PASS" if w["passed"] else "FAIL"
        lines += [
            f"## width {width}: {verdict} (median relative error {w['median_rel_error']:.1%})",
            "",
            "| P | runs | measured ± SE | predicted | rel. error | z | same data, infinite width |"
            " trained / same-data − 1 | converged | steps / min ESS |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in w["rows"]:
            diag = _fmt(r["steps"], ".0f") if r["steps"] is not None else _fmt(r["ess"], ".0f")
            lines.append(
                f"| {r['P']} | {r['runs']} | {_fmt(r['measured'])} ± {_fmt(r['se'], '.2g')} | "
                f"{_fmt(r['predicted'])} | {r['rel_error']:.1%} | {_fmt(r['z'], '.2f')} | "
                f"{_fmt(r['same_data'])} | "
                + (
                    f"{r['paired_diff']:+.1%} ± {_fmt(r['paired_se'] * 100, '.2g')}%"
                    if r["paired_diff"] is not None
                    else "—"
                )
                + f" | {'yes' if r['converged'] else 'NO'} | {diag} |"
            )
        lines.append("")
    if summary.get("finite_width"):
        lines += _finite_width_lines(summary["finite_width"])
        _plot_finite_width(summary["finite_width"], out / "finite_width.png")
    overall = "PASS" if summary["passed"] else "FAIL"
    lines += [f"**Overall: {overall}**", "", f"![learning curves]({png.name})", ""]
    (out / "report.md").write_text("\n".join(lines))
    return summary


def _error_definition(experiment: Experiment) -> str:
    """What the measured and predicted test errors are, in words (absolute, not relative)."""
    if not experiment.on_data:
        tg = experiment.config["target"]
        power = sum(tg["powers"].values())
        return (
            f"mean over {experiment.config['sweep']['n_test']} fresh sphere points of (f(x) − f*(x))²,"
            f" against the clean target (absolute; the target's power is {power:g}, label noise"
            f" {tg['noise']:g} is not included)"
        )
    data = dataset_of(experiment.config)
    return (
        f"squared error summed over the {data.Y.shape[1]} output(s), mean over the held-out points"
        f" of {data.name} (absolute, not divided by the outputs; labels: {data.encoding}; the zero"
        f" predictor scores {data.label_power:.4g})"
    )


def _finite_width_lines(fw: dict) -> list[str]:
    lines = [
        "## Finite width: measured gap vs the O(1/width) prediction (same data, run by run)",
        "",
        "gap g = trained / infinite-width-on-the-same-data − 1; predicted h = ΔE / (width · E_GP) from"
        " `fieldcurve.posterior_correction`. The gap changes sign from one data set to the next, so the"
        " errors are RMS over runs: infinite-width prediction √mean(g²), corrected √mean((g − h)²);"
        " slope = regression of g on h (1 if the theory is right).",
        "",
    ]
    for P, f in fw.items():
        src = f.get("noise_source", "RMS gap at the largest width")
        fit = (
            f"log-log slope of the RMS gap (noise floor removed: {src}) against width:"
            f" {f['slope']:.2f} (widths {', '.join(str(w) for w in f['widths_in_fit'])}; −1 is a 1/width law)"
            if not math.isnan(f["slope"])
            else f"RMS gap above 1.5 times the noise floor ({src}) at fewer than two widths: no slope"
        )
        lines += [
            f"### P = {P}: {fit}",
            "",
            "| width | runs | RMS gap (inf.-width error) | RMS predicted | RMS g − h (corrected error) |"
            " noise floor"
            " | improvement | same, noise floor removed | slope g on h | corr. | mean g − h ± SE |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in f["rows"]:
            lines.append(
                f"| {r['width']} | {r['runs']} | {r['rms_gap']:.2%} | {r['rms_predicted']:.2%} |"
                f" {r['rms_residual']:.2%} | {r.get('floor', f['noise_floor']):.2%} |"
                f" {r['improvement']:.2f}× |"
                f" {_signal(r)} |"
                f" {r['slope_on_prediction']:.2f} |"
                f" {r['correlation']:.2f} | {r['residual']:+.2%} ± {r['residual_se']:.2%} |"
            )
        lines.append("")
    lines += ["![finite width](finite_width.png)", ""]
    return lines


def _signal(r: dict) -> str:
    g, e = r["rms_gap_signal"], r["rms_residual_signal"]
    if g == 0:
        return "gap below the noise"
    return f"{g:.2%} → {e:.2%} ({g / e:.1f}×)" if e > 0 else f"{g:.2%} → below the noise"


def _plot_finite_width(fw: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, sc) = plt.subplots(1, 2, figsize=(12.0, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    _scatter_finite_width(fw, sc)
    for i, (P, f) in enumerate(fw.items()):
        c = colors[i % len(colors)]
        n = np.array([r["width"] for r in f["rows"]], dtype=float)
        ax.plot(n, [r["rms_gap"] for r in f["rows"]], "o-", color=c, label=f"P = {P}: |trained − GP| (RMS)")
        ax.plot(
            n, [r["rms_predicted"] for r in f["rows"]], "--", color=c, label=f"P = {P}: O(1/n) theory (RMS)"
        )
        ax.plot(
            n,
            [r["rms_residual"] for r in f["rows"]],
            "s:",
            color=c,
            mfc="none",
            label=f"P = {P}: |trained − corrected|",
        )
        ax.plot(
            n,
            [r.get("floor", f["noise_floor"]) for r in f["rows"]],
            color=c,
            lw=0.8,
            ls="-.",
            label=f"P = {P}: noise floor of the measurement",
        )
    ax.plot(n, n[0] / n * fw[next(iter(fw))]["rows"][0]["rms_predicted"], color="gray", lw=0.8, label="1/n")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width n")
    ax.set_ylabel("relative error on the same data (RMS over data sets)")
    ax.set_title("finite-width gap of the Bayesian posterior mean")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _scatter_finite_width(fw: dict, ax: Any) -> None:
    """Measured gap g against the predicted gap h, one point per run, coloured by width."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("viridis")
    rows = [(P, r) for P, f in fw.items() for r in f["rows"]]
    widths = sorted({r["width"] for _, r in rows})
    lim = 0.0
    for P, r in rows:
        g, h = np.array(r["pairs"]).T
        c = cmap(widths.index(r["width"]) / max(len(widths) - 1, 1))
        label = f"n = {r['width']}" + (f", P = {P}" if len(fw) > 1 else "")
        ax.scatter(h, g, s=14, color=c, label=label)
        lim = max(lim, float(np.max(np.abs(np.r_[g, h]))))
    lim *= 1.05
    ax.plot([-lim, lim], [-lim, lim], color="gray", lw=0.8, label="measured = predicted")
    ax.axhline(0.0, color="gray", lw=0.5, ls=":")
    ax.axvline(0.0, color="gray", lw=0.5, ls=":")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("predicted gap h = ΔE / (n E_GP)")
    ax.set_ylabel("measured gap g = E_n / E_GP − 1")
    ax.set_title("per data set: trained vs infinitely wide network")
    ax.legend(fontsize=7)


def _plot(summary: dict, experiment: Experiment, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if not summary["widths"]:  # nothing finished yet at the configured widths
        ax.text(0.5, 0.5, "no finished runs at the configured widths", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (width, w) in enumerate(summary["widths"].items()):
        c = colors[i % len(colors)]
        P = np.array([r["P"] for r in w["rows"]], dtype=float)
        ax.errorbar(
            P,
            [r["measured"] for r in w["rows"]],
            yerr=[0 if math.isnan(r["se"]) else r["se"] for r in w["rows"]],
            fmt="o",
            color=c,
            capsize=3,
            label=f"trained, width {width}",
        )
        dense = np.unique(np.round(np.geomspace(P.min(), P.max(), 40)))
        try:
            ax.plot(dense, predictions(experiment.config, width, dense), "-", color=c, alpha=0.7)
        except ValueError:
            ax.plot(P, [r["predicted"] for r in w["rows"]], "-", color=c, alpha=0.7)
    ax.plot([], [], "-", color="gray", label="infinite-width theory")
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(experiment.sizes)
    ax.set_xticklabels([str(p) for p in experiment.sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training samples P")
    ax.set_ylabel("test error")
    ax.set_title(f"{experiment.name}: trained networks vs theory")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
