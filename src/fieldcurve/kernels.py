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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import mpmath
import numpy as np
import sympy
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
        from :math:`(
    ho, g_\mp = 1\mp
    ho)`, as :func:`~fieldcurve.activations.abrelu_gap_step`
        with :math:`k_{11} = k_{22} = 1`, except that past :math:`	heta = \pi/2` the new gap is
        written in :math:`\delta = \pi - 	heta` as

        .. math:: g_-' = 	frac12(a+b)^2 - 2ab\sin^2(\delta/2) - B(\sin\delta - \delta\cos\delta),

        whose terms do not cancel when :math:`ab < 0` (e.g. :math:`|x|`, for which nearly antiparallel
        inputs become nearly parallel: the form :math:`Ag_- - B(\sin	heta - 	heta\cos	heta)`
        subtracts two numbers near 2 there and leaves an error of order :math:`\sqrt{\epsilon}` in
        the next angle).
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
    """

    def __init__(
        self,
        fn: Callable[[NDArray[np.float64]], Any],
        mp_fn: Callable[[Any], Any] | None = None,
        taylor: Callable[[int], NDArray[np.float64]] | None = None,
        name: str = "user kernel",
        log_taylor: Callable[[int], NDArray[np.float64]] | None = None,
        log_taylor_remainder: Callable[[int], float] | None = None,
    ):
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.fn = fn
        self.mp_fn = mp_fn
        self._taylor = taylor
        self._log_taylor = log_taylor
        self._log_remainder = log_taylor_remainder
        self.name = name

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

    def taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        if self._taylor is None:
            if self._log_taylor is not None:
                return np.exp(self.log_taylor_coefficients(n_max, d))
            return None
        return np.asarray(self._taylor(n_max), dtype=np.float64)

    def log_taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        if self._log_taylor is not None:
            return np.asarray(self._log_taylor(n_max), dtype=np.float64)
        return super().log_taylor_coefficients(n_max, d)

    def log_taylor_remainder(self, n_max: int, d: int | None = None) -> float | None:
        return None if self._log_remainder is None else float(self._log_remainder(n_max))


_T = sympy.Symbol("t")


def _from_sympy(expr: sympy.Expr) -> DotProductKernel:
    free = expr.free_symbols
    if len(free) > 1 or (free and next(iter(free)).name != "t"):
        raise ValueError(f"a sympy kernel must be an expression in the single symbol t, got {expr}")
    t = next(iter(free)) if free else _T
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
    if isinstance(obj, sympy.Basic):
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
    expr = sum(sympy.Float(v) * _T**n for n, v in enumerate(c)) if c else sympy.Integer(0)
    k = _from_sympy(sympy.sympify(expr))
    k.name = "polynomial " + " + ".join(f"{v:g} t^{n}" for n, v in enumerate(c) if v)
    return k
