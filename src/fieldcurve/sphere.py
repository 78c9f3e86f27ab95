r"""Geometry of the sphere :math:`\sqrt{d}\,S^{d-1}`: multiplicities, Legendre polynomials, sampling.

Conventions (see the README): inputs live on the sphere of radius :math:`\sqrt d` in
:math:`\mathbb R^d`; the cosine between two inputs is :math:`t = x\cdot x'/d \in [-1, 1]`; harmonics
are orthonormal with respect to the *uniform probability* measure on that sphere.

The degree-:math:`l` harmonics span a space of dimension

.. math:: N(d, 0) = 1, \qquad N(d, l) = \frac{2l+d-2}{l}\binom{l+d-3}{l-1},

and the addition theorem reads :math:`\sum_m Y_{lm}(x) Y_{lm}(x') = N(d,l)\,P_l^{(d)}(t)`, with
:math:`P_l^{(d)}` the Gegenbauer polynomial :math:`C_l^{(d-2)/2}` normalised to :math:`P_l^{(d)}(1) = 1`
(Atkinson & Han, *Spherical Harmonics and Approximations on the Unit Sphere*, 2012, ch. 2).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldcurve._checks import check_dimension, check_finite_array, check_nonneg_int

__all__ = [
    "harmonic_features",
    "legendre",
    "log_multiplicity",
    "multiplicity",
    "sample_sphere",
    "zonal_harmonic",
]


def multiplicity(d: int, l: int) -> int:
    r"""Exact number :math:`N(d, l)` of linearly independent spherical harmonics of degree ``l``.

    .. math:: N(d,0)=1,\quad N(d,l) = \frac{2l+d-2}{l}\binom{l+d-3}{l-1}\ (l\ge1).

    Exact (Python integers, no overflow).

    Examples
    --------
    >>> multiplicity(3, 2), multiplicity(2, 7), multiplicity(10, 0)
    (5, 2, 1)
    """
    d = check_dimension(d)
    l = check_nonneg_int(l, "l")
    if l == 0:
        return 1
    return (2 * l + d - 2) * math.comb(l + d - 3, l - 1) // l


def log_multiplicity(d: int, degrees: ArrayLike) -> NDArray[np.float64]:
    r"""Natural logarithm of :math:`N(d, l)` for an array of degrees, without overflow.

    Computed as :math:`\log(2l+d-2) - \log l + \sum_{j=1}^{l-1}\log\bigl(1 + (d-2)/j\bigr)`, a sum
    of positive terms each accurate to machine precision, so the relative error of
    :math:`N(d,l) = e^{\log N}` is below :math:`10^{-13}` for :math:`l \le 10^4`, any ``d``.
    """
    d = check_dimension(d)
    ls = np.asarray(degrees)
    if ls.size and (not np.issubdtype(ls.dtype, np.integer) or np.any(ls < 0)):
        raise ValueError("degrees must be non-negative integers")
    ls = ls.astype(np.int64)
    lmax = int(ls.max()) if ls.size else 0
    j = np.arange(1, max(lmax, 1), dtype=np.float64)
    # cumulative[k] = sum_{j=1}^{k} log1p((d-2)/j), k = 0..lmax-1
    cumulative = np.concatenate([[0.0], np.cumsum(np.log1p((d - 2) / j))])
    out = np.zeros(ls.shape, dtype=np.float64)
    pos = ls > 0
    lp = ls[pos].astype(np.float64)
    out[pos] = np.log(2 * lp + d - 2) - np.log(lp) + cumulative[ls[pos] - 1]
    return out


def legendre(lmax: int, t: ArrayLike, d: int) -> NDArray[np.float64]:
    r"""Legendre polynomials of dimension ``d``, :math:`P_l^{(d)}(t)` for :math:`l = 0..l_{max}`.

    Normalised to :math:`P_l^{(d)}(1) = 1` and evaluated by the three-term recurrence

    .. math:: P_{k+1} = \frac{(2k+d-2)\,t\,P_k - k\,P_{k-1}}{k+d-2},\qquad P_0 = 1,\ P_1 = t,

    which never forms the huge Gegenbauer values :math:`C_l^{\alpha}` and is forward-stable on
    :math:`[-1, 1]`, where :math:`|P_l| \le 1`: absolute error a few ulp times :math:`l` for
    ``l`` in the thousands and ``d`` up to :math:`10^5` or more. For ``d = 2`` these are the Chebyshev
    polynomials :math:`\cos(l\theta)`; for ``d = 3`` the classical Legendre polynomials.

    Returns
    -------
    ndarray of shape ``(lmax + 1,) + t.shape``.
    """
    d = check_dimension(d)
    lmax = check_nonneg_int(lmax, "lmax")
    t = check_finite_array(t, "t")
    out = np.empty((lmax + 1, *t.shape), dtype=np.float64)
    out[0] = 1.0
    if lmax >= 1:
        out[1] = t
    for k in range(1, lmax):
        out[k + 1] = ((2 * k + d - 2) * t * out[k] - k * out[k - 1]) / (k + d - 2)
    return out


def sample_sphere(n: int, d: int, *, seed: int | np.random.Generator) -> NDArray[np.float64]:
    r"""Draw ``n`` points uniformly on the sphere of radius :math:`\sqrt d` in :math:`\mathbb R^d`.

    Normalised Gaussian vectors (Muller 1959). ``seed`` is required: an int or a
    :class:`numpy.random.Generator`.
    """
    n = check_nonneg_int(n, "n")
    d = check_dimension(d)
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, d))
    return g * (np.sqrt(d) / np.linalg.norm(g, axis=1, keepdims=True))


def _check_on_sphere(X: NDArray[np.float64], name: str) -> None:
    d = X.shape[1]
    sq = np.einsum("ij,ij->i", X, X)
    if np.any(np.abs(sq - d) > 1e-8 * d):
        raise ValueError(f"{name} must lie on the sphere of radius sqrt(d) (|x|^2 = d = {d})")


def zonal_harmonic(degree: int, X: ArrayLike, Y: ArrayLike) -> NDArray[np.float64]:
    r"""Zonal harmonic :math:`Z_l(x, y) = \sum_m Y_{lm}(x)Y_{lm}(y) = N(d,l)\,P_l^{(d)}(x\cdot y/d)`.

    ``X`` (n, d) and ``Y`` (m, d) on the :math:`\sqrt d`-sphere; returns the (n, m) matrix. It is the
    reproducing kernel of the degree-``l`` harmonics in :math:`L^2` of the uniform probability
    measure.
    """
    X = check_finite_array(X, "X", ndim=2)
    Y = check_finite_array(Y, "Y", ndim=2)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y have different dimensions ({X.shape[1]} != {Y.shape[1]})")
    d = check_dimension(X.shape[1], "X.shape[1]")
    degree = check_nonneg_int(degree, "degree")
    _check_on_sphere(X, "X")
    _check_on_sphere(Y, "Y")
    t = np.clip(X @ Y.T / d, -1.0, 1.0)
    return float(multiplicity(d, degree)) * legendre(degree, t, d)[degree]


def harmonic_features(
    X: ArrayLike, degree: int, num: int, *, seed: int | np.random.Generator
) -> NDArray[np.float64]:
    r"""Real spherical harmonics of one degree, orthonormal under the uniform probability measure.

    Returns ``num`` functions :math:`F_1..F_{num}` of degree ``degree`` evaluated at the rows of
    ``X`` (shape (n, num)), with :math:`\mathbb E_x[F_a(x)F_b(x)] = \delta_{ab}` exactly (to round-off).
    Construction: draw ``num`` anchors :math:`z_i` on the sphere (from ``seed``), take the zonal
    functions :math:`h_i(x) = Z_l(x, z_i)` and orthonormalise them with their exact Gram matrix
    :math:`G_{ij} = \langle h_i, h_j\rangle = Z_l(z_i, z_j)` (reproducing property):
    :math:`F = h\,G^{-1/2}`. The same ``seed`` gives the same functions for any ``X``, so a target
    :math:`f = \sum_a c_a F_a` has power :math:`\sum_a c_a^2` in degree ``l`` exactly. Requires
    ``num <= N(d, degree)``.
    """
    X = check_finite_array(X, "X", ndim=2)
    d = check_dimension(X.shape[1], "X.shape[1]")
    degree = check_nonneg_int(degree, "degree")
    num = check_nonneg_int(num, "num")
    n_l = multiplicity(d, degree)
    if num > n_l:
        raise ValueError(f"num = {num} exceeds the number of degree-{degree} harmonics N = {n_l}")
    _check_on_sphere(X, "X")
    if num == 0:
        return np.zeros((X.shape[0], 0))
    anchors = _well_spread_anchors(degree, num, d, seed)
    gram = zonal_harmonic(degree, anchors, anchors)
    w, v = np.linalg.eigh(gram)
    if w.min() <= 1e-9 * w.max():
        raise ValueError(
            f"anchors for degree {degree} are nearly dependent (num = {num} of N = {n_l});"
            " use another seed or fewer features"
        )
    inv_sqrt = (v / np.sqrt(w)) @ v.T
    F = zonal_harmonic(degree, X, anchors) @ inv_sqrt
    # second pass: re-orthonormalise with the (now nearly identity) Gram matrix of F's
    # coefficients, which removes the eps * cond(G) error of the first pass
    coef = inv_sqrt
    gram2 = coef.T @ gram @ coef
    w2, v2 = np.linalg.eigh(0.5 * (gram2 + gram2.T))
    return F @ ((v2 / np.sqrt(w2)) @ v2.T)


def _well_spread_anchors(degree: int, num: int, d: int, seed: int | np.random.Generator) -> NDArray:
    """``num`` anchors chosen by pivoted Cholesky from ``4 num`` random candidates.

    Greedily maximises the residual norm of each new zonal function, which keeps the Gram
    matrix :math:`Z_l(z_i, z_j)` well conditioned even for a complete basis.
    """
    cand = sample_sphere(4 * num, d, seed=seed)
    G = zonal_harmonic(degree, cand, cand)
    residual = np.diag(G).copy()
    L = np.zeros((num, len(cand)))
    chosen: list[int] = []
    for k in range(num):
        j = int(np.argmax(residual))
        chosen.append(j)
        row = (G[j] - L[:k, j] @ L[:k]) / math.sqrt(max(residual[j], 1e-300))
        L[k] = row
        residual = residual - row * row
        residual[chosen] = -np.inf
    return cand[chosen]
