"""EK, renormalised EK and the replica result against exact kernel regression (one figure).

Run: python benchmarks/ek_comparison.py  (about a minute; writes docs/figures/ek_vs_replica.png
and .csv, and prints the table used in docs/equivalent_kernel.md).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import fieldcurve as fc
from fieldcurve.theory import equivalent_kernel_curve, learning_curve

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"


def main() -> None:
    d = 10
    kernel = fc.nngp_kernel(fc.MLP(2, "relu", 2.0, 0.1))
    spec = fc.spectrum(kernel, d, 40)
    P_theory = np.unique(np.geomspace(5, 10_000, 60).round())
    P_exp = np.array([10, 40, 160, 640, 2560])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.3), sharey=True)
    rows = ["noise,P,measured,sem,replica,EK,rEK"]
    for ax, noise in zip(axes, (0.05, 0.5), strict=True):
        tgt = fc.Target.from_degree_powers({1: 1.0, 2: 0.5, 3: 0.25}, noise=noise, d=d)
        rep = learning_curve(spec, tgt, P_theory, ridge=noise)
        ek = equivalent_kernel_curve(spec, tgt, P_theory, ridge=noise)
        rek = equivalent_kernel_curve(spec, tgt, P_theory, ridge=noise, renormalised=True)
        emp = fc.empirical_learning_curve(
            kernel, tgt, P_exp, d=d, ridge=noise, trials=20, seed=0, n_test=1000, per_degree=False
        )
        ax.loglog(P_theory, rep.test_error, "k-", label="replica / eigenlearning")
        ax.loglog(P_theory, ek.test_error, "C0--", label="equivalent kernel")
        ax.loglog(P_theory, rek.test_error, "C1-.", label="renormalised EK")
        ax.errorbar(
            emp.P,
            emp.test_error,
            yerr=emp.test_error_sem,
            fmt="ko",
            ms=4,
            capsize=2,
            label="GP regression (20 trials)",
        )
        ax.set_title(f"noise σ² = {noise} (= ridge)")
        ax.set_xlabel("P")
        ax.grid(alpha=0.3, which="both")
        for k, p in enumerate(P_exp):
            r = learning_curve(spec, tgt, [p], ridge=noise).test_error[0]
            e = equivalent_kernel_curve(spec, tgt, [p], ridge=noise).test_error[0]
            q = equivalent_kernel_curve(spec, tgt, [p], ridge=noise, renormalised=True).test_error[0]
            rows.append(
                f"{noise},{p},{emp.test_error[k]:.5g},{emp.test_error_sem[k]:.2g},{r:.5g},{e:.5g},{q:.5g}"
            )
    axes[0].set_ylabel("test error $E_g$")
    axes[0].legend(fontsize=8)
    fig.suptitle("NNGP of a depth-2 ReLU network, d = 10, target power in degrees 1–3")
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / "ek_vs_replica.png", dpi=120)
    (OUT / "ek_vs_replica.csv").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
