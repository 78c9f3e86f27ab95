"""Command-line interface: ``fieldcurve spectrum`` (and more as the project grows).

Every bad input ends with one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

import click
import numpy as np

from fieldcurve import activations as act_mod
from fieldcurve.kernels import MLP, nngp_kernel, ntk_kernel
from fieldcurve.spectrum import spectrum as compute_spectrum

_PARAM_ACT = re.compile(r"^\s*([a-z_]+)\s*\(\s*([^)]*)\)\s*$")


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
    spec = compute_spectrum(kernel, dim, lmax, method=method, rtol=rtol)
    if as_json:
        click.echo(json.dumps(spec.to_dict(), indent=1))
    else:
        click.echo(format_spectrum_table(spec))
    if plot_path:
        from fieldcurve.plotting import plot_spectrum

        plot_spectrum(spec, plot_path)
        if not as_json:
            click.echo(f"plot written to {plot_path}")


def _fmt_log(log_value: float) -> str:
    """Format exp(log_value) in scientific notation even beyond double precision."""
    if not math.isfinite(log_value):
        return "0" if log_value < 0 else "inf"
    exponent = math.floor(log_value / math.log(10))
    mantissa = math.exp(log_value - exponent * math.log(10))
    if mantissa >= 9.9995:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"{mantissa:.4f}e{exponent:+d}"


def format_spectrum_table(spec: Any) -> str:
    """Readable table of a Spectrum."""
    lines = [
        f"# {spec.name}, d = {spec.d}; k(1) = {spec.kernel_at_one:.10g},"
        f" tail beyond l = {spec.lmax}: {spec.tail_mass:.3e}",
        f"{'l':>5} {'lambda_l':>13} {'N(d,l)':>13} {'N*lambda':>13} {'cum. frac.':>11}  method",
    ]
    cum = 0.0
    for i, l in enumerate(spec.degrees):
        log_w = spec.log_multiplicities[i] + spec.log_eigenvalues[i]
        cum += math.exp(log_w) if math.isfinite(log_w) and log_w < 700 else 0.0
        lines.append(
            f"{l:>5d} {_fmt_log(spec.log_eigenvalues[i]):>13} "
            f"{_fmt_log(spec.log_multiplicities[i]):>13} {_fmt_log(log_w):>13} "
            f"{cum / spec.kernel_at_one:>11.8f}  {spec.methods[i]}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning bad input into one line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="fieldcurve", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2)
    except (ValueError, TypeError, OSError, np.linalg.LinAlgError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(0)


if __name__ == "__main__":
    main()
