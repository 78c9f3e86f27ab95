"""Command-line interface: ``fieldcurve spectrum`` (and more as the project grows).

Every bad input ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import click
import numpy as np

from fieldcurve import activations as act_mod
from fieldcurve.kernels import MLP, nngp_kernel, ntk_kernel
from fieldcurve.spectrum import spectrum as compute_spectrum

_PARAM_ACT = re.compile(r"^\s*([a-z_]+)\s*\(\s*([^)]*)\)\s*$")


@contextlib.contextmanager
def working(desc: str, enabled: bool = True) -> Iterator[None]:
    """Show ``desc`` and the elapsed time on stderr while the block runs (tqdm, refreshed twice a
    second by a background thread; shown only after one second, and never when stderr is not a
    terminal or ``enabled`` is False) — for steps that have no count of their own to report."""
    if not enabled:
        yield
        return
    from tqdm import tqdm

    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed} elapsed", delay=1.0, leave=False, disable=None)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.5):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def parse_activation(text: str) -> act_mod.Activation:
    """Parse ``relu``, ``abrelu(0.1, 1.0)``, ``leaky_relu(0.2)`` or ``monomial(3)`` (no eval)."""
    m = _PARAM_ACT.match(text.lower())
    if not m:
        return act_mod.get_activation(text)
    name, args = m.group(1), [a for a in m.group(2).split(",") if a.strip()]
    try:
        values = [float(a) for a in args]
    except ValueError as exc:
        raise ValueError(f"activation parameters must be numbers: {text!r}") from exc
    if name == "abrelu" and len(values) == 2:
        return act_mod.abrelu(*values)
    if name == "leaky_relu" and len(values) == 1:
        return act_mod.leaky_relu(values[0])
    if name == "monomial" and len(values) == 1 and values[0].is_integer():
        return act_mod.monomial(int(values[0]))
    raise ValueError(
        f"unknown parameterised activation {text!r}; use abrelu(a, b), leaky_relu(alpha) or monomial(k)"
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fieldcurve")
def cli() -> None:
    """fieldcurve: learning curves of neural networks from their infinite-width kernels.

    Conventions: inputs on the sphere of radius sqrt(d), cosine t = x.x'/d; eigenvalues of the
    kernel integral operator under the uniform probability measure, with multiplicities N(d,l).
    """


@cli.command("spectrum")
@click.option(
    "--activation",
    default="relu",
    show_default=True,
    help="relu, erf, gelu, tanh, ..., or abrelu(a,b), leaky_relu(alpha), monomial(k).",
)
@click.option("--depth", default=3, show_default=True, type=int, help="Hidden layers L.")
@click.option("--d", "dim", default=30, show_default=True, type=int, help="Input dimension d.")
@click.option("--lmax", default=50, show_default=True, type=int, help="Highest degree.")
@click.option("--kind", type=click.Choice(["ntk", "nngp"]), default="ntk", show_default=True)
@click.option("--weight-var", default=2.0, show_default=True, type=float, help="sigma_w^2.")
@click.option("--bias-var", default=0.0, show_default=True, type=float, help="sigma_b^2 (0 = no bias).")
@click.option("--parameterization", type=click.Choice(["ntk", "standard"]), default="ntk", show_default=True)
@click.option("--width", default=None, type=int, help="Hidden width (standard parameterization).")
@click.option(
    "--method",
    type=click.Choice(["auto", "series", "quadrature", "mpmath"]),
    default="auto",
    show_default=True,
)
@click.option(
    "--rtol",
    default=1e-10,
    show_default=True,
    type=float,
    help="Target relative accuracy of every eigenvalue.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--plot",
    "plot_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write a log-scale plot to this PNG file.",
)
def spectrum_cmd(
    activation: str,
    depth: int,
    dim: int,
    lmax: int,
    kind: str,
    weight_var: float,
    bias_var: float,
    parameterization: str,
    width: int | None,
    method: str,
    rtol: float,
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Eigenvalues of an MLP's NTK or NNGP on the sphere S^(d-1) (Funk-Hecke).

    Prints degree l, eigenvalue lambda_l, multiplicity N(d,l), N*lambda and the cumulative
    fraction of the trace k(1) = sum_l N(d,l) lambda_l.
    """
    mlp = MLP(
        depth,
        parse_activation(activation),
        weight_var,
        bias_var,
        parameterization=parameterization,
        width=width,
    )
    kernel = ntk_kernel(mlp) if kind == "ntk" else nngp_kernel(mlp)
    with working("spectrum", not as_json):
        spec = compute_spectrum(kernel, dim, lmax, method=method, rtol=rtol)
    if as_json:
        click.echo(json.dumps(spectrum_json(spec), indent=1))
    else:
        click.echo(format_spectrum_table(spec))
    if plot_path:
        from fieldcurve.plotting import plot_spectrum

        plot_spectrum(spec, plot_path)
        if not as_json:
            click.echo(f"plot written to {plot_path}")


def parse_powers(text: str) -> dict[int, float]:
    """Parse ``"1:1.0,2:0.5"`` into {1: 1.0, 2: 0.5}."""
    out: dict[int, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        if ":" not in item:
            raise ValueError(f"--powers expects degree:power pairs like 1:1.0,2:0.5, got {item!r}")
        deg, power = item.split(":", 1)
        try:
            out[int(deg)] = float(power)
        except ValueError as exc:
            raise ValueError(f"--powers: cannot read {item!r} as degree:power") from exc
    if not out:
        raise ValueError("--powers is empty")
    return out


def parse_p_grid(text: str) -> np.ndarray:
    """``"10:10000:30"`` (log-spaced, rounded to integers) or ``"10,100,1000"``."""
    try:
        if ":" in text:
            lo, hi, n = text.split(":")
            grid = np.unique(np.round(np.geomspace(float(lo), float(hi), int(n))))
        else:
            grid = np.array([float(v) for v in text.split(",") if v.strip()])
    except ValueError as exc:
        raise ValueError(f"--P expects lo:hi:count or a comma list, got {text!r}") from exc
    if grid.size == 0 or np.any(grid <= 0) or np.any(grid != np.round(grid)):
        raise ValueError(f"--P must contain positive integers, got {text!r}")
    return grid


@cli.command("predict")
@click.option(
    "--activation",
    default="relu",
    show_default=True,
    help="relu, erf, gelu, tanh, ..., or abrelu(a,b), leaky_relu(alpha), monomial(k).",
)
@click.option("--depth", default=3, show_default=True, type=int, help="Hidden layers L.")
@click.option("--weight-var", default=2.0, show_default=True, type=float, help="sigma_w^2.")
@click.option("--bias-var", default=0.0, show_default=True, type=float, help="sigma_b^2 (0 = no bias).")
@click.option(
    "--regime",
    type=click.Choice(["kernel", "gd", "bayes"]),
    default="kernel",
    show_default=True,
    help="kernel: ridge regression with the --kind kernel; gd: infinitely wide network trained "
    "by gradient descent to convergence (NTK regression plus the initialisation term); bayes: GP "
    "posterior mean with the NNGP kernel and noise variance = label noise (Langevin-trained net).",
)
@click.option(
    "--kind",
    type=click.Choice(["ntk", "nngp"]),
    default="ntk",
    show_default=True,
    help="Kernel used in the kernel regime.",
)
@click.option("--d", "dim", default=30, show_default=True, type=int, help="Input dimension d.")
@click.option(
    "--powers",
    default="1:1.0,2:0.5,3:0.25",
    show_default=True,
    help="Target power per degree v_l^2 as degree:power pairs.",
)
@click.option(
    "--polynomial",
    default=None,
    help="Target as a polynomial in x1..xd, e.g. 'x1*x2 + x3**3' (exact power per degree; "
    "replaces --powers).",
)
@click.option("--noise", default=0.01, show_default=True, type=float, help="Label-noise variance sigma^2.")
@click.option(
    "--ridge",
    default=0.0,
    show_default=True,
    type=float,
    help="Ridge delta in f = K(K + delta I)^-1 y (kernel regime).",
)
@click.option(
    "--P",
    "p_grid",
    default="10:10000:25",
    show_default=True,
    help="Sample sizes: lo:hi:count (log grid) or a comma list.",
)
@click.option(
    "--lmax",
    default=None,
    type=int,
    help="Highest degree of the spectrum (default: enough for the target and P).",
)
@click.option(
    "--empirical",
    "trials",
    default=0,
    show_default=True,
    type=int,
    help="Overlay exact kernel regression with this many trials (P <= 4000 points).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of --empirical.")
@click.option(
    "--dataset",
    type=click.Choice(["digits"]),
    default=None,
    help="Bundled real data (scikit-learn's digits, projected onto the sphere; one-hot labels).",
)
@click.option(
    "--data",
    "data_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Your data: a .npy or .csv file of inputs (used as given; see --labels).",
)
@click.option("--labels", default=None, help="Label column (index or CSV header name) or a file.")
@click.option(
    "--spectrum-plot",
    "spectrum_plot",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also plot the kernel's spectrum next to the target's power per degree.",
)
@click.option(
    "--width",
    "fw_width",
    default=None,
    type=int,
    help="Also the finite-width curve E_g + dE_g/width of the Bayesian network (--regime bayes; "
    "the correction is averaged over sampled training sets, P <= --fw-pmax).",
)
@click.option("--fw-trials", default=4, show_default=True, type=int, help="Training sets per P for --width.")
@click.option("--fw-pmax", default=1000, show_default=True, type=int, help="Largest P corrected by --width.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--csv", "csv_path", default=None, type=click.Path(dir_okay=False), help="Also write the curve as CSV."
)
@click.option(
    "--plot",
    "plot_path",
    default="learning_curve.png",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Plot file ('' for none).",
)
def predict_cmd(
    activation: str,
    depth: int,
    weight_var: float,
    bias_var: float,
    regime: str,
    kind: str,
    dim: int,
    powers: str,
    polynomial: str | None,
    noise: float,
    ridge: float,
    p_grid: str,
    lmax: int | None,
    trials: int,
    seed: int,
    as_json: bool,
    csv_path: str | None,
    plot_path: str,
    dataset: str | None,
    data_path: str | None,
    labels: str | None,
    spectrum_plot: str | None,
    fw_width: int | None,
    fw_trials: int,
    fw_pmax: int,
) -> None:
    """Predict the test error of a network against the number of samples P.

    Test error E_g = E_x[(f_hat(x) - f*(x))^2] against the clean target, averaged over training
    sets (the noisy-label error is E_g + sigma^2). Theory: eigenlearning / replica result from
    the kernel's exact spectrum on the sphere of radius sqrt(d); inputs uniform on that sphere;
    target described by its power per degree.
    """
    from fieldcurve.targets import Target
    from fieldcurve.theory import network_learning_curve

    mlp = MLP(depth, parse_activation(activation), weight_var, bias_var)
    if fw_width is not None and (regime != "bayes" or dataset or data_path):
        raise ValueError(
            "--width needs --regime bayes on a sphere target (the finite-width correction is"
            " for the Bayesian posterior mean)"
        )
    if dataset or data_path:
        _predict_on_data(
            mlp,
            regime,
            kind,
            ridge,
            noise,
            p_grid,
            trials,
            seed,
            as_json,
            csv_path,
            plot_path,
            dataset,
            data_path,
            labels,
            spectrum_plot,
        )
        return
    if polynomial:
        if not re.fullmatch(r"[\sx_0-9+\-*/().]+", polynomial):
            raise ValueError("--polynomial may contain only x1..xd, numbers and + - * / ** ( )")
        target = Target.from_polynomial(polynomial, dim, noise=noise)
    else:
        target = Target.from_degree_powers(parse_powers(powers), noise=noise, d=dim)
    P = parse_p_grid(p_grid)
    if regime == "bayes":
        kernel, ridge_used = nngp_kernel(mlp), target.noise
    else:
        kernel = ntk_kernel(mlp) if (kind == "ntk" or regime == "gd") else nngp_kernel(mlp)
        ridge_used = ridge if regime == "kernel" else 0.0
    if lmax is None:
        lmax = max(40, max(target.powers) + 10)
    with working("theory (spectra and learning curve)", not as_json):
        curve = network_learning_curve(
            mlp, target, P, d=dim, regime=regime, lmax=lmax, ridge=ridge_used, kind=kind
        )
        spec = compute_spectrum(kernel, dim, lmax)
    emp = None
    if trials:
        from fieldcurve.empirical import empirical_learning_curve

        emp_P = P[P <= 4000]
        emp = empirical_learning_curve(
            kernel,
            target,
            emp_P,
            d=dim,
            ridge=ridge_used,
            trials=trials,
            seed=seed,
            spectrum_for_degrees=spec,
            init_kernel=nngp_kernel(mlp) if regime == "gd" else None,
            progress=not as_json,
        )
    fw = None
    if fw_width is not None:
        from fieldcurve.theory.finite_width import finite_width_learning_curve

        fw_P = P[P <= fw_pmax]
        if not len(fw_P):
            raise ValueError(f"--fw-pmax {fw_pmax} is below every P of the grid")
        fw = finite_width_learning_curve(
            mlp,
            target,
            fw_P,
            width=fw_width,
            d=dim,
            seed=seed,
            trials=fw_trials,
            lmax=lmax,
            progress=not as_json,
        )
    _emit(
        curve,
        emp,
        f"{spec.name} ({regime} regime)",
        target,
        {"kernel": spec.name, "d": dim, "regime": regime, "target": target.name},
        as_json,
        csv_path,
        plot_path,
        None,
        fw,
    )
    if spectrum_plot:
        from fieldcurve.plotting import plot_spectrum

        plot_spectrum(spec, spectrum_plot, target=target)


def _predict_on_data(
    mlp: Any,
    regime: str,
    kind: str,
    ridge: float,
    noise: float,
    p_grid: str,
    trials: int,
    seed: int,
    as_json: bool,
    csv_path: str | None,
    plot_path: str,
    dataset: str | None,
    data_path: str | None,
    labels: str | None,
    spectrum_plot: str | None,
) -> None:
    """Learning curve on a real data set (empirical-measure theory, held-out error)."""
    from fieldcurve.data import load_dataset, load_digits
    from fieldcurve.theory import dataset_learning_curve, dataset_spectrum

    if dataset and data_path:
        raise ValueError("give either --dataset or --data, not both")
    data = load_digits() if dataset == "digits" else load_dataset(data_path, labels)
    if spectrum_plot:
        raise ValueError("--spectrum-plot shows degrees on the sphere; it does not apply to --data/--dataset")
    init_kernel = nngp_kernel(mlp) if regime == "gd" else None
    if regime == "bayes":
        kernel, ridge_used = nngp_kernel(mlp), noise
    elif regime == "gd":
        kernel, ridge_used = ntk_kernel(mlp), 0.0
    else:
        kernel, ridge_used = (ntk_kernel(mlp) if kind == "ntk" else nngp_kernel(mlp)), ridge
    P = parse_p_grid(p_grid if p_grid != "10:10000:25" else f"10:{data.size // 2}:12")
    if P.max() >= data.size:
        raise ValueError(f"--P must stay below the data set size M = {data.size}")
    with working(f"kernel and eigendecomposition of {data.name} (M = {data.size})", not as_json):
        spec = dataset_spectrum(kernel, data, init_kernel=init_kernel)
    curve = dataset_learning_curve(spec, P, ridge=ridge_used)
    emp = None
    if trials:
        from fieldcurve.empirical import empirical_dataset_curve

        emp = empirical_dataset_curve(
            kernel,
            data,
            P,
            ridge=ridge_used,
            trials=trials,
            seed=seed,
            init_kernel=init_kernel,
            progress=not as_json,
        )
    from fieldcurve.targets import Target

    _emit(
        curve,
        emp,
        f"{spec.name} ({regime} regime)",
        Target(powers={}, name=f"labels of {data.name} (held-out error)"),
        {"kernel": spec.name, "data": data.name, "M": data.size, "regime": regime},
        as_json,
        csv_path,
        plot_path,
        spec.name,
    )


def _emit(
    curve: Any,
    emp: Any,
    kernel_name: str,
    target: Any,
    extra: dict,
    as_json: bool,
    csv_path: str | None,
    plot_path: str,
    title: str | None,
    fw: Any = None,
) -> None:
    """Print the curve (table or JSON), and write the CSV and the plot if asked."""
    if as_json:
        out = curve.to_dict()
        out.update(extra)
        if fw is not None:
            out["finite_width"] = fw.to_dict()
        if emp is not None:
            out["empirical"] = [
                {"P": float(p), "test_error": float(m), "sem": float(e)}
                for p, m, e in zip(emp.P, emp.test_error, emp.test_error_sem, strict=True)
            ]
        click.echo(json.dumps(out, indent=1))
    else:
        click.echo(format_curve_table(curve, kernel_name, target, emp))
        if fw is not None:
            click.echo(format_finite_width_table(fw))
    if csv_path:
        write_curve_csv(curve, csv_path)
    if plot_path:
        from fieldcurve.plotting import plot_learning_curve

        plot_learning_curve(curve, plot_path, empirical=emp, title=title, finite_width=fw)
        if not as_json:
            click.echo(f"plot written to {plot_path}")


def format_curve_table(curve: Any, kernel_name: str, target: Any, emp: Any = None) -> str:
    """Readable table of a learning curve (and the measurement, if any).

    The per-degree columns E_l and ``rest`` (the other degrees' share of the effective noise
    and the power beyond lmax) add up to E_g. ``+-`` is the prediction's uncertainty from
    unresolved eigenvalues and the tail model (shown when non-zero); ``!`` marks points outside
    the theory's measured validity (the constant mode's share of the overfitting above 0.25).
    """
    degs = curve.meta.get("target_degrees", [])
    head = (
        f"# {kernel_name}"
        + (f", d = {curve.meta['d']}" if curve.meta.get("d") else "")
        + f"; target: {target.name};"
        f" noise {curve.noise:g}; ridge {curve.ridge:g}"
    )
    unc = curve.test_error_uncertainty
    show_unc = bool(np.any(unc > 0))
    valid = curve.valid
    cols = f"{'P':>7} {'E_g':>11}" + (f" {'+-':>9}" if show_unc else "")
    cols += f" {'E_g+noise':>11} {'train':>11} {'kappa':>11}"
    cols += "".join(f" {'E_l=' + str(l):>10}" for l in degs)
    if degs:
        cols += f" {'rest':>10}"
    if emp is not None:
        cols += f" {'measured':>11} {'+-sem':>9}"
    lines = [head, cols]
    measured = (
        {}
        if emp is None
        else {float(p): (m, e) for p, m, e in zip(emp.P, emp.test_error, emp.test_error_sem, strict=True)}
    )
    per_degree = curve.error_per_degree
    rest = curve.error_rest
    for i, p in enumerate(curve.P):
        row = f"{int(p):>7d} {curve.test_error[i]:>11.4e}" + (f" {unc[i]:>9.2e}" if show_unc else "")
        row += f" {curve.test_error_noisy[i]:>11.4e} {curve.train_error[i]:>11.4e} {curve.kappa[i]:>11.4e}"
        row += "".join(f" {per_degree[i, l]:>10.3e}" for l in degs)
        if degs:
            row += f" {rest[i]:>10.3e}"
        if emp is not None:
            m = measured.get(float(p))
            row += f" {m[0]:>11.4e} {m[1]:>9.2e}" if m else f" {'':>11} {'':>9}"
        if not valid[i]:
            row += "  !"
        lines.append(row)
    if not valid.all():
        from fieldcurve.theory.eigenlearning import VALID_CONSTANT_SHARE

        bad = ", ".join(f"{int(p)}" for p in curve.P[~valid])
        lines.append(
            f"# ! P = {bad}: outside the theory's validity — the constant mode's share of the"
            f" overfitting, L_0^2/P, exceeds {VALID_CONSTANT_SHARE:g} (a kernel dominated by its"
            " constant mode at small P); the theory overestimates E_g there, by up to several"
            " times (compare --empirical)"
        )
    return "\n".join(lines)


def format_finite_width_table(fw: Any) -> str:
    """The finite-width curve: infinite-width theory, the correction and the corrected error."""
    lines = [
        f"# width {fw.width}: E_g(n) = E_g + dE_g/n, dE_g averaged over sampled training sets"
        " (valid: |dE_g|/n <= 0.2 E_g)",
        f"{'P':>7} {'E_g':>11} {'E_g(n)':>11} {'dE_g':>11} {'+-se':>9} {'rel.':>7} {'L*P/n':>7} {'valid':>6}",
    ]
    for i, p in enumerate(fw.P):
        lines.append(
            f"{int(p):>7d} {fw.test_error_infinite[i]:>11.4e} {fw.test_error[i]:>11.4e}"
            f" {fw.correction[i]:>11.4e} {fw.correction_se[i]:>9.2e} {fw.relative_correction[i]:>7.1%}"
            f" {fw.expansion_parameter[i]:>7.2f} {'yes' if fw.valid[i] else 'NO':>6}"
        )
    return "\n".join(lines)


def write_curve_csv(curve: Any, path: str) -> None:
    """Write P, test errors (with uncertainty), train error, kappa, E0, per-degree errors, the
    rest of E_g and the validity flag as CSV."""
    degs = curve.meta.get("target_degrees", [])
    header = ["P", "test_error", "test_error_uncertainty", "test_error_noisy", "train_error", "kappa"]
    header += ["overfitting"] + [f"error_degree_{l}" for l in degs] + ["error_rest", "valid"]
    rows = [",".join(header)]
    per_degree, rest, valid = curve.error_per_degree, curve.error_rest, curve.valid
    for i, p in enumerate(curve.P):
        vals = [
            p,
            curve.test_error[i],
            curve.test_error_uncertainty[i],
            curve.test_error_noisy[i],
            curve.train_error[i],
            curve.kappa[i],
            curve.overfitting[i],
        ] + [per_degree[i, l] for l in degs]
        rows.append(",".join(f"{v:.10g}" for v in [*vals, rest[i]]) + f",{int(valid[i])}")
    with open(path, "w") as fh:
        fh.write("\n".join(rows) + "\n")


@cli.command("finite-width")
@click.option("--activation", default="tanh", show_default=True, help="Activation (as for predict).")
@click.option("--depth", default=8, show_default=True, type=int, help="Hidden layers L.")
@click.option("--width", default=64, show_default=True, type=int, help="Hidden width n.")
@click.option("--d", "dim", default=None, type=int, help="Input dimension (one input on the sqrt(d)-sphere).")
@click.option("--weight-var", default=None, type=float, help="C_W (default: the critical value).")
@click.option("--bias-var", default=None, type=float, help="C_b (default: the critical value).")
@click.option(
    "--mc",
    "networks",
    default=0,
    show_default=True,
    type=int,
    help="Also simulate this many random networks.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of --mc.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--plot", "plot_path", default=None, type=click.Path(dir_okay=False), help="Plot the cumulant vs depth."
)
def finite_width_cmd(
    activation: str,
    depth: int,
    width: int,
    dim: int | None,
    weight_var: float | None,
    bias_var: float | None,
    networks: int,
    seed: int,
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Finite-width statistics of a deep MLP at initialisation (1/width expansion, PDLT).

    Per preactivation layer l = 1 .. depth+1: the kernel K, its next-to-leading correction G
    (E z^2 = K + G/n), and the fourth cumulant E z^4/(3 (E z^2)^2) - 1 at leading order (V/(n K^2))
    and exactly where known (piecewise-linear activations); the NTK of a neuron of the layer,
    Theta, and its finite-width shift H (E NTK = Theta + H/n). --mc N also simulates N random
    networks (cumulants per layer, NTK of the output). The variances default to the activation's
    critical initialisation.
    """
    from fieldcurve.finite_width import (
        critical_initialization,
        finite_width_statistics,
        monte_carlo_ntk,
        monte_carlo_statistics,
    )

    if dim is not None and dim < 1:
        raise ValueError(f"--d must be a positive integer, got {dim}")
    act = parse_activation(activation)
    crit = None
    if weight_var is None or bias_var is None:
        crit = critical_initialization(act)
    cw = weight_var if weight_var is not None else crit.weight_var
    cb = bias_var if bias_var is not None else crit.bias_var
    mlp = MLP(depth, act, cw, cb)
    stats = finite_width_statistics(mlp, width)
    mc = ntk_mc = None
    if networks:
        with working(f"Monte Carlo: {networks:,} random networks (statistics)", not as_json):
            mc = monte_carlo_statistics(mlp, width, networks, seed=seed)
        with working(f"Monte Carlo: {networks:,} random networks (NTK)", not as_json):
            ntk_mc = monte_carlo_ntk(mlp, width, networks, seed=seed + 1)
    if as_json:
        out = stats.to_dict()
        if crit is not None:
            out["critical_initialization"] = {
                "weight_var": crit.weight_var,
                "bias_var": crit.bias_var,
                "fixed_point": crit.fixed_point,
                "universality_class": crit.universality_class,
            }
        if mc is not None:
            out["monte_carlo"] = {
                "networks": mc.networks,
                "fourth_cumulant": mc.fourth_cumulant.tolist(),
                "fourth_cumulant_se": mc.fourth_cumulant_se.tolist(),
                "second_moment": mc.second_moment.tolist(),
                "second_moment_se": mc.second_moment_se.tolist(),
                "ntk_shift": ntk_mc.shift,
                "ntk_shift_se": ntk_mc.shift_se,
            }
        click.echo(json.dumps(out, indent=1))
    else:
        head = f"# {mlp.activation.name}, depth {depth}, width {width}, C_W = {cw:.6g}, C_b = {cb:.6g}"
        if crit is not None:
            head += f" (critical: {crit.universality_class})"
        lines = [head, f"# depth/width = {stats.depth_to_width:.3g}"]
        cols = f"{'layer':>5} {'K':>12} {'G':>12} {'K+G/n':>12} {'cum. (LO)':>11} {'cum. exact':>11}"
        cols += f" {'NTK':>11} {'H':>11}"
        if mc is not None:
            cols += f" {'cum. MC':>11} {'± SE':>9}"
        lines.append(cols)
        for i in range(depth + 1):
            exact = stats.fourth_cumulant_exact
            row = (
                f"{i + 1:>5d} {stats.kernel[i]:>12.6g} {stats.kernel_nlo[i]:>12.5g}"
                f" {stats.kernel[i] + stats.kernel_nlo[i] / width:>12.6g} {stats.fourth_cumulant[i]:>11.5g}"
                f" {('—' if exact is None else format(exact[i], '.5g')):>11}"
                f" {stats.ntk[i]:>11.6g} {stats.ntk_nlo[i]:>11.4g}"
            )
            if mc is not None:
                row += f" {mc.fourth_cumulant[i]:>11.5g} {mc.fourth_cumulant_se[i]:>9.2g}"
            lines.append(row)
        if ntk_mc is not None:
            lines.append(
                f"# NTK of the output: theory H = {stats.ntk_nlo[-1]:.4g}; Monte Carlo n(E NTK - NTK) ="
                f" {ntk_mc.shift:.4g} ± {ntk_mc.shift_se:.2g} ({ntk_mc.networks:,} networks)"
            )
        click.echo("\n".join(lines))
    if plot_path:
        from fieldcurve.plotting import plot_fourth_cumulant

        plot_fourth_cumulant(stats, plot_path, monte_carlo=mc, ntk_monte_carlo=ntk_mc)
        if not as_json:
            click.echo(f"plot written to {plot_path}")


def _parse_range(text: str, name: str) -> float | tuple[float, float]:
    """'2.0' -> 2.0; '0.5:4' -> (0.5, 4.0)."""
    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError as exc:
        raise ValueError(f"{name} expects a number or lo:hi, got {text!r}") from exc
    if len(parts) == 1:
        return parts[0]
    if len(parts) != 2:
        raise ValueError(f"{name} expects a number or lo:hi, got {text!r}")
    return (parts[0], parts[1])


def _parse_widths(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",")]
    except ValueError as exc:
        raise ValueError(f"--widths expects a comma list of integers, got {text!r}") from exc


@cli.command("tune")
@click.option("--powers", default="1:1.0,2:0.5,3:0.25", show_default=True, help="Target power per degree.")
@click.option("--polynomial", default=None, help="Target polynomial in x1..xd (replaces --powers).")
@click.option("--dataset", type=click.Choice(["digits"]), default=None, help="Tune on bundled real data.")
@click.option(
    "--data", "data_path", default=None, type=click.Path(dir_okay=False), help="Your inputs (.npy/.csv)."
)
@click.option("--labels", default=None, help="Label column (index or CSV header name) or a file.")
@click.option(
    "--d", "dim", default=30, show_default=True, type=int, help="Input dimension d (sphere targets)."
)
@click.option("--noise", default=0.01, show_default=True, type=float, help="Label-noise variance.")
@click.option("--P", "budget", default=None, type=int, help="Sample budget: minimise E_g(P).")
@click.option("--target-error", default=None, type=float, help="Error to reach: minimise the samples needed.")
@click.option("--regime", type=click.Choice(["gd", "bayes", "kernel"]), default="gd", show_default=True)
@click.option(
    "--kind", type=click.Choice(["ntk", "nngp"]), default="ntk", show_default=True, help="Kernel regime."
)
@click.option("--depths", default="1,2,3", show_default=True, help="Depths to try (comma list).")
@click.option("--activations", default="relu,tanh,erf,gelu", show_default=True, help="Activations to try.")
@click.option("--weight-var", default="0.5:4", show_default=True, help="sigma_w^2: a value or lo:hi.")
@click.option("--bias-var", default="0:1", show_default=True, help="sigma_b^2: a value or lo:hi.")
@click.option(
    "--ridge", default="1e-4:10", show_default=True, help="Ridge (kernel regime): a value or lo:hi."
)
@click.option(
    "--widths",
    default=None,
    help="Finite widths to compare, e.g. 32,64,256 (--regime bayes and --P: E_g + dE_g/n per width).",
)
@click.option(
    "--width-top",
    default=1,
    show_default=True,
    type=int,
    help="With --widths: how many of the best configurations get the finite-width correction.",
)
@click.option("--top", default=10, show_default=True, type=int, help="Rows of the ranking to print.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--plot",
    "plot_path",
    default="tune.png",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="'' for none.",
)
def tune_cmd(
    powers: str,
    polynomial: str | None,
    dataset: str | None,
    data_path: str | None,
    labels: str | None,
    dim: int,
    noise: float,
    budget: int | None,
    target_error: float | None,
    regime: str,
    kind: str,
    depths: str,
    activations: str,
    weight_var: str,
    bias_var: str,
    ridge: str,
    widths: str | None,
    width_top: int,
    top: int,
    as_json: bool,
    plot_path: str,
) -> None:
    """Rank network configurations by predicted test error (theory, no training).

    Discrete choices (depth, activation) are searched exhaustively; the variances (and the ridge
    in the kernel regime) are optimised for each. Give --P (sample budget) or --target-error
    (how many samples to reach it). Default: --P 1000.
    """
    from fieldcurve.targets import Target
    from fieldcurve.tuning import tune

    if dataset or data_path:
        from fieldcurve.data import load_dataset, load_digits

        if dataset and data_path:
            raise ValueError("give either --dataset or --data, not both")
        target: Any = load_digits() if dataset == "digits" else load_dataset(data_path, labels)
    elif polynomial:
        if not re.fullmatch(r"[\sx_0-9+\-*/().]+", polynomial):
            raise ValueError("--polynomial may contain only x1..xd, numbers and + - * / ** ( )")
        target = Target.from_polynomial(polynomial, dim, noise=noise)
    else:
        target = Target.from_degree_powers(parse_powers(powers), noise=noise, d=dim)
    if budget is None and target_error is None:
        budget = 1000 if not (dataset or data_path) else None
        if budget is None:
            budget = target.size // 2
    try:
        depth_list = [int(x) for x in depths.split(",")]
    except ValueError as exc:
        raise ValueError(f"--depths expects a comma list of integers, got {depths!r}") from exc
    result = tune(
        target,
        P=budget,
        target_error=target_error,
        d=None if (dataset or data_path) else dim,
        regime=regime,
        kind=kind,
        depths=depth_list,
        activations=[a.strip() for a in activations.split(",") if a.strip()],
        weight_var=_parse_range(weight_var, "--weight-var"),
        bias_var=_parse_range(bias_var, "--bias-var"),
        ridge=_parse_range(ridge, "--ridge"),
        widths=_parse_widths(widths),
        width_top=width_top,
        progress=not as_json,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=1))
    else:
        click.echo(format_tune_table(result, top))
    if plot_path:
        from fieldcurve.plotting import plot_tuning

        plot_tuning(result, plot_path)
        if not as_json:
            click.echo(f"plot written to {plot_path}")


def format_tune_table(result: Any, top: int) -> str:
    """The ranking with what was optimised (target, d, error definition) and the flags: ``b`` an
    optimum on a search bound, ``!`` outside the theory's validity, ``refused`` (with the reason)."""
    key = result.objective
    what = (
        f"E_g at P = {result.P}" if key == "test_error" else f"samples to reach E_g = {result.target_error:g}"
    )
    lines = [
        f"# {result.regime} regime; ranked by {what};"
        f" {result.evaluations} evaluations in {result.seconds:.1f} s",
        f"# target: {result.target}",
        f"# error: {result.error_definition}",
        f"{'rank':>4} {'depth':>5} {'activation':>12} {'weight_var':>10} {'bias_var':>9} {'ridge':>9}"
        f" {key:>14}  flags",
    ]
    notes = []
    for i, e in enumerate(result.ranking[:top]):
        flags = ("b" if e.get("at_bound") else "") + ("!" if e.get("valid") is False else "")
        row = (
            f"{i + 1:>4} {e['depth']:>5} {e['activation']:>12} {e['weight_var']:>10.4g}"
            f" {e['bias_var']:>9.4g} {e['ridge']:>9.3g} {e[key]:>14.5g}  {flags or '-':<5}"
        )
        if "finite_width" in e:
            row += "  " + "  ".join(
                f"n={n}: {v['test_error']:.4g}{'' if v['valid'] else '(!)'}"
                for n, v in e["finite_width"].items()
            )
        if "refused" in e:
            row += f"  refused: {e['refused']}"
        lines.append(row)
        if e.get("at_bound"):
            notes.append(f"rank {i + 1}: " + "; ".join(e["at_bound"]))
    if notes:
        lines.append("# b: optimum on a search bound (the best value may lie beyond it; widen the range):")
        lines.extend(f"#   {n}" for n in notes)
    if any(e.get("valid") is False for e in result.ranking[:top]):
        lines.append(
            "# !: outside the theory's validity at this P (constant mode dominates; E_g overestimated)"
        )
    return "\n".join(lines)


@cli.command("figure")
@click.argument("name", required=False)
@click.option("--list", "list_figures_", is_flag=True, help="List the figures and exit.")
@click.option("--out", "out_dir", default="figures", show_default=True, type=click.Path(file_okay=False))
@click.option("--quick", is_flag=True, help="Small experiments (seconds; used by the tests).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the experiments.")
@click.option("--json", "as_json", is_flag=True, help="Print the figure's summary numbers as JSON.")
def figure_cmd(
    name: str | None, list_figures_: bool, out_dir: str, quick: bool, seed: int, as_json: bool
) -> None:
    """Reproduce a published figure (theory and experiments): PNG and CSV in --out."""
    from fieldcurve.figures import list_figures, make_figure

    if list_figures_ or not name:
        if not list_figures_:
            raise ValueError("give a figure NAME or --list")
        for fig_name, description in list_figures():
            click.echo(f"{fig_name:<22} {description}")
        return
    res = make_figure(name, out_dir, quick=quick, seed=seed, progress=not as_json)
    if as_json:
        click.echo(
            json.dumps({"name": res.name, "png": str(res.png), "csv": str(res.csv), **res.summary}, indent=1)
        )
    else:
        click.echo(f"{res.name}: {res.png} and {res.csv}")


@cli.command("validate")
@click.argument("config", required=False)
@click.option("--list", "list_configs", is_flag=True, help="List the built-in configurations and exit.")
@click.option(
    "--store",
    "store_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="SQLite results store (default: <experiment name>.sqlite). Finished runs are skipped.",
)
@click.option("--workers", default=1, show_default=True, type=int, help="Local worker processes.")
@click.option("--scheduler", default=None, help="dask.distributed scheduler address (tcp://host:port).")
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Report folder (default: <name>_report).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def validate_cmd(
    config: str | None,
    list_configs: bool,
    store_path: str | None,
    workers: int,
    scheduler: str | None,
    out_dir: str | None,
    as_json: bool,
) -> None:
    """Train the networks of CONFIG (a TOML file or a built-in name: smoke, gd_relu, langevin_relu,
    width_sweep, digits) and compare them with the theory.

    Runs are stored as they finish; running the command again resumes a stopped sweep. Writes
    report.md and report.png; exit status 1 if the measured errors miss the config's tolerance.
    """
    from fieldcurve.validation.config import builtin_configs, load_config

    if list_configs:
        for name, path in builtin_configs().items():
            exp = load_config(path)
            click.echo(f"{name:15s} {len(exp.runs()):4d} runs  {exp.config['experiment']['description']}")
        return
    if config is None:
        raise ValueError("give a CONFIG (TOML file or built-in name; see --list)")
    from fieldcurve.validation.report import write_report
    from fieldcurve.validation.runner import run_sweep

    experiment = load_config(config)
    store_path = store_path or f"{experiment.name}.sqlite"
    counts = run_sweep(experiment, store_path, workers=workers, scheduler=scheduler, progress=not as_json)
    summary = write_report(store_path, out_dir or f"{experiment.name}_report")
    _print_summary(summary, counts, as_json, out_dir or f"{experiment.name}_report")
    if not summary["passed"]:
        sys.exit(1)


@cli.command("report")
@click.argument("store_path", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Report folder (default: <name>_report).",
)
@click.option(
    "--csv", "csv_path", default=None, type=click.Path(dir_okay=False), help="Export every run as CSV."
)
@click.option(
    "--parquet", "parquet_path", default=None, type=click.Path(dir_okay=False), help="Export as Parquet."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def report_cmd(
    store_path: str, out_dir: str | None, csv_path: str | None, parquet_path: str | None, as_json: bool
) -> None:
    """Re-render the report of a results store without training (and export its runs)."""
    from pathlib import Path

    from fieldcurve.validation.report import write_report
    from fieldcurve.validation.store import ResultsStore

    if not Path(store_path).is_file():
        raise ValueError(f"store {store_path} not found")
    with ResultsStore(store_path) as store:
        cfg = store.config()
        if csv_path:
            store.export_csv(csv_path)
        if parquet_path:
            store.export_parquet(parquet_path)
    if cfg is None:
        raise ValueError(f"{store_path} holds no experiment (no configuration stored)")
    out = out_dir or f"{cfg['experiment']['name']}_report"
    summary = write_report(store_path, out)
    _print_summary(summary, None, as_json, out)


def _print_summary(summary: dict, counts: dict | None, as_json: bool, out_dir: str) -> None:
    if as_json:
        click.echo(json.dumps({**summary, "runs": counts, "report": out_dir}, indent=1, default=float))
        return
    if counts is not None:
        click.echo(
            f"runs: {counts['done']} trained, {counts['failed']} failed, {counts['skipped']} already stored"
        )
    for width, w in summary["widths"].items():
        click.echo(
            f"width {width}: median relative error {w['median_rel_error']:.1%}"
            f" (tolerance {summary['tolerance']:.0%}) {'PASS' if w['passed'] else 'FAIL'}"
        )
    if summary["failed_runs"]:
        click.echo(f"{summary['failed_runs']} run(s) failed; see the store's error column")
    click.echo(f"report: {out_dir}/report.md")


def _fmt_log(log_value: float) -> str:
    """Format exp(log_value) in scientific notation even beyond double precision."""
    if not math.isfinite(log_value):
        return "0" if log_value < 0 else "inf"
    exponent = math.floor(log_value / math.log(10))
    mantissa = math.exp(log_value - exponent * math.log(10))
    if mantissa >= 9.9995:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.4f}e{exponent:+d}"


def cumulative_fractions(spec: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""Cumulative fraction of the trace, :math:`\min(1, \sum_{j\le l}N(d,j)\lambda_j/k(1))`, and its
    uncertainty :math:`\sum_{j\le l}N(d,j)\,\mathrm{err}_j/k(1)` over the unresolved degrees (both
    in [0, 1]; summed in logarithms, so overflowing multiplicities and underflowing eigenvalues
    are exact)."""
    k1 = float(spec.kernel_at_one)
    n = len(spec.degrees)
    if not k1 > 0:
        return np.zeros(n), np.zeros(n)
    log_k1 = math.log(k1)
    log_w = spec.log_multiplicities + spec.log_eigenvalues
    with np.errstate(divide="ignore"):
        log_e = spec.log_multiplicities + np.log(spec.error_estimates)
    unresolved = ~spec.resolved & np.isfinite(log_w)
    frac, err = np.empty(n), np.empty(n)
    acc, acc_err = -math.inf, -math.inf
    for i in range(n):
        if np.isfinite(log_w[i]):
            acc = float(np.logaddexp(acc, log_w[i] - log_k1))
        if unresolved[i] and np.isfinite(log_e[i]):
            acc_err = float(np.logaddexp(acc_err, log_e[i] - log_k1))
        frac[i] = min(1.0, math.exp(min(acc, 0.0)))
        err[i] = min(1.0, math.exp(min(acc_err, 0.0)))
    return frac, err


def spectrum_json(spec: Any) -> dict[str, Any]:
    """``Spectrum.to_dict()`` plus, per degree, the cumulative fraction of k(1) with its
    uncertainty and whether the eigenvalue is resolved, and the tail mass's uncertainty."""
    out = spec.to_dict()
    frac, err = cumulative_fractions(spec)
    resolved = spec.resolved
    for i, row in enumerate(out["degrees"]):
        row["cumulative_fraction"] = float(frac[i])
        row["cumulative_fraction_error"] = float(err[i])
        row["resolved"] = bool(resolved[i])
    out["tail_mass_error"] = float(spec.tail_mass_error)
    out["rtol"] = float(spec.rtol)
    return out


def format_spectrum_table(spec: Any) -> str:
    """Readable table of a Spectrum: the cumulative fraction of the trace stays in [0, 1] and
    unresolved eigenvalues show their relative error (``*`` marks them)."""
    frac, err = cumulative_fractions(spec)
    resolved = spec.resolved
    tail = f"{spec.tail_mass:.3e}"
    if spec.tail_mass_error > 1e-12 * max(abs(spec.kernel_at_one), 1e-300):
        tail += f" +- {spec.tail_mass_error:.1e}"
    lines = [
        f"# {spec.name}, d = {spec.d}; k(1) = {spec.kernel_at_one:.10g}, tail beyond l = {spec.lmax}: {tail}",
        f"{'l':>5} {'lambda_l':>13} {'N(d,l)':>13} {'N*lambda':>13} {'cum. frac.':>11}"
        f" {'rel. err':>9}  method",
    ]
    rel = spec.relative_errors
    for i, l in enumerate(spec.degrees):
        log_w = spec.log_multiplicities[i] + spec.log_eigenvalues[i]
        if spec.error_estimates[i] == 0:
            rel_txt = "exact"
        elif np.isfinite(rel[i]):
            rel_txt = f"{rel[i]:.1e}"
        else:
            rel_txt = f"<{spec.error_estimates[i]:.0e}"
        cum = f"{frac[i]:.8f}" if err[i] < 5e-9 else f"{frac[i]:.4f}+-{err[i]:.0e}"
        lines.append(
            f"{l:>5d} {_fmt_log(spec.log_eigenvalues[i]):>13} "
            f"{_fmt_log(spec.log_multiplicities[i]):>13} {_fmt_log(log_w):>13} "
            f"{cum:>11} {rel_txt + ('' if resolved[i] else '*'):>9}  {spec.methods[i]}"
        )
    if not resolved.all():
        lines.append(
            f"# * not resolved to rtol = {spec.rtol:g}; the error is the estimate (the eigenvalue lies"
            " in lambda_l +- error, never above k(1)/N(d,l))"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning bad input into one line and exit status 2.

    Warnings (e.g. eigenvalues that could not be resolved to the requested accuracy) are printed
    as one ``warning: ...`` line each on stderr.
    """
    status = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cli.main(args=argv, prog_name="fieldcurve", standalone_mode=False)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            status = 1
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            status = 2
        except (ValueError, TypeError, OSError, np.linalg.LinAlgError) as exc:
            click.echo(f"error: {exc}", err=True)
            status = 2
    for message in dict.fromkeys(str(w.message) for w in caught):
        click.echo(f"warning: {message}", err=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
