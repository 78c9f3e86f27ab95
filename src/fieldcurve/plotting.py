"""Plots (matplotlib, Agg backend): spectra on the sphere and learning curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fieldcurve.spectrum import Spectrum

__all__ = ["plot_learning_curve", "plot_spectrum"]


def plot_spectrum(spec: Spectrum, path: str | Path, title: str | None = None, target: Any = None) -> Path:
    r"""Write a two-panel log-scale plot of a :class:`~fieldcurve.spectrum.Spectrum`.

    Left: :math:`\lambda_l` against the degree (markers show the route that computed each
    degree; zeros are omitted). Right: each degree's share :math:`N(d,l)\lambda_l/k(1)` and the
    cumulative fraction of the trace; with ``target``, its share of power per degree
    :math:`v_l^2/\sum v^2` beside it (what the kernel must learn next to what it favours).
    """
    path = Path(path)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    deg = spec.degrees
    log10_lam = spec.log_eigenvalues / np.log(10)
    markers = {"series": "o", "quadrature": "s", "mpmath": "^"}
    for route, marker in markers.items():
        sel = np.array([m == route for m in spec.methods]) & np.isfinite(log10_lam)
        if sel.any():
            ax1.plot(deg[sel], log10_lam[sel], marker, ms=3.5, label=route, linestyle="none")
    ax1.set_xlabel("degree $l$")
    ax1.set_ylabel(r"$\log_{10}\lambda_l$")
    ax1.set_title(r"eigenvalues $\lambda_l$")
    ax1.grid(alpha=0.3)
    ax1.legend(title="route", fontsize=8)
    share = spec.weights / spec.kernel_at_one
    ok = np.isfinite(share) & (share > 0)
    ax2.semilogy(deg[ok], share[ok], "o", ms=3.5, label=r"$N(d,l)\lambda_l/k(1)$")
    cum = np.nancumsum(np.where(np.isfinite(share), share, 0.0))
    ax2.semilogy(deg, np.maximum(1 - cum, 1e-300), "-", label="1 − cumulative fraction")
    if target is not None and target.total_power > 0:
        tp = target.power_array(spec.lmax) / target.total_power
        sel = tp > 0
        ax2.semilogy(deg[sel], tp[sel], "s", ms=6, mfc="none", color="C3", label=r"target $v_l^2/\sum v^2$")
    ax2.set_xlabel("degree $l$")
    ax2.set_title("share of the trace $k(1)$")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(title or f"{spec.name}, d = {spec.d}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_learning_curve(
    curve: Any, path: str | Path, empirical: Any = None, title: str | None = None, finite_width: Any = None
) -> Path:
    r"""Log–log learning curve: total :math:`E_g` and per-degree errors :math:`E_l` (theory lines),
    with Monte Carlo means and standard errors as points when ``empirical`` is given, and the
    finite-width curve (:class:`fieldcurve.FiniteWidthCurve`, band = its Monte Carlo error) when
    ``finite_width`` is given.

    The per-degree curves show spectral bias: low degrees are learned first. Points outside the
    theory's validity (:attr:`~fieldcurve.theory.LearningCurve.valid`) are marked with crosses.
    """
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.loglog(curve.P, curve.test_error, "k-", lw=2, label=r"theory $E_g$")
    outside = ~np.asarray(curve.valid, dtype=bool)
    if outside.any():
        ax.loglog(
            curve.P[outside],
            curve.test_error[outside],
            "kx",
            ms=7,
            label="outside the theory's validity (dominant constant mode)",
        )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = curve.shown_degrees
    for i, l in enumerate(shown):
        c = colors[i % len(colors)]
        ax.loglog(curve.P, curve.error_per_degree[:, l], "--", color=c, lw=1.2, label=f"degree {l}")
    if finite_width is not None:
        fw = finite_width
        band = 2 * fw.correction_se / fw.width
        ax.loglog(fw.P, fw.test_error, "r-", lw=1.6, label=f"width {fw.width}: $E_g + \\Delta E_g/n$")
        ax.fill_between(fw.P, fw.test_error - band, fw.test_error + band, color="r", alpha=0.15, lw=0)
        bad = ~fw.valid
        if bad.any():
            ax.loglog(fw.P[bad], fw.test_error[bad], "rx", ms=6, label="correction > 20% (unreliable)")
    if empirical is not None:
        ax.errorbar(
            empirical.P,
            empirical.test_error,
            yerr=empirical.test_error_sem,
            fmt="ko",
            ms=4,
            capsize=2,
            label=f"kernel regression ({empirical.trials} trials)",
        )
        if empirical.error_per_degree is not None:
            for i, l in enumerate(empirical.degrees):
                if l in shown:
                    c = colors[shown.index(l) % len(colors)]
                    ax.errorbar(
                        empirical.P,
                        empirical.error_per_degree[:, i],
                        yerr=empirical.error_per_degree_sem[:, i],
                        fmt="o",
                        color=c,
                        ms=3,
                        capsize=2,
                        mfc="none",
                    )
    ax.set_xlabel("training samples $P$")
    if curve.meta.get("target") == "data labels":
        ax.set_ylabel("held-out squared error on the labels (absolute)")
    else:
        ax.set_ylabel(r"test error $E_g$ against the clean target (absolute)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(title or f"{curve.meta.get('spectrum', '')}, d = {curve.meta.get('d', '?')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_fourth_cumulant(
    stats: Any, path: str | Path, monte_carlo: Any = None, ntk_monte_carlo: Any = None
) -> Path:
    """Left: fourth cumulant E z^4/(3 (E z^2)^2) - 1 against the layer: leading order V/(n K^2), the
    exact value where known, and Monte Carlo points with error bars. Right (when the statistics
    carry it): the relative finite-width shift of the NTK mean, H/(n Theta), per layer, with the
    output layer's Monte Carlo value (``ntk_monte_carlo``, from ``monte_carlo_ntk``) if given."""
    layers = np.arange(1, stats.depth + 2)
    has_ntk = getattr(stats, "ntk_nlo", None) is not None
    fig, axes = plt.subplots(1, 2 if has_ntk else 1, figsize=(11.0 if has_ntk else 6.0, 4.2), squeeze=False)
    ax = axes[0, 0]
    ax.plot(layers, stats.fourth_cumulant, "-", color="tab:blue", label="leading order V/(n K²)")
    if stats.fourth_cumulant_exact is not None:
        ax.plot(layers, stats.fourth_cumulant_exact, "--", color="tab:green", label="exact (finite width)")
    if monte_carlo is not None:
        ax.errorbar(
            layers,
            monte_carlo.fourth_cumulant,
            yerr=monte_carlo.fourth_cumulant_se,
            fmt="o",
            color="black",
            ms=4,
            capsize=3,
            label=f"Monte Carlo ({monte_carlo.networks:,} networks)",
        )
    ax.set_xlabel("layer ℓ (preactivations; last = output)")
    ax.set_ylabel("E z⁴ / (3 (E z²)²) − 1")
    ax.set_title(
        f"{stats.meta.get('activation', '')}: width {stats.width}, depth/width = {stats.depth_to_width:.3g}"
    )
    ax.legend(fontsize=8)
    if has_ntk:
        ax = axes[0, 1]
        rel = np.asarray(stats.ntk_nlo) / (stats.width * np.asarray(stats.ntk))
        ax.plot(layers, rel, "o-", color="tab:purple", label="O(1/n) theory, one input")
        if ntk_monte_carlo is not None:
            m = ntk_monte_carlo
            ax.errorbar(
                [layers[-1]],
                [(m.mean - m.ntk) / m.ntk],
                yerr=[m.se / m.ntk],
                fmt="o",
                color="black",
                ms=4,
                capsize=3,
                label=f"Monte Carlo, output ({m.networks:,} networks)",
            )
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_xlabel("layer ℓ (the NTK of a neuron of layer ℓ)")
        ax.set_ylabel("(E NTK − NTK) / NTK")
        ax.set_title("finite-width shift of the NTK mean, H / (n Θ)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_tuning(result: Any, path: str | Path) -> Path:
    """Two panels: the best predicted value of every (depth, activation) configuration, and the
    landscape over (weight_var, bias_var) of the best one with its optimum marked — a grid, or
    the points the search evaluated (``landscape["scattered"]``)."""
    path = Path(path)
    key = result.objective
    land = result.landscape
    values = np.asarray(land.get("values", []), float)
    has_land = bool(land) and values.size > 1 and bool(np.any(np.isfinite(values) & (values > 0)))
    fig, axes = plt.subplots(1, 2 if has_land else 1, figsize=(11 if has_land else 6, 4.6), squeeze=False)
    ax = axes[0, 0]
    labels = [f"L={e['depth']} {e['activation']}" for e in result.ranking]
    vals = [float(e[key]) for e in result.ranking]
    finite = [v for v in vals if np.isfinite(v)]
    shown = [v if np.isfinite(v) else (max(finite) if finite else 1.0) for v in vals]
    ypos = np.arange(len(vals))[::-1]
    ax.barh(ypos, shown, color=["tab:red"] + ["tab:blue"] * (len(vals) - 1))
    ax.set_yticks(ypos, labels, fontsize=7)
    if finite:
        ax.set_xlim(0.95 * min(finite), 1.02 * max(finite))
    for y, v, x in zip(ypos, vals, shown, strict=True):
        ax.text(x, y, f" {v:.4g}" if np.isfinite(v) else " refused / never", va="center", fontsize=7)
    ax.set_xlabel("predicted test error" if key == "test_error" else "samples needed")
    ax.set_title(
        "best per configuration" + (f" (P = {result.P})" if result.P else f" (E = {result.target_error:g})")
    )
    if has_land:
        ax = axes[0, 1]
        w, b = np.asarray(land["weight_var"], float), np.asarray(land["bias_var"], float)
        best = result.ranking[0]
        label = "log10 " + ("E_g" if key == "test_error" else "samples")
        with np.errstate(divide="ignore", invalid="ignore"):
            logv = np.log10(values)
        if "scattered" in land:
            ok = np.isfinite(logv)
            if np.ptp(b) > 0 and np.ptp(w) > 0:
                sc = ax.scatter(
                    b[ok], w[ok], c=logv[ok], cmap="viridis", s=30, edgecolors="k", linewidths=0.3
                )
                fig.colorbar(sc, ax=ax, label=label)
                ax.set_yscale("log")
                ax.plot(best["bias_var"], best["weight_var"], "r*", ms=14, label="optimum")
                ax.set_xlabel("bias_var")
                ax.set_ylabel("weight_var")
                ax.legend(fontsize=8, loc="lower left")
            else:
                x, lab = (w, "weight_var") if np.ptp(w) > 0 else (b, "bias_var")
                order = np.argsort(x[ok])
                ax.plot(x[ok][order], values[ok][order], "ko-", ms=3)
                ax.axvline(best[lab], color="r", ls=":")
                ax.set_xlabel(lab)
                ax.set_yscale("log")
            ax.set_title(f"points evaluated: depth {best['depth']}, {best['activation']}")
        elif len(w) > 1 and len(b) > 1:
            im = ax.pcolormesh(b, w, np.ma.masked_invalid(logv), shading="nearest", cmap="viridis")
            fig.colorbar(im, ax=ax, label=label)
            ax.set_yscale("log")
            ax.plot(best["bias_var"], best["weight_var"], "r*", ms=14, label="optimum")
            ax.set_xlabel("bias_var")
            ax.set_ylabel("weight_var")
            ax.legend(fontsize=8, loc="lower left")
            ax.set_title(f"landscape: depth {best['depth']}, {best['activation']}")
        else:
            x, lab = (w, "weight_var") if len(w) > 1 else (b, "bias_var")
            ax.plot(x, values.ravel(), "k-")
            ax.axvline(best[lab], color="r", ls=":")
            ax.set_xlabel(lab)
            ax.set_yscale("log")
            ax.set_title(f"landscape: depth {best['depth']}, {best['activation']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
