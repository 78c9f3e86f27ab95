r"""Roberts, Yaida & Hanin, *The Principles of Deep Learning Theory* (PDLT, 2022), ch. 4–5: the
normalised fourth cumulant of the preactivations against depth at criticality, ReLU vs tanh.

For one input, layer :math:`\ell`'s preactivations are Gaussian given the previous layer, with
random variance :math:`S_\ell`; at large width n

.. math:: \frac{\mathbb E z^4}{3(\mathbb E z^2)^2} - 1 = \frac{V^{(\ell)}}{n\,(K^{(\ell)})^2}
          + O(n^{-2}),

with the recursions for :math:`K` and :math:`V` of :mod:`fieldcurve.finite_width`
(``fc.finite_width_statistics``). At criticality (``fc.critical_initialization``:
:math:`\chi_\parallel = \chi_\perp = 1`) the cumulant grows linearly with depth: for ReLU
(:math:`C_W = 2`, :math:`C_b = 0`) exactly :math:`5(\ell-1)/n` at leading order, and the exact
finite-width value is the product :math:`(1 + 5/n)^{\ell-1} - 1` (``fourth_cumulant_exact``);
for tanh (:math:`C_W = 1`, :math:`C_b = 0`, the :math:`K^* = 0` class) the slope per layer tends
to :math:`2/(3n)` at large depth (PDLT ch. 5), so tanh networks stay much closer to Gaussian.
Monte Carlo: ``fc.monte_carlo_statistics`` simulates random networks exactly (n Gaussian draws
per layer given :math:`S_\ell`) and estimates the cumulant with its standard error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import fieldcurve as fc
from fieldcurve.figures._common import CurveTable, FigureResult, Progress, finish, new_figure, subseed

NAME = "pdlt_fourth_cumulant"
WIDTH = 64
DEPTH = 12  # hidden layers; preactivation layers 1 .. DEPTH + 1
ACTIVATIONS = ("relu", "tanh")
DISPLAY = {"relu": "ReLU", "tanh": "tanh"}


@dataclass(frozen=True)
class _Size:
    networks: int


_FULL = _Size(networks=1_000_000)
_QUICK = _Size(networks=100_000)


def make(out_dir: Path, *, quick: bool, seed: int, progress: bool) -> FigureResult:
    """Compute and write the figure (see the module docstring)."""
    log = Progress(NAME, progress)
    size = _QUICK if quick else _FULL
    n = WIDTH
    layers = np.arange(1, DEPTH + 2, dtype=float)
    table = CurveTable()
    fig, axes = new_figure(2, 5.8, 4.6)
    summary: dict = {
        "quick": quick,
        "seed": seed,
        "width": n,
        "depth": DEPTH,
        "networks": size.networks,
        "layer": layers,
    }
    for k, (act, ax) in enumerate(zip(ACTIVATIONS, axes, strict=True)):
        crit = fc.critical_initialization(act)
        mlp = fc.MLP(DEPTH, act, crit.weight_var, crit.bias_var)
        with warnings.catch_warnings(record=True) as caught:
            # the figure deliberately reaches depth/width and cumulants where the 1/n series
            # is unreliable for ReLU; the warning is recorded in the summary instead
            warnings.simplefilter("always", RuntimeWarning)
            stats = fc.finite_width_statistics(mlp, n)
        log(f"{act}: Monte Carlo over {size.networks:,} networks of width {n}")
        mc = fc.monte_carlo_statistics(mlp, n, size.networks, seed=subseed(seed, 1, k))
        lo = stats.fourth_cumulant
        exact = stats.fourth_cumulant_exact
        reference = exact if exact is not None else lo
        deep = layers >= 2
        z_ref = np.abs(mc.fourth_cumulant - reference)[deep] / mc.fourth_cumulant_se[deep]
        z_lo = np.abs(mc.fourth_cumulant - lo)[deep] / mc.fourth_cumulant_se[deep]
        slope = np.polyfit(layers[deep], n * lo[deep], 1)[0]
        entry = {
            "bias_var": crit.bias_var,
            "weight_var": crit.weight_var,
            "universality_class": crit.universality_class,
            "leading_order": lo,
            "exact": exact,
            "monte_carlo": mc.fourth_cumulant,
            "monte_carlo_se": mc.fourth_cumulant_se,
            "leading_order_slope_times_width": float(slope),
            "last_layer_increment_times_width": float(n * (lo[-1] - lo[-2])),
            "mc_max_z_vs_reference": float(z_ref.max()),
            "mc_max_z_vs_leading_order": float(z_lo.max()),
            "mc_max_rel_dev_vs_reference": float(
                np.max(np.abs(mc.fourth_cumulant[deep] / reference[deep] - 1))
            ),
            "reference": "exact" if exact is not None else "leading_order",
            "expansion_warning": str(caught[0].message) if caught else None,
        }
        summary[act] = entry
        log(
            f"{act}: slope x n = {slope:.3f}; MC vs {entry['reference']}: max z = {z_ref.max():.2f},"
            f" max rel. dev. = {entry['mc_max_rel_dev_vs_reference']:.3f}"
        )
        table.theory(act, "leading_order", layers, lo)
        ax.plot(layers, n * lo, "-", color="tab:blue", lw=1.5, label="leading order $V/(nK^2)$")
        if exact is not None:
            table.theory(act, "exact", layers, exact, source="exact")
            ax.plot(layers, n * exact, "--", color="tab:green", lw=1.5, label="exact $(1+5/n)^{\\ell-1}-1$")
        else:
            ref = (2.0 / 3.0) * (layers - 1)
            table.theory(act, "asymptote_2/3", layers, ref / n, source="reference")
            ax.plot(layers, ref, ":", color="grey", lw=1.2, label="slope 2/3 per layer (PDLT, large ℓ)")
        table.points(
            act, "monte_carlo", "monte_carlo", layers, mc.fourth_cumulant, mc.fourth_cumulant_se, reference
        )
        ax.errorbar(
            layers,
            n * mc.fourth_cumulant,
            yerr=n * mc.fourth_cumulant_se,
            fmt="o",
            color="black",
            ms=4,
            capsize=3,
            label=f"Monte Carlo ({size.networks:,} networks)",
        )
        ax.set(
            xlabel="layer ℓ (preactivations; last = output)",
            ylabel="n × [E z⁴ / (3 (E z²)²) − 1]",
            title=(
                f"({'ab'[k]}) {DISPLAY[act]} at criticality:"
                f" $C_W$ = {crit.weight_var:g}, $C_b$ = {crit.bias_var:g}"
            ),
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"PDLT: normalised fourth cumulant vs depth, width n = {n}")
    return finish(NAME, out_dir, fig, table, summary, log)
