r"""Finite-width MLPs in JAX whose initialisation matches :class:`fieldcurve.MLP` exactly.

Conventions (those of :mod:`fieldcurve.kernels`, after neural-tangents): the network has
``depth`` hidden layers of width :math:`n` and a linear readout; Dense layer :math:`i` maps
:math:`h \in \mathbb R^{n_{in}}` to

* NTK parameterisation: :math:`z = \sqrt{\sigma_{w,i}^2/n_{in}}\,hW + \sigma_{b,i}\,b` with
  :math:`W_{jk}, b_k \sim \mathcal N(0, 1)` (the trained parameters);
* standard parameterisation: :math:`z = hW + b` with :math:`W_{jk}\sim\mathcal N(0,
  \sigma_{w,i}^2/n_{in})`, :math:`b_k \sim \mathcal N(0, \sigma_{b,i}^2)`;

:math:`n_{in} = d` for the first layer, whose input kernel is then :math:`x\cdot x'/d`. Dense
layer :math:`i` has a bias :math:`b` iff ``mlp.has_bias[i]`` (``MLP(bias=...)``: by default iff
:math:`\sigma_{b,i}^2 > 0`; with ``bias="trainable"`` also at :math:`\sigma_{b,i}^2 = 0`, where
the standard parameterisation's bias starts at zero and is trained — adding 1 per such layer to
the NTK — and the NTK parameterisation's :math:`\sigma_b b` is identically zero). As
:math:`n\to\infty` the output covariance tends to
``nngp_kernel(mlp)`` and the empirical NTK :math:`\sum_\theta \partial_\theta f(x)\,
\partial_\theta f(x')` to ``ntk_kernel(mlp)``, with fluctuations of order :math:`n^{-1/2}`
(Jacot et al. 2018; Lee et al. 2019).

:func:`empirical_ntk` uses the layer-wise form of :math:`J J^\top` (no Jacobian is stored):
for :math:`z = c\,hW + s\,b`, :math:`\partial f/\partial W_{jk} = c\,h_j\delta_k` with
:math:`\delta = \partial f/\partial z`, so layer :math:`i` contributes
:math:`(c^2\,h\cdot h' + s^2)\,(\delta\cdot\delta')`. Tests check it against the full
``jax.jacobian`` contraction.

Importing this module enables JAX's float64 mode (``jax_enable_x64``); networks are built in
float64 unless ``dtype`` says otherwise.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf as _jerf
from jax.scipy.special import ndtr as _jndtr

from fieldcurve.kernels import MLP

jax.config.update("jax_enable_x64", True)

__all__ = ["apply_mlp", "empirical_kernels", "empirical_ntk", "init_mlp", "jax_activation"]

Params = list[dict[str, Any]]

_SIMPLE: dict[str, Callable[[Any], Any]] = {
    "erf": _jerf,
    "gelu": lambda x: x * _jndtr(x),
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "silu": lambda x: x * jax.nn.sigmoid(x),
    "softplus": lambda x: jnp.logaddexp(0.0, x),
    "sin": jnp.sin,
    "cos": jnp.cos,
    "identity": lambda x: x,
}


def jax_activation(mlp: MLP) -> Callable[[Any], Any]:
    """The JAX version of ``mlp.activation`` (by its family and parameters).

    Raises ``ValueError`` for user callables, which have no JAX counterpart here.
    """
    act = mlp.activation
    if act.abrelu_params is not None:
        a, b = act.abrelu_params
        return lambda x: a * jnp.minimum(x, 0.0) + b * jnp.maximum(x, 0.0)
    if act.name in _SIMPLE:
        return _SIMPLE[act.name]
    m = re.fullmatch(r"monomial\((\d+)\)", act.name)
    if m:
        k = int(m.group(1))
        return lambda x: x**k
    raise ValueError(
        f"activation {act.name!r} has no JAX version; use a named activation"
        " (relu, abrelu(a,b), erf, gelu, tanh, sigmoid, silu, softplus, sin, cos, monomial(k))"
    )


def _layer_sizes(mlp: MLP, d: int, width: int, outputs: int) -> list[tuple[int, int]]:
    sizes = [d] + [width] * mlp.depth + [outputs]
    return list(itertools.pairwise(sizes))


def _check(mlp: MLP, d: int, width: int, outputs: int) -> None:
    if not isinstance(mlp, MLP):
        raise TypeError("mlp must be a fieldcurve MLP")
    for name, v in (("d", d), ("width", width), ("outputs", outputs)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def init_mlp(
    mlp: MLP, d: int, width: int, key: jax.Array, *, outputs: int = 1, dtype: Any = jnp.float64
) -> Params:
    """Draw the parameters of ``mlp`` at hidden width ``width`` (module docstring).

    Returns a list of per-layer dicts ``{"W": (n_in, n_out)[, "b": (n_out,)]}`` (``"b"`` iff
    ``mlp.has_bias[i]``); ``vmap`` over ``key`` gives an ensemble.
    """
    _check(mlp, d, width, outputs)
    jax_activation(mlp)  # fail early for activations without a JAX version
    params: Params = []
    keys = jax.random.split(key, 2 * (mlp.depth + 1))
    standard = mlp.parameterization == "standard"
    for i, (n_in, n_out) in enumerate(_layer_sizes(mlp, d, width, outputs)):
        w_var, b_var = mlp.weight_vars[i], mlp.bias_vars[i]
        W = jax.random.normal(keys[2 * i], (n_in, n_out), dtype=dtype)
        if standard:
            W = W * math.sqrt(w_var / n_in)
        layer = {"W": W}
        if mlp.has_bias[i]:  # b_var may be 0: a zero-initialised trained bias (bias="trainable")
            b = jax.random.normal(keys[2 * i + 1], (n_out,), dtype=dtype)
            layer["b"] = b * math.sqrt(b_var) if standard else b
        params.append(layer)
    return params


def _scales(mlp: MLP, params: Params) -> list[tuple[float, float]]:
    """(weight multiplier c, bias multiplier s) per layer: z = c h W + s b."""
    if mlp.parameterization == "standard":
        return [(1.0, 1.0)] * len(params)
    out = []
    for i, layer in enumerate(params):
        n_in = layer["W"].shape[0]
        out.append((math.sqrt(mlp.weight_vars[i] / n_in), math.sqrt(mlp.bias_vars[i])))
    return out


def _forward(mlp: MLP, params: Params, x: jax.Array, shifts: list[jax.Array] | None = None) -> tuple:
    """Pre-activations of every layer and the inputs h of every Dense; ``shifts`` are added to
    the pre-activations (zeros; their gradient is delta = df/dz)."""
    phi = jax_activation(mlp)
    h = x
    hs, zs = [], []
    for i, ((c, s), layer) in enumerate(zip(_scales(mlp, params), params, strict=True)):
        hs.append(h)
        z = c * (h @ layer["W"])
        if "b" in layer:
            z = z + s * layer["b"]
        if shifts is not None:
            z = z + shifts[i]
        zs.append(z)
        h = phi(z)
    return hs, zs


def apply_mlp(mlp: MLP, params: Params, x: jax.Array) -> jax.Array:
    """Network outputs, shape (n, outputs) for inputs x of shape (n, d)."""
    return _forward(mlp, params, x)[1][-1]


def empirical_ntk(mlp: MLP, params: Params, x1: jax.Array, x2: jax.Array | None = None) -> jax.Array:
    r"""Empirical NTK :math:`\sum_\theta\partial_\theta f(x)\partial_\theta f(x')` of output 0,
    shape (n1, n2), by the layer-wise formula of the module docstring."""
    x2 = x1 if x2 is None else x2
    scales = _scales(mlp, params)

    def parts(x: jax.Array) -> tuple[list, list]:
        hs, zs = _forward(mlp, params, x)
        shifts = [jnp.zeros_like(z) for z in zs]

        def out(sh: list) -> jax.Array:
            return jnp.sum(_forward(mlp, params, x, sh)[1][-1][:, 0])

        deltas = jax.grad(out)(shifts)  # per example: f depends on its own row only
        return hs, deltas

    h1, d1 = parts(x1)
    h2, d2 = parts(x2)
    theta = 0.0
    for i, (c, s) in enumerate(scales):
        dd = d1[i] @ d2[i].T
        hh = h1[i] @ h2[i].T
        if mlp.parameterization == "standard":
            theta = theta + (hh + (1.0 if "b" in params[i] else 0.0)) * dd
        else:
            theta = theta + (c * c * hh + s * s) * dd
    return theta


def empirical_kernels(
    mlp: MLP, params: Params, x1: jax.Array, x2: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    r"""(conditional NNGP, empirical NTK) of output 0.

    The conditional NNGP is the covariance of the readout over its own parameters given the
    hidden layers, :math:`\sigma_w^2\,\phi(z^L)\cdot\phi(z^L)'/n + \sigma_b^2` — an estimate of
    ``nngp_kernel`` with :math:`O(n^{-1/2})` fluctuations.
    """
    x2 = x1 if x2 is None else x2
    h1 = _forward(mlp, params, x1)[0][-1]
    h2 = _forward(mlp, params, x2)[0][-1]
    n_in = h1.shape[1]
    nngp = mlp.weight_vars[-1] * (h1 @ h2.T) / n_in + mlp.bias_vars[-1]
    return nngp, empirical_ntk(mlp, params, x1, x2)
