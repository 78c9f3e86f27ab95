"""Plots (matplotlib, Agg backend): spectra on the sphere."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from fieldcurve.spectrum import Spectrum

__all__ = ["plot_spectrum"]


def plot_spectrum(spec: Spectrum, path: str | Path, title: str | None = None) -> Path:
    r"""Write a two-panel log-scale plot of a :class:`~fieldcurve.spectrum.Spectrum`.

    Left: :math:`\lambda_l` against the degree (markers show the route that computed each
    degree; zeros are omitted). Right: each degree's share :math:`N(d,l)\lambda_l/k(1)` and the
    cumulative fraction of the trace.
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
    ax2.set_xlabel("degree $l$")
    ax2.set_title("share of the trace $k(1)$")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(title or f"{spec.name}, d = {spec.d}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
