"""Command-line interface: ``fieldcurve predict``, ``spectrum``, ``finite-width``, ``tune``,
``figure``, ``validate`` and ``report``.

Error contract: options are parsed and checked against the limits of :mod:`fieldcurve._limits`
before any work; bad input (a click usage error, or a ``ValueError`` from this parsing layer or
from the library's input validation, or an ``OSError`` reading or writing a named file) ends with
one line ``error: ...`` on stderr and exit status 2. Every other exception is a bug and shows its
traceback. JSON output is strict (no ``NaN``/``Infinity``): a non-finite result is refused.
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

from fieldcurve import _limits as lim
from fieldcurve import activations as act_mod
from fieldcurve.kernels import MLP, nngp_kernel, ntk_kernel
from fieldcurve.spectrum import spectrum as compute_spectrum

_PARAM_ACT = re.compile(r"^\s*([a-z_]+)\s*\(\s*([^)]*)\)\s*$")
_DEFAULT_P = "10:10000:25"


# ----------------------------------------------------------------------------- checks (usage errors)
def _int_in(value: int | None, name: str, lo: int, hi: int) -> None:
    """Refuse an integer option outside [lo, hi], naming the option and the limit."""
    if value is not None and not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi:,} (limit), got {value}")


def _real_in(value: float | None, name: str, *, positive: bool = False) -> None:
    """Refuse a non-finite, negative (or, with ``positive``, zero) or too large real option."""
    if value is None:
        return
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value:g}")
    if value > lim.MAX_MAGNITUDE:
        raise ValueError(f"{name} must be at most {lim.MAX_MAGNITUDE:g} (limit), got {value:g}")


def _check_network(depth: int, weight_var: float | None, bias_var: float | None) -> None:
    _int_in(depth, "--depth", 0, lim.MAX_DEPTH)
    _real_in(weight_var, "--weight-var", positive=True)
    _real_in(bias_var, "--bias-var")


def _check_seed(seed: int) -> None:
    _int_in(seed, "--seed", 0, lim.MAX_SEED)


def _progress(as_json: bool) -> bool:
    """Progress bars only for a person: not with --json and only when stderr is a terminal."""
    return not as_json and sys.stderr.isatty()


def _split_list(text: str, name: str) -> list[str]:
    items = [x.strip() for x in text.split(",")]
    if not text.strip() or any(not x for x in items):
        raise ValueError(f"{name} expects a non-empty comma list without empty items, got {text!r}")
    if len(items) > lim.MAX_LIST:
        raise ValueError(f"{name} has {len(items)} items; the limit is {lim.MAX_LIST}")
    return items


def _finite_or_refuse(values: dict[str, Any], what: str) -> None:
    """Refuse (one line, exit 2) a result that is not finite rather than print inf or NaN."""
    for key, v in values.items():
        arr = np.asarray(v, dtype=float)
        if arr.size and not np.all(np.isfinite(arr)):
            raise ValueError(
                f"the {what} is not finite ({key}: overflow in double precision); use smaller"
                " powers, noise, ridge or variances"
            )


def _dumps(obj: Any) -> str:
    """Strict JSON: NaN and infinities are refused (``ValueError`` naming them), never emitted."""
    try:
        return json.dumps(obj, indent=1, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"the result is not finite and cannot be written as JSON ({exc})") from None


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
    if not all(math.isfinite(v) and abs(v) <= lim.MAX_MAGNITUDE for v in values):
        raise ValueError(
            f"activation parameters must be finite and at most {lim.MAX_MAGNITUDE:g} in size: {text!r}"
        )
    if name == "abrelu" and len(values) == 2:
        if values[0] == 0 and values[1] == 0:
            raise ValueError("--activation abrelu(a, b) with a = b = 0 is the zero function")
        return act_mod.abrelu(*values)
    if name == "leaky_relu" and len(values) == 1:
        return act_mod.leaky_relu(values[0])
    if name == "monomial" and len(values) == 1 and values[0].is_integer():
        k = int(values[0])
        if not 1 <= k <= lim.MAX_MONOMIAL_ORDER:
            raise ValueError(
                f"--activation monomial(k) needs 1 <= k <= {lim.MAX_MONOMIAL_ORDER} (limit; k = 0 is"
                f" a constant that ignores the input), got {text!r}"
            )
        return act_mod.monomial(k)
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
    _check_network(depth, weight_var, bias_var)
    _int_in(dim, "--d", 2, lim.MAX_DIMENSION)
    _int_in(lmax, "--lmax", 0, lim.MAX_LMAX)
    _int_in(width, "--width", 1, lim.MAX_WIDTH)
    if not (math.isfinite(rtol) and 0 < rtol < 1):
        raise ValueError(f"--rtol must lie in (0, 1), got {rtol}")
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
    _finite_or_refuse({"k(1)": spec.kernel_at_one, "tail mass": spec.tail_mass}, "spectrum")
    if as_json:
        click.echo(_dumps(spectrum_json(spec)))
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
            l, v = int(deg), float(power)
        except ValueError as exc:
            raise ValueError(f"--powers: cannot read {item!r} as degree:power") from exc
        if not 0 <= l <= lim.MAX_TARGET_DEGREE:
            raise ValueError(
                f"--powers: degrees must be between 0 and {lim.MAX_TARGET_DEGREE} (limit), got {l}"
            )
        if l in out:
            raise ValueError(f"--powers: degree {l} is given twice")
        _real_in(v, f"--powers: the power of degree {l}")
        out[l] = v
    if not out:
        raise ValueError("--powers is empty")
    if math.fsum(out.values()) > lim.MAX_MAGNITUDE:
        raise ValueError(f"--powers: the total power must be at most {lim.MAX_MAGNITUDE:g} (limit)")
    return out


def parse_p_grid(text: str) -> np.ndarray:
    """``"10:10000:30"`` (log-spaced from lo to hi, rounded to integers) or ``"10,100,1000"``
    (increasing), within 1 <= P <= ``MAX_P`` and at most ``MAX_P_POINTS`` points."""
    try:
        if ":" in text:
            lo_t, hi_t, n_t = text.split(":")
            lo, hi, n = float(lo_t), float(hi_t), int(n_t)
            values = [lo, hi]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
            n = len(values)
    except ValueError as exc:
        raise ValueError(f"--P expects lo:hi:count or a comma list, got {text!r}") from exc
    if not 1 <= n <= lim.MAX_P_POINTS:
        raise ValueError(f"--P must have between 1 and {lim.MAX_P_POINTS} points (limit), got {n}")
    if any(not (v >= 1 and v == round(v)) for v in values):
        raise ValueError(f"--P must contain positive integers, got {text!r}")
    if max(values) > lim.MAX_P:
        raise ValueError(f"--P must stay at or below {lim.MAX_P:.0e} (limit), got {max(values):g}")
    if ":" in text:
        if hi < lo or (hi == lo and n > 1):
            raise ValueError(f"--P lo:hi:count needs lo < hi (or count 1), got {text!r}")
        return np.unique(np.round(np.geomspace(lo, hi, n)))
    grid = np.array(values)
    if np.any(np.diff(grid) <= 0):
        raise ValueError(f"--P: a comma list must be increasing, got {text!r}")
    return grid


def _polynomial_target(text: str, dim: int, noise: float) -> Any:
    """``Target.from_polynomial`` on the option's text (the safe, bounded parser; never eval)."""
    from fieldcurve.targets import Target

    try:
        return Target.from_polynomial(text, dim, noise=noise)
    except ValueError as exc:
        msg = str(exc)
        raise ValueError("--" + msg if msg.startswith("polynomial") else msg) from None


def _check_empirical(P: np.ndarray, trials: int, dim: int | None) -> None:
    """Refuse an --empirical run whose work or memory exceeds the limits (estimated first)."""
    if not len(P):
        raise ValueError(f"--empirical covers P <= {lim.MAX_EMPIRICAL_P}; the grid has no such P")
    flops = lim.empirical_flops(tuple(P), trials)
    if flops > lim.MAX_EMPIRICAL_FLOPS:
        raise ValueError(
            f"--empirical {trials} on this grid needs about {flops:.1e} floating-point operations;"
            f" the limit is {lim.MAX_EMPIRICAL_FLOPS:.0e} (fewer trials or smaller P)"
        )
    if dim is not None and float(P.max()) * dim > lim.MAX_EMPIRICAL_ENTRIES:
        raise ValueError(
            f"--empirical: a training set of P = {int(P.max())} points in d = {dim} has"
            f" {float(P.max()) * dim:.1e} entries; the limit is {lim.MAX_EMPIRICAL_ENTRIES:.0e}"
        )


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
    default=_DEFAULT_P,
    show_default=True,
    help="Sample sizes: lo:hi:count (log grid, lo < hi) or an increasing comma list; 1 <= P <= 1e8,"
    " at most 1000 points. On data sets P < M, default 12 points from 10 to M/2.",
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
    help="Real data: scikit-learn's digits (needs scikit-learn; projected onto the sphere; one-hot labels).",
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

    _check_network(depth, weight_var, bias_var)
    _int_in(dim, "--d", 2, lim.MAX_DIMENSION)
    _real_in(noise, "--noise")
    _real_in(ridge, "--ridge")
    _int_in(lmax, "--lmax", 0, lim.MAX_LMAX)
    _check_seed(seed)
    if trials == 1 or not 0 <= trials <= lim.MAX_TRIALS:
        raise ValueError(
            f"--empirical must be 0 (none) or between 2 and {lim.MAX_TRIALS:,} trials, got {trials}"
        )
    _int_in(fw_width, "--width", 1, lim.MAX_WIDTH)
    _int_in(fw_trials, "--fw-trials", 1, lim.MAX_FW_TRIALS)
    _int_in(fw_pmax, "--fw-pmax", 1, lim.MAX_EMPIRICAL_P)
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
    if polynomial is not None:
        target = _polynomial_target(polynomial, dim, noise)
    else:
        target = Target.from_degree_powers(parse_powers(powers), noise=noise, d=dim)
    P = parse_p_grid(p_grid)
    top_degree = max(target.powers, default=0)
    if regime == "bayes":
        kernel, ridge_used = nngp_kernel(mlp), target.noise
    else:
        kernel = ntk_kernel(mlp) if (kind == "ntk" or regime == "gd") else nngp_kernel(mlp)
        ridge_used = ridge if regime == "kernel" else 0.0
    if lmax is None:
        lmax = max(40, top_degree + 10)
    elif lmax < top_degree:
        raise ValueError(f"--lmax {lmax} is below the target's highest degree {top_degree}")
    emp_P = P[P <= lim.MAX_EMPIRICAL_P]
    if trials:
        _check_empirical(emp_P, trials, dim)
    with working("theory (spectra and learning curve)", not as_json):
        curve = network_learning_curve(
            mlp, target, P, d=dim, regime=regime, lmax=lmax, ridge=ridge_used, kind=kind
        )
        spec = compute_spectrum(kernel, dim, lmax)
    emp = None
    if trials:
        from fieldcurve.empirical import empirical_learning_curve

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
            progress=_progress(as_json),
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
            progress=_progress(as_json),
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
    from fieldcurve.theory import dataset_learning_curve, dataset_spectrum

    if spectrum_plot:
        raise ValueError("--spectrum-plot shows degrees on the sphere; it does not apply to --data/--dataset")
    data = _load_data(dataset, data_path, labels)
    init_kernel = nngp_kernel(mlp) if regime == "gd" else None
    if regime == "bayes":
        kernel, ridge_used = nngp_kernel(mlp), noise
    elif regime == "gd":
        kernel, ridge_used = ntk_kernel(mlp), 0.0
    else:
        kernel, ridge_used = (ntk_kernel(mlp) if kind == "ntk" else nngp_kernel(mlp)), ridge
    M = data.size
    default_grid = p_grid == _DEFAULT_P
    if default_grid:
        if M < 21:
            raise ValueError(
                f"the data set has M = {M} rows; the default --P grid needs at least 21 (give --P)"
            )
        P = parse_p_grid(f"10:{M // 2}:12")
        grid_note = f"--P default for data: 12 points from 10 to M/2 = {M // 2} (held-out half)"
    else:
        P = parse_p_grid(p_grid)
        grid_note = None
    if P.max() >= M:
        raise ValueError(
            f"--P: the largest P ({int(P.max())}) must be below the number of rows M = {M} (the error"
            f" is measured on the rows not used for training); the largest allowed is {M - 1}"
        )
    if trials:
        _check_empirical(P, trials, None)
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
            progress=_progress(as_json),
        )
    from fieldcurve.targets import Target

    outputs = data.Y.shape[1]
    label_power = float(np.mean(np.sum(data.Y**2, axis=1)))
    error = (
        "held-out mean squared error on the labels (absolute, not relative"
        + (f"; summed over the {outputs} outputs" if outputs > 1 else "")
        + f"; mean label power {label_power:.4g}), on the rows not used for training"
    )
    extra = {"kernel": spec.name, "data": data.name, "M": M, "regime": regime, "error_definition": error}
    if grid_note:
        extra["P_grid"] = grid_note
    _emit(
        curve,
        emp,
        f"{spec.name} ({regime} regime)",
        Target(powers={}, name=f"labels of {data.name}"),
        extra,
        as_json,
        csv_path,
        plot_path,
        spec.name,
        on_data=True,
    )


def _load_data(dataset: str | None, data_path: str | None, labels: str | None) -> Any:
    """The bundled digits or the user's file, refused beyond ``MAX_DATA_ROWS`` rows (the M x M
    Gram matrices and their eigendecomposition)."""
    from fieldcurve.data import load_dataset, load_digits

    if dataset and data_path:
        raise ValueError("give either --dataset or --data, not both")
    if dataset == "digits":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise ValueError(
                '--dataset digits needs scikit-learn: pip install "fieldcurve[validation]" (or scikit-learn)'
            ) from None
        data = load_digits()
    else:
        data = load_dataset(data_path, labels)
    if data.size > lim.MAX_DATA_ROWS:
        raise ValueError(
            f"the data set has M = {data.size:,} rows; the limit is {lim.MAX_DATA_ROWS:,} (its M x M"
            " Gram matrices and their eigendecomposition); use a subset"
        )
    return data


def _per_degree_and_rest(curve: Any) -> tuple[list[int], np.ndarray, np.ndarray]:
    """E_l of the curve's shown degrees and the rest of E_g, so that the columns add up to E_g."""
    degs = curve.shown_degrees
    return degs, curve.error_per_degree[:, degs], curve.error_rest


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
    *,
    on_data: bool = False,
) -> None:
    """Print the curve (table or JSON), and write the CSV and the plot if asked; a non-finite
    result is refused (one line) before anything is printed or written."""
    degs, per, rest = _per_degree_and_rest(curve)
    _finite_or_refuse(
        {
            "test error": curve.test_error,
            "uncertainty": curve.test_error_uncertainty,
            "train error": curve.train_error,
            "kappa": curve.kappa,
            "per-degree errors": per,
        },
        "learning curve",
    )
    if emp is not None:
        _finite_or_refuse({"measured": emp.test_error, "sem": emp.test_error_sem}, "measurement")
    if as_json:
        out = curve.to_dict()
        for i, row in enumerate(out["points"]):
            row["error_per_degree"] = {str(l): float(per[i, j]) for j, l in enumerate(degs)}
            row["error_rest"] = float(rest[i])
            if on_data:
                del row["test_error_noisy"]
        if not on_data:
            out["error_definition"] = _sphere_error_definition(target)
        out.update(extra)
        if fw is not None:
            out["finite_width"] = fw.to_dict()
        if emp is not None:
            out["empirical"] = [
                {"P": float(p), "test_error": float(m), "sem": float(e)}
                for p, m, e in zip(emp.P, emp.test_error, emp.test_error_sem, strict=True)
            ]
        click.echo(_dumps(out))
    else:
        click.echo(format_curve_table(curve, kernel_name, target, emp, extra=extra, on_data=on_data))
        if fw is not None:
            click.echo(format_finite_width_table(fw))
    if csv_path:
        write_curve_csv(curve, csv_path, emp, on_data=on_data)
    if plot_path:
        from fieldcurve.plotting import plot_learning_curve

        plot_learning_curve(curve, plot_path, empirical=emp, title=title, finite_width=fw)
        if not as_json:
            click.echo(f"plot written to {plot_path}")


def _sphere_error_definition(target: Any) -> str:
    return (
        "E_g = E_x[(f_hat(x) - f*(x))^2] against the clean target, absolute (not relative; the"
        f" target's total power is {target.total_power:.6g}), averaged over training sets, inputs"
        " uniform on the sqrt(d)-sphere; E_g+noise: on noisy test labels"
    )


def format_curve_table(
    curve: Any,
    kernel_name: str,
    target: Any,
    emp: Any = None,
    *,
    extra: dict | None = None,
    on_data: bool = False,
) -> str:
    """Readable table of a learning curve (and the measurement, if any).

    On the sphere, the per-degree columns E_l (degree 0 and every degree with target power) and
    ``rest`` (the other degrees' share of the effective noise and the power beyond lmax) add up
    to E_g, the clean-target error; on a data set the error is the held-out error on the labels
    (one column). Errors are absolute. ``+-`` is the prediction's uncertainty from unresolved
    eigenvalues and the tail model (shown when non-zero); ``!`` marks points outside the
    theory's measured validity (the constant mode's share of the overfitting above 0.25).
    """
    extra = extra or {}
    degs, per_degree, rest = _per_degree_and_rest(curve)
    head = (
        f"# {kernel_name}"
        + (f", d = {curve.meta['d']}" if curve.meta.get("d") else "")
        + f"; target: {target.name};"
        + (f" noise {curve.noise:g};" if not on_data else "")
        + f" ridge {curve.ridge:g}"
    )
    lines = [head]
    if on_data:
        lines.append(f"# error: {extra.get('error_definition', 'held-out error on the labels')}")
        if extra.get("P_grid"):
            lines.append(f"# {extra['P_grid']}")
    else:
        lines.append(f"# error: {_sphere_error_definition(target)}")
    unc = curve.test_error_uncertainty
    show_unc = bool(np.any(unc > 0))
    valid = curve.valid
    err_col = "held-out" if on_data else "E_g"
    cols = f"{'P':>7} {err_col:>11}" + (f" {'+-':>9}" if show_unc else "")
    if not on_data:
        cols += f" {'E_g+noise':>11}"
    cols += f" {'train':>11} {'kappa':>11}"
    cols += "".join(f" {'E_l=' + str(l):>10}" for l in degs)
    if degs:
        cols += f" {'rest':>10}"
    if emp is not None:
        cols += f" {'measured':>11} {'+-sem':>9}"
    lines.append(cols)
    measured = (
        {}
        if emp is None
        else {float(p): (m, e) for p, m, e in zip(emp.P, emp.test_error, emp.test_error_sem, strict=True)}
    )
    for i, p in enumerate(curve.P):
        row = f"{int(p):>7d} {curve.test_error[i]:>11.4e}" + (f" {unc[i]:>9.2e}" if show_unc else "")
        if not on_data:
            row += f" {curve.test_error_noisy[i]:>11.4e}"
        row += f" {curve.train_error[i]:>11.4e} {curve.kappa[i]:>11.4e}"
        row += "".join(f" {per_degree[i, j]:>10.3e}" for j in range(len(degs)))
        if degs:
            row += f" {rest[i]:>10.3e}"
        if emp is not None:
            m = measured.get(float(p))
            row += f" {m[0]:>11.4e} {m[1]:>9.2e}" if m else f" {'':>11} {'':>9}"
        if not valid[i]:
            row += "  !"
        lines.append(row)
    if emp is not None and len(measured) < len(curve.P):
        lines.append(f"# measured: exact kernel regression for P <= {lim.MAX_EMPIRICAL_P} only")
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


def write_curve_csv(curve: Any, path: str, emp: Any = None, *, on_data: bool = False) -> None:
    """Write P, the predicted error (with uncertainty), train error, kappa, E0, the per-degree
    errors (degree 0 and the target's degrees), the rest of the error, the validity flag and, with
    a measurement, its mean and standard error (empty where not measured) as CSV.

    On a data set the error column is ``held_out_error`` (on the labels); on the sphere
    ``test_error`` (clean target) and ``test_error_noisy``.
    """
    degs, per_degree, rest = _per_degree_and_rest(curve)
    header = ["P", "held_out_error" if on_data else "test_error", "test_error_uncertainty"]
    header += [] if on_data else ["test_error_noisy"]
    header += ["train_error", "kappa", "overfitting"] + [f"error_degree_{l}" for l in degs]
    header += ["error_rest", "valid"] + (["measured_test_error", "measured_sem"] if emp is not None else [])
    measured = (
        {}
        if emp is None
        else {float(p): (m, e) for p, m, e in zip(emp.P, emp.test_error, emp.test_error_sem, strict=True)}
    )
    rows = [",".join(header)]
    valid = curve.valid
    for i, p in enumerate(curve.P):
        vals = [p, curve.test_error[i], curve.test_error_uncertainty[i]]
        vals += [] if on_data else [curve.test_error_noisy[i]]
        vals += [curve.train_error[i], curve.kappa[i], curve.overfitting[i], *per_degree[i], rest[i]]
        row = ",".join(f"{v:.10g}" for v in vals) + f",{int(valid[i])}"
        if emp is not None:
            m = measured.get(float(p))
            row += f",{m[0]:.10g},{m[1]:.10g}" if m else ",,"
        rows.append(row)
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

    _check_network(depth, weight_var, bias_var)
    _int_in(dim, "--d", 1, lim.MAX_DIMENSION)
    _int_in(width, "--width", 1, lim.MAX_WIDTH)
    _check_seed(seed)
    if networks:
        _check_monte_carlo(networks, depth, width)
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
        click.echo(_dumps(out))
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


def _check_monte_carlo(networks: int, depth: int, width: int) -> None:
    """Refuse a --mc run beyond the limits: the count, the width (a width x width weight block per
    network), and networks x (depth + 1) x width^2 multiply-adds."""
    _int_in(networks, "--mc", 2, lim.MAX_MC_NETWORKS)
    _int_in(width, "--width (with --mc)", 1, lim.MAX_MC_WIDTH)
    work = float(networks) * (depth + 1) * float(width) ** 2
    if work > lim.MAX_MC_WORK:
        raise ValueError(
            f"--mc {networks} at depth {depth} and width {width} needs about {work:.1e} multiply-adds;"
            f" the limit is {lim.MAX_MC_WORK:.0e} (fewer networks)"
        )


def _parse_range(text: str, name: str, *, positive: bool = False) -> float | tuple[float, float]:
    """'2.0' -> 2.0; '0.5:4' -> (0.5, 4.0); finite, >= 0 (> 0 with ``positive``), lo <= hi."""
    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError as exc:
        raise ValueError(f"{name} expects a number or lo:hi, got {text!r}") from exc
    if len(parts) not in (1, 2):
        raise ValueError(f"{name} expects a number or lo:hi, got {text!r}")
    for v in parts:
        _real_in(v, name, positive=positive)
    if len(parts) == 1:
        return parts[0]
    if parts[1] < parts[0]:
        raise ValueError(f"{name} lo:hi needs lo <= hi, got {text!r}")
    return (parts[0], parts[1])


def _parse_int_list(text: str, name: str, hi: int) -> list[int]:
    """A comma list of integers in [1, hi] (at most ``MAX_LIST`` of them)."""
    items = _split_list(text, name)
    try:
        values = [int(x) for x in items]
    except ValueError as exc:
        raise ValueError(f"{name} expects a comma list of integers, got {text!r}") from exc
    for v in values:
        _int_in(v, name, 1, hi)
    return values


def _parse_widths(text: str | None) -> list[int] | None:
    return None if text is None else _parse_int_list(text, "--widths", lim.MAX_WIDTH)


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

    _int_in(dim, "--d", 2, lim.MAX_DIMENSION)
    _real_in(noise, "--noise")
    _int_in(budget, "--P", 1, lim.MAX_P)
    _real_in(target_error, "--target-error", positive=True)
    _int_in(top, "--top", 1, 10**9)
    _int_in(width_top, "--width-top", 1, 10**9)
    ctx = click.get_current_context()
    if regime != "kernel" and ctx.get_parameter_source("ridge") is not click.core.ParameterSource.DEFAULT:
        raise ValueError(f"--ridge applies to --regime kernel only (the {regime} regime has no free ridge)")
    depth_list = _parse_int_list(depths, "--depths", lim.MAX_DEPTH)
    activation_list = _split_list(activations, "--activations")
    for a in activation_list:
        parse_activation(a)
    ranges = {
        "weight_var": _parse_range(weight_var, "--weight-var", positive=True),
        "bias_var": _parse_range(bias_var, "--bias-var"),
        "ridge": _parse_range(ridge, "--ridge"),
    }
    width_list = _parse_widths(widths)
    if dataset or data_path:
        target: Any = _load_data(dataset, data_path, labels)
    elif polynomial is not None:
        target = _polynomial_target(polynomial, dim, noise)
    else:
        target = Target.from_degree_powers(parse_powers(powers), noise=noise, d=dim)
    if budget is None and target_error is None:
        budget = 1000 if not (dataset or data_path) else target.size // 2
    if (dataset or data_path) and budget is not None and budget >= target.size:
        raise ValueError(
            f"--P {budget} must be below the number of rows M = {target.size}; the largest allowed is"
            f" {target.size - 1}"
        )
    result = tune(
        target,
        P=budget,
        target_error=target_error,
        d=None if (dataset or data_path) else dim,
        regime=regime,
        kind=kind,
        depths=depth_list,
        activations=activation_list,
        weight_var=ranges["weight_var"],
        bias_var=ranges["bias_var"],
        ridge=ranges["ridge"],
        widths=width_list,
        width_top=width_top,
        progress=_progress(as_json),
    )
    if as_json:
        click.echo(_dumps(result.to_dict()))
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

    _check_seed(seed)

    if list_figures_ or not name:
        if not list_figures_:
            raise ValueError("give a figure NAME or --list")
        for fig_name, description in list_figures():
            click.echo(f"{fig_name:<22} {description}")
        return
    res = make_figure(name, out_dir, quick=quick, seed=seed, progress=not as_json)
    if as_json:
        click.echo(_dumps({"name": res.name, "png": str(res.png), "csv": str(res.csv), **res.summary}))
    else:
        click.echo(f"{res.name}: {res.png} and {res.csv}")


def _require_validation_extra() -> None:
    """Refuse ``validate`` in one line when JAX (the validation extra) is missing, before any run
    is attempted (each run would otherwise fail inside the store)."""
    try:
        import jax  # noqa: F401
    except ImportError:
        raise ValueError(
            'validate trains networks with JAX: install the validation extra, pip install ".[validation]"'
            ' (from a clone) or pip install "fieldcurve[validation]"'
        ) from None


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
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=int,
    help="Local worker processes (1-256); they exit with this process, however it ends.",
)
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
    _int_in(workers, "--workers", 1, 256)
    _require_validation_extra()
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


def _nonfinite_to_null(obj: Any) -> Any:
    """NaN/inf (e.g. the median of no finished run) as JSON null, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nonfinite_to_null(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nonfinite_to_null(v) for v in obj]
    return obj


def _print_summary(summary: dict, counts: dict | None, as_json: bool, out_dir: str) -> None:
    if as_json:
        out = json.loads(json.dumps({**summary, "runs": counts, "report": out_dir}, default=float))
        click.echo(_dumps(_nonfinite_to_null(out)))
        return
    if counts is not None:
        click.echo(
            f"runs: {counts['done']} trained, {counts['failed']} failed, {counts['skipped']} already stored,"
            f" {counts.get('elsewhere', 0)} by another sweep"
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

    Bad input is a click usage error, a ``ValueError`` (the option parsing and limits of this
    module, and the library's input validation) or an ``OSError`` on a named file; anything else
    is a bug and propagates with its traceback. Warnings (e.g. eigenvalues that could not be
    resolved to the requested accuracy) are printed as one ``warning: ...`` line each on stderr
    when the command did not fail.
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
            click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            status = 2
        except (ValueError, OSError) as exc:
            # bad input: the parsing layer's and the library's input validation (ValueError,
            # numpy's LinAlgError included) and files that cannot be read or written (OSError)
            click.echo(f"error: {' '.join(str(exc).split())}", err=True)
            status = 2
    if status != 2:  # on an error the one line says it all
        for message in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
            click.echo(f"warning: {message}", err=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
