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
        ({"depth": 2, "bias": "yes"}, ValueError, "bias must be one of"),
        ({"depth": 2, "bias": True}, ValueError, "bias must be one of"),
        ({"depth": 2, "bias_var": [0.0, 0.1, 0.0], "bias": "none"}, ValueError, "bias='none' needs bias_var"),
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


# --------------------------------------------------------------------------- trainable zero-init biases
ZB_DATA = Path(__file__).parent / "data" / "nt_zero_bias_reference.npz"
ZB_REF = np.load(ZB_DATA, allow_pickle=False)
ZB_CASES = json.loads(str(ZB_REF["cases_json"][0]))


def _zb_mlp(case: dict, bias: str) -> fc.MLP:
    return fc.MLP(
        case["depth"],
        case["activation"],
        case["weight_var"],
        case["bias_var"],
        parameterization=case["parameterization"],
        width=case["width"],
        bias=bias,
    )


@pytest.mark.parametrize("case", ZB_CASES, ids=[c["name"] for c in ZB_CASES])
def test_trainable_zero_bias_agrees_with_neural_tangents(case):
    """``bias="trainable"`` is stax ``Dense(..., b_std=0)`` (a trained bias initialised at zero):
    NNGP and NTK within 1e-12 relative of neural-tangents 0.6.5 (tests/data/
    make_nt_zero_bias_reference.py), and ``bias="auto"`` is ``b_std=None`` where bias_var = 0;
    also with an all-zero input row (zero preactivation variance without bias)."""
    i = case["index"]
    X = {
        "11": (ZB_REF["x1"], None),
        "12": (ZB_REF["x1"], ZB_REF["x2"]),
        "zz": (ZB_REF["x_zero"], None),  # an all-zero input row
        "z1": (ZB_REF["x_zero"], ZB_REF["x1"]),
    }
    for bias, key in (("trainable", "ntk"), ("auto", "ntk_nobias")):
        mlp = _zb_mlp(case, bias)
        for tag, (X1, X2) in X.items():
            for kind, ref in (
                ("nngp", ZB_REF[f"c{i:03d}_nngp_{tag}"]),
                (key, ZB_REF[f"c{i:03d}_{key}_{tag}"]),
            ):
                kernel = fc.nngp_kernel(mlp) if kind == "nngp" else fc.ntk_kernel(mlp)
                for ours in (kernel.gram(X1, X2), nngp_ntk_gram(mlp, X1, X2)[0 if kind == "nngp" else 1]):
                    err = np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-9 * np.abs(ref).max())
                    assert err.max() <= 1e-12, (bias, kind, tag, err.max())


def test_zero_bias_changes_the_standard_ntk_by_one_per_dense_at_depth_zero():
    """A linear model f = w.x + b (standard parameterisation): NTK = x.x' + 1 with a trained
    bias, whatever its initial variance, and x.x' without one."""
    X = np.random.default_rng(1).standard_normal((4, 3))
    for bias, extra in (("trainable", 1.0), ("none", 0.0), ("auto", 0.0)):
        mlp = fc.MLP(0, "relu", 1.0, 0.0, parameterization="standard", width=5, bias=bias)
        np.testing.assert_allclose(fc.ntk_kernel(mlp).gram(X), X @ X.T + extra, rtol=1e-14)


def test_bias_mode_leaves_ntk_parameterisation_and_nngp_unchanged():
    X = np.random.default_rng(2).standard_normal((5, 4))
    ref = fc.MLP(3, "erf", 1.7, 0.0)
    for bias in ("trainable", "none"):
        mlp = fc.MLP(3, "erf", 1.7, 0.0, bias=bias)
        for kernel, kref in (
            (fc.ntk_kernel(mlp), fc.ntk_kernel(ref)),
            (fc.nngp_kernel(mlp), fc.nngp_kernel(ref)),
        ):
            assert np.array_equal(kernel.gram(X), kref.gram(X))


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_trainable_zero_bias_taylor_coefficients(act):
    """The Mehler-series route of the standard NTK carries the +1 per biased Dense: its series
    sums to the closed-form recursion; the readout's +1 is in b_0, the hidden layers' ones are
    multiplied by the (non-negative) series of E[phi'phi'], so every coefficient can only grow."""
    kw = dict(parameterization="standard", width=32)
    with_b = fc.ntk_kernel(fc.MLP(2, act, 1.6, 0.0, bias="trainable", **kw))
    without = fc.ntk_kernel(fc.MLP(2, act, 1.6, 0.0, **kw))
    d = 7
    b1, b0 = with_b.taylor_coefficients(200, d), without.taylor_coefficients(200, d)
    n = np.arange(201)
    for t in (-0.6, 0.0, 0.4, 0.8):
        assert abs(np.sum(b1 * t**n) / with_b(t, d) - 1) < 1e-13
    assert np.all(b1 >= b0 * (1 - 1e-14))
    assert b1[0] >= b0[0] + 1 - 1e-12


def _explicit_standard_ntk(X, depth, weight_var, width, networks, seed, trainable_bias):
    """Empirical NTK J J^T of random standard-parameterisation ReLU networks with zero-init
    biases, the Jacobian J (inputs x parameters) written out column by column with numpy.
    Returns the mean and standard error over networks."""
    rng = np.random.default_rng(seed)
    N, d = X.shape
    out = np.empty((networks, N, N))
    for m in range(networks):
        fan_in = [d] + [width] * depth
        sizes = [width] * depth + [1]
        Ws = [
            rng.standard_normal((o, i)) * math.sqrt(weight_var / i)
            for i, o in zip(fan_in, sizes, strict=True)
        ]
        hs, zs = [X], []
        for W in Ws[:-1]:
            zs.append(hs[-1] @ W.T)  # + bias, initialised at 0
            hs.append(np.maximum(zs[-1], 0.0))
        cols = []
        delta = np.ones((N, 1))  # df/dz of the readout
        for layer in range(depth, -1, -1):
            cols.append(np.einsum("no,ni->noi", delta, hs[layer]).reshape(N, -1))  # df/dW
            if trainable_bias:
                cols.append(delta)  # df/db
            if layer > 0:
                delta = (delta @ Ws[layer]) * (zs[layer - 1] > 0)
        J = np.concatenate(cols, axis=1)
        out[m] = J @ J.T
    return out.mean(0), out.std(0, ddof=1) / math.sqrt(networks)


def test_trainable_zero_bias_ntk_against_explicit_jacobian_monte_carlo():
    """The +1 per Dense of a zero-initialised trained bias in the standard NTK, against the mean
    of J J^T over random wide networks (explicit Jacobian): every entry within 4 standard
    errors (plus 2% for the O(1/n) finite-width shift) of the formula, and the bias-free
    formula rejected by far on these small-norm inputs (where the bias gradients dominate)."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3, 4))
    X *= (np.array([0.02, 0.05, 0.1]) * 2 / np.linalg.norm(X, axis=1))[:, None]  # |x|^2/d small
    depth, wv, n = 2, 2.0, 256
    mean, se = _explicit_standard_ntk(X, depth, wv, n, 300, 11, trainable_bias=True)
    kw = dict(parameterization="standard", width=n)
    theory = fc.ntk_kernel(fc.MLP(depth, "relu", wv, 0.0, bias="trainable", **kw)).gram(X)
    no_bias = fc.ntk_kernel(fc.MLP(depth, "relu", wv, 0.0, **kw)).gram(X)
    dev = np.abs(mean - theory)
    assert np.all(dev <= 4 * se + 0.02 * np.abs(theory)), (mean, theory, se)
    assert np.all(np.abs(mean - no_bias) > 10 * se + 0.02 * np.abs(theory))
    # and the network without bias parameters matches the bias-free formula
    mean0, se0 = _explicit_standard_ntk(X, depth, wv, n, 300, 12, trainable_bias=False)
    assert np.all(np.abs(mean0 - no_bias) <= 4 * se0 + 0.02 * np.abs(no_bias)), (mean0, no_bias, se0)


# --------------------------------------------------------------------------- Gram edges (abrelu family)
def _mp_abrelu_gram(mlp: fc.MLP, X1, X2=None, dps: int = 50):
    """Independent oracle: the arc-cosine recursion (Cho & Saul 2009) at ``dps`` digits on the
    exact input kernel x.x'/d of the stored float64 inputs (rational arithmetic), for
    phi = a min(x, 0) + b max(x, 0). A zero variance is an input independent of the other
    (angle pi/2), the convention of neural-tangents' stax.ABRelu."""
    from fractions import Fraction

    import mpmath as mp

    a, b = mlp.activation.abrelu_params
    X2 = X1 if X2 is None else X2
    d = X1.shape[1]
    F1 = [[Fraction(float(v)) for v in row] for row in X1]
    F2 = [[Fraction(float(v)) for v in row] for row in X2]

    def dot(u, v):
        return sum((p * q for p, q in zip(u, v, strict=True)), Fraction(0)) / d

    with mp.workdps(dps):
        to_mp = lambda fr: mp.mpf(fr.numerator) / fr.denominator  # noqa: E731
        A = (mp.mpf(a) ** 2 + mp.mpf(b) ** 2) / 2
        B = (mp.mpf(a) - mp.mpf(b)) ** 2 / (2 * mp.pi)
        nngp = np.empty((len(F1), len(F2)))
        ntk = np.empty_like(nngp)
        for i, u in enumerate(F1):
            for j, v in enumerate(F2):
                k11, k12, k22 = to_mp(dot(u, u)), to_mp(dot(u, v)), to_mp(dot(v, v))
                th, n_in = mp.mpf(0), d
                for layer in range(mlp.depth + 1):
                    w, bias = mp.mpf(mlp.weight_vars[layer]), mp.mpf(mlp.bias_vars[layer])
                    if mlp.parameterization == "standard":
                        th = n_in * k12 + w * th + (1 if mlp.has_bias[layer] else 0)
                    k11, k12, k22 = w * k11 + bias, w * k12 + bias, w * k22 + bias
                    if mlp.parameterization == "ntk":
                        th = k12 + w * th
                    if layer == mlp.depth:
                        break
                    if k11 * k22 == 0:
                        sin_s, ang = mp.mpf(0), mp.pi / 2
                    else:
                        sin_s = mp.sqrt(max(k11 * k22 - k12 * k12, 0))  # s sin(angle)
                        ang = mp.atan2(sin_s, k12)
                    th *= A - B * ang
                    k11, k12, k22 = A * k11, A * k12 + B * (sin_s - ang * k12), A * k22
                    n_in = mlp.width
                nngp[i, j], ntk[i, j] = float(k12), float(th)
    return nngp, ntk


def _assert_matches_mp(mlp, X1, X2=None, rtol=1e-13):
    ours = nngp_ntk_gram(mlp, X1, X2)
    ref = _mp_abrelu_gram(mlp, X1, X2)
    d1 = np.abs(np.diag(_mp_abrelu_gram(mlp, X1)[0]))
    d2 = d1 if X2 is None else np.abs(np.diag(_mp_abrelu_gram(mlp, X2)[0]))
    for kind, o, r in zip(("nngp", "ntk"), ours, ref, strict=True):
        assert np.all(np.isfinite(o)), kind
        # entries that vanish (ReLU at antiparallel pairs) count against the pair's scale
        floor = 1e-3 * np.outer(np.sqrt(d1), np.sqrt(d2))
        diff = np.abs(o - r)
        scale = np.maximum(np.abs(r), floor)
        err = np.where(diff == 0, 0.0, diff / np.where(scale > 0, scale, 1e-300))
        assert err.max() <= rtol, (kind, err.max(), np.unravel_index(err.argmax(), err.shape))
        if X2 is None:
            assert np.array_equal(o, o.T)


_EDGE_MLPS = {
    "relu_L3": fc.MLP(3, "relu", 2.0, 0.0),
    "relu_L3_bias": fc.MLP(3, "relu", 2.0, 0.1),
    "leaky_L2_mixed_bias": fc.MLP(2, abrelu(0.1, 1.0), 1.7, [0.0, 0.2, 0.0]),
    "abs_L2": fc.MLP(2, abrelu(-1.0, 1.0), 1.1, 0.05),
    "relu_L2_standard_trainable": fc.MLP(
        2, "relu", 2.0, 0.0, parameterization="standard", width=64, bias="trainable"
    ),
    "abrelu_L3_standard_bias": fc.MLP(3, abrelu(-0.3, 1.5), 1.3, 0.3, parameterization="standard", width=16),
}


def _edge_inputs():
    """Generic rows, an exact positive multiple, an exact negative multiple, a repeated row and
    an all-zero row (products of these floats by powers of two and by -1 are exact)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((7, 4))
    X[2] = 2.0 * X[0]  # exactly parallel
    X[3] = -0.5 * X[0]  # exactly antiparallel
    X[4] = X[1]  # repeated
    X[5] = -X[1] + 1e-9 * rng.standard_normal(4)  # nearly antiparallel
    X[6] = 0.0
    return X


@pytest.mark.parametrize("name", list(_EDGE_MLPS))
@pytest.mark.parametrize("scale", [1e-150, 1e-90, 1e-30, 1.0, 1e30, 1e77, 1e150])
def test_gram_at_extreme_norms_against_mpmath(name, scale):
    """Inputs scaled by 1e-150 .. 1e150 (x.x' itself would over- or underflow), with exactly
    parallel, antiparallel, repeated and all-zero rows: every NNGP and NTK entry within 1e-13
    relative of the 50-digit arc-cosine recursion on the exact input kernel."""
    mlp = _EDGE_MLPS[name]
    X = _edge_inputs() * scale
    _assert_matches_mp(mlp, X)
    _assert_matches_mp(mlp, X[:4], X[2:] * 0.75)


def test_gram_with_mixed_extreme_norms_against_mpmath():
    """Rows of norms 1e-150 .. 1e150 in one matrix (cross pairs of very different scale)."""
    X = _edge_inputs()
    X *= np.array([1e-150, 1e150, 1e-150, 3e140, 1e150, 1e-120, 1.0])[:, None]
    for mlp in _EDGE_MLPS.values():
        _assert_matches_mp(mlp, X)


def test_gram_zero_row_is_finite_and_exact():
    """ReLU with an all-zero input row and no bias: NNGP row exactly 0 (NTK parameterisation:
    NTK row exactly 0 too); with a bias its preactivation variance is bias_var."""
    X = _edge_inputs()
    K, T = nngp_ntk_gram(fc.MLP(3, "relu", 2.0, 0.0), X)
    assert np.all(K[6] == 0) and np.all(K[:, 6] == 0) and np.all(T[6] == 0)
    K1 = fc.nngp_kernel(fc.MLP(1, "relu", 2.0, 0.3)).gram(X[6:7])
    # one hidden layer: q = 0.3, E relu(u)^2 = q/2, output = 2 q/2 + 0.3
    assert K1[0, 0] == pytest.approx(2 * 0.3 / 2 + 0.3, rel=1e-15)


@pytest.mark.parametrize("seed", range(6))
def test_gram_random_extreme_inputs_against_mpmath(seed):
    """Seeded random networks of the abrelu family and random inputs with log-uniform norms in
    1e-150 .. 1e150, some rows repeated, negated or doubled."""
    rng = np.random.default_rng(100 + seed)
    a, b = rng.uniform(-1, 1), rng.uniform(0.2, 1.5)
    depth = int(rng.integers(1, 4))
    kw = {}
    if rng.random() < 0.5:
        kw = dict(parameterization="standard", width=int(rng.integers(2, 100)))
        kw["bias"] = "trainable" if rng.random() < 0.5 else "auto"
    bias_var = [float(v) if rng.random() < 0.5 else 0.0 for v in rng.uniform(0, 0.5, depth + 1)]
    mlp = fc.MLP(depth, abrelu(a, b), float(rng.uniform(1.0, 2.5)), bias_var, **kw)
    d = int(rng.integers(1, 6))
    X = rng.standard_normal((7, d))
    X[3] = -X[0]
    X[4] = 4.0 * X[1]
    X[5] = X[2]
    X *= 10.0 ** rng.uniform(-150, 150, size=7)[:, None]
    _assert_matches_mp(mlp, X)
    _assert_matches_mp(mlp, X[:3], X[3:])


@pytest.mark.parametrize(("act", "scale"), [("erf", 1e77), ("gelu", 1e100)])
def test_general_activation_gram_never_returns_non_finite_entries(act, scale):
    """Outside the abrelu family the closed-form duals overflow for huge inputs (|x|^2/d ~ 1e154
    for erf, 1e200 for GELU): a ValueError instead of NaN entries."""
    X = np.random.default_rng(0).standard_normal((3, 4))
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="non-finite entries"):
        nngp_ntk_gram(fc.MLP(2, act, 1.5, 0.1), X * scale)


@pytest.mark.parametrize("scale", [1e10, 1e77])
def test_gelu_gram_at_huge_inputs_is_the_relu_gram(scale):
    """x Phi(x) = relu(x) + O(e^{-x^2/2}): at |x| ~ 1e10..1e77 the GELU network's NNGP equals the
    ReLU network's (closed-form arc-cosine kernel) to round-off; the NTK up to the bias and
    O(1/sqrt(q)) terms of the derivative dual (below 1e-10 at 1e10)."""
    X = np.random.default_rng(0).standard_normal((3, 4)) * scale
    g = nngp_ntk_gram(fc.MLP(2, "gelu", 1.5, 0.1), X)
    r = nngp_ntk_gram(fc.MLP(2, "relu", 1.5, 0.1), X)
    np.testing.assert_allclose(g[0], r[0], rtol=1e-13)
    np.testing.assert_allclose(g[1], r[1], rtol=1e-10 if scale < 1e20 else 1e-13)
