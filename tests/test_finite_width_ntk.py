"""The O(1/width) NTK mean on several inputs (fieldcurve.finite_width_ntk) against the
infinite-width NTK, the one-input recursion, exact zeros, closed-form duals and Monte Carlo over
explicit random networks."""

from __future__ import annotations

import numpy as np
import pytest

import fieldcurve as fc
from fieldcurve.finite_width_ntk import _gauss2


@pytest.mark.parametrize("K", [np.array([[1.3, 0.4], [0.4, 0.9]]), np.array([[2.0, -1.7], [-1.7, 1.6]])])
@pytest.mark.parametrize("name", ["relu", "erf", "gelu"])
def test_polar_quadrature_reproduces_closed_form_duals(K, name):
    act = fc.activations.get_activation(name)
    z, w = _gauss2(K)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose((w[:, None, None] * z[:, :, None] * z[:, None, :]).sum(0), K, atol=1e-13)
    a, c, b = K[0, 0], K[0, 1], K[1, 1]
    assert (w * act.fn(z[:, 0]) * act.fn(z[:, 1])).sum() == pytest.approx(float(act.dual(a, c, b)), abs=1e-13)
    got = (w * act.derivative(z[:, 0]) * act.derivative(z[:, 1])).sum()
    assert got == pytest.approx(float(act.dual_derivative(a, c, b)), abs=1e-13)


@pytest.mark.parametrize(
    "mlp",
    [
        fc.MLP(3, "identity", 1.2, 0.3),
        fc.MLP(3, "tanh", 1.0, 0.0),
        fc.MLP(2, "relu", 2.0, 0.1),
        fc.MLP(1, "erf", 1.5, 0.2),
    ],
)
def test_ntk_correction_structure(mlp):
    """Theta = ntk_kernel's Gram matrix; the diagonal shift = the one-input recursion; exact zeros
    for linear networks (all entries) and for one hidden layer (E S and E B exact at any width)."""
    X = fc.sample_sphere(4, 6, seed=1)
    c = fc.ntk_correction(mlp, X)
    np.testing.assert_allclose(c.ntk, fc.ntk_kernel(mlp).gram(X), rtol=1e-12)
    one = fc.finite_width_statistics(mlp, 64).ntk_nlo[-1]
    np.testing.assert_allclose(np.diagonal(c.ntk_nlo), one, rtol=1e-12, atol=1e-14)
    if mlp.activation.name == "identity" or mlp.depth == 1:
        np.testing.assert_allclose(c.ntk_nlo, 0.0, atol=1e-6 * np.abs(c.ntk).max())
    np.testing.assert_allclose(c.mean(32), c.ntk + c.ntk_nlo / 32)


@pytest.mark.parametrize(
    ("mlp", "resolved"), [(fc.MLP(3, "relu", 2.0, 0.1), True), (fc.MLP(3, "tanh", 1.0, 0.0), True)]
)
def test_ntk_correction_against_monte_carlo_of_random_networks(mlp, resolved):
    """n (E NTK - NTK) of explicit random networks on 3 inputs at widths 8 and 16 (2e5 each),
    Richardson-extrapolated, equals the theory entry by entry within 4 standard errors; and the
    largest off-diagonal shift is resolved at more than 6 standard errors at width 16, so a theory
    without it fails (ReLU: zero shift on the diagonal, 3.4 off it)."""
    X = fc.sample_sphere(3, 5, seed=0)
    theory = fc.ntk_correction(mlp, X).ntk_nlo
    a = fc.monte_carlo_ntk_matrix(mlp, X, 8, 200_000, seed=8)
    b = fc.monte_carlo_ntk_matrix(mlp, X, 16, 200_000, seed=16)
    extrapolated = 2 * b.shift - a.shift
    se = np.hypot(2 * b.shift_se, a.shift_se)
    assert np.all(np.abs(extrapolated - theory) < 4 * se), (extrapolated, se, theory)
    off = ~np.eye(3, dtype=bool)
    k = np.argmax(np.abs(theory) * off)
    assert abs(b.shift.flat[k]) > 6 * b.shift_se.flat[k]


def test_ntk_correction_repeated_input_and_singular_pair():
    """A repeated input gets the diagonal value; an antiparallel pair of a bias-free network has a
    singular pair kernel and is refused by name."""
    mlp = fc.MLP(2, "tanh", 1.0, 0.1)
    X = fc.sample_sphere(2, 5, seed=3)
    c = fc.ntk_correction(mlp, np.vstack([X, X[:1]]))
    assert c.ntk_nlo[2, 0] == c.ntk_nlo[0, 0]
    assert c.ntk_nlo[2, 1] == pytest.approx(c.ntk_nlo[0, 1], rel=1e-6)  # pair order swapped
    with pytest.raises(ValueError, match="rows 0 and 1"):
        fc.ntk_correction(fc.MLP(2, "tanh", 1.0, 0.0), np.vstack([X[:1], -X[:1]]))


def test_ntk_correction_bad_input():
    mlp = fc.MLP(2, "tanh", 1.0, 0.0)
    with pytest.raises(ValueError, match="X must be"):
        fc.ntk_correction(mlp, np.ones(3))
    with pytest.raises(ValueError, match="X must be"):
        fc.ntk_correction(mlp, np.array([[np.nan, 1.0]]))
    with pytest.raises(TypeError, match="MLP"):
        fc.ntk_correction("mlp", np.ones((2, 3)))
    with pytest.raises(ValueError, match="parameterization"):
        fc.ntk_correction(fc.MLP(2, "tanh", 1.0, 0.0, parameterization="standard", width=8), np.ones((2, 3)))


def test_ntk_correction_exact_for_a_quadratic_network():
    """sigma(z) = z^2, depth 2: E NTK = NTK + H/n exactly with H_ab = 16 C2^2 C3 (3 K_aa^2 K_bb^2
    + 56 K_aa K_ab^2 K_bb + 25 K_ab^4) (derivations/ntk_finite_width.py, by Isserlis' theorem)."""
    mlp = fc.MLP(2, fc.activations.monomial(2), [1.1, 0.7, 1.3], [0.15, 0.2, 0.1])
    X = fc.sample_sphere(4, 6, seed=2)
    K = 0.15 + 1.1 * X @ X.T / 6
    q = np.diagonal(K)
    H = 16 * 0.7**2 * 1.3 * (3 * np.outer(q, q) ** 2 + 56 * np.outer(q, q) * K**2 + 25 * K**4)
    np.testing.assert_allclose(fc.ntk_correction(mlp, X).ntk_nlo, H, rtol=1e-8)


def _pair(eps: float, d: int = 5) -> np.ndarray:
    x = np.zeros((2, d))
    x[0, 0], x[1, 0], x[1, 1] = 1.0, np.cos(eps), np.sin(eps)
    return np.sqrt(d) * x


def test_ntk_correction_approaches_the_diagonal_for_nearly_parallel_inputs():
    """As two inputs merge, the off-diagonal shift tends to the diagonal one: smoothly for tanh
    and GELU (to 1e-4 relative at an angle of 1e-3), linearly in the angle for ReLU (whose diagonal
    shift is zero); a pair too close for the kinked activation raises a warning."""
    for mlp in (fc.MLP(3, "tanh", 1.0, 0.1), fc.MLP(3, "gelu", 2.0, 0.1)):
        c = fc.ntk_correction(mlp, _pair(1e-3))
        assert c.ntk_nlo[0, 1] == pytest.approx(c.ntk_nlo[0, 0], rel=1e-4)
    relu = fc.MLP(3, "relu", 2.0, 0.1)
    h1, h2 = (fc.ntk_correction(relu, _pair(e)).ntk_nlo[0, 1] for e in (0.01, 0.02))
    assert 0 < h1 < 0.2 and h2 / h1 == pytest.approx(2.0, rel=0.1)
    with pytest.warns(RuntimeWarning, match="nearly parallel"):
        fc.ntk_correction(relu, _pair(1e-3))
