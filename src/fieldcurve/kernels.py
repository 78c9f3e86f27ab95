r"""Infinite-width kernels of deep fully connected networks, and dot-product kernels in general.

Conventions (neural-tangents, Novak et al. 2020): the input kernel is :math:`K^0 = x\cdot x'/d`.
An :class:`MLP` of ``depth`` L is L hidden layers (Dense then activation) and a linear readout
Dense. Every Dense ``i`` has weight variance :math:`\sigma_{w,i}^2` and bias variance
:math:`\sigma_{b,i}^2`. Whether a Dense has a bias *parameter* is ``MLP.bias``: by default
(``"auto"``) iff :math:`\sigma_{b,i}^2 > 0`; ``"trainable"`` gives every Dense a trained bias, also
one initialised at zero (:math:`\sigma_b^2 = 0`, the default of Flax/Haiku Dense layers,
neural-tangents ``b_std=0``); ``"none"`` gives none.

NTK parameterisation (Jacot et al. 2018), per Dense then activation:

.. math::
    K \leftarrow \sigma_w^2 K + \sigma_b^2,\quad \Theta \leftarrow K + \sigma_w^2\Theta;\qquad
    \Theta \leftarrow \Theta\,\mathbb E[\phi'(u)\phi'(v)],\quad K \leftarrow \mathbb E[\phi(u)\phi(v)],

with :math:`(u,v)\sim\mathcal N(0, K)` and :math:`\Theta = 0` before the first Dense.
Standard parameterisation (weights :math:`\mathcal N(0,\sigma_w^2/n_{in})`, trained directly): the
NNGP is the same and :math:`\Theta \leftarrow n_{in}K + \sigma_w^2\Theta + [\text{bias}]`, with
:math:`n_{in} = d` for the first layer and ``width`` after it (Sohl-Dickstein et al. 2020), and
:math:`[\text{bias}] = 1` iff the Dense has a bias parameter (its gradient is 1 whatever its
initial variance). In the NTK parameterisation the bias enters as :math:`\sigma_b\beta`, so a
zero-variance bias adds nothing and ``bias`` changes no kernel there.

On the sphere :math:`|x|^2 = d` every diagonal entry follows the single-input recursion, so the
kernels are functions :math:`k(t)` of the cosine :math:`t = x\cdot x'/d`; in the NTK
parameterisation they do not depend on ``d``.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldcurve._checks import check_finite_array, check_nonneg_int, check_variance
from fieldcurve.activations import (
    MPMATH_OPS,
    NUMPY_OPS,
    Activation,
    abrelu_gap_step,
    get_activation,
)

__all__ = [
    "MLP",
    "DotProductKernel",
    "Kernel",
    "MLPKernel",
    "as_kernel",
    "exponential_kernel",
    "nngp_kernel",
    "nngp_ntk_gram",
    "ntk_kernel",
    "polynomial_kernel",
]

_PARAMETERIZATIONS = ("ntk", "standard")
_BIAS_MODES = ("auto", "trainable", "none")


def _per_layer(values: float | Sequence[float], n: int, name: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a number or a sequence of numbers")
    if isinstance(values, Sequence) or isinstance(values, np.ndarray):
        vals = list(values)
        if len(vals) != n:
            raise ValueError(
                f"{name} needs one value per Dense layer (depth + 1 = {n}, readout last), got {len(vals)}"
            )
    else:
        vals = [values] * n
    return tuple(check_variance(v, name) for v in vals)


@dataclass(frozen=True)
class MLP:
    r"""A fully connected network: ``depth`` hidden layers, then a linear readout.

    Parameters
    ----------
    depth
        Number of hidden layers L >= 0 (0 is a linear model on the inputs).
    activation
        Name (``"relu"``, ``"erf"``, ...), an :class:`~fieldcurve.activations.Activation`, or a
        vectorised callable.
    weight_var, bias_var
        :math:`\sigma_w^2`, :math:`\sigma_b^2`: scalars, or one value per Dense layer (L + 1 values,
        readout last). ``bias_var = 0`` means the layer has no bias.
    parameterization
        ``"ntk"`` (default) or ``"standard"`` (needs ``width`` for the NTK).
    width
        Hidden width n; needed by the standard parameterisation's NTK and finite-width work.
    bias
        Which Dense layers have a bias parameter. ``"auto"`` (default): those with
        ``bias_var > 0``. ``"trainable"``: every Dense, initialised :math:`\mathcal N(0,
        \sigma_b^2)` (``bias_var`` may be 0: a zero-initialised trained bias, neural-tangents
        ``stax.Dense(..., b_std=0)``). ``"none"``: no Dense has one (every ``bias_var`` must be 0).
        Only the standard-parameterisation NTK depends on it, through a :math:`+1` per Dense
        that has a bias (Sohl-Dickstein et al. 2020, eq. 6); the NNGP and the NTK
        parameterisation's NTK are the same for every choice.

    Attributes
    ----------
    weight_vars, bias_vars : tuple of float
        One variance per Dense layer (readout last).
    has_bias : tuple of bool
        Whether each Dense layer has a bias parameter (readout last), from ``bias``.
    """

    depth: int
    activation: Activation | str | Callable = "relu"
    weight_var: float | Sequence[float] = 2.0
    bias_var: float | Sequence[float] = 0.0
    parameterization: str = "ntk"
    width: int | None = None
    bias: Literal["auto", "trainable", "none"] = "auto"
    weight_vars: tuple[float, ...] = field(init=False, repr=False)
    bias_vars: tuple[float, ...] = field(init=False, repr=False)
    has_bias: tuple[bool, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        depth = check_nonneg_int(self.depth, "depth")
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "activation", get_activation(self.activation))
        object.__setattr__(self, "weight_vars", _per_layer(self.weight_var, depth + 1, "weight_var"))
        object.__setattr__(self, "bias_vars", _per_layer(self.bias_var, depth + 1, "bias_var"))
        if not isinstance(self.bias, str) or self.bias not in _BIAS_MODES:
            raise ValueError(f"bias must be one of {_BIAS_MODES}, got {self.bias!r}")
        if self.bias == "none" and any(v > 0 for v in self.bias_vars):
            raise ValueError(
                f"bias='none' needs bias_var = 0 in every Dense layer, got bias_var = {list(self.bias_vars)}"
            )
        if self.bias == "auto":
            has_bias = tuple(v > 0 for v in self.bias_vars)
        else:
            has_bias = (self.bias == "trainable",) * (depth + 1)
        object.__setattr__(self, "has_bias", has_bias)
        if self.parameterization not in _PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {_PARAMETERIZATIONS}, got {self.parameterization!r}"
            )
        if self.width is not None:
            if isinstance(self.width, bool) or not isinstance(self.width, numbers.Integral):
                raise TypeError(f"width must be a positive integer, got {self.width!r}")
            if self.width <= 0:
                raise ValueError(f"width must be a positive integer, got {self.width}")
        if self.parameterization == "standard" and self.width is None and depth > 0:
            raise ValueError("width is required with parameterization='standard'")


class Kernel:
    r"""A dot-product kernel on the sphere, :math:`k(x, x') = k(t)`, :math:`t = x\cdot x'/d`.

    Subclasses implement :meth:`_eval` (numpy and mpmath); optional :meth:`taylor_coefficients`
    enables the cancellation-free spectrum route.
    """

    name: str = "kernel"

    def __call__(self, t: ArrayLike, d: int | None = None) -> NDArray[np.float64]:
        """Evaluate :math:`k(t)` (vectorised) for inputs on the :math:`\\sqrt d`-sphere."""
        t = check_finite_array(t, "t")
        if np.any(np.abs(t) > 1 + 1e-12):
            raise ValueError("cosines t must lie in [-1, 1]")
        return self._eval(np.clip(t, -1.0, 1.0), d)

    def _eval(
        self, t: NDArray[np.float64], d: int | None, gaps: tuple[Any, Any] | None = None
    ) -> NDArray[np.float64]:
        """Evaluate on clipped cosines; ``gaps`` = (1 - t, 1 + t) computed exactly, if known."""
        raise NotImplementedError

    def mp_eval(self, t: Any, d: int | None = None, gaps: Any = None, ops: Any = None) -> Any:
        """Evaluate :math:`k(t)` for one mpmath number at the working precision."""
        raise NotImplementedError(f"{self.name} has no arbitrary-precision evaluation")

    @property
    def supports_arb(self) -> bool:
        """Whether :meth:`mp_eval` accepts python-flint arb numbers (``ops=ARB_OPS``)."""
        return False

    @property
    def has_mp(self) -> bool:
        """Whether :meth:`mp_eval` is available."""
        return False

    def taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        """Taylor coefficients :math:`b_0..b_{n_{max}}` of :math:`k(t)` at 0, or None."""
        return None

    def log_taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        r""":math:`\log b_n` (``-inf`` for zeros), or None; exact where ``b_n`` underflows."""
        b = self.taylor_coefficients(n_max, d)
        if b is None:
            return None
        b = np.asarray(b, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b > 0, np.log(np.where(b > 0, b, 1.0)), np.where(b == 0, -np.inf, np.nan))

    def log_taylor_remainder(self, n_max: int, d: int | None = None) -> float | None:
        """A rigorous bound on :math:`\\log\\sum_{n>n_{max}} b_n`, or None if not known."""
        return None

    def taylor_rtol(self, n_max: int, d: int | None = None) -> float | None:
        """Relative accuracy of the Taylor coefficients (None: exact up to round-off)."""
        return None

    @property
    def taylor_order_limit(self) -> int:
        """Highest Taylor order the series route of :func:`~fieldcurve.spectrum.spectrum` asks
        for: the cost of the coefficients decides (768 for :math:`O(N^3)` compositions)."""
        return 768

    def gram(self, X1: ArrayLike, X2: ArrayLike | None = None) -> NDArray[np.float64]:
        """Gram matrix :math:`k(x_i\\cdot x'_j/d)` (inputs assumed on the sphere)."""
        A, B, d = _gram_inputs(X1, X2)
        t = np.clip(A @ B.T / d, -1.0, 1.0)
        return self._eval(t, d)


def _gram_inputs(X1: ArrayLike, X2: ArrayLike | None) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    A = check_finite_array(X1, "X1", ndim=2)
    B = A if X2 is None else check_finite_array(X2, "X2", ndim=2)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"X1 and X2 have different feature dimensions ({A.shape[1]} != {B.shape[1]})")
    if A.shape[1] < 1:
        raise ValueError("X1 must have at least one feature")
    return A, B, A.shape[1]


# --------------------------------------------------------------------------- MLP kernels
class MLPKernel(Kernel):
    """NNGP (``kind="nngp"``) or NTK (``kind="ntk"``) of an :class:`MLP`."""

    def __init__(self, mlp: MLP, kind: str):
        if not isinstance(mlp, MLP):
            raise TypeError(f"expected an MLP, got {type(mlp).__name__}")
        if kind not in ("nngp", "ntk"):
            raise ValueError(f"kind must be 'nngp' or 'ntk', got {kind!r}")
        self.mlp = mlp
        self.kind = kind
        self.name = f"{kind.upper()} of depth-{mlp.depth} {mlp.activation.name} MLP"

    def __repr__(self) -> str:
        return f"MLPKernel({self.mlp!r}, kind={self.kind!r})"

    @property
    def has_mp(self) -> bool:
        return self.mlp.activation.has_closed_form

    @property
    def evaluation_rtol(self) -> float:
        """Relative accuracy of :meth:`__call__`: round-off for closed-form duals, the 2-D
        quadrature's documented 1e-12 per layer otherwise."""
        act = self.mlp.activation
        return 4e-15 if act.has_closed_form else 2e-12 * (self.mlp.depth + 1)

    @property
    def parity(self) -> str | None:
        r"""``"odd"``/``"even"`` if :math:`k(t)` has that exact symmetry, else ``None``.

        Odd: an odd activation (or depth 0) and no bias anywhere (no bias parameter either: a
        trained bias adds a constant to the standard-parameterisation NTK). Even: an even
        activation, depth >= 1 and no bias in the first Dense (later biases add constants).
        """
        mlp = self.mlp
        act_parity = mlp.activation.parity
        no_bias = not any(v > 0 for v in mlp.bias_vars) and not (
            self.kind == "ntk" and mlp.parameterization == "standard" and any(mlp.has_bias)
        )
        if (mlp.depth == 0 or act_parity == "odd") and no_bias:
            return "odd"
        if (
            act_parity == "even"
            and mlp.depth >= 1
            and mlp.bias_vars[0] == 0
            and not (self.kind == "ntk" and mlp.parameterization == "standard" and mlp.has_bias[0])
        ):
            return "even"
        return None

    def _needs_d(self, d: int | None) -> None:
        if self.kind == "ntk" and self.mlp.parameterization == "standard" and d is None:
            raise ValueError("the standard-parameterisation NTK depends on the input dimension d")

    def _recursion(
        self,
        k11: Any,
        k12: Any,
        k22: Any,
        n_in0: int | None,
        ops: Any,
        gaps: tuple[Any, Any] | None = None,
        both: bool = False,
    ) -> Any:
        """Run the layer recursion on covariances; returns the requested kernel.

        ``gaps`` are :math:`\\sqrt{k_{11}k_{22}} \\mp k_{12}` of the inputs, computed without
        cancellation by the caller; activations of the abrelu family propagate them (see
        :func:`fieldcurve.activations.abrelu_gap_step`) so nearly parallel and antiparallel
        inputs keep full accuracy.
        """
        mlp, act = self.mlp, self.mlp.activation
        want_ntk = self.kind == "ntk" or both
        standard = mlp.parameterization == "standard"
        use_quadrature = ops is NUMPY_OPS and not act.has_closed_form
        use_gap = act.abrelu_params is not None
        if use_gap:
            if gaps is None:
                gaps = (ops.pos(ops.sqrt(k11 * k22) - k12), ops.pos(ops.sqrt(k11 * k22) + k12))
            gap, cogap = gaps
        theta = 0 * k12 if want_ntk else None
        n_in = n_in0
        same_diag = k22 is k11
        for layer in range(mlp.depth + 1):
            w, b = mlp.weight_vars[layer], mlp.bias_vars[layer]
            if want_ntk and standard:
                theta = n_in * k12 + w * theta + (1.0 if mlp.has_bias[layer] else 0.0)
            if use_gap:
                root_w = ops.sqrt(ops.const(w))
                diff = root_w * (ops.sqrt(k11) - ops.sqrt(k22))
                new11, new22 = w * k11 + b, w * k22 + b
                if b > 0 and not same_diag:
                    denom = ops.sqrt(new11 * new22) + b + w * ops.sqrt(k11 * k22)
                    extra = b * diff * diff / denom
                    gap, cogap = w * gap + extra, w * cogap + extra + 2 * b
                else:
                    gap, cogap = w * gap, w * cogap + 2 * b
                k11, k12, k22 = new11, w * k12 + b, (new11 if same_diag else new22)
            else:
                k11, k12, k22 = (
                    w * k11 + b,
                    w * k12 + b,
                    (w * k11 + b if same_diag else w * k22 + b),
                )
            if want_ntk and not standard:
                theta = k12 + w * theta
            if layer == mlp.depth:
                break
            if use_gap:
                a_, b_ = act.abrelu_params
                k11_new, k12, k22_new, gap, cogap, deriv = abrelu_gap_step(
                    a_, b_, k11, k12, k22, gap, cogap, ops
                )
                if want_ntk:
                    theta = theta * deriv
                k11, k22 = k11_new, (k11_new if same_diag else k22_new)
            elif use_quadrature:
                if want_ntk:
                    theta = theta * act.dual_derivative(k11, k12, k22)
                new12 = act.dual(k11, k12, k22)
                new11 = act.dual(k11, k11, k11)
                new22 = new11 if same_diag else act.dual(k22, k22, k22)
                k11, k12, k22 = new11, new12, new22
            else:
                if want_ntk:
                    theta = theta * act.closed_dual_derivative(k11, k12, k22, ops)
                new12 = act.closed_dual(k11, k12, k22, ops)
                new11 = act.closed_dual(k11, k11, k11, ops)
                new22 = new11 if same_diag else act.closed_dual(k22, k22, k22, ops)
                k11, k12, k22 = new11, new12, new22
            n_in = mlp.width
        if both:
            return k12, theta
        return theta if want_ntk else k12

    def _eval(
        self, t: NDArray[np.float64], d: int | None, gaps: tuple[Any, Any] | None = None
    ) -> NDArray[np.float64]:
        self._needs_d(d)
        one = np.ones_like(t)
        if gaps is None:
            gaps = (1.0 - t, 1.0 + t)
        return np.asarray(self._recursion(one, t, one, d, NUMPY_OPS, gaps), dtype=np.float64)

    def mp_eval(self, t: Any, d: int | None = None, gaps: Any = None, ops: Any = None) -> Any:
        """Evaluate at one high-precision cosine (mpmath by default, or arb with ``ops=ARB_OPS``)."""
        if not self.has_mp:
            raise NotImplementedError(
                f"activation {self.mlp.activation.name} has no closed-form dual; no mpmath path"
            )
        self._needs_d(d)
        ops = MPMATH_OPS if ops is None else ops
        one = ops.const(1)
        t = ops.const(t) if ops is not MPMATH_OPS else mpmath.mpf(t)
        if gaps is None:
            gaps = (one - t, one + t)
        return self._recursion(one, t, one, d, ops, gaps)

    @property
    def supports_arb(self) -> bool:
        return self.has_mp

    def gram(self, X1: ArrayLike, X2: ArrayLike | None = None) -> NDArray[np.float64]:
        r"""Kernel matrix for arbitrary inputs, neural-tangents convention :math:`K^0 = x\cdot x'/d`.

        Diagonal variances follow their own single-input recursion; when ``X2`` is None the
        diagonal of the result is that recursion (exact, never an arccos of a rounded 1), and
        nearly (anti)parallel pairs keep full relative accuracy (see :func:`nngp_ntk_gram`).
        """
        nngp, ntk = nngp_ntk_gram(self.mlp, X1, X2)
        return ntk if self.kind == "ntk" else nngp

    def taylor_rtol(self, n_max: int, d: int | None = None) -> float | None:
        r"""Relative accuracy of the composed coefficients :math:`b_0..b_N`.

        Measured against arb power series of the composed closed forms (tests/test_taylor.py):
        the piecewise-linear route, :math:`2.2\cdot10^{-16}(N+16)` per layer (measured
        :math:`\le 3\cdot10^{-12}` at N = 3000, depth 20); the Mehler route (log-space sums),
        :math:`10^{-15}(N+16)(4 + L)` (measured :math:`\le 2.7\cdot10^{-12}` at N = 768 for
        ReLU and erf, depth 1–5), plus :math:`2\cdot10^{-14}` per layer with arbitrary-precision
        Hermite moments (each to 1e-14, squared).
        """
        act, depth = self.mlp.activation, self.mlp.depth
        if act.abrelu_params is not None:
            return 2.2e-16 * (n_max + 16) * (depth + 1)
        hermite = 0.0 if act.closed_dual is not None else 2e-14 * (depth + 1)
        return 1e-15 * (n_max + 16) * (4 + depth) + hermite

    @property
    def taylor_order_limit(self) -> int:
        """6144 for the piecewise-linear family (:math:`O(N^2)` per layer), else 768."""
        return 6144 if self.mlp.activation.abrelu_params is not None else 768

    def taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        """Non-negative Taylor coefficients of :math:`k(t)` by Mehler-series composition.

        See :func:`fieldcurve._taylor.mlp_taylor_coefficients`; None if the activation has no
        closed-form Gaussian derivative moments.
        """
        if self.mlp.activation.log_moments is None:
            return None
        self._needs_d(d)
        from fieldcurve._taylor import mlp_taylor_coefficients

        return mlp_taylor_coefficients(self.mlp, self.kind, n_max, d)


def _row_scales(A: NDArray[np.float64], d: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Unit rows :math:`\hat x = x/|x|` (zero rows stay zero) and :math:`s = |x|/\sqrt d`, without
    overflow or underflow for any finite input (each row is scaled by its largest entry first)."""
    m = np.max(np.abs(A), axis=1)
    safe = np.where(m > 0, m, 1.0)
    U = A / safe[:, None]
    nu = np.sqrt(np.einsum("ij,ij->i", U, U))
    U /= np.where(nu > 0, nu, 1.0)[:, None]
    return U, m * (nu / math.sqrt(d))


def _abrelu_sds(mlp: MLP, sd: NDArray[np.float64]) -> list[NDArray[np.float64]]:
    r"""Pre-activation standard deviations :math:`\sqrt{q_l}` of each input, l = 1..depth, for the
    abrelu family: :math:`\sqrt{q} \leftarrow \mathrm{hypot}(\sigma_w\sqrt{A q}, \sigma_b)` with
    :math:`\mathbb E\phi(u)^2 = A q`, :math:`A = (a^2+b^2)/2`; never squares a standard deviation."""
    a, b = mlp.activation.abrelu_params
    root_a = math.sqrt((a * a + b * b) / 2)
    out = []
    for layer in range(mlp.depth):
        w, bias = mlp.weight_vars[layer], mlp.bias_vars[layer]
        sd = np.hypot(math.sqrt(w) * sd, math.sqrt(bias))
        out.append(sd)
        sd = root_a * sd
    return out


def _abrelu_unit_step(
    a: float, b: float, rho: NDArray[np.float64], gap: NDArray[np.float64], cogap: NDArray[np.float64]
) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    r"""One abrelu layer at unit variances: :math:`(k_{12}', g_-', g_+', \mathbb E[\phi'\phi'])`
    from :math:`(\rho, g_\mp = 1\mp\rho)`, as :func:`~fieldcurve.activations.abrelu_gap_step`
    with :math:`k_{11} = k_{22} = 1`; past :math:`\theta = \pi/2` the new gap is written in
    :math:`\delta = \pi - \theta` as

    .. math:: g_-' = \tfrac12(a+b)^2 - 2ab\sin^2(\delta/2) - B(\sin\delta - \delta\cos\delta),

    whose terms do not cancel when :math:`ab < 0` (e.g. :math:`|x|`, for which nearly antiparallel
    inputs become nearly parallel).
    """
    big_a, big_b = (a * a + b * b) / 2, (a - b) ** 2 / (2 * np.pi)
    smtc = NUMPY_OPS.sin_minus_theta_cos
    angle = 2 * np.arctan2(np.sqrt(np.maximum(gap, 0.0)), np.sqrt(np.maximum(cogap, 0.0)))
    delta = np.pi - angle
    far = angle > np.pi / 2
    correction = big_b * (np.sin(angle) - angle * rho)
    r = np.where(far, -a * b * np.cos(delta) + big_b * smtc(delta), big_a * rho + correction)
    deriv = np.where(far, a * b + big_b * delta, big_a - big_b * angle)
    half = np.sin(delta / 2)
    gap_far = 0.5 * (a + b) ** 2 - 2 * a * b * half * half - big_b * smtc(delta)
    new_gap = np.maximum(np.where(far, gap_far, big_a * gap - big_b * smtc(angle)), 0.0)
    return r, new_gap, big_a * cogap + correction, deriv


def _abrelu_normalised(
    mlp: MLP,
    sd1: NDArray[np.float64],
    sd2: NDArray[np.float64],
    rho: NDArray[np.float64],
    gap: NDArray[np.float64],
    cogap: NDArray[np.float64],
    d: int,
    same: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""NNGP and NTK of the abrelu family on pairs given by scale and shape separately.

    A pair's kernel :math:`[[k_{11}, k_{12}], [k_{12}, k_{22}]]` is carried as the standard
    deviations :math:`\sigma_{1,2} = \sqrt{k_{11,22}}`, the correlation :math:`\rho = k_{12}/
    (\sigma_1\sigma_2)` and the normalised gaps :math:`g_\mp = 1 \mp \rho` (computed without
    cancellation), so no product of two variances is ever formed and the inputs may have any
    norm that double precision holds (1e-150 .. 1e150 tested against 50 digits). A Dense layer
    maps them, with :math:`\sigma_i' = \mathrm{hypot}(\sigma_w\sigma_i, \sigma_b)`,
    :math:`c = \sigma_w^2\sigma_1\sigma_2/(\sigma_1'\sigma_2')`, :math:`s = \sigma_b^2/(\sigma_1'
    \sigma_2')` and :math:`e = (\sigma_b\sigma_w(\sigma_1-\sigma_2)/(\sigma_1'\sigma_2'))^2/(1+c+s)`
    (:math:`= 1 - c - s \ge 0`), to

    .. math:: \rho' = c\rho + s,\qquad g_-' = c\,g_- + e,\qquad g_+' = c\,g_+ + e + 2s,

    and an activation by :func:`_abrelu_unit_step` at unit variances (positive homogeneity:
    :math:`\sigma_i \leftarrow \sqrt A\sigma_i`). A zero variance (a zero
    input without bias) is an input independent of the other: :math:`\rho = 0`, angle
    :math:`\pi/2`, so :math:`\mathbb E[\phi'\phi'] = (a+b)^2/4` (:math:`\phi'(0) = (a+b)/2`).
    The NTK is accumulated in absolute units with :math:`k_{12} = \sigma_1\sigma_2\rho`.
    """
    a, b = mlp.activation.abrelu_params
    big_a = (a * a + b * b) / 2
    root_a = math.sqrt(big_a)
    standard = mlp.parameterization == "standard"
    rho, gap, cogap = rho.copy(), gap.copy(), cogap.copy()
    theta = np.zeros(np.broadcast_shapes(sd1.shape, sd2.shape, rho.shape))
    n_in = d
    for layer in range(mlp.depth + 1):
        w, bias = mlp.weight_vars[layer], mlp.bias_vars[layer]
        if standard:
            theta = n_in * (sd1 * sd2 * rho) + w * theta + (1.0 if mlp.has_bias[layer] else 0.0)
        rw, rb = math.sqrt(w), math.sqrt(bias)
        new1 = np.hypot(rw * sd1, rb)
        new2 = new1 if same else np.hypot(rw * sd2, rb)
        zero = (new1 == 0) | (new2 == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r1, r2 = rw * sd1 / new1, rw * sd2 / new2
            b1, b2 = rb / new1, rb / new2
            c = np.where(zero, 0.0, r1 * r2)
            s = np.where(zero, 0.0, b1 * b2)
            if bias > 0 and not same:
                diff = b1 * (rw * (sd1 - sd2) / new2)
                e = np.where(zero, 0.0, diff * diff / (1.0 + c + s))
            else:
                e = 0.0
        rho = np.where(zero, 0.0, c * rho + s)
        gap = np.where(zero, 1.0, c * gap + e)
        cogap = np.where(zero, 1.0, c * cogap + e + 2 * s)
        sd1, sd2 = new1, new2
        if not standard:
            theta = sd1 * sd2 * rho + w * theta
        if layer == mlp.depth:
            break
        r, gap, cogap, deriv = _abrelu_unit_step(a, b, rho, gap, cogap)
        theta = theta * deriv
        if big_a > 0:
            rho, gap, cogap = r / big_a, gap / big_a, cogap / big_a
        sd1, sd2 = root_a * sd1, root_a * sd2
        n_in = mlp.width
    return sd1 * sd2 * rho, theta


def _abrelu_tile(
    mlp: MLP, k12: NDArray[np.float64], sds1: list[NDArray], sds2: list[NDArray], d: int
) -> tuple[NDArray, NDArray, NDArray]:
    """Fast arccos recursion for one tile; returns (nngp, ntk, mask of entries to recompute).

    Entries whose correlation ever exceeds 0.999 in absolute value (angle below ~0.045, where
    arccos loses more than a few ulp) or is not a number (a zero variance) are flagged for
    :func:`_abrelu_normalised`.
    """
    a, b = mlp.activation.abrelu_params
    big_a, big_b = (a * a + b * b) / 2, (a - b) ** 2 / (2 * np.pi)
    standard = mlp.parameterization == "standard"
    K = k12
    T = np.zeros_like(K)
    flagged = np.zeros(K.shape, dtype=bool)
    n_in = d
    for layer in range(mlp.depth + 1):
        w, bias = mlp.weight_vars[layer], mlp.bias_vars[layer]
        if standard:
            T *= w
            T += n_in * K + (1.0 if mlp.has_bias[layer] else 0.0)
        K *= w
        K += bias
        if not standard:
            T *= w
            T += K
        if layer == mlp.depth:
            break
        root = sds1[layer][:, None] * sds2[layer][None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            c = K / root
        flagged |= ~(np.abs(c) <= 0.999)  # also NaN (0/0)
        np.clip(c, -1.0, 1.0, out=c)
        deriv = np.arccos(c)
        deriv *= -big_b
        deriv += big_a  # E[phi' phi'] = A - B theta
        T *= deriv
        K *= deriv
        c *= c
        np.subtract(1.0, c, out=c)
        np.sqrt(c, out=c)  # sin(theta)
        c *= root
        c *= big_b
        K += c
        n_in = mlp.width
    return K, T, flagged


def _pair_shape(
    U1: NDArray[np.float64], U2: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    r"""Cosines :math:`\rho = \hat x_1\cdot\hat x_2` of matched unit rows and the gaps
    :math:`1 \mp \rho`, as :math:`\tfrac12|\hat x_1 \mp \hat x_2|^2` where that avoids cancellation."""
    rho = np.einsum("ij,ij->i", U1, U2)
    out = []
    for sign in (1.0, -1.0):
        diff = U1 - sign * U2
        direct = 0.5 * np.einsum("ij,ij->i", diff, diff)
        out.append(np.where(sign * rho > 0.5, direct, np.maximum(1.0 - sign * rho, 0.0)))
    return np.clip(rho, -1.0, 1.0), out[0], out[1]


# row norms |x|/sqrt(d) in this range: x.x'/d is formed directly (no overflow or underflow)
_DIRECT_SCALE = (1e-100, 1e100)


def nngp_ntk_gram(
    mlp: MLP, X1: ArrayLike, X2: ArrayLike | None = None, *, block: int = 256
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""NNGP and NTK Gram matrices of ``mlp`` in one pass (neural-tangents input convention).

    Same values as ``nngp_kernel(mlp).gram(...)`` and ``ntk_kernel(mlp).gram(...)``, computed
    together in cache-sized tiles; with ``X2 = None`` only the upper triangle is computed and
    mirrored, and the diagonal comes from the exact single-input recursion. For the abrelu
    family the tiles use the plain arccos recursion (one transcendental per entry and layer)
    and the few entries whose correlation ever exceeds 0.999 in absolute value, or that involve
    a zero variance (a zero input without bias), are recomputed with the scale-free
    gap-carrying recursion (:func:`_abrelu_normalised`), so the result keeps full relative
    accuracy for exactly (anti)parallel and repeated inputs, zero inputs, and row norms from
    1e-150 to 1e150 (inputs whose norms leave 1e-100 .. 1e100 enter through their unit vectors
    and norms, never through :math:`x\cdot x'` itself). For other activations a non-finite
    entry (their duals overflow for very large inputs) raises ``ValueError`` instead of being
    returned. Extra memory is a few tiles beyond the two outputs.
    """
    kernel = MLPKernel(mlp, "ntk")
    A, B, d = _gram_inputs(X1, X2)
    kernel._needs_d(d)
    symmetric = X2 is None
    n1, n2 = A.shape[0], B.shape[0]
    fast = mlp.activation.abrelu_params is not None
    if fast:
        U1, sd1 = _row_scales(A, d)
        U2, sd2 = (U1, sd1) if symmetric else _row_scales(B, d)
        sds = np.concatenate([sd1, sd2])
        sds = sds[sds > 0]
        direct = sds.size == 0 or (sds.min() >= _DIRECT_SCALE[0] and sds.max() <= _DIRECT_SCALE[1])
    else:
        direct = True
    # one large matrix product (well threaded BLAS) for the input kernel, written straight
    # into the NNGP output; the tiles then overwrite it in place
    if direct:
        nngp = np.matmul(A, B.T)
        nngp /= d
    else:
        nngp = np.matmul(U1 * sd1[:, None], U2.T)
        nngp *= sd2[None, :]
    ntk = np.empty((n1, n2))
    if fast:
        sds1 = _abrelu_sds(mlp, sd1)
        sds2 = sds1 if symmetric else _abrelu_sds(mlp, sd2)
    else:
        sq1 = np.einsum("ij,ij->i", A, A) / d
        sq2 = sq1 if symmetric else np.einsum("ij,ij->i", B, B) / d
    for r0 in range(0, n1, block):
        r1 = min(n1, r0 + block)
        for c0 in range(r0 if symmetric else 0, n2, block):
            c1 = min(n2, c0 + block)
            k12 = nngp[r0:r1, c0:c1].copy()
            if fast:
                g, t, flagged = _abrelu_tile(mlp, k12, [q[r0:r1] for q in sds1], [q[c0:c1] for q in sds2], d)
                if flagged.any():
                    i, j = np.nonzero(flagged)
                    i, j = i + r0, j + c0
                    rho, gap, cogap = _pair_shape(U1[i], U2[j])
                    g[i - r0, j - c0], t[i - r0, j - c0] = _abrelu_normalised(
                        mlp, sd1[i], sd2[j], rho, gap, cogap, d, same=False
                    )
            else:
                k11 = np.broadcast_to(sq1[r0:r1, None], k12.shape)
                k22 = np.broadcast_to(sq2[None, c0:c1], k12.shape)
                g, t = kernel._recursion(k11, k12, k22, d, NUMPY_OPS, None, both=True)
            nngp[r0:r1, c0:c1] = g
            ntk[r0:r1, c0:c1] = t
            if symmetric and c0 != r0:
                nngp[c0:c1, r0:r1] = g.T
                ntk[c0:c1, r0:r1] = t.T
    if symmetric:
        # diagonal tiles were computed in full: make them exactly symmetric, fix the diagonal
        for r0 in range(0, n1, block):
            r1 = min(n1, r0 + block)
            for m in (nngp, ntk):
                tile = m[r0:r1, r0:r1]
                m[r0:r1, r0:r1] = np.triu(tile) + np.triu(tile, 1).T
        if fast:
            one = np.ones_like(sd1)
            g, t = _abrelu_normalised(mlp, sd1, sd1, one, 0 * one, 2 * one, d, same=True)
        else:
            g, t = kernel._recursion(sq1, sq1, sq1, d, NUMPY_OPS, (np.zeros_like(sq1), 2 * sq1), both=True)
        np.fill_diagonal(nngp, g)
        np.fill_diagonal(ntk, t)
    if not fast and not (np.all(np.isfinite(nngp)) and np.all(np.isfinite(ntk))):
        raise ValueError(
            f"the NNGP/NTK Gram of the {mlp.activation.name} network has non-finite entries for these"
            " inputs (kernel values beyond double precision)"
        )
    return nngp, ntk


def nngp_kernel(mlp: MLP) -> MLPKernel:
    r"""The NNGP kernel :math:`K^{L+1}` of ``mlp`` (output covariance at initialisation)."""
    return MLPKernel(mlp, "nngp")


def ntk_kernel(mlp: MLP) -> MLPKernel:
    r"""The neural tangent kernel :math:`\Theta^{L+1}` of ``mlp`` in its parameterisation."""
    return MLPKernel(mlp, "ntk")


# --------------------------------------------------------------------------- user kernels
# Taylor coefficients of user kernels by Cauchy integrals (DotProductKernel with analytic input)
_EPS = float(np.finfo(np.float64).eps)
_CAUCHY_RTOL = 1e-12  # relative error the coefficients' errors may cause in any eigenvalue
_CAUCHY_ORDERS = 1023  # orders always computed (results independent of the order requested)
_CAUCHY_NODES_MAX = 2**16
_CAUCHY_R_MIN = 1.0 / 16
_CAUCHY_R_MAX = 2.0**14
_CAUCHY_STEP = 2.0**0.125
_CAUCHY_ROUNDOFF = 4.0  # safety factor of the round-off model (measured errors <= 0.4 x model)
_CAUCHY_TAIL = 16.0
_CAUCHY_AIM = 1e-10  # eigenvalue accuracy that steers the truncation order (not a guarantee)


@dataclass(frozen=True)
class _Circle:
    """Trapezoidal Cauchy integral of ``fn`` on ``|z| = radius`` with ``nodes`` points.

    ``coeffs[m]`` approximates :math:`b_m R^m / M` (:math:`M` the largest sampled
    :math:`|k|`, :math:`\\log M` = ``log_scale``) for :math:`m <` ``nodes``/2, with absolute
    error about ``exp(log_noise)`` in :math:`b_m R^m` (round-off plus the aliased tail).
    """

    radius: float
    nodes: int
    log_scale: float
    coeffs: NDArray[np.float64]
    log_noise: float


@dataclass(frozen=True)
class _CauchySeries:
    """Cauchy-integral estimates :math:`\\tilde b_n` (sign, log|.|) and error bars, n <= n_top."""

    sign: NDArray[np.float64]
    log_abs: NDArray[np.float64]
    log_err: NDArray[np.float64]
    log_tail_top: float  # log of an estimate of sum_{n > n_top} b_n
    radii: NDArray[np.float64]  # the admissible circles and log max|k| on them (tail bounds)
    log_scales: NDArray[np.float64]

    @property
    def n_top(self) -> int:
        return len(self.sign) - 1


@dataclass(frozen=True)
class _NoSeries:
    """Why the Cauchy route does not apply; ``kernel_invalid``: a negative coefficient (a property
    of the kernel, not a failure of the method)."""

    reason: str
    kernel_invalid: bool = False


def _quiet_call(fn: Callable[..., Any], x: NDArray) -> NDArray:
    """``np.asarray(fn(x))`` with floating-point and Python warnings silenced (probe points)."""
    import warnings  # local: the module's import block belongs to the code above

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(fn(x))


def _call_complex(fn: Callable[..., Any], z: NDArray[np.complex128]) -> NDArray[np.complex128] | None:
    """``fn(z)`` as a complex array of ``z``'s shape, or None if ``fn`` fails on complex input."""
    try:
        out = _quiet_call(fn, z)
        if out.dtype.kind not in "biufc":
            return None
        with np.errstate(all="ignore"):
            return np.broadcast_to(out.astype(np.complex128), z.shape).copy()
    except Exception:  # a user function rejecting complex input in any way: no Cauchy route
        return None


def _probe_analytic(fn: Callable[..., Any]) -> str | None:
    """Why ``fn`` cannot be continued to complex arguments, or None if the probe passes.

    ``fn`` must accept a complex array, agree with its real values on the real axis and satisfy
    :math:`k(\\bar z) = \\overline{k(z)}` (real on the real axis) at points with :math:`|z| = 1/2`,
    all to :math:`10^{-12}` of the largest value.
    """
    x = np.array([-0.9, -0.4, 0.0, 0.35, 0.8])
    try:
        real = _real_values(fn, x)
    except Exception as exc:  # reported to the caller as the reason
        return f"fn fails on a real array ({exc!r})"
    on_axis = _call_complex(fn, x.astype(np.complex128))
    if on_axis is None:
        return "fn does not accept complex arrays"
    theta = np.array([0.4, 1.3, 2.2, 3.0])
    z = 0.5 * np.exp(1j * theta)
    upper, lower = _call_complex(fn, z), _call_complex(fn, np.conj(z))
    if upper is None or lower is None:
        return "fn does not accept complex arrays off the real axis"
    values = np.concatenate([real, on_axis, upper, lower])
    if not np.all(np.isfinite(values)):
        return "fn is not finite at complex points with |t| <= 1/2"
    tol = 1e-12 * float(np.max(np.abs(values)))
    if np.max(np.abs(on_axis - real)) > tol:
        return "fn's values at complex arguments on the real axis differ from its real values"
    if np.max(np.abs(lower - np.conj(upper))) > tol:
        return "fn(conj(t)) != conj(fn(t)): not real on the real axis"
    return None


def _cauchy_circle(fn: Callable[..., Any], radius: float, nodes_min: int) -> _Circle | None:
    r"""Cauchy integral on one circle, doubling the nodes until the coefficients' tail is at round-off.

    Samples :math:`v_j = k(Re^{2\pi ij/K})` on the upper half (the lower half is
    :math:`\bar v_{K-j}`), :math:`c_m = \frac1K\sum_j v_j e^{-2\pi ijm/K}`. The circle is
    admissible when :math:`\max_{m\ge K/2}|c_m|` (aliased coefficients, or the Laurent part of a
    singularity inside the circle) is below :math:`16\epsilon(S_0 + S_1)`, with
    :math:`S_0 = \overline{|k|}` and :math:`S_1 = \overline{|z k'(z)|}` (from :math:`m c_m`) the
    mean moduli on the circle; the round-off of each :math:`c_m` is modelled as
    :math:`4\epsilon(S_0+S_1)` (sample errors of a few ulp of :math:`|k|`, and the ulp of the
    node times :math:`|k'|`). None when values are non-finite or no node count up to
    :math:`2^{16}` passes (the circle meets or encloses a singularity).
    """
    K = nodes_min
    half: NDArray[np.complex128] | None = None
    while True:
        j = np.arange(K // 2 + 1) if half is None else np.arange(1, K // 2, 2)
        theta = (2 * np.pi / K) * j
        v = _call_complex(fn, radius * (np.cos(theta) + 1j * np.sin(theta)))
        if v is None or not np.all(np.isfinite(v)):
            return None
        if half is None:
            half = v
        else:  # the previous nodes are the even nodes of the doubled rule
            merged = np.empty(K // 2 + 1, dtype=np.complex128)
            merged[0::2], merged[1::2] = half, v
            half = merged
        full = np.concatenate([half, np.conj(half[-2:0:-1])])
        full[0], full[K // 2] = full[0].real, full[K // 2].real
        scale = float(np.max(np.abs(full)))
        if scale == 0:  # k = 0 on a whole circle: zero kernel, or fn is not the analytic function
            return None
        with np.errstate(under="ignore"):
            c = np.fft.fft(full / scale).real / K
            s0 = float(np.mean(np.abs(full / scale)))
            m = np.arange(K // 2)
            s1 = float(
                np.mean(np.abs(np.fft.ifft(np.concatenate([m * c[: K // 2], np.zeros(K - K // 2)])) * K))
            )
        tail = float(np.max(np.abs(c[K // 2 :])))
        if tail <= _CAUCHY_TAIL * _EPS * (s0 + s1):
            noise = _CAUCHY_ROUNDOFF * _EPS * (s0 + s1) + tail
            return _Circle(radius, K, math.log(scale), c, math.log(noise) + math.log(scale))
        if K >= _CAUCHY_NODES_MAX:
            return None
        K *= 2


def _cauchy_circles(fn: Callable[..., Any], n_top: int) -> list[_Circle]:
    """Admissible circles: a geometric grid from 1/16 outwards (ratio :math:`2^{1/8}`), then bisection
    towards the first inadmissible radius (the radius of convergence, or overflow).

    The grid stops at the first inadmissible circle, at :math:`2^{14}`, or once 16 successive
    circles improve no order's error bound by a factor 2.
    """
    nodes_min = max(64, 1 << (2 * n_top + 1).bit_length())
    n = np.arange(n_top + 1)
    circles: list[_Circle] = []
    best = np.full(n_top + 1, np.inf)
    stale, step, bad = 0, 0, None
    while True:
        radius = _CAUCHY_R_MIN * _CAUCHY_STEP**step
        if radius > _CAUCHY_R_MAX:
            break
        circle = _cauchy_circle(fn, radius, nodes_min)
        if circle is None:
            bad = radius
            break
        circles.append(circle)
        bound = circle.log_noise - n * math.log(radius)
        stale = 0 if np.any(bound < best - math.log(2)) else stale + 1
        best = np.minimum(best, bound)
        if stale >= 16:
            break
        step += 1
    if bad is not None and circles:
        good = circles[-1].radius
        for _ in range(16):
            if bad / good - 1 <= 1 / (4 * (n_top + 1)):
                break
            mid = math.sqrt(good * bad)
            circle = _cauchy_circle(fn, mid, nodes_min)
            if circle is None:
                bad = mid
            else:
                circles.append(circle)
                good = mid
    return circles


def _log_abs_diff(s1: NDArray, l1: NDArray, s2: NDArray, l2: NDArray) -> NDArray[np.float64]:
    """log|s1 e^l1 - s2 e^l2| elementwise."""
    ref = np.maximum(l1, l2)
    ref = np.where(np.isfinite(ref), ref, 0.0)
    with np.errstate(divide="ignore", over="ignore"):
        return ref + np.log(np.abs(s1 * np.exp(l1 - ref) - s2 * np.exp(l2 - ref)))


def _cauchy_series(fn: Callable[..., Any], n_top: int) -> _CauchySeries | _NoSeries:
    r"""Taylor coefficients :math:`b_0..b_{n_{top}}` of an analytic ``fn`` by Cauchy integrals.

    .. math:: b_n = \frac1{2\pi i}\oint_{|z|=R}\frac{k(z)}{z^{n+1}}\,dz
              \approx \frac{R^{-n}}K\sum_{j<K}k(R\omega^j)\,\omega^{-jn},\qquad \omega = e^{2\pi i/K},

    on every admissible circle of :func:`_cauchy_circles`; order :math:`n` takes the circle with
    the smallest error bound :math:`E_n(R) = R^{-n}(4\epsilon(S_0+S_1) + \text{tail})M(R)` — the
    radius that balances round-off against the growth of :math:`k`, :math:`R_n \approx ns` for
    :math:`e^{t/s}` (Bornemann 2011, Found. Comput. Math. 11, 1–63; Fornberg 1981, ACM TOMS 7,
    512–526) — plus the :math:`2\epsilon(|\log b_n| + 1)` of its logarithm. The circle with the
    second smallest bound cross-checks it: a disagreement beyond both bounds becomes the error
    bar, and beyond 100 times both bounds ``fn`` is taken not to be analytic.

    Returns a :class:`_NoSeries` when the route does not apply: ``fn`` fails the complex probe,
    no circle is admissible, the circles disagree, a coefficient is negative beyond three error
    bars (the kernel is not positive definite on every sphere), or :math:`\sum_n\tilde b_nx^n`
    misses ``fn(x)`` on :math:`[-1, 1]` by more than the error bars allow.
    """
    reason = _probe_analytic(fn)
    if reason is not None:
        return _NoSeries(reason)
    circles = _cauchy_circles(fn, n_top)
    if len(circles) < 2:
        return _NoSeries("no circle around 0 on which fn is analytic and finite was found")
    n = np.arange(n_top + 1)
    radii = np.array([c.radius for c in circles])
    log_scales = np.array([c.log_scale for c in circles])
    log_e = np.array([c.log_noise for c in circles])[:, None] - n[None, :] * np.log(radii)[:, None]
    order = np.argsort(log_e, axis=0, kind="stable")

    def estimate(pick: NDArray[np.intp]) -> tuple[NDArray, NDArray, NDArray]:
        raw = np.array([circles[i].coeffs[k] for k, i in enumerate(pick)])
        with np.errstate(divide="ignore"):
            log_abs = np.log(np.abs(raw)) + log_scales[pick] - n * np.log(radii[pick])
        log_abs = np.where(raw != 0, log_abs, -np.inf)
        finite = np.isfinite(log_abs)
        rounding = np.where(
            finite, np.log(2 * _EPS * (np.abs(np.where(finite, log_abs, 0)) + 1)) + log_abs, -np.inf
        )
        return np.sign(raw), log_abs, np.logaddexp(log_e[pick, n], rounding)

    sign, log_abs, log_err = estimate(order[0])
    sign2, log_abs2, log_err2 = estimate(order[1])
    log_diff = _log_abs_diff(sign, log_abs, sign2, log_abs2)
    bars = np.logaddexp(log_err, log_err2)
    if np.any(log_diff > bars + math.log(100)):
        worst = int(np.argmax(log_diff - bars))
        return _NoSeries(
            f"Cauchy integrals on different circles disagree at order {worst}: fn is not analytic"
        )
    log_err = np.where(log_diff > bars, np.maximum(log_err, log_diff), log_err)
    negative = (sign < 0) & (log_abs > log_err + math.log(3))
    if np.any(negative):
        k = int(np.argmax(negative))
        return _NoSeries(f"Taylor coefficient b_{k} = -{math.exp(log_abs[k]):.3e} is negative", True)
    # tail beyond n_top: b_n <= M(R) R^-n with R > 1, else k(1) minus the lower bounds
    big = radii > 1
    if big.any():
        log_tail_top = float(np.min(log_scales[big] - (n_top + 1) * np.log(radii[big])))
    else:
        with np.errstate(under="ignore", invalid="ignore", divide="ignore"):
            lower = np.where(
                sign > 0, log_abs + np.log1p(-np.minimum(np.exp(log_err - log_abs), 1.0)), -np.inf
            )
            upper = np.logaddexp(np.where(sign > 0, log_abs, -np.inf), log_err)
            k_one = float(_real_values(fn, np.array([1.0]))[0])
            rest = k_one - float(np.sum(np.exp(lower)))
            slack = 8 * _EPS * (abs(k_one) + float(np.sum(np.exp(upper))))
        log_tail_top = math.log(max(rest, 0.0) + slack) if max(rest, 0.0) + slack > 0 else -math.inf
    series = _CauchySeries(sign, log_abs, log_err, log_tail_top, radii, log_scales)
    if not _reproduces_fn(fn, series):
        return _NoSeries("the Taylor series from Cauchy integrals does not reproduce fn on [-1, 1]")
    return series


def _real_values(fn: Callable[..., Any], x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.broadcast_to(_quiet_call(fn, x).astype(np.float64), x.shape)


def _reproduces_fn(fn: Callable[..., Any], series: _CauchySeries) -> bool:
    r"""Whether :math:`|k(x) - \sum_{n\le n_{top}}\tilde b_nx^n|` is within the error bars on
    :math:`x \in [-1, 1]` (scaled to 0.95 of the largest admissible radius when that is below 1).

    Allowed: :math:`\sum_n e_n|x|^n`, the tail :math:`\min_{R>|x|}M(R)(|x|/R)^{N+1}/(1-|x|/R)`
    (or the tail estimate at :math:`|x| \le 1` when no circle reaches beyond), and
    :math:`8\epsilon` of the values and of the sum of moduli.
    """
    span = min(1.0, 0.95 * float(series.radii.max()))
    x = span * np.array([-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0])
    real = _real_values(fn, x)
    n = np.arange(series.n_top + 1)
    ax = np.abs(x)[:, None]
    with np.errstate(divide="ignore", under="ignore", invalid="ignore"):
        log_x = np.where(n[None, :] == 0, 0.0, np.log(ax) * n[None, :])
        terms = series.sign[None, :] * np.exp(series.log_abs[None, :] + log_x)
        total = np.sum(np.where(x[:, None] < 0, (-1.0) ** n[None, :], 1.0) * terms, axis=1)
        bars = np.sum(np.exp(series.log_err[None, :] + log_x), axis=1)
        r, ls = series.radii[None, :], series.log_scales[None, :]
        geo = np.where(ax < r, ls + (series.n_top + 1) * np.log(ax / r) - np.log1p(-ax / r), np.inf).min(
            axis=1
        )
        tail = np.exp(np.minimum(geo, series.log_tail_top))
    allowed = bars + tail + 8 * _EPS * (np.abs(real) + np.sum(np.abs(terms), axis=1))
    return bool(np.all(np.abs(real - total) <= allowed))


@dataclass(frozen=True)
class _Table:
    r"""Per truncation order N: the remainder to return and the number of degrees it resolves.

    ``log_value``/``log_error``: :math:`\log v_n`, :math:`\log a_n` for every order (see
    :func:`_cauchy_table`); ``log_remainder[N]``, ``resolved[N]`` for N = 0..n_max.
    """

    log_value: NDArray[np.float64]
    log_error: NDArray[np.float64]
    log_remainder: NDArray[np.float64]
    resolved: NDArray[np.int64]


def _cauchy_tail(series: _CauchySeries, n_max: int) -> NDArray[np.float64]:
    r"""log of an estimate of :math:`\sum_{n>N}b_n` for N = 0..n_max (``n_max <= n_top``).

    The smaller of :math:`\sum_{N<n\le n_{top}}(\tilde b_n^+ + e_n) + T_{top}` and
    :math:`\min_{R>1} M(R)R^{-N-1}` (with :math:`b_n\ge 0`, :math:`\sum_{n>N}b_n \le
    R^{-N-1}\sum_n b_nR^n = R^{-N-1}k(R)` and :math:`k(R) = M(R)`).
    """
    with np.errstate(divide="ignore"):
        upper = np.logaddexp(np.where(series.sign > 0, series.log_abs, -np.inf), series.log_err)
    suffix = np.logaddexp.accumulate(upper[::-1])[::-1]  # suffix[k] = log sum_{k <= n <= n_top}
    tail = np.logaddexp(np.append(suffix[1:], -np.inf), series.log_tail_top)[: n_max + 1]
    big = series.radii > 1
    if big.any():
        N = np.arange(n_max + 1)
        bound = series.log_scales[big][:, None] - (N[None, :] + 1) * np.log(series.radii[big])[:, None]
        tail = np.minimum(tail, bound.min(axis=0))
    return tail


def _cauchy_table(series: _CauchySeries, n_max: int, d: int | None) -> _Table:
    r"""Remainders and resolved-degree counts for every truncation order N <= ``n_max``.

    Order n is returned as :math:`v_n = \tilde b_n` when :math:`\tilde b_n > e_n` (error
    :math:`a_n = e_n`), else as :math:`v_n = 0` (:math:`a_n = \tilde b_n^+ + e_n`, as
    :math:`b_n \ge 0`). The coefficient errors of orders :math:`\le N` move
    :math:`\lambda_l = \sum_n b_n\mu_{l,n}` by at most :math:`A_l = \sum_{n\le N}a_n\mu_{l,n}`.
    Every degree :math:`l\le N` has either :math:`A_l \le 10^{-12}(V_l - A_l)`,
    :math:`V_l = \sum_{n\le N}v_n\mu_{l,n}` (the relative error :meth:`DotProductKernel.taylor_rtol`
    reports), or is covered by the remainder: :math:`\mathcal R_N \ge A_l/\mu_{l,n^*}`,
    :math:`n^*` the first omitted order of the parity of ``l`` — the spectrum multiplies the
    remainder by :math:`\max_{n\ge n^*}\mu_{l,n} \ge \mu_{l,n^*}`. :math:`\mathcal R_N` is the
    larger of that and the tail estimate :func:`_cauchy_tail`. A degree counts as resolved when
    :math:`V_l > 0` and its predicted error is below :math:`10^{-10}V_l`. Without ``d``, only
    orders before the first one with :math:`a_n > 10^{-12}v_n` count (resolved = N + 1 there,
    0 beyond) and the remainder is the tail estimate.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = (series.sign > 0) & (series.log_abs > series.log_err)
        log_v = np.where(keep, series.log_abs, -np.inf)[: n_max + 1]
        positive = np.where(series.sign > 0, series.log_abs, -np.inf)
        log_a = np.where(keep, series.log_err, np.logaddexp(positive, series.log_err))[: n_max + 1]
    tail = _cauchy_tail(series, n_max)
    log_tol = math.log(_CAUCHY_RTOL)
    N = np.arange(n_max + 1)
    if d is None:
        fine = np.isfinite(log_v) & (log_a <= log_tol + log_v)
        first_bad = int(np.argmin(fine)) if not fine.all() else n_max + 1
        return _Table(log_v, log_a, tail, np.where(N < first_bad, N + 1, 0))
    from fieldcurve.spectrum import monomial_log_eigenvalues  # spectrum imports this module

    log_mu = monomial_log_eigenvalues(d, n_max, n_max + 2)  # [l, n]

    def block(lo: int) -> tuple[NDArray, ...]:
        """Rows l = lo..lo+127: valid, V, A, log mu_{l,n*}, relative budget met (all [l, N])."""
        l = np.arange(lo, min(lo + 128, n_max + 1))[:, None]
        mu = log_mu[l[:, 0]]
        cum_v = np.logaddexp.accumulate(log_v[None, :] + mu[:, : n_max + 1], axis=1)
        cum_a = np.logaddexp.accumulate(log_a[None, :] + mu[:, : n_max + 1], axis=1)
        mu_star = np.take_along_axis(mu, N[None, :] + 1 + (N[None, :] + 1 - l) % 2, axis=1)
        rel_ok = cum_a <= cum_v + log_tol - math.log1p(_CAUCHY_RTOL)
        return l <= N[None, :], cum_v, cum_a, mu_star, rel_ok

    need = np.full(n_max + 1, -np.inf)
    with np.errstate(invalid="ignore"):
        for lo in range(0, n_max + 1, 128):
            valid, _, cum_a, mu_star, rel_ok = block(lo)
            need = np.maximum(need, np.where(valid & ~rel_ok, cum_a - mu_star, -np.inf).max(axis=0))
        rem = np.maximum(tail, need)
        resolved = np.zeros(n_max + 1, dtype=np.int64)
        for lo in range(0, n_max + 1, 128):
            valid, cum_v, cum_a, mu_star, rel_ok = block(lo)
            predicted = np.logaddexp(np.where(rel_ok, cum_v + log_tol, cum_a), rem[None, :] + mu_star)
            resolved += (valid & np.isfinite(cum_v) & (predicted <= cum_v + math.log(_CAUCHY_AIM))).sum(
                axis=0
            )
    return _Table(log_v, log_a, rem, resolved)


class DotProductKernel(Kernel):
    r"""Wrap a user function :math:`k(t)` of the cosine :math:`t = x\cdot x'/d`.

    Parameters
    ----------
    fn
        Vectorised numpy function of ``t``.
    mp_fn
        Optional function of one mpmath number (enables ``spectrum(method="mpmath")``).
    taylor
        Optional ``taylor(n_max)`` returning non-negative Taylor coefficients :math:`b_0..b_{n_{max}}`
        (enables the power-series route).
    log_taylor
        Optional ``log_taylor(n_max)`` returning :math:`\log b_n` (for coefficients that
        underflow double precision).
    log_taylor_remainder
        Optional ``f(n_max)`` bounding :math:`\log\sum_{n>n_{max}} b_n` (sharpens the series
        route's error bound; without it the remainder is :math:`k(1) - \sum_{n\le n_{max}} b_n`).
    name
        Label used in tables and plots.
    analytic
        Whether to derive the Taylor coefficients from ``fn`` at complex arguments when neither
        ``taylor`` nor ``log_taylor`` is given. ``None`` (default): probe — ``fn`` must accept a
        complex array, match its real values on the real axis and be real-symmetric
        (:math:`k(\bar z) = \overline{k(z)}`), and the coefficients must pass the checks of the
        Notes; otherwise the coefficients are ``None`` and the spectrum uses its quadrature
        routes. ``False``: never call ``fn`` with complex numbers (e.g. ``fn`` has side
        effects or is expensive). ``True``: as ``None``, but a failed probe or check raises
        ``ValueError`` with the reason (a kernel with a negative Taylor coefficient still gives
        ``None``: that is a property of the kernel, not a failure).

    Notes
    -----
    Cauchy route (``analytic`` not ``False``). A kernel analytic in a disc :math:`|t| < \rho`
    (:math:`\rho \ge 1` when all :math:`b_n \ge 0` and :math:`k(1)` is finite) has

    .. math:: b_n = \frac1{2\pi i}\oint_{|z|=R}\frac{k(z)}{z^{n+1}}dz,\qquad 0 < R < \rho,

    evaluated by the trapezoidal rule (FFT) on a grid of radii :math:`2^{j/8}/16` up to the
    largest admissible one (bisected towards :math:`\rho` or the overflow of :math:`k`); each
    order uses the radius with the smallest error bound (round-off :math:`\approx
    4\epsilon\,\overline{(|k| + |zk'|)}\,R^{-n}` against the alias of the tail), as in
    Bornemann (2011), *Accuracy and stability of computing high-order derivatives of analytic
    functions by Cauchy integrals*, Found. Comput. Math. 11, 1–63. Measured against exact
    coefficients in mpmath, all orders 0–1023 (``tests/test_cauchy_taylor.py`` checks those
    returned): every error is at most 0.4 times its bound; relative errors up to order 768 are
    below :math:`9\times10^{-13}` for :math:`e^{2t}` (the overflow of :math:`k` caps the radius
    at 355), :math:`2\times10^{-13}` for :math:`e^{100t}`, :math:`10^{-13}` for
    :math:`(1-t/2)^{-3/2}` and :math:`1-\log(1-t/2)`.
    Checks: the second-best circle agrees within the bounds, no coefficient is negative beyond
    three error bars, and the series reproduces ``fn`` on :math:`[-1,1]`. The series is cut at
    an order N such that the coefficient errors change no eigenvalue :math:`\lambda_l`
    (:math:`l \le N`) by more than :math:`10^{-12}` relative (:meth:`taylor_rtol`), or are
    covered by the remainder :meth:`log_taylor_remainder` — an estimate:
    :math:`\min_{R>1} M(R)R^{-N-1}` (a bound for :math:`b_n \ge 0`, as then :math:`M(R) = k(R)`)
    or the error bars of the omitted orders. Coefficients consistent with zero are returned as 0,
    their error bars in :meth:`log_taylor_errors`. A kernel analytic only in the unit disc (branch
    point at :math:`t = 1`, e.g. :math:`2-\sqrt{1-t}` with :math:`b_n \sim n^{-3/2}`) has error
    bounds growing relative to :math:`b_n`, and its series stops earlier (order 57 at
    :math:`d = 2000`).
    """

    def __init__(
        self,
        fn: Callable[[NDArray[np.float64]], Any],
        mp_fn: Callable[[Any], Any] | None = None,
        taylor: Callable[[int], NDArray[np.float64]] | None = None,
        name: str = "user kernel",
        log_taylor: Callable[[int], NDArray[np.float64]] | None = None,
        log_taylor_remainder: Callable[[int], float] | None = None,
        analytic: bool | None = None,
    ):
        if not callable(fn):
            raise TypeError("fn must be callable")
        if analytic is not None and not isinstance(analytic, bool):
            raise TypeError(f"analytic must be True, False or None, got {analytic!r}")
        self.fn = fn
        self.mp_fn = mp_fn
        self._taylor = taylor
        self._log_taylor = log_taylor
        self._log_remainder = log_taylor_remainder
        self.name = name
        self.analytic = analytic
        self._series: _CauchySeries | _NoSeries | None = None
        self._tables: dict[int | None, _Table] = {}

    def __repr__(self) -> str:
        return f"DotProductKernel({self.name!r})"

    @property
    def has_mp(self) -> bool:
        return self.mp_fn is not None

    def _eval(
        self, t: NDArray[np.float64], d: int | None, gaps: tuple[Any, Any] | None = None
    ) -> NDArray[np.float64]:
        out = np.asarray(self.fn(t), dtype=np.float64)
        return np.broadcast_to(out, t.shape).copy() if out.shape != t.shape else out

    def mp_eval(self, t: Any, d: int | None = None, gaps: Any = None, ops: Any = None) -> Any:
        if self.mp_fn is None:
            raise NotImplementedError(f"{self.name} has no mpmath evaluation (pass mp_fn)")
        return self.mp_fn(t)

    @property
    def taylor_source(self) -> str | None:
        """``"explicit"`` (``taylor``/``log_taylor`` given), ``"cauchy"`` or None (no coefficients)."""
        if self._taylor is not None or self._log_taylor is not None:
            return "explicit"
        return "cauchy" if self._cauchy(0) is not None else None

    def _cauchy(self, n_max: int) -> _CauchySeries | None:
        """The Cauchy series through order >= ``n_max`` (computed for at least 1023 orders, once)."""
        if self.analytic is False:
            return None
        series = self._series
        if series is None or (isinstance(series, _CauchySeries) and series.n_top < n_max):
            series = _cauchy_series(self.fn, max(n_max, _CAUCHY_ORDERS))
            self._series, self._tables = series, {}
        if isinstance(series, _NoSeries):
            if self.analytic and not series.kernel_invalid:
                raise ValueError(
                    f"analytic=True, but the Cauchy route fails for {self.name}: {series.reason}"
                )
            return None
        return series

    def _table(self, n_max: int, d: int | None) -> _Table | None:
        from fieldcurve._checks import check_dimension  # local: the import block is not this section's

        n_max = check_nonneg_int(n_max, "n_max")
        if d is not None:
            d = check_dimension(d)
        series = self._cauchy(n_max)
        if series is None:
            return None
        table = self._tables.get(d)
        if table is None or len(table.log_remainder) <= n_max:
            table = self._tables[d] = _cauchy_table(series, n_max, d)
        return table

    def _cut(self, n_max: int, d: int | None) -> tuple[_Table, int] | None:
        """The table and the truncation order N <= n_max resolving the most degrees (then the
        smallest remainder), or None."""
        table = self._table(n_max, d)
        if table is None:
            return None
        resolved = table.resolved[: n_max + 1]
        if resolved.max() == 0:
            return None
        best = np.flatnonzero(resolved == resolved.max())
        return table, int(best[np.argmin(table.log_remainder[best])])

    def taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        """Taylor coefficients :math:`b_0..b_N`, :math:`N \\le n_{max}` (see the class Notes).

        Explicit coefficients have ``n_max + 1`` entries; Cauchy ones stop at the order N of
        the class Notes (it depends on ``d``), the omitted orders being covered by
        :meth:`log_taylor_remainder` ``(N, d)``. Values below the double range underflow to 0;
        use :meth:`log_taylor_coefficients`.
        """
        if self._taylor is None:
            log_b = self.log_taylor_coefficients(n_max, d)
            if log_b is None:
                return None
            with np.errstate(under="ignore"):
                return np.exp(log_b)
        return np.asarray(self._taylor(n_max), dtype=np.float64)

    def log_taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        if self._log_taylor is not None:
            return np.asarray(self._log_taylor(n_max), dtype=np.float64)
        if self._taylor is not None:
            return super().log_taylor_coefficients(n_max, d)
        cut = self._cut(n_max, d)
        return None if cut is None else cut[0].log_value[: cut[1] + 1].copy()

    def log_taylor_errors(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        r"""log of the estimated absolute error of each coefficient of :meth:`log_taylor_coefficients`.

        Cauchy coefficients only (None for explicit ones, which are taken as exact): the bound of
        the circle used, widened by the cross-check, plus the rounding of :math:`\log b_n`; for a
        coefficient returned as 0, the upper end :math:`\tilde b_n^+ + e_n` of its interval.
        """
        if self._taylor is not None or self._log_taylor is not None:
            return None
        cut = self._cut(n_max, d)
        return None if cut is None else cut[0].log_error[: cut[1] + 1].copy()

    def taylor_rtol(self, n_max: int, d: int | None = None) -> float | None:
        r"""Relative error the coefficients' errors may cause in :math:`\lambda_l = \sum_n b_n\mu_{l,n}`.

        :math:`10^{-12}` for Cauchy coefficients (degrees whose coefficient errors exceed it are
        covered by :meth:`log_taylor_remainder` instead); None for explicit coefficients (exact).
        """
        if self._taylor is not None or self._log_taylor is not None:
            return None
        return None if self._cut(n_max, d) is None else _CAUCHY_RTOL

    def log_taylor_remainder(self, n_max: int, d: int | None = None) -> float | None:
        """log of a bound on :math:`\\sum_{n>n_{max}} b_n` (an estimate for Cauchy coefficients).

        For Cauchy coefficients truncated at ``n_max`` it also covers the errors of orders up to
        ``n_max`` beyond the relative budget of :meth:`taylor_rtol` (class Notes), for the ``d``
        given; without ``d`` it is None unless every order up to ``n_max`` meets that budget.
        """
        if self._taylor is not None or self._log_taylor is not None:
            return None if self._log_remainder is None else float(self._log_remainder(n_max))
        table = self._table(n_max, d)
        if table is None or (d is None and table.resolved[n_max] == 0):
            return None
        return float(table.log_remainder[n_max])


def _from_sympy(expr: Any) -> DotProductKernel:
    import sympy  # loaded only for sympy kernels

    free = expr.free_symbols
    if len(free) > 1 or (free and next(iter(free)).name != "t"):
        raise ValueError(f"a sympy kernel must be an expression in the single symbol t, got {expr}")
    t = next(iter(free)) if free else sympy.Symbol("t")
    np_fn = sympy.lambdify(t, expr, modules="numpy")
    mp_fn = sympy.lambdify(t, expr, modules="mpmath")
    taylor = None
    if expr.is_polynomial(t):
        poly = sympy.Poly(expr, t)
        coeffs = [float(poly.coeff_monomial(t**n)) for n in range(max(poly.degree(), 0) + 1)]

        def taylor(n_max: int, _c: list[float] = coeffs) -> NDArray[np.float64]:
            out = np.zeros(n_max + 1)
            m = min(n_max + 1, len(_c))
            out[:m] = _c[:m]
            return out

        def log_remainder(n_max: int, _c: list[float] = coeffs) -> float:
            rest = sum(abs(v) for v in _c[n_max + 1 :])
            return math.log(rest) if rest > 0 else -math.inf

        return DotProductKernel(
            np_fn, mp_fn=mp_fn, taylor=taylor, name=str(expr), log_taylor_remainder=log_remainder
        )
    return DotProductKernel(np_fn, mp_fn=mp_fn, taylor=taylor, name=str(expr))


def as_kernel(obj: Any) -> Kernel:
    """Accept a :class:`Kernel`, a sympy expression in ``t``, or a callable of ``t``."""
    if isinstance(obj, Kernel):
        return obj
    sympy = sys.modules.get("sympy")  # a sympy expression implies sympy is loaded
    if sympy is not None and isinstance(obj, sympy.Basic):
        return _from_sympy(sympy.sympify(obj))
    if isinstance(obj, MLP):
        raise TypeError("an MLP is not a kernel: use nngp_kernel(mlp) or ntk_kernel(mlp)")
    if callable(obj):
        return DotProductKernel(obj, name=getattr(obj, "__name__", "user kernel"))
    raise TypeError(f"cannot use {obj!r} as a kernel")


def exponential_kernel(scale: float = 1.0) -> DotProductKernel:
    r""":math:`k(t) = e^{t/s}`; Taylor coefficients :math:`1/(s^n n!)`; eigenvalues
    :math:`\Gamma(d/2)(2s)^{d/2-1}I_{l+d/2-1}(1/s)`."""
    s = check_variance(scale, "scale")
    if s == 0:
        raise ValueError("scale must be > 0")
    from scipy.special import gammaln

    def log_taylor(n_max: int) -> NDArray[np.float64]:
        n = np.arange(n_max + 1)
        return -n * np.log(s) - gammaln(n + 1)

    def log_remainder(n_max: int) -> float:
        # sum_{n>N} s^-n/n! <= s^-(N+1)/(N+1)! * 1/(1 - 1/(s (N+2)))  when s (N+2) > 1
        ratio = 1.0 / (s * (n_max + 2))
        if ratio >= 1:
            return math.log(math.exp(1.0 / s))
        return float(-(n_max + 1) * np.log(s) - gammaln(n_max + 2) - math.log1p(-ratio))

    return DotProductKernel(
        lambda t: np.exp(t / s),
        mp_fn=lambda t: mpmath.exp(t / s),
        log_taylor=log_taylor,
        log_taylor_remainder=log_remainder,
        name=f"exp(t/{s:g})",
    )


def polynomial_kernel(coefficients: Sequence[float]) -> DotProductKernel:
    r""":math:`k(t) = \sum_n b_n t^n` with non-negative ``coefficients`` :math:`b_n`."""
    c = [check_variance(v, "coefficients") for v in coefficients]
    import sympy

    t = sympy.Symbol("t")
    expr = sum(sympy.Float(v) * t**n for n, v in enumerate(c)) if c else sympy.Integer(0)
    k = _from_sympy(sympy.sympify(expr))
    k.name = "polynomial " + " + ".join(f"{v:g} t^{n}" for n, v in enumerate(c) if v)
    return k
