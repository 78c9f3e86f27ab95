"""Kernels of MLPs: neural-tangents reference values, mpmath values, closed forms, invariants."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import fieldcurve as fc
from fieldcurve.activations import abrelu
from fieldcurve.kernels import nngp_ntk_gram

DATA = Path(__file__).parent / "data" / "nt_reference.npz"


def _load_reference():
    z = np.load(DATA, allow_pickle=False)
    cases = json.loads(str(z["cases_json"][0]))
    return z, cases


REF, CASES = _load_reference()


def _mlp_for(case: dict) -> fc.MLP:
    params = case["activation_params"]
    if case["activation"] in ("relu", "abrelu"):
        act = abrelu(params["a"], params["b"])
    else:
        act = case["activation"]
    return fc.MLP(
        case["depth"],
        act,
        case["weight_var"],
        case["bias_var"],
        parameterization=case["parameterization"],
        width=case["width"],
    )


def _inputs(tag: str):
    return {"11": (REF["x1"], None), "12": (REF["x1"], REF["x2"]), "ss": (REF["x_sphere"], None)}[tag]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_agrees_with_neural_tangents(case):
    """<= 1e-12 relative to neural-tangents 0.6.5 (float64) on every pair except those where
    neural-tangents itself loses accuracy for piecewise-linear activations (measured against
    50 digits): the NTK at exactly parallel pairs (~1e-8, arctan2 of a cancelled determinant)
    and both kernels at exactly or nearly antiparallel pairs (~5e-9, where the ReLU kernel
    vanishes). Those pairs are checked against mpmath below."""
    mlp = _mlp_for(case)
    i = case["index"]
    piecewise = case["activation"] in ("relu", "abrelu")
    for kind, kernel in (("nngp", fc.nngp_kernel(mlp)), ("ntk", fc.ntk_kernel(mlp))):
        for tag in ("11", "12", "ss"):
            X1, X2 = _inputs(tag)
            ours = kernel.gram(X1, X2)
            ref = REF[f"c{i:03d}_{kind}_{tag}"]
            pair = REF[f"pair_{tag}"]
            scale = np.abs(ref).max()
            trusted = np.ones(ref.shape, dtype=bool)
            if piecewise:
                trusted = (pair != 3) & (pair != 4)
                if kind == "ntk":
                    trusted &= pair != 2
            err = np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-9 * scale)
            assert err[trusted].max() <= 1e-12, (kind, tag, err[trusted].max())


MP_CASES = [c for c in CASES if c["has_mp"]]


@pytest.mark.parametrize("case", MP_CASES, ids=[c["name"] for c in MP_CASES])
def test_agrees_with_50_digit_mpmath_everywhere(case):
    """Against an independent 50-digit mpmath recursion (tests/data/make_nt_reference.py),
    including duplicates, positive multiples, antiparallel and nearly antiparallel pairs."""
    mlp = _mlp_for(case)
    i = case["index"]
    for kind, kernel in (("nngp", fc.nngp_kernel(mlp)), ("ntk", fc.ntk_kernel(mlp))):
        for tag in ("11", "12", "ss"):
            X1, X2 = _inputs(tag)
            ours = kernel.gram(X1, X2)
            ref = REF[f"c{i:03d}_mp_{kind}_{tag}"]
            scale = np.abs(ref).max()
            # entries that vanish (ReLU at antiparallel pairs) are compared in absolute terms
            err = np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-3 * scale)
            assert err.max() <= 1e-12, (kind, tag, err.max())


def _kappa1(t):
    return (np.sqrt(1 - t * t) + (np.pi - np.arccos(t)) * t) / np.pi


def _kappa0(t):
    return (np.pi - np.arccos(t)) / np.pi


def test_one_layer_relu_closed_form():
    """Bias-free one-hidden-layer ReLU with sigma_w^2 = w (Cho & Saul 2009; Jacot et al. 2018):
    NNGP = w^2 kappa1(t)/2, NTK = w^2 (kappa1(t) + t kappa0(t))/2."""
    t = np.linspace(-1, 1, 41)
    w = 1.7
    mlp = fc.MLP(1, "relu", w, 0.0)
    np.testing.assert_allclose(fc.nngp_kernel(mlp)(t), w * w * _kappa1(t) / 2, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(
        fc.ntk_kernel(mlp)(t), w * w * (_kappa1(t) + t * _kappa0(t)) / 2, rtol=1e-13, atol=1e-15
    )


@pytest.mark.parametrize("depth", [0, 1, 4])
def test_deep_linear_network(depth):
    """Identity activation, no bias: NNGP = w^(L+1) t and NTK = (L+1) w^(L+1) t."""
    t = np.linspace(-1, 1, 9)
    w = 1.3
    mlp = fc.MLP(depth, "identity", w, 0.0)
    np.testing.assert_allclose(fc.nngp_kernel(mlp)(t), w ** (depth + 1) * t, rtol=1e-14)
    np.testing.assert_allclose(fc.ntk_kernel(mlp)(t), (depth + 1) * w ** (depth + 1) * t, rtol=1e-14)


def test_erf_one_layer_closed_form():
    """K1 = w t + b on the sphere (variance q = w + b), then (2/pi) asin(2K/(1+2q))."""
    t = np.linspace(-1, 1, 11)
    w, b = 1.5, 0.2
    q = w + b
    inner = (2 / np.pi) * np.arcsin(2 * (w * t + b) / (1 + 2 * q))
    mlp = fc.MLP(1, "erf", w, b)
    np.testing.assert_allclose(fc.nngp_kernel(mlp)(t), w * inner + b, rtol=1e-14)


def test_standard_parameterization_depth0():
    """A linear model in the standard parameterisation: NTK = x.x' (+1 with a bias)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 4))
    ntk = fc.ntk_kernel(fc.MLP(0, "relu", 1.0, 0.5, parameterization="standard", width=3))
    np.testing.assert_allclose(ntk.gram(X), X @ X.T + 1.0, rtol=1e-14)


def test_dot_product_call_matches_gram_on_sphere():
    X = fc.sample_sphere(30, 7, seed=1)
    Y = fc.sample_sphere(20, 7, seed=2)
    for kernel in (
        fc.ntk_kernel(fc.MLP(3, "relu", 2.0, 0.1)),
        fc.nngp_kernel(fc.MLP(2, "gelu", 1.2, 0.3)),
        fc.ntk_kernel(fc.MLP(2, "tanh", 1.2, 0.3)),
    ):
        np.testing.assert_allclose(kernel.gram(X, Y), kernel(X @ Y.T / 7), rtol=1e-12)


def test_one_pass_gram_equals_separate_grams():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 6))
    X[5] = 2.5 * X[4]
    X[7] = -X[6]
    mlp = fc.MLP(4, abrelu(-0.3, 1.5), 1.8, 0.2)
    g, t = nngp_ntk_gram(mlp, X, block=64)
    # the tiled fast path vs the gap-carrying recursion on full matrices
    k = fc.ntk_kernel(mlp)
    n1 = np.einsum("ij,ij->i", X, X) / 6
    full = k._recursion(
        np.broadcast_to(n1[:, None], (300, 300)),
        X @ X.T / 6,
        np.broadcast_to(n1[None, :], (300, 300)),
        6,
        fc.activations.NUMPY_OPS,
        None,
        both=True,
    )
    off = ~np.eye(300, dtype=bool)
    np.testing.assert_allclose(g[off], full[0][off], rtol=1e-13)
    np.testing.assert_allclose(t[off], full[1][off], rtol=1e-13)
    assert np.array_equal(g, g.T) and np.array_equal(t, t.T)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 25),
    d=st.integers(1, 6),
    depth=st.integers(0, 4),
    act=st.sampled_from(["relu", "erf", "gelu", "sin", "tanh"]),
    w=st.floats(0.5, 2.5),
    b=st.floats(0.0, 0.5),
    seed=st.integers(0, 10_000),
)
def test_gram_symmetric_positive_semidefinite(n, d, depth, act, w, b, seed):
    X = np.random.default_rng(seed).standard_normal((n, d))
    for kernel in (
        fc.nngp_kernel(fc.MLP(depth, act, w, b)),
        fc.ntk_kernel(fc.MLP(depth, act, w, b)),
    ):
        K = kernel.gram(X)
        assert np.array_equal(K, K.T)
        eig = np.linalg.eigvalsh(K)
        assert eig.min() >= -1e-10 * max(1.0, eig.max())


@pytest.mark.parametrize("act", ["relu", "erf", "gelu", abrelu(-0.3, 1.5), "sin", "identity"])
@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_taylor_coefficients_reproduce_kernel(act, kind):
    """Mehler-series composition (non-negative coefficients) vs the closed-form recursion."""
    mlp = fc.MLP(3, act, 1.6, 0.2)
    kernel = fc.MLPKernel(mlp, kind)
    b = kernel.taylor_coefficients(300)
    assert np.all(b >= 0)
    n = np.arange(301)
    for t in (-0.6, 0.0, 0.3, 0.7):
        assert abs(np.sum(b * t**n) / kernel(t) - 1) < 1e-13


def test_taylor_one_layer_is_mehler_series():
    """Depth 1, no bias: b_n = w * g_n^2 w^n / n! with the closed-form moments of erf:
    |g_n| = (2/sqrt(pi)) (n-1)!/((n-1)/2)! (1+2w)^(-n/2) for odd n (Price's theorem)."""
    w = 1.3
    b = fc.nngp_kernel(fc.MLP(1, "erf", w, 0.0)).taylor_coefficients(41)
    for n_ in range(0, 42):
        if n_ % 2 == 0:
            assert b[n_] == 0
            continue
        g = 2 / math.sqrt(math.pi) * math.factorial(n_ - 1) / math.factorial((n_ - 1) // 2)
        g *= (1 + 2 * w) ** (-n_ / 2)
        expected = w * g * g * w**n_ / math.factorial(n_)
        assert abs(b[n_] / expected - 1) < 1e-13


def test_sympy_and_callable_kernels():
    t = sympy.Symbol("t")
    k = fc.as_kernel(1 + t + t**3 / 2)
    np.testing.assert_allclose(k(np.array([0.5])), [1 + 0.5 + 0.0625])
    assert k.taylor_coefficients(4).tolist() == [1.0, 1.0, 0.0, 0.5, 0.0]
    c = fc.as_kernel(lambda x: np.exp(x))
    np.testing.assert_allclose(c(np.array([0.0, 1.0])), [1.0, np.e])
    with pytest.raises(ValueError, match="single symbol t"):
        fc.as_kernel(sympy.Symbol("x") ** 2)
    with pytest.raises(TypeError, match="nngp_kernel"):
        fc.as_kernel(fc.MLP(1))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"depth": -1}, ValueError, "depth"),
        ({"depth": 1.5}, TypeError, "depth"),
        ({"depth": 2, "weight_var": -1.0}, ValueError, "weight_var"),
        ({"depth": 2, "bias_var": float("nan")}, ValueError, "bias_var"),
        ({"depth": 2, "weight_var": [1.0, 2.0]}, ValueError, "weight_var"),
        ({"depth": 2, "activation": "swoosh"}, ValueError, "unknown activation"),
        ({"depth": 2, "activation": 3}, TypeError, "activation"),
        ({"depth": 2, "parameterization": "mup"}, ValueError, "parameterization"),
        ({"depth": 2, "parameterization": "standard"}, ValueError, "width"),
        ({"depth": 2, "width": 0}, ValueError, "width"),
    ],
)
def test_bad_mlp(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        fc.MLP(**kwargs)


def test_bad_gram_inputs():
    k = fc.ntk_kernel(fc.MLP(2))
    X = np.ones((3, 4))
    with pytest.raises(ValueError, match="X1 contains NaN"):
        k.gram(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="different feature dimensions"):
        k.gram(X, np.ones((2, 5)))
    with pytest.raises(ValueError, match="X1 must be 2-dimensional"):
        k.gram(np.ones(4))
    with pytest.raises(ValueError, match="t must lie"):
        k(np.array([1.5]))
    std = fc.ntk_kernel(fc.MLP(2, parameterization="standard", width=8))
    with pytest.raises(ValueError, match="input dimension d"):
        std(np.array([0.5]))
