r"""Activations and their Gaussian expectations (dual activations).

For jointly Gaussian :math:`(u, v) \sim \mathcal N(0, [[k_{11}, k_{12}], [k_{12}, k_{22}]])` each
activation provides

* ``dual(k11, k12, k22)`` :math:`= \mathbb E[\phi(u)\phi(v)]` (the NNGP map), and
* ``dual_derivative(k11, k12, k22)`` :math:`= \mathbb E[\phi'(u)\phi'(v)]` (the NTK map),

in closed form where one exists (arc-cosine family: Cho & Saul 2009; erf: Williams 1997;
sin/cos, monomials, identity: Gaussian moment identities; exact GELU: derived here from orthant
moments, see :func:`_gelu_dual`) and otherwise by two-dimensional quadrature with a
correlation-aware (Cholesky) change of variables, :math:`u = \sqrt{k_{11}}\,z_1`,
:math:`v = \sqrt{k_{22}}\,(\rho z_1 + \sqrt{1-\rho^2} z_2)`, integrated over :math:`z_1, z_2`
with the trapezoidal rule on :math:`[-8.5, 8.5]`. For :math:`\phi` analytic in the strip
:math:`|\mathrm{Im}\,x| < \delta_\phi` (:math:`\pi/2` for tanh, :math:`\pi` for the logistic
family) the integrand in :math:`z` is analytic in :math:`|\mathrm{Im}\,z| < \delta =
\delta_\phi/\sqrt{k}` and the rule's error is :math:`\sim e^{-2\pi\delta/h}` (Trefethen &
Weideman 2014); the step :math:`h = \min(0.25, 2\pi\delta/45)` puts it below
:math:`10^{-16}`. This replaces the Gauss–Hermite rule first planned: at variance 1, 96
Hermite nodes leave 1e-9 on tanh' and at variance 13, 256 nodes leave 7e-7, while the
trapezoid reaches round-off with 69 and 300 nodes. Measured: :math:`\le 10^{-12}` relative
against 30-digit mpmath for tanh, sigmoid, silu and softplus and their derivatives at
variances up to 20 (``tests/test_activations.py``). :meth:`Activation.dual_quadrature` with
an explicit ``order`` runs plain Gauss–Hermite for cross-checks.

Closed-form activations also provide the *Gaussian derivative moments*
:math:`g_m(q) = \mathbb E[\phi^{(m)}(\sqrt q z)]`, from which the Mehler expansion

.. math:: \mathbb E[\phi(u)\phi(v)] = \sum_{m\ge0} \frac{g_m(q)^2}{m!}\,c^m
          \qquad (k_{11}=k_{22}=q,\ k_{12}=c)

gives the non-negative Taylor coefficients used by the cancellation-free spectrum route
(Daniely, Frostig & Singer 2016).

All closed forms are written once against a small math namespace, so the same code evaluates
in numpy (vectorised, float64) and in mpmath (any precision).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mpmath
import numpy as np
import scipy.special as sc
from numpy.typing import NDArray
from scipy.special import roots_hermitenorm

__all__ = [
    "ARB_OPS",
    "MPMATH_OPS",
    "NUMPY_OPS",
    "Activation",
    "abrelu",
    "available_activations",
    "cos",
    "erf",
    "gelu",
    "get_activation",
    "identity",
    "leaky_relu",
    "monomial",
    "relu",
    "sigmoid",
    "silu",
    "sin",
    "softplus",
    "tanh",
]


# --------------------------------------------------------------------------- math namespaces
class _NumpyOps:
    """Vectorised float64 math used by the closed forms."""

    pi = np.pi
    sqrt = staticmethod(np.sqrt)
    asin = staticmethod(lambda x: np.arcsin(np.clip(x, -1.0, 1.0)))
    acos = staticmethod(lambda x: np.arccos(np.clip(x, -1.0, 1.0)))
    exp = staticmethod(np.exp)
    sinh = staticmethod(np.sinh)
    cosh = staticmethod(np.cosh)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    atan2 = staticmethod(np.arctan2)
    pos = staticmethod(lambda x: np.maximum(x, 0.0))
    unit = staticmethod(lambda x: np.minimum(x, 1.0))

    @staticmethod
    def const(x: float) -> float:
        return float(x)

    @staticmethod
    def sin_minus_theta_cos(theta: Any) -> Any:
        r""":math:`\sin\theta - \theta\cos\theta` without cancellation (series below 0.5)."""
        theta = np.asarray(theta, dtype=np.float64)
        th2 = theta * theta
        series = np.zeros_like(theta)
        term = theta * th2  # theta^(2k+1), k = 1
        for k in range(1, 12):
            series += (-1) ** (k + 1) * (2 * k) / math.factorial(2 * k + 1) * term
            term = term * th2
        return np.where(theta < 0.5, series, np.sin(theta) - theta * np.cos(theta))


class _MpmathOps:
    """Scalar mpmath math (working precision = ``mpmath.mp.dps``)."""

    @property
    def pi(self) -> Any:
        return mpmath.pi

    sqrt = staticmethod(mpmath.sqrt)
    asin = staticmethod(lambda x: mpmath.asin(max(min(x, 1), -1)))
    acos = staticmethod(lambda x: mpmath.acos(max(min(x, 1), -1)))
    exp = staticmethod(mpmath.exp)
    sinh = staticmethod(mpmath.sinh)
    cosh = staticmethod(mpmath.cosh)
    sin = staticmethod(mpmath.sin)
    cos = staticmethod(mpmath.cos)
    atan2 = staticmethod(mpmath.atan2)
    pos = staticmethod(lambda x: max(x, 0))
    unit = staticmethod(lambda x: min(x, 1))

    @staticmethod
    def const(x: float) -> Any:
        return mpmath.mpf(x)

    @staticmethod
    def sin_minus_theta_cos(theta: Any) -> Any:
        # callers work with >= 20 guard digits, which absorbs the theta^2 cancellation
        return mpmath.sin(theta) - theta * mpmath.cos(theta)


class _ArbOps:
    """Scalar arb ball arithmetic from python-flint (precision = ``flint.ctx.dps``)."""

    @property
    def _flint(self) -> Any:
        import flint  # loaded on first use (python-flint is a core dependency)

        return flint

    @property
    def pi(self) -> Any:
        return self._flint.arb.pi()

    def sqrt(self, x: Any) -> Any:
        return self._flint.arb(x).sqrt()

    def asin(self, x: Any) -> Any:
        return self._flint.arb(x).asin()

    def acos(self, x: Any) -> Any:
        return self._flint.arb(x).acos()

    def exp(self, x: Any) -> Any:
        return self._flint.arb(x).exp()

    def sinh(self, x: Any) -> Any:
        return self._flint.arb(x).sinh()

    def cosh(self, x: Any) -> Any:
        return self._flint.arb(x).cosh()

    def sin(self, x: Any) -> Any:
        return self._flint.arb(x).sin()

    def cos(self, x: Any) -> Any:
        return self._flint.arb(x).cos()

    def atan2(self, y: Any, x: Any) -> Any:
        return self._flint.arb.atan2(self._flint.arb(y), self._flint.arb(x))

    def pos(self, x: Any) -> Any:
        x = self._flint.arb(x)
        if x > 0:
            return x
        upper = x.upper()
        if upper <= 0:
            return self._flint.arb(0)
        return self._flint.arb(mid=upper / 2, rad=upper / 2)  # the ball [0, upper]

    def unit(self, x: Any) -> Any:
        x = self._flint.arb(x)
        return self._flint.arb(1) if x > 1 else x

    def const(self, x: float) -> Any:
        return self._flint.arb(x)

    def sin_minus_theta_cos(self, theta: Any) -> Any:
        return theta.sin() - theta * theta.cos()


NUMPY_OPS = _NumpyOps()
MPMATH_OPS = _MpmathOps()
ARB_OPS: Any = _ArbOps()

DualFn = Callable[[Any, Any, Any, Any], Any]
MomentFn = Callable[[float, int], NDArray[np.float64]]  # (q, M) -> log|g_m|, m = 0..M


@dataclass(frozen=True)
class Activation:
    r"""A pointwise nonlinearity with its Gaussian expectations.

    Parameters
    ----------
    name
        Readable name, including parameters (``"abrelu(0.1, 1.0)"``).
    fn, derivative
        Vectorised numpy callables :math:`\phi` and :math:`\phi'`.
    closed_dual, closed_dual_derivative
        Optional closed forms ``f(k11, k12, k22, ops)`` of :math:`\mathbb E[\phi\phi]` and
        :math:`\mathbb E[\phi'\phi']`; ``ops`` is the math namespace (numpy or mpmath).
    log_moments
        Optional ``f(q, M)`` returning :math:`\log|g_m(q)|`, :math:`g_m(q) = \mathbb
        E[\phi^{(m)}(\sqrt q z)]`, :math:`m = 0..M` (``-inf`` where :math:`g_m = 0`), from closed
        forms; enables the power-series spectrum route. Logarithms, because :math:`g_m` grows
        like :math:`\sqrt{m!}` for some activations.
    quadrature_order
        Gauss–Hermite nodes per axis for activations without closed forms.
    singularity_distance
        Distance from the real axis of the nearest complex singularity of :math:`\phi`
        (``inf`` for entire functions); sets the quadrature rule and step. User callables get
        a conservative 1.0.
    mp_fn
        Optional :math:`\phi` of one mpmath number (any precision). Activations without closed
        forms that have it get their Gaussian derivative moments from the arbitrary-precision
        Hermite transform (:func:`fieldcurve.hermite.hermite_log_moments`), so the exact
        power-series spectrum route covers them.
    zero_class
        ``(parity, start)``: the moments :math:`g_m` of that parity vanish identically from
        ``start`` on (``(0, 0)`` odd, ``(1, 1)`` even, ``(0, 2)`` constant + odd, ``(1, 3)``
        linear + even), or ``None``.
    """

    name: str
    fn: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    derivative: Callable[[NDArray[np.float64]], NDArray[np.float64]]
    closed_dual: DualFn | None = field(default=None, repr=False)
    closed_dual_derivative: DualFn | None = field(default=None, repr=False)
    log_moments: MomentFn | None = field(default=None, repr=False)
    quadrature_order: int = 96
    singularity_distance: float = 1.0
    scale_invariant_degree: int | None = field(default=None, repr=False)
    abrelu_params: tuple[float, float] | None = field(default=None, repr=False)
    mp_fn: Callable[[Any], Any] | None = field(default=None, repr=False)
    zero_class: tuple[int, int] | None = field(default=None, repr=False)
    verify_moments: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.log_moments is None and self.mp_fn is not None:
            object.__setattr__(self, "log_moments", _hermite_moment_fn(self))

    @property
    def parity(self) -> str | None:
        r"""``"odd"`` or ``"even"`` if :math:`\phi` is, else ``None`` (from :attr:`zero_class`)."""
        return {(0, 0): "odd", (1, 1): "even"}.get(self.zero_class) if self.zero_class else None

    def __call__(self, x: Any) -> Any:
        return self.fn(np.asarray(x, dtype=np.float64))

    @property
    def has_closed_form(self) -> bool:
        """True when both Gaussian expectations are available in closed form."""
        return self.closed_dual is not None and self.closed_dual_derivative is not None

    def dual(self, k11: Any, k12: Any, k22: Any) -> NDArray[np.float64]:
        r""":math:`\mathbb E[\phi(u)\phi(v)]` for jointly Gaussian (u, v).

        Covariance :math:`[[k_{11},k_{12}],[k_{12},k_{22}]]` (arrays broadcast).
        """
        if k11 is k12 and k12 is k22 and self.closed_dual is None:
            return _on_compressed(k11, lambda k: self.dual(k, k.copy(), k.copy()))
        k11, k12, k22 = np.broadcast_arrays(*(np.asarray(k, dtype=np.float64) for k in (k11, k12, k22)))
        if self.closed_dual is not None:
            return np.asarray(self.closed_dual(k11, k12, k22, NUMPY_OPS), dtype=np.float64)
        table = _sphere_table(self, k11, k22, k12.size, derivative=False)
        if table is not None:
            return table(k12)
        return _gaussian_2d(self.fn, k11, k12, k22, self.quadrature_order, self.singularity_distance)

    def dual_derivative(self, k11: Any, k12: Any, k22: Any) -> NDArray[np.float64]:
        r""":math:`\mathbb E[\phi'(u)\phi'(v)]`, the derivative (NTK) map."""
        if k11 is k12 and k12 is k22 and self.closed_dual_derivative is None:
            return _on_compressed(k11, lambda k: self.dual_derivative(k, k.copy(), k.copy()))
        k11, k12, k22 = np.broadcast_arrays(*(np.asarray(k, dtype=np.float64) for k in (k11, k12, k22)))
        if self.closed_dual_derivative is not None:
            return np.asarray(self.closed_dual_derivative(k11, k12, k22, NUMPY_OPS), dtype=np.float64)
        table = _sphere_table(self, k11, k22, k12.size, derivative=True)
        if table is not None:
            return table(k12)
        return _gaussian_2d(self.derivative, k11, k12, k22, self.quadrature_order, self.singularity_distance)

    def dual_quadrature(
        self, k11: Any, k12: Any, k22: Any, *, derivative: bool = False, order: int | None = None
    ) -> NDArray[np.float64]:
        """The quadrature path, available for every activation (used to cross-check).

        With ``order`` given, plain Gauss–Hermite with that many nodes per axis; otherwise the
        rule chosen as in :meth:`dual`.
        """
        k11, k12, k22 = np.broadcast_arrays(*(np.asarray(k, dtype=np.float64) for k in (k11, k12, k22)))
        f = self.derivative if derivative else self.fn
        if order is not None:
            x, w = _hermite_rule(order)
            return _rule_2d(f, k11, k12, k22, x, w)
        return _gaussian_2d(f, k11, k12, k22, self.quadrature_order, self.singularity_distance)


def _on_compressed(k: Any, fn: Callable[[NDArray], NDArray]) -> NDArray[np.float64]:
    """``fn`` of one variance per input: a broadcast view (zero stride) is evaluated once per
    distinct row or column and broadcast back (single-input duals of a Gram tile)."""
    k = np.asarray(k, dtype=np.float64)
    if k.size > 1 and np.all(k == k.flat[0]):  # one variance for all (inputs on the sphere)
        return np.full(k.shape, float(np.asarray(fn(k.flat[:1].copy()), dtype=np.float64)[0]))
    if k.ndim == 2 and k.size and (k.strides[0] == 0 or k.strides[1] == 0):
        axis = 0 if k.strides[0] == 0 else 1
        line = k[:1, :] if axis == 0 else k[:, :1]
        return np.broadcast_to(np.asarray(fn(np.ascontiguousarray(line)), dtype=np.float64), k.shape)
    return np.asarray(fn(k.copy()), dtype=np.float64)


# --------------------------------------------------------------------------- quadrature path
_GH_CACHE: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}


def _hermite_rule(order: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Probabilists' Gauss–Hermite nodes and weights normalised to sum to 1."""
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"quadrature order must be a positive integer, got {order!r}")
    if order not in _GH_CACHE:
        x, w = roots_hermitenorm(order)  # stable for large orders (numpy's hermegauss overflows)
        _GH_CACHE[order] = (x, w / w.sum())
    return _GH_CACHE[order]


def _trapezoid_rule(h: float, half_width: float = 8.5) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Trapezoidal nodes on [-L, L] with Gaussian weights normalised to sum to 1."""
    n = math.ceil(half_width / h)
    x = np.arange(-n, n + 1) * (half_width / n)
    w = np.exp(-x * x / 2)
    return x, w / w.sum()


_MAX_RULE_NODES = 4001  # per axis of the 2-D rule: a variance up to ~ 1e4 (tanh) / 4e4 (logistic)
_MAX_RULE_EVALUATIONS = 2e8  # per call (a few seconds): checked before the work starts


def _gaussian_2d(
    f: Callable, k11: NDArray, k12: NDArray, k22: NDArray, order: int, distance: float
) -> NDArray[np.float64]:
    """Trapezoidal rule with the step set by the strip of analyticity (module docstring)."""
    del order  # Gauss–Hermite order: used only by Activation.dual_quadrature(order=...)
    if np.any(k11 < 0) or np.any(k22 < 0):
        raise ValueError("variances k11 and k22 must be non-negative")
    top = float(max(np.max(k11, initial=0.0), np.max(k22, initial=0.0), 1e-300))
    delta = distance / math.sqrt(top)
    h = min(0.25, 2 * math.pi * delta / 45)
    if 2 * math.ceil(8.5 / h) + 1 > _MAX_RULE_NODES:
        raise ValueError(
            f"pre-activation variance {top:.3g} is too large for the 2-D quadrature of this activation"
            f" (it would need {2 * math.ceil(8.5 / h) + 1} nodes per axis, limit {_MAX_RULE_NODES});"
            " use smaller weight/bias variances or a closed-form activation (relu, erf, gelu)"
        )
    nodes = 2 * math.ceil(8.5 / h) + 1
    if k12.size * nodes * nodes > _MAX_RULE_EVALUATIONS:
        raise ValueError(
            f"the 2-D quadrature of this activation at pre-activation variance {top:.3g} would take"
            f" {k12.size * nodes * nodes:.2g} evaluations (limit {_MAX_RULE_EVALUATIONS:.0g}); use"
            " smaller weight/bias variances, fewer inputs, or a closed-form activation (relu, erf, gelu)"
        )
    x, w = _trapezoid_rule(h)
    return _rule_2d(f, k11, k12, k22, x, w)


# --------------------------------------------------------------------------- sphere tables
_TABLE_MIN_ENTRIES = 2048  # below this the direct 2-D rule is cheaper than building a table
_TABLE_MAX_ORDER = 8000
_TABLE_CACHE: dict[tuple, Callable[[NDArray], NDArray] | None] = {}


def _graded_nodes(q: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Composite 16-point Gauss–Legendre nodes/weights on [-12.5, 12.5] for E[g(z)], z ~ N(0,1).

    Panels of width 0.05 away from 0 (they resolve Hermite functions up to order ~ 8000) and
    geometrically graded towards 0 down to 0.05/sqrt(q), where phi(sqrt(q) z) turns over.
    """
    x, w = np.polynomial.legendre.leggauss(16)
    edges = [0.0]
    width = min(0.05, 0.05 / math.sqrt(q))
    while edges[-1] + width < 0.5:
        edges.append(edges[-1] + width)
        width = min(0.05, 2 * width)
    edges.extend(np.arange(edges[-1] + 0.05, 12.5 + 1e-9, 0.05).tolist())
    edges_arr = np.array(edges)
    a, b = edges_arr[:-1], edges_arr[1:]
    nodes = (((b - a) / 2)[:, None] * x[None, :] + ((a + b) / 2)[:, None]).ravel()
    weights = (((b - a) / 2)[:, None] * w[None, :]).ravel()
    nodes = np.concatenate([-nodes[::-1], nodes])
    weights = np.concatenate([weights[::-1], weights]) * np.exp(-nodes * nodes / 2) / math.sqrt(2 * math.pi)
    return nodes, weights


def _mehler_squares(fn: Callable, q: float) -> NDArray[np.float64] | None:
    r"""Squares of the normalised Hermite coefficients :math:`c_m = \mathbb E[f(\sqrt q z)He_m(z)]/
    \sqrt{m!}` until Parseval's remainder :math:`\mathbb E f^2 - \sum c_m^2` is at round-off
    (1e-14 of the total) and the last terms below 1e-18 of it (None if not reached by order
    8000). Double precision is enough here: the table needs absolute accuracy, and
    :math:`|\sum_m c_m^2\rho^m - f(\rho)|` is at most that remainder."""
    z, w = _graded_nodes(q)
    with np.errstate(all="ignore"):
        vals = np.asarray(fn(math.sqrt(q) * z), dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        return None
    vw = vals * w
    total = float(np.dot(vals, vw))
    out = []
    prev, cur = (
        np.zeros_like(z),
        np.ones_like(z),
    )  # normalised He_m: h_{m+1} = (z h_m - sqrt(m) h_{m-1})/sqrt(m+1)
    acc = 0.0
    for m in range(_TABLE_MAX_ORDER + 1):
        c = float(np.dot(vw, cur))
        out.append(c * c)
        acc += c * c
        # Parseval's remainder hits the round-off of the sums near 1e-15; stop once it is at that
        # floor and the last two coefficients (both parities) are negligible
        if m >= 8 and total - acc <= 1e-14 * total and max(out[-1], out[-2]) <= 1e-18 * total:
            return np.array(out)
        prev, cur = cur, (z * cur - math.sqrt(m) * prev) / math.sqrt(m + 1)
    return None


def _sphere_table(
    act: Activation, k11: NDArray, k22: NDArray, size: int, *, derivative: bool
) -> Callable[[NDArray], NDArray] | None:
    r"""Fast exact dual for equal variances (every input on the sphere): a table in the angle.

    For :math:`k_{11} = k_{22} = q` the dual is :math:`F(\rho) = \sum_m c_m^2\rho^m`
    (Mehler, :math:`\rho = k_{12}/q`, :func:`_mehler_squares`), tabulated at 4096·2^j angles
    :math:`\theta_k` (:math:`\rho = \cos\theta`; in the angle even kink-like activations at
    large variance are smooth) and interpolated by cubic Lagrange polynomials (grid mirrored at
    0 and :math:`\pi`, where :math:`F(\cos\theta)` is even). The interpolation error is measured
    at the midpoints against the series; the grid is refined until it is below 1e-13 of
    :math:`F(1)` (else None: the 2-D rule is used). About 25 flops per entry instead of a
    2-D quadrature: the closed forms' speed for every activation.
    """
    if k11.size == 0:
        return None
    q = float(k11.flat[0])
    if not (math.isfinite(q) and q > 0):
        return None
    q = float(f"{q:.13e}")  # one table for variances equal to 1e-13 (rounding of |x|^2 / d)
    key = (act.name, act.fn, act.derivative, q, derivative)
    h = min(0.25, 2 * math.pi * act.singularity_distance / math.sqrt(q) / 45)
    direct_cost = size * (2 * math.ceil(8.5 / h) + 1) ** 2  # evaluations of the 2-D rule
    if size < _TABLE_MIN_ENTRIES and direct_cost < 2e7 and key not in _TABLE_CACHE:
        return None
    if np.max(np.abs(k11 - q)) > 1e-13 * q or np.max(np.abs(k22 - q)) > 1e-13 * q:
        return None
    if key in _TABLE_CACHE:
        table = _TABLE_CACHE[key]
    else:
        table = _build_table(act.derivative if derivative else act.fn, q)
        if len(_TABLE_CACHE) > 64:
            _TABLE_CACHE.clear()
        _TABLE_CACHE[key] = table
    if table is None:
        return None
    return lambda k12: table(np.asarray(k12, dtype=np.float64) / q)


def _series_at(squares: NDArray[np.float64], rho: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.full_like(rho, squares[-1])
    for c2 in squares[-2::-1]:
        out = out * rho + c2
    return out


def _build_table(fn: Callable, q: float) -> Callable[[NDArray], NDArray] | None:
    squares = _mehler_squares(fn, q)
    if squares is None:
        return None
    scale = float(np.sum(squares))
    for n in (4096, 8192, 16384, 32768):
        h = math.pi / n
        theta = np.arange(-1, n + 2) * h  # one mirrored node beyond each end
        values = _series_at(squares, np.cos(theta))
        mid = (np.arange(n) + 0.5) * h
        err = np.max(np.abs(_interpolate(values, h, n, mid) - _series_at(squares, np.cos(mid))))
        if err <= 1e-13 * max(scale, 1e-300):
            return _PiecewiseCubic(values, h, n)
    return None


class _PiecewiseCubic:
    """The cubic Lagrange interpolant of :func:`_interpolate` as per-interval polynomial
    coefficients in t (4 gathers and 6 flops per entry), evaluated at arccos(rho)."""

    def __init__(self, values: NDArray, h: float, n: int) -> None:
        f0, f1, f2, f3 = values[:n], values[1 : n + 1], values[2 : n + 2], values[3 : n + 3]
        # L(t) through (-1, f0), (0, f1), (1, f2), (2, f3)
        self.c0 = f1.copy()
        self.c1 = -f0 / 3 - f1 / 2 + f2 - f3 / 6
        self.c2 = f0 / 2 - f1 + f2 / 2
        self.c3 = -f0 / 6 + f1 / 2 - f2 / 2 + f3 / 6
        self.inv_h, self.n = 1.0 / h, n

    def __call__(self, rho: NDArray) -> NDArray[np.float64]:
        x = np.arccos(np.clip(rho, -1.0, 1.0))
        x *= self.inv_h
        k = np.minimum(x.astype(np.int64), self.n - 1)
        t = x - k
        out = self.c3[k] * t
        out += self.c2[k]
        out *= t
        out += self.c1[k]
        out *= t
        out += self.c0[k]
        return out


def _interpolate(values: NDArray, h: float, n: int, theta: NDArray) -> NDArray[np.float64]:
    """Cubic Lagrange interpolation on the padded uniform grid ``values[k + 1] = F(k h)``."""
    x = theta / h
    k = np.clip(np.floor(x).astype(np.int64), 0, n - 1)
    t = x - k
    f0, f1, f2, f3 = values[k], values[k + 1], values[k + 2], values[k + 3]
    tm1, tm2, tp1 = t - 1, t - 2, t + 1
    return (
        -t * tm1 * tm2 / 6 * f0 + tp1 * tm1 * tm2 / 2 * f1 - tp1 * t * tm2 / 2 * f2 + tp1 * t * tm1 / 6 * f3
    )


def _rule_2d(
    f: Callable, k11: NDArray, k12: NDArray, k22: NDArray, x: NDArray, w: NDArray
) -> NDArray[np.float64]:
    r"""Product-rule estimate of :math:`\mathbb E[f(u)f(v)]` on standard-normal nodes ``x``.

    Change of variables :math:`u = \sqrt{k_{11}} z_1`, :math:`v = \sqrt{k_{22}}(\rho z_1 +
    \sqrt{1-\rho^2} z_2)` with independent standard normal :math:`z_1, z_2`; the cost is
    ``len(x)**2`` evaluations per entry, in chunks.
    """
    order = len(x)
    shape = k12.shape
    a = np.sqrt(k11.ravel())[:, None, None]
    b = np.sqrt(k22.ravel())[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where((a * b).ravel() > 0, k12.ravel() / (a * b).ravel(), 0.0)
    rho = np.clip(rho, -1.0, 1.0)[:, None, None]
    out = np.empty(k12.size)
    chunk = max(1, 2_000_000 // (order * order))
    z1 = x[None, :, None]
    z2 = x[None, None, :]
    for s in range(0, k12.size, chunk):
        sl = slice(s, s + chunk)
        u = a[sl] * z1
        v = b[sl] * (rho[sl] * z1 + np.sqrt(1.0 - rho[sl] ** 2) * z2)
        vals = f(u) * f(v)
        out[sl] = np.einsum("nij,i,j->n", vals, w, w)
    return out.reshape(shape)


# --------------------------------------------------------------------------- closed forms
def _log_abs_hermite_e_at_zero(j: int) -> float:
    """log|He_j(0)|: -inf for odd j, log((j-1)!!) = lgamma(j+1) - (j/2) log 2 - lgamma(j/2+1)."""
    if j % 2:
        return -math.inf
    return math.lgamma(j + 1) - 0.5 * j * math.log(2) - math.lgamma(j // 2 + 1)


def _abrelu_dual(a: float, b: float) -> tuple[DualFn, DualFn]:
    r"""Closed forms for :math:`\phi(x) = a\min(x,0) + b\max(x,0)` (Cho & Saul 2009).

    With :math:`\theta = \arccos(k_{12}/\sqrt{k_{11}k_{22}})`:

    .. math::
        \mathbb E[\phi\phi] = \frac{(a-b)^2}{2\pi}\sqrt{k_{11}k_{22}-k_{12}^2}
            + \Bigl[\frac{a^2+b^2}{2} - \frac{(a-b)^2\theta}{2\pi}\Bigr]k_{12},\qquad
        \mathbb E[\phi'\phi'] = \frac{a^2+b^2}{2} - \frac{(a-b)^2\theta}{2\pi},

    evaluated as in :func:`abrelu_gap_step` (angle from atan2 of the two gaps, the determinant
    term as :math:`s(\sin\theta - \theta\cos\theta)`), so that the round-off of
    :math:`\theta` cancels near :math:`\theta = 0` and :math:`\pi`. A zero variance makes
    :math:`u` independent of :math:`v` (:math:`\theta = \pi/2`).
    """

    def _step(k11: Any, k12: Any, k22: Any, ops: Any) -> tuple[Any, ...]:
        s = ops.sqrt(k11 * k22)
        gap, cogap = ops.pos(s - k12), ops.pos(s + k12)
        if ops is NUMPY_OPS:
            gap, cogap = _exact_gaps(k11, k12, k22, s, gap, cogap)
        return abrelu_gap_step(a, b, k11, k12, k22, gap, cogap, ops)

    def dual(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
        return _step(k11, k12, k22, ops)[1]

    def dual_derivative(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
        return _step(k11, k12, k22, ops)[5]

    return dual, dual_derivative


def _two_product(x: NDArray, y: NDArray) -> tuple[NDArray, NDArray]:
    """x*y = p + e exactly (Dekker 1971, Veltkamp splitting; |x|, |y| below 1e290)."""
    p = x * y
    cx, cy = 134217729.0 * x, 134217729.0 * y
    xh, yh = cx - (cx - x), cy - (cy - y)
    xl, yl = x - xh, y - yh
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def _exact_gaps(k11: NDArray, k12: NDArray, k22: NDArray, s: NDArray, gap: NDArray, cogap: NDArray) -> tuple:
    r""":math:`\sqrt{k_{11}k_{22}} \mp k_{12}` to a few ulp of itself from the stored covariances.

    The smaller gap is :math:`(k_{11}k_{22} - k_{12}^2)/(s \pm k_{12})` with the determinant from
    error-free products, so nearly (anti)parallel and exactly collinear inputs get the angle the
    stored numbers define (the plain difference leaves an angle error of order
    :math:`\sqrt\epsilon`, e.g. 2.8e-9 instead of 1.1e-9 in the ReLU derivative dual).
    """
    with np.errstate(all="ignore"):
        p1, e1 = _two_product(k11, k22)
        p2, e2 = _two_product(k12, k12)
        det = np.maximum((p1 - p2) + (e1 - e2), 0.0)
        small_gap = det / (s + np.abs(k12))
    ok = np.isfinite(small_gap) & (np.abs(k11) < 1e290) & (np.abs(k22) < 1e290) & (np.abs(k12) < 1e290)
    near = ok & (k12 > 0.5 * s)
    anti = ok & (k12 < -0.5 * s)
    return np.where(near, small_gap, gap), np.where(anti, small_gap, cogap)


def _safe_ratio(num: Any, den: Any, ops: Any) -> Any:
    """num/den with 0/0 -> 1 (a zero-variance input is perfectly correlated with itself)."""
    if ops is NUMPY_OPS:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
        return r
    return num / den if den != 0 else mpmath.mpf(1)


def abrelu_gap_step(
    a: float, b: float, k11: Any, k12: Any, k22: Any, gap: Any, cogap: Any, ops: Any
) -> tuple[Any, Any, Any, Any, Any, Any]:
    r"""One abrelu layer on covariances carrying :math:`g_\pm = \sqrt{k_{11}k_{22}} \mp k_{12}`.

    The angle is :math:`\theta = 2\,\mathrm{atan2}(\sqrt{g_-}, \sqrt{g_+})`, accurate for nearly
    parallel and nearly antiparallel inputs, where :math:`\arccos(k_{12}/\sqrt{k_{11}k_{22}})`
    loses half the digits. With :math:`A = (a^2+b^2)/2`, :math:`B = (a-b)^2/2\pi`,
    :math:`s = \sqrt{k_{11}k_{22}}`:

    .. math::
        k_{12}' = A k_{12} + B(s\sin\theta - \theta k_{12})
                = s[-ab\cos\delta + B(\sin\delta - \delta\cos\delta)]\ (\delta = \pi-\theta),\quad
        g_-' = A g_- - B s(\sin\theta - \theta\cos\theta),\quad
        g_+' = A g_+ + B(s\sin\theta - \theta k_{12}),\quad
        \mathbb E[\phi'\phi'] = A - B\theta;

    the two terms of :math:`g_-'` are of orders :math:`\theta^2` and :math:`\theta^3`, and
    those of :math:`g_+'` are both non-negative near :math:`\theta = \pi`, so nothing cancels.
    Returns ``(k11', k12', k22', g_-', g_+', E[phi' phi'])``.
    """
    # coefficients in the working precision, so that A - B pi = ab holds to that precision and
    # the two branches below join continuously at pi/2 (a double-rounded ab breaks this)
    a, b = ops.const(a), ops.const(b)
    big_a = (a * a + b * b) / 2
    big_b = (a - b) ** 2 / (2 * ops.pi)
    s = ops.sqrt(k11 * k22)
    theta = 2 * ops.atan2(ops.sqrt(ops.pos(gap)), ops.sqrt(ops.pos(cogap)))
    # a zero variance: that input is a constant, independent of the other (theta = pi/2)
    if ops is NUMPY_OPS:
        theta = np.where(s > 0, theta, np.pi / 2)
    elif not s > 0:
        theta = ops.pi / 2
    correction = big_b * (s * ops.sin(theta) - theta * k12)
    # past pi/2, k12' = s[-ab cos(delta) + B (sin(delta) - delta cos(delta))], delta = pi - theta,
    # which keeps full relative accuracy where the ReLU kernel vanishes (theta -> pi)
    delta = ops.pi - theta
    far = s * (-a * b * ops.cos(delta) + big_b * ops.sin_minus_theta_cos(delta))
    near = big_a * k12 + correction
    # E[phi' phi'] = A - B theta = ab + B delta (the second form past pi/2)
    deriv_near, deriv_far = big_a - big_b * theta, a * b + big_b * delta
    if ops is NUMPY_OPS:
        new12 = np.where(theta <= np.pi / 2, near, far)
        deriv = np.where(theta <= np.pi / 2, deriv_near, deriv_far)
    else:
        mid = theta.mid() if hasattr(theta, "mid") else theta
        first = float(mid) <= math.pi / 2
        new12, deriv = (near, deriv_near) if first else (far, deriv_far)
    # past pi/2 the new gap in delta = pi - theta: s[(a+b)^2/2 - 2ab sin^2(delta/2) - B(sin d - d cos d)],
    # whose terms do not cancel when ab < 0 (|x|: antiparallel inputs become nearly parallel)
    half = ops.sin(delta / 2)
    gap_far = s * ((a + b) ** 2 / 2 - 2 * a * b * half * half - big_b * ops.sin_minus_theta_cos(delta))
    gap_near = big_a * gap - big_b * s * ops.sin_minus_theta_cos(theta)
    if ops is NUMPY_OPS:
        new_gap = ops.pos(np.where(theta <= np.pi / 2, gap_near, gap_far))
    else:
        new_gap = ops.pos(gap_near if first else gap_far)
    new_cogap = big_a * cogap + correction
    return big_a * k11, new12, big_a * k22, new_gap, new_cogap, deriv


def _abrelu_moments(a: float, b: float) -> MomentFn:
    r""":math:`g_0 = (b-a)\sqrt{q/2\pi}`, :math:`g_1 = (a+b)/2`,
    :math:`g_m = (b-a)\,q^{-(m-1)/2} He_{m-2}(0)/\sqrt{2\pi}` for :math:`m\ge2`
    (since :math:`\phi'' = (b-a)\delta` and :math:`\mathbb E[\delta^{(j)}(\sqrt q z)] =
    q^{-(j+1)/2}He_j(0)/\sqrt{2\pi}`). Returns :math:`\log|g_m|`."""

    def log_moments(q: float, M: int) -> NDArray[np.float64]:
        out = np.full(M + 1, -np.inf)
        jump = abs(b - a)
        log_jump = math.log(jump) if jump > 0 else -math.inf
        out[0] = log_jump + 0.5 * math.log(q / (2 * math.pi)) if q > 0 else -math.inf
        if M >= 1:
            out[1] = math.log(abs(a + b) / 2) if a + b != 0 else -math.inf
        for m in range(2, M + 1):
            out[m] = (
                log_jump
                + _log_abs_hermite_e_at_zero(m - 2)
                - 0.5 * (m - 1) * math.log(q)
                - 0.5 * math.log(2 * math.pi)
            )
        return out

    return log_moments


def _erf_dual(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
    r"""Williams (1997):

    .. math:: \mathbb E[\mathrm{erf}\,u\,\mathrm{erf}\,v]
              = \frac2\pi\arcsin\frac{2k_{12}}{\sqrt{(1+2k_{11})(1+2k_{22})}}
    """
    return (2 / ops.pi) * ops.asin(2 * k12 / ops.sqrt((1 + 2 * k11) * (1 + 2 * k22)))


def _erf_dual_derivative(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
    r"""Derivative dual of erf:

    .. math:: \mathbb E[\mathrm{erf}'u\,\mathrm{erf}'v]
              = \frac{4}{\pi}\bigl[(1+2k_{11})(1+2k_{22}) - 4k_{12}^2\bigr]^{-1/2}
    """
    return (4 / ops.pi) / ops.sqrt((1 + 2 * k11) * (1 + 2 * k22) - 4 * k12 * k12)


def _erf_moments(q: float, M: int) -> NDArray[np.float64]:
    r""":math:`\mathbb E[\mathrm{erf}(\sqrt q z + \mu)] = \mathrm{erf}(\mu/\sqrt{1+2q})`, so
    :math:`g_m = (1+2q)^{-m/2}\,\mathrm{erf}^{(m)}(0)` with
    :math:`|\mathrm{erf}^{(m)}(0)| = \frac{2}{\sqrt\pi}\,\frac{k!}{(k/2)!}` for even
    :math:`k = m-1`, zero otherwise. Returns :math:`\log|g_m|`."""
    out = np.full(M + 1, -np.inf)
    for m in range(1, M + 1):
        k = m - 1
        if k % 2 == 0:
            out[m] = (
                math.log(2 / math.sqrt(math.pi))
                + math.lgamma(k + 1)
                - math.lgamma(k // 2 + 1)
                - 0.5 * m * math.log1p(2 * q)
            )
    return out


def _gelu_determinant(k11: Any, k12: Any, k22: Any, ops: Any) -> tuple[Any, Any]:
    r""":math:`D_0 = k_{11}k_{22} - k_{12}^2 \ge 0` and :math:`\det(\Sigma + I) = D_0 + k_{11} + k_{22} + 1`.

    :math:`D_0` as :math:`(s - k_{12})(s + k_{12})`, :math:`s = \sqrt{k_{11}k_{22}}`, exactly zero for
    identical inputs (``k12 == k11 == k22``), so the diagonal keeps full accuracy at any variance.
    """
    s = ops.sqrt(k11 * k22)
    d0 = ops.pos(s - k12) * (s + k12)
    if ops is NUMPY_OPS:
        d0 = np.where((k12 == k11) & (k12 == k22), 0.0, d0)
    elif k12 == k11 and k12 == k22:
        d0 = 0 * k12
    return d0, d0 + k11 + k22 + 1


def _gelu_dual(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
    r"""Exact-GELU dual :math:`\mathbb E[u\Phi(u)\,v\Phi(v)]`, derived from orthant moments.

    Write :math:`\Phi(u) = P(\xi < u)` with an independent standard normal :math:`\xi` (and
    :math:`\eta` for :math:`v`); then with :math:`W = (u-\xi, v-\eta) \sim \mathcal N(0, S)`,
    :math:`S = \Sigma+I`, :math:`(u,v) = BW + e`, :math:`B = \Sigma S^{-1}`,
    :math:`\operatorname{Cov}e = \Sigma - \Sigma S^{-1}\Sigma = B`, so

    .. math:: \mathbb E[\phi(u)\phi(v)] = \sum_{ij}B_{1i}B_{2j}M_{ij} + B_{12}\,P

    with the orthant moments of :math:`W`: :math:`P = \tfrac14 + \tfrac{1}{2\pi}
    \operatorname{atan2}(k_{12}, \sqrt{\det S})`, :math:`M_{11} = S_{11}P + k_{12}\sqrt{\det S}/(2\pi
    S_{22})`, :math:`M_{22}` likewise, :math:`M_{12} = k_{12}P + \sqrt{\det S}/2\pi`, and
    :math:`B_{11} = (D_0 + k_{11})/\det S`, :math:`B_{22} = (D_0 + k_{22})/\det S`,
    :math:`B_{12} = B_{21} = k_{12}/\det S` (:func:`_gelu_determinant`). Written this way nothing
    cancels: exact on the diagonal at any variance (:math:`q/2 + O(\sqrt q)` as
    :math:`q\to\infty`; measured 1e-15 relative at :math:`q = 10^{18}`).
    """
    d0, det = _gelu_determinant(k11, k12, k22, ops)
    root = ops.sqrt(det)
    s11, s22 = k11 + 1, k22 + 1
    p = ops.const(0.25) + ops.atan2(k12, root) / (2 * ops.pi)
    m11 = s11 * p + k12 * root / (2 * ops.pi * s22)
    m22 = s22 * p + k12 * root / (2 * ops.pi * s11)
    m12 = k12 * p + root / (2 * ops.pi)
    b11, b22, b12 = (d0 + k11) / det, (d0 + k22) / det, k12 / det
    quad = b11 * b12 * m11 + (b11 * b22 + b12 * b12) * m12 + b12 * b22 * m22
    return quad + b12 * p


def _gelu_dual_derivative(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
    r"""Exact-GELU derivative dual :math:`\mathbb E[\phi'(u)\phi'(v)]`,
    :math:`\phi'(x) = \Phi(x) + x\varphi(x)`:

    .. math:: \mathbb E[\phi'\phi'] = P + \frac{k_{12}}{2\pi\sqrt{\det S}}
              \Bigl(\frac1{1+k_{11}} + \frac1{1+k_{22}} + \frac1{\det S}\Bigr),

    :math:`S = \Sigma + I`, :math:`P` the orthant probability of :func:`_gelu_dual`. Four terms:
    :math:`\mathbb E[\Phi\Phi] = P`; a factor :math:`v\varphi(v)` tilts the Gaussian, giving
    :math:`\mathbb E[\Phi(u)v\varphi(v)] = k_{12}/(2\pi(1+k_{22})\sqrt{\det S})` (and the mirror
    term); :math:`\mathbb E[u\varphi(u)v\varphi(v)] = (\Sigma S^{-1})_{12}/(2\pi\sqrt{\det S})`.
    """
    _, det = _gelu_determinant(k11, k12, k22, ops)
    root = ops.sqrt(det)
    p = ops.const(0.25) + ops.atan2(k12, root) / (2 * ops.pi)
    return p + k12 / (2 * ops.pi * root) * (1 / (1 + k11) + 1 / (1 + k22) + 1 / det)


def _gelu_moments(q: float, M: int) -> NDArray[np.float64]:
    r"""Exact GELU :math:`\phi(x) = x\Phi(x)`: with :math:`s = \sqrt{1+q}`,
    :math:`G(\mu) = \mathbb E[\phi(\mu+\sqrt q z)] = \mu\Phi(\mu/s) + (q/s)\varphi(\mu/s)`, so
    :math:`g_m = s^{1-m}\bigl[m\,\Phi^{(m-1)}(0) + \tfrac{q}{1+q}\varphi^{(m)}(0)\bigr]`:
    :math:`g_0 = q\varphi(0)/s`, :math:`g_1 = 1/2`, :math:`g_m = 0` for odd :math:`m\ge3` and
    :math:`|g_m| = s^{1-m}(m-3)!!\,\varphi(0)\,(m+q)/(1+q)` for even :math:`m\ge2`.
    Returns :math:`\log|g_m|`."""
    log_phi0 = -0.5 * math.log(2 * math.pi)
    log_s = 0.5 * math.log1p(q)
    out = np.full(M + 1, -np.inf)
    out[0] = math.log(q) + log_phi0 - log_s if q > 0 else -math.inf
    if M >= 1:
        out[1] = math.log(0.5)
    for m in range(2, M + 1, 2):
        out[m] = (
            (1 - m) * log_s + _log_abs_hermite_e_at_zero(m - 2) + log_phi0 + math.log(m + q) - math.log1p(q)
        )
    return out


def _sin_dual(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
    r""":math:`\mathbb E[\sin u\sin v] = e^{-(k_{11}+k_{22})/2}\sinh k_{12}`."""
    return ops.exp(-(k11 + k22) / 2) * ops.sinh(k12)


def _cos_dual(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
    r""":math:`\mathbb E[\cos u\cos v] = e^{-(k_{11}+k_{22})/2}\cosh k_{12}`."""
    return ops.exp(-(k11 + k22) / 2) * ops.cosh(k12)


def _trig_moments(phase: int) -> MomentFn:
    r""":math:`\mathbb E[\sin(\sqrt q z+\mu)] = e^{-q/2}\sin\mu`: :math:`g_m = e^{-q/2}\sin^{(m)}(0)`
    (``phase`` 0 for sin, 1 for cos). Returns :math:`\log|g_m|`."""

    def log_moments(q: float, M: int) -> NDArray[np.float64]:
        return np.array([-q / 2 if (m + phase) % 2 == 1 else -np.inf for m in range(M + 1)])

    return log_moments


def _monomial_dual(k: int) -> DualFn:
    r""":math:`\mathbb E[u^kv^k] = \sum_j \binom kj^2 j!\,((k-j-1)!!)^2\,k_{12}^j (k_{11}k_{22})^{(k-j)/2}`
    over :math:`k-j` even (Isserlis/Wick: ``j`` cross pairings)."""
    terms = []
    for j in range(k + 1):
        if (k - j) % 2 == 0:
            r = k - j
            df = float(sc.factorial2(r - 1, exact=True)) if r > 0 else 1.0
            terms.append((j, math.comb(k, j) ** 2 * math.factorial(j) * df * df, r // 2))

    def dual(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
        total = 0 * k12
        for j, c, h in terms:
            total = total + c * k12**j * (k11 * k22) ** h
        return total

    return dual


def _monomial_moments(k: int) -> MomentFn:
    r""":math:`g_m = \frac{k!}{(k-m)!}\,q^{(k-m)/2}(k-m-1)!!` for :math:`k-m` even :math:`\ge 0`.
    Returns :math:`\log|g_m|`."""

    def log_moments(q: float, M: int) -> NDArray[np.float64]:
        out = np.full(M + 1, -np.inf)
        for m in range(min(k, M) + 1):
            r = k - m
            if r % 2 == 0 and (q > 0 or r == 0):
                out[m] = (
                    math.log(math.perm(k, m))
                    + (0.5 * r * math.log(q) if r else 0.0)
                    + _log_abs_hermite_e_at_zero(r)
                )
        return out

    return log_moments


_SERIES_MOMENT_LIMIT = 4000  # Hermite-transform orders per layer (~2 s); beyond, other routes
_HERMITE_WORK_LIMIT = 3e6  # node-orders per transform (a few seconds); beyond, other routes


def _hermite_moment_fn(act: Activation) -> MomentFn:
    """log|g_m(q)| from the arbitrary-precision Hermite transform of ``act.mp_fn``.

    Raises ArithmeticError when a moment cannot be resolved to 1e-12 relative (the spectrum's
    series route then steps aside and the other routes report their own errors).
    """

    def log_moments(q: float, M: int) -> NDArray[np.float64]:
        from fieldcurve.hermite import hermite_log_moments, max_hermite_order

        if M > min(max_hermite_order(), _SERIES_MOMENT_LIMIT):
            raise ArithmeticError(
                f"{act.name}: {M} Gaussian derivative moments requested, more than the series"
                f" route's limit {_SERIES_MOMENT_LIMIT} for arbitrary-precision moments"
            )
        res = hermite_log_moments(
            act.mp_fn,
            float(q),
            int(M),
            strip=act.singularity_distance,
            verify=act.verify_moments,
            zero_class=act.zero_class,
            key=(act.name, act.mp_fn),
            max_work=_HERMITE_WORK_LIMIT,
        )
        if res.max_relative_error > 1e-12:
            raise ArithmeticError(
                f"{act.name}: Gaussian derivative moments at q = {q:g} resolved only to"
                f" {res.max_relative_error:.1e} relative"
            )
        return res.log_abs

    return log_moments


def _mp_tanh(x: Any) -> Any:
    return mpmath.tanh(x)


def _mp_sigmoid(x: Any) -> Any:
    # 1/2 + tanh(x/2)/2: exactly "constant + odd" in any precision
    return (1 + mpmath.tanh(x / 2)) / 2


def _mp_silu(x: Any) -> Any:
    # x/2 + (x/2) tanh(x/2): linear + even
    return x * (1 + mpmath.tanh(x / 2)) / 2


def _mp_softplus(x: Any) -> Any:
    # max(x, 0) + log1p(e^{-|x|}), no overflow and no loss for large |x|
    return (x if x > 0 else mpmath.mpf(0)) + mpmath.log1p(mpmath.exp(-abs(x)))


# --------------------------------------------------------------------------- constructors
def abrelu(a: float, b: float) -> Activation:
    r""":math:`\phi(x) = a\min(x, 0) + b\max(x, 0)`; ``abrelu(0, 1)`` is ReLU, ``abrelu(-1, 1)`` is
    :math:`|x|`, ``abrelu(alpha, 1)`` leaky ReLU. Closed-form duals (Cho & Saul 2009)."""
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"abrelu parameter {name} must be a finite real number, got {v!r}")
    a, b = float(a), float(b)
    dual, dual_d = _abrelu_dual(a, b)
    label = "relu" if (a, b) == (0.0, 1.0) else f"abrelu({a:g}, {b:g})"
    return Activation(
        name=label,
        fn=lambda x: a * np.minimum(x, 0.0) + b * np.maximum(x, 0.0),
        derivative=lambda x: np.where(x > 0, b, a) + 0.0 * x,
        closed_dual=dual,
        closed_dual_derivative=dual_d,
        log_moments=_abrelu_moments(a, b),
        scale_invariant_degree=1,
        abrelu_params=(a, b),
        zero_class=(1, 1) if a + b == 0 else (1, 3),
    )


def relu() -> Activation:
    """ReLU, :math:`\\max(x, 0)` (= ``abrelu(0, 1)``)."""
    return abrelu(0.0, 1.0)


def leaky_relu(alpha: float = 0.01) -> Activation:
    r"""Leaky ReLU :math:`\max(x,0) + \alpha\min(x,0)` (= ``abrelu(alpha, 1)``)."""
    return abrelu(alpha, 1.0)


def erf() -> Activation:
    """The error function; closed-form duals (Williams 1997)."""
    return Activation(
        name="erf",
        fn=sc.erf,
        derivative=lambda x: (2 / math.sqrt(math.pi)) * np.exp(-x * x),
        closed_dual=_erf_dual,
        closed_dual_derivative=_erf_dual_derivative,
        log_moments=_erf_moments,
        zero_class=(0, 0),
    )


def gelu() -> Activation:
    r"""Exact GELU :math:`x\Phi(x)` (Hendrycks & Gimpel 2016); closed-form duals derived here."""
    return Activation(
        name="gelu",
        fn=lambda x: x * sc.ndtr(x),
        derivative=lambda x: sc.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi),
        closed_dual=_gelu_dual,
        closed_dual_derivative=_gelu_dual_derivative,
        log_moments=_gelu_moments,
        zero_class=(1, 3),
    )


def sin() -> Activation:
    """Sine; closed-form duals."""
    return Activation(
        name="sin",
        fn=np.sin,
        derivative=np.cos,
        closed_dual=_sin_dual,
        closed_dual_derivative=_cos_dual,
        log_moments=_trig_moments(0),
        zero_class=(0, 0),
    )


def cos() -> Activation:
    """Cosine; closed-form duals."""
    return Activation(
        name="cos",
        fn=np.cos,
        derivative=lambda x: -np.sin(x),
        closed_dual=_cos_dual,
        closed_dual_derivative=_sin_dual,
        log_moments=_trig_moments(1),
        zero_class=(1, 1),
    )


_MAX_MONOMIAL_ORDER = 100


def monomial(k: int) -> Activation:
    r"""Monomial :math:`x^k`, :math:`0 \le k \le 100`; closed-form duals by Wick's theorem (their
    coefficients stay within double range up to k = 100)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"monomial degree k must be a non-negative integer, got {k!r}")
    if k > _MAX_MONOMIAL_ORDER:
        raise ValueError(f"monomial degree k = {k} exceeds the limit {_MAX_MONOMIAL_ORDER}")
    deriv_dual = _monomial_dual(k - 1) if k >= 1 else None

    def dual_d(k11: Any, k12: Any, k22: Any, ops: Any) -> Any:
        if deriv_dual is None:
            return 0 * k12
        return k * k * deriv_dual(k11, k12, k22, ops)

    return Activation(
        name="identity" if k == 1 else f"monomial({k})",
        fn=lambda x: x**k,
        derivative=lambda x: k * x ** (k - 1) if k >= 1 else 0.0 * x,
        closed_dual=_monomial_dual(k),
        closed_dual_derivative=dual_d,
        log_moments=_monomial_moments(k),
        scale_invariant_degree=k,
        zero_class=(1 - k % 2, 1 - k % 2),
    )


def identity() -> Activation:
    """The identity (a linear network)."""
    return monomial(1)


def tanh() -> Activation:
    """Hyperbolic tangent (quadrature duals; poles at +-i pi/2)."""
    return Activation(
        name="tanh",
        fn=np.tanh,
        derivative=lambda x: 1.0 - np.tanh(x) ** 2,
        singularity_distance=math.pi / 2,
        mp_fn=_mp_tanh,
        zero_class=(0, 0),
    )


def sigmoid() -> Activation:
    """Logistic sigmoid (quadrature duals; poles at +-i pi)."""
    return Activation(
        name="sigmoid",
        fn=sc.expit,
        derivative=lambda x: sc.expit(x) * (1.0 - sc.expit(x)),
        singularity_distance=math.pi,
        mp_fn=_mp_sigmoid,
        zero_class=(0, 2),
    )


def silu() -> Activation:
    r"""SiLU / swish :math:`x\,\sigma(x)` (quadrature duals; poles at :math:`\pm i\pi`)."""
    return Activation(
        name="silu",
        fn=lambda x: x * sc.expit(x),
        derivative=lambda x: sc.expit(x) * (1.0 + x * (1.0 - sc.expit(x))),
        singularity_distance=math.pi,
        mp_fn=_mp_silu,
        zero_class=(1, 3),
    )


def softplus() -> Activation:
    r"""Softplus :math:`\log(1+e^x)` (quadrature duals; branch points at :math:`\pm i\pi`)."""
    return Activation(
        name="softplus",
        fn=lambda x: np.logaddexp(0.0, x),
        derivative=sc.expit,
        singularity_distance=math.pi,
        mp_fn=_mp_softplus,
        zero_class=(1, 3),
    )


_REGISTRY: dict[str, Callable[[], Activation]] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "erf": erf,
    "gelu": gelu,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "silu": silu,
    "swish": silu,
    "softplus": softplus,
    "sin": sin,
    "cos": cos,
    "identity": identity,
    "linear": identity,
    "abs": lambda: abrelu(-1.0, 1.0),
}


def available_activations() -> list[str]:
    """Names accepted by :func:`get_activation`."""
    return sorted(_REGISTRY)


def _numerical_derivative(fn: Callable) -> Callable:
    """Central difference with one Richardson step; error ~ h^4 f^(5) + eps/h ~ 1e-11 for smooth f."""

    def deriv(x: Any) -> Any:
        x = np.asarray(x, dtype=np.float64)
        h = 1e-3 * np.maximum(1.0, np.abs(x))
        d1 = (fn(x + h) - fn(x - h)) / (2 * h)
        d2 = (fn(x + h / 2) - fn(x - h / 2)) / h
        return (4 * d2 - d1) / 3

    return deriv


def get_activation(activation: str | Activation | Callable, derivative: Callable | None = None) -> Activation:
    """Resolve an activation given by name, :class:`Activation`, or vectorised callable.

    A plain callable gets quadrature duals; its derivative is ``derivative`` if given, else
    a Richardson-extrapolated central difference (about 1e-10 relative for smooth functions).
    If the callable also accepts an mpmath number and returns one (written with operations that
    work on both, e.g. ``lambda x: x * mpmath.tanh(x)`` does not but ``lambda x: x * x / (1 + x * x)``
    does), its Gaussian derivative moments come from the arbitrary-precision Hermite transform
    (checked by a second independent rule), so its spectra use the exact series route; its
    symmetry (odd, even, constant + odd, linear + even) is detected at 60 digits.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        key = activation.strip().lower()
        if key not in _REGISTRY:
            raise ValueError(
                f"unknown activation {activation!r}; choose one of {', '.join(available_activations())}"
                " or use fieldcurve.activations.abrelu(a, b) / monomial(k)"
            )
        return _REGISTRY[key]()
    if callable(activation):
        name = getattr(activation, "__name__", "custom")
        mp_fn = _mp_compatible(activation)
        return Activation(
            name=name,
            fn=activation,
            derivative=derivative if derivative is not None else _numerical_derivative(activation),
            mp_fn=mp_fn,
            zero_class=None if mp_fn is None else _detect_zero_class(mp_fn),
            verify_moments=True,
        )
    raise TypeError(f"activation must be a name, an Activation or a callable, got {activation!r}")


def _detect_zero_class(fn: Callable[[Any], Any]) -> tuple[int, int] | None:
    from fieldcurve.hermite import detect_zero_class

    return detect_zero_class(fn)


def _mp_compatible(fn: Callable) -> Callable[[Any], Any] | None:
    """``fn`` itself if it maps mpmath numbers to real mpmath numbers consistently with its float
    values (written with mpmath-compatible operations), else None."""
    try:
        with mpmath.workdps(40):
            points = [mpmath.mpf(v) / 7 for v in (-9, -2, 3, 11)]
            values = [fn(x) for x in points]
        if not all(isinstance(v, mpmath.mpf) for v in values):
            return None
        floats = np.asarray(fn(np.array([float(x) for x in points])), dtype=np.float64)
    except Exception:  # any failure means "not mpmath-compatible"
        return None
    ref = np.array([float(v) for v in values])
    if floats.shape != ref.shape or not np.allclose(floats, ref, rtol=1e-9, atol=1e-12):
        return None
    return fn
