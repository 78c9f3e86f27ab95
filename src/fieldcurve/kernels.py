r"""Infinite-width kernels of deep fully connected networks, and dot-product kernels in general.

Conventions (neural-tangents, Novak et al. 2020): the input kernel is :math:`K^0 = x\cdot x'/d`.
An :class:`MLP` of ``depth`` L is L hidden layers (Dense then activation) and a linear readout
Dense. Every Dense ``i`` has weight variance :math:`\sigma_{w,i}^2` and bias variance
:math:`\sigma_{b,i}^2` (``bias_var == 0`` means *no bias parameter*).

NTK parameterisation (Jacot et al. 2018), per Dense then activation:

.. math::
    K \leftarrow \sigma_w^2 K + \sigma_b^2,\quad \Theta \leftarrow K + \sigma_w^2\Theta;\qquad
    \Theta \leftarrow \Theta\,\mathbb E[\phi'(u)\phi'(v)],\quad K \leftarrow \mathbb E[\phi(u)\phi(v)],

with :math:`(u,v)\sim\mathcal N(0, K)` and :math:`\Theta = 0` before the first Dense.
Standard parameterisation (weights :math:`\mathcal N(0,\sigma_w^2/n_{in})`, trained directly): the
NNGP is the same and :math:`\Theta \leftarrow n_{in}K + \sigma_w^2\Theta + [\text{bias}]`, with
:math:`n_{in} = d` for the first layer and ``width`` after it (Sohl-Dickstein et al. 2020).

On the sphere :math:`|x|^2 = d` every diagonal entry follows the single-input recursion, so the
kernels are functions :math:`k(t)` of the cosine :math:`t = x\cdot x'/d`; in the NTK
parameterisation they do not depend on ``d``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np
import sympy
from numpy.typing import ArrayLike, NDArray

from fieldcurve._checks import check_finite_array, check_nonneg_int, check_variance
from fieldcurve.activations import MPMATH_OPS, NUMPY_OPS, Activation, get_activation

__all__ = [
    "MLP",
    "DotProductKernel",
    "Kernel",
    "MLPKernel",
    "as_kernel",
    "exponential_kernel",
    "nngp_kernel",
    "ntk_kernel",
    "polynomial_kernel",
]

_PARAMETERIZATIONS = ("ntk", "standard")


def _per_layer(values: float | Sequence[float], n: int, name: str) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a number or a sequence of numbers")
    if isinstance(values, Sequence) or isinstance(values, np.ndarray):
        vals = list(values)
        if len(vals) != n:
            raise ValueError(
                f"{name} needs one value per Dense layer (depth + 1 = {n}, readout last),"
                f" got {len(vals)}"
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
    """

    depth: int
    activation: Activation | str | Callable = "relu"
    weight_var: float | Sequence[float] = 2.0
    bias_var: float | Sequence[float] = 0.0
    parameterization: str = "ntk"
    width: int | None = None
    weight_vars: tuple[float, ...] = field(init=False, repr=False)
    bias_vars: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        depth = check_nonneg_int(self.depth, "depth")
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "activation", get_activation(self.activation))
        object.__setattr__(self, "weight_vars", _per_layer(self.weight_var, depth + 1, "weight_var"))
        object.__setattr__(self, "bias_vars", _per_layer(self.bias_var, depth + 1, "bias_var"))
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

    def _eval(self, t: NDArray[np.float64], d: int | None) -> NDArray[np.float64]:
        raise NotImplementedError

    def mp_eval(self, t: Any, d: int | None = None) -> Any:
        """Evaluate :math:`k(t)` for one mpmath number at the working precision."""
        raise NotImplementedError(f"{self.name} has no arbitrary-precision evaluation")

    @property
    def has_mp(self) -> bool:
        """Whether :meth:`mp_eval` is available."""
        return False

    def taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        """Taylor coefficients :math:`b_0..b_{n_{max}}` of :math:`k(t)` at 0, or None."""
        return None

    def gram(self, X1: ArrayLike, X2: ArrayLike | None = None) -> NDArray[np.float64]:
        """Gram matrix :math:`k(x_i\\cdot x'_j/d)` (inputs assumed on the sphere)."""
        A, B, d = _gram_inputs(X1, X2)
        t = np.clip(A @ B.T / d, -1.0, 1.0)
        return self._eval(t, d)


def _gram_inputs(
    X1: ArrayLike, X2: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    A = check_finite_array(X1, "X1", ndim=2)
    B = A if X2 is None else check_finite_array(X2, "X2", ndim=2)
    if A.shape[1] != B.shape[1]:
        raise ValueError(
            f"X1 and X2 have different feature dimensions ({A.shape[1]} != {B.shape[1]})"
        )
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

    def _needs_d(self, d: int | None) -> None:
        if self.kind == "ntk" and self.mlp.parameterization == "standard" and d is None:
            raise ValueError("the standard-parameterisation NTK depends on the input dimension d")

    def _recursion(self, k11: Any, k12: Any, k22: Any, n_in0: int | None, ops: Any) -> Any:
        """Run the layer recursion on covariances; returns the requested kernel."""
        mlp, act = self.mlp, self.mlp.activation
        want_ntk = self.kind == "ntk"
        standard = mlp.parameterization == "standard"
        use_quadrature = ops is NUMPY_OPS and not act.has_closed_form
        theta = 0 * k12 if want_ntk else None
        n_in = n_in0
        for layer in range(mlp.depth + 1):
            w, b = mlp.weight_vars[layer], mlp.bias_vars[layer]
            if want_ntk and standard:
                theta = n_in * k12 + w * theta + (1.0 if b > 0 else 0.0)
            k11, k12, k22 = w * k11 + b, w * k12 + b, w * k22 + b
            if want_ntk and not standard:
                theta = k12 + w * theta
            if layer == mlp.depth:
                break
            if use_quadrature:
                if want_ntk:
                    theta = theta * act.dual_derivative(k11, k12, k22)
                new12 = act.dual(k11, k12, k22)
                new11 = act.dual(k11, k11, k11)
                new22 = new11 if k22 is k11 else act.dual(k22, k22, k22)
            else:
                if want_ntk:
                    theta = theta * act.closed_dual_derivative(k11, k12, k22, ops)
                new12 = act.closed_dual(k11, k12, k22, ops)
                new11 = act.closed_dual(k11, k11, k11, ops)
                new22 = new11 if k22 is k11 else act.closed_dual(k22, k22, k22, ops)
            k11, k12, k22 = new11, new12, new22
            n_in = mlp.width
        return theta if want_ntk else k12

    def _eval(self, t: NDArray[np.float64], d: int | None) -> NDArray[np.float64]:
        self._needs_d(d)
        one = np.ones_like(t)
        return np.asarray(self._recursion(one, t, one, d, NUMPY_OPS), dtype=np.float64)

    def mp_eval(self, t: Any, d: int | None = None) -> Any:
        if not self.has_mp:
            raise NotImplementedError(
                f"activation {self.mlp.activation.name} has no closed-form dual; no mpmath path"
            )
        self._needs_d(d)
        one = mpmath.mpf(1)
        return self._recursion(one, mpmath.mpf(t), one, d, MPMATH_OPS)

    def gram(self, X1: ArrayLike, X2: ArrayLike | None = None) -> NDArray[np.float64]:
        r"""Kernel matrix for arbitrary inputs, neural-tangents convention :math:`K^0 = x\cdot x'/d`.

        Diagonal variances follow their own single-input recursion; when ``X2`` is None the
        diagonal of the result is that recursion (exact, never an arccos of a rounded 1).
        """
        A, B, d = _gram_inputs(X1, X2)
        n1 = np.einsum("ij,ij->i", A, A) / d
        n2 = n1 if X2 is None else np.einsum("ij,ij->i", B, B) / d
        k12 = A @ B.T / d
        k11 = np.broadcast_to(n1[:, None], k12.shape)
        k22 = np.broadcast_to(n2[None, :], k12.shape)
        out = np.asarray(self._recursion(k11, k12, k22, d, NUMPY_OPS), dtype=np.float64)
        if X2 is None:
            diag = np.asarray(self._recursion(n1, n1, n1, d, NUMPY_OPS), dtype=np.float64)
            out = out.copy()
            np.fill_diagonal(out, diag)
            out = 0.5 * (out + out.T)
            np.fill_diagonal(out, diag)
        return out

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
    name
        Label used in tables and plots.
    """

    def __init__(
        self,
        fn: Callable[[NDArray[np.float64]], Any],
        mp_fn: Callable[[Any], Any] | None = None,
        taylor: Callable[[int], NDArray[np.float64]] | None = None,
        name: str = "user kernel",
    ):
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.fn = fn
        self.mp_fn = mp_fn
        self._taylor = taylor
        self.name = name

    def __repr__(self) -> str:
        return f"DotProductKernel({self.name!r})"

    @property
    def has_mp(self) -> bool:
        return self.mp_fn is not None

    def _eval(self, t: NDArray[np.float64], d: int | None) -> NDArray[np.float64]:
        out = np.asarray(self.fn(t), dtype=np.float64)
        return np.broadcast_to(out, t.shape).copy() if out.shape != t.shape else out

    def mp_eval(self, t: Any, d: int | None = None) -> Any:
        if self.mp_fn is None:
            raise NotImplementedError(f"{self.name} has no mpmath evaluation (pass mp_fn)")
        return self.mp_fn(t)

    def taylor_coefficients(self, n_max: int, d: int | None = None) -> NDArray[np.float64] | None:
        if self._taylor is None:
            return None
        return np.asarray(self._taylor(n_max), dtype=np.float64)


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
        coeffs = [float(poly.coeff_monomial(t**n)) for n in range(poly.degree() + 1)]

        def taylor(n_max: int, _c: list[float] = coeffs) -> NDArray[np.float64]:
            out = np.zeros(n_max + 1)
            m = min(n_max + 1, len(_c))
            out[:m] = _c[:m]
            return out

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

    def taylor(n_max: int) -> NDArray[np.float64]:
        n = np.arange(n_max + 1)
        return np.exp(-n * np.log(s) - gammaln(n + 1))

    return DotProductKernel(
        lambda t: np.exp(t / s), mp_fn=lambda t: mpmath.exp(t / s), taylor=taylor,
        name=f"exp(t/{s:g})",
    )


def polynomial_kernel(coefficients: Sequence[float]) -> DotProductKernel:
    r""":math:`k(t) = \sum_n b_n t^n` with non-negative ``coefficients`` :math:`b_n`."""
    c = [check_variance(v, "coefficients") for v in coefficients]
    expr = sum(sympy.Float(v) * _T**n for n, v in enumerate(c)) if c else sympy.Integer(0)
    k = _from_sympy(sympy.sympify(expr))
    k.name = "polynomial " + " + ".join(f"{v:g} t^{n}" for n, v in enumerate(c) if v)
    return k
