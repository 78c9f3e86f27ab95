"""Generate ``tests/data/nt_reference.npz``: infinite-width NNGP/NTK reference
values from neural-tangents (plus an independent 50-digit mpmath oracle).

This script is NOT part of the library and is never run by the test-suite; its
output file is committed and the tests only read it (``np.load(...,
allow_pickle=False)``).

Recipe (exactly what produced the committed file)
-------------------------------------------------
Python 3.11 (3.11.7), in a scratch virtual env outside the repository::

    python3.11 -m venv /tmp/ntvenv
    /tmp/ntvenv/bin/pip install neural-tangents==0.6.5 jax==0.5.3 jaxlib==0.5.3 \
        tf2jax==0.3.7 'scipy<1.14' numpy mpmath
    # (resolved to numpy 2.2.6, scipy 1.13.1, mpmath 1.4.1, tensorflow 2.21.0)

then, from the repository root::

    /tmp/ntvenv/bin/python tests/data/make_nt_reference.py

Runtime: ~7 minutes on 2 cores (most of it the mpmath quadrature for GELU).

Conventions (neural-tangents / stax)
------------------------------------
* An MLP of depth ``L`` has ``L`` hidden layers, each
  ``stax.Dense(width, W_std=sqrt(weight_var), b_std=sqrt(bias_var) or None,
  parameterization=P)`` followed by the activation, then a readout
  ``stax.Dense(1, W_std, b_std, parameterization=P)``.  ``bias_var == 0`` means
  "no bias" (``b_std=None``), which matters for the standard parameterization.
* Input kernel: ``K0(x, x') = x . x' / d``.
* Dense, both parameterizations: ``K <- weight_var * K_in + bias_var``.
* NTK, ``parameterization="ntk"``:
  ``Theta <- K_new + weight_var * Theta_in``  (``Theta_in = 0`` for the inputs).
* NTK, ``parameterization="standard"`` (stax ``Dense.kernel_fn``):
  ``Theta <- n_in * K_in + weight_var * Theta_in + (1 if bias else 0)``
  where ``K_in``/``Theta_in`` are the kernels *entering* the Dense layer
  (post-activation, or ``K0``/0 for the first layer) and ``n_in`` is the
  layer's fan-in: ``d`` for the first layer and ``width`` for the others.
* Activation: ``K <- E[phi(u) phi(v)]``, ``Theta <- Theta * E[phi'(u) phi'(v)]``
  with ``(u, v) ~ N(0, [[K11, K12], [K12, K22]])``.
* ``stax.ABRelu(a, b)``: ``phi(x) = a * min(x, 0) + b * max(x, 0)``
  (``a`` = slope for x < 0, ``b`` = slope for x > 0); ``stax.Relu() ==
  ABRelu(0, 1)``.  ``stax.Erf(a=1, b=1, c=0)``: ``phi(x) = a*erf(b*x) + c``.
  ``stax.Gelu(approximate=False)``: ``phi(x) = x * Phi(x)`` (exact GELU).

File layout
-----------
* ``x1`` (7, 5), ``x2`` (4, 5), ``x_sphere`` (6, 5): float64 inputs.
* ``cases_json``: 1-element unicode array, a JSON list of case dicts with keys
  ``index, name, activation, activation_params, depth, parameterization,
  width, weight_var, bias_var, has_mp``.  ``weight_var``/``bias_var`` are
  scalars (same for every Dense layer) or lists with one value per Dense layer
  (readout last).
* ``meta_json``: 1-element unicode array, JSON dict with versions, seed,
  conventions and the description of the special rows of the inputs.
* ``pair_11`` (7, 7), ``pair_12`` (7, 4), ``pair_ss`` (6, 6): int8 category
  of every input pair, by the cosine of the *inputs*: 0 generic, 1 diagonal
  (same row, X2=None), 2 coincident off-diagonal (cos = +1: duplicate rows,
  positive multiples, cross-set copies), 3 exactly antiparallel (cos = -1),
  4 nearly antiparallel (-1 < cos < -0.999).  Use it to pick tolerances.
* For case index ``i`` (key prefix ``c{i:03d}_``):
  ``nngp_11, ntk_11`` (x1 with itself, ``kernel_fn(x1, None)``),
  ``nngp_12, ntk_12`` (x1 vs x2), ``nngp_ss, ntk_ss`` (x_sphere with itself).
  Where ``has_mp`` is true the same six arrays computed independently with
  mpmath at 50 significant digits (then rounded to float64) are stored as
  ``c{i:03d}_mp_nngp_11`` etc.

Accuracy of the neural-tangents values (vs. the mpmath oracle)
--------------------------------------------------------------
The NT values are evaluated eagerly (``kernel_fn`` is NOT wrapped in
``jax.jit``).  NNGP: <= ~1e-14 relative everywhere (larger only for values that
are themselves ~1e-16 of the kernel scale).  NTK, erf/gelu: <= ~1e-14.
NTK, ReLU/ABReLU: ~1e-15 on the diagonal and at generic pairs, but up to
~2.5e-8 relative at coincident (category 2) and exactly antiparallel
(category 3) pairs: stax computes the angle as
``arctan2(sqrt(max(K11*K22 - K12**2, 0)), K12)`` and the cancellation leaves an
O(sqrt(eps)) error in the angle, which enters ``E[phi'phi']`` linearly (the NNGP
is immune because ``sin t - t cos t = O(t^3)``).  The diagonal is exact in
eager mode only because the NT diagonal and the variances it is compared with
are bit-identical; under ``jax.jit`` the diagonal NTK entries also pick up
~1e-8 relative error.  Tests that need tighter tolerances there should use the
``mp_`` arrays.
"""

from __future__ import annotations

import json
import math
import pathlib
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import mpmath as mp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "nt_reference.npz"
SEED = 20240611
D = 5
WIDTH = 64
MP_DPS = 50


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------
def make_inputs():
    rng = np.random.default_rng(SEED)
    x1 = rng.standard_normal((7, D))
    # different norms
    x1[0] *= 1.0
    x1[1] *= 0.6
    x1[2] *= 1.8
    x1[3] = x1[1]  # exact duplicate of row 1
    x1[4] = 2.5 * x1[0]  # positive scalar multiple of row 0
    x1[5] = -1.3 * x1[2] + 0.01 * rng.standard_normal(D)  # nearly antiparallel to row 2
    x1[6] *= 0.3  # small norm

    x2 = rng.standard_normal((4, D))
    x2[0] *= 1.4
    x2[1] = -0.5 * x1[0]  # exactly antiparallel to x1[0] (and x1[4])
    x2[2] = x1[2]  # exact copy of x1[2] (cross-set coincident point)
    x2[3] *= 0.45

    xs = rng.standard_normal((6, D))
    xs *= math.sqrt(D) / np.linalg.norm(xs, axis=1, keepdims=True)
    return x1, x2, xs


PAIR_CODES = {"generic": 0, "diag": 1, "coincident": 2, "antiparallel": 3, "near_antiparallel": 4}


def pair_categories(a, b, same):
    na = np.linalg.norm(a, axis=1)[:, None]
    nb = np.linalg.norm(b, axis=1)[None, :]
    cos = (a @ b.T) / na / nb
    out = np.zeros(cos.shape, dtype=np.int8)
    out[cos > 1 - 1e-12] = PAIR_CODES["coincident"]
    out[cos < -1 + 1e-12] = PAIR_CODES["antiparallel"]
    out[(cos < -0.999) & (cos >= -1 + 1e-12)] = PAIR_CODES["near_antiparallel"]
    if same:
        np.fill_diagonal(out, PAIR_CODES["diag"])
    return out


INPUT_NOTES = {
    "x1[3]": "exact duplicate of x1[1]",
    "x1[4]": "2.5 * x1[0] (positive scalar multiple)",
    "x1[5]": "-1.3 * x1[2] + 0.01 * noise (nearly antiparallel to x1[2])",
    "x1[6]": "small norm (scaled by 0.3)",
    "x2[1]": "-0.5 * x1[0] (exactly antiparallel to x1[0]; products exact in fp)",
    "x2[2]": "exact copy of x1[2]",
    "x_sphere": "6 points with |x| = sqrt(5), i.e. x.x/d = 1",
}


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------
ACTIVATIONS = [
    ("relu", {"a": 0.0, "b": 1.0}),
    ("erf", {"a": 1.0, "b": 1.0, "c": 0.0}),
    ("gelu", {"approximate": False}),
    ("abrelu", {"a": -0.3, "b": 1.5}),
    ("abrelu", {"a": 0.1, "b": 1.0}),
]


def act_layer(activation, params):
    if activation == "relu":
        return stax.Relu()
    if activation == "erf":
        return stax.Erf(a=params["a"], b=params["b"], c=params["c"])
    if activation == "gelu":
        return stax.Gelu(approximate=params["approximate"])
    if activation == "abrelu":
        return stax.ABRelu(params["a"], params["b"])
    raise ValueError(activation)


def act_tag(activation, params):
    if activation == "abrelu":
        return f"abrelu({params['a']:g},{params['b']:g})"
    return activation


def make_cases():
    cases = []
    for activation, params in ACTIVATIONS:
        for depth in (1, 3, 5):
            for param in ("ntk", "standard"):
                for wv, bv in ((2.0, 0.0), (1.7, 0.3)):
                    cases.append(
                        dict(
                            name=f"{act_tag(activation, params)}_L{depth}_{param}_w{wv:g}_b{bv:g}",
                            activation=activation,
                            activation_params=params,
                            depth=depth,
                            parameterization=param,
                            width=WIDTH,
                            weight_var=wv,
                            bias_var=bv,
                        )
                    )
    # per-layer variance sequences (one value per Dense layer, readout last)
    cases.append(
        dict(
            name="relu_L2_ntk_perlayer",
            activation="relu",
            activation_params={"a": 0.0, "b": 1.0},
            depth=2,
            parameterization="ntk",
            width=WIDTH,
            weight_var=[1.5, 2.5, 0.8],
            bias_var=[0.1, 0.0, 0.4],
        )
    )
    cases.append(
        dict(
            name="erf_L3_standard_perlayer",
            activation="erf",
            activation_params={"a": 1.0, "b": 1.0, "c": 0.0},
            depth=3,
            parameterization="standard",
            width=WIDTH,
            weight_var=[1.2, 2.0, 0.7, 1.5],
            bias_var=[0.0, 0.2, 0.05, 0.0],
        )
    )
    for i, c in enumerate(cases):
        c["index"] = i
    return cases


def per_layer(v, depth):
    if isinstance(v, (list, tuple)):
        assert len(v) == depth + 1
        return [float(t) for t in v]
    return [float(v)] * (depth + 1)


def build_kernel_fn(case):
    wvs = per_layer(case["weight_var"], case["depth"])
    bvs = per_layer(case["bias_var"], case["depth"])
    P = case["parameterization"]
    layers = []
    for ell in range(case["depth"] + 1):
        out = case["width"] if ell < case["depth"] else 1
        b_std = math.sqrt(bvs[ell]) if bvs[ell] != 0 else None
        layers.append(stax.Dense(out, W_std=math.sqrt(wvs[ell]), b_std=b_std, parameterization=P))
        if ell < case["depth"]:
            layers.append(act_layer(case["activation"], case["activation_params"]))
    _, _, kernel_fn = stax.serial(*layers)
    return kernel_fn


def nt_case(case, x1, x2, xs):
    kf = build_kernel_fn(case)
    out = {}
    for tag, a, b in (("11", x1, None), ("12", x1, x2), ("ss", xs, None)):
        k = kf(a, b, ("nngp", "ntk"))
        out[f"nngp_{tag}"] = np.asarray(k.nngp, dtype=np.float64)
        out[f"ntk_{tag}"] = np.asarray(k.ntk, dtype=np.float64)
    return out


# --------------------------------------------------------------------------
# Independent mpmath oracle (50 digits)
# --------------------------------------------------------------------------
def _abrelu_E(a, b):
    a, b = mp.mpf(a), mp.mpf(b)
    fac = (a - b) ** 2 / (2 * mp.pi)
    half = (a * a + b * b) / 2

    def E(K11, K22, K12):
        s = K11 * K22 - K12 * K12
        if s < 0:
            s = mp.mpf(0)
        root = mp.sqrt(s)
        # theta = arccos(K12 / sqrt(K11 K22)) computed without cancellation
        theta = mp.atan2(root, K12)
        dot = half - fac * theta
        return fac * root + dot * K12, dot

    return E


def _erf_E(a, b, c):
    assert (a, b, c) == (1.0, 1.0, 0.0)

    def E(K11, K22, K12):
        p = (1 + 2 * K11) * (1 + 2 * K22)
        nngp = 2 / mp.pi * mp.asin(2 * K12 / mp.sqrt(p))
        dot = 4 / mp.pi / mp.sqrt(p - 4 * K12 * K12)
        return nngp, dot

    return E


def _gelu_E():
    """E[phi(u)phi(v)], E[phi'(u)phi'(v)] for phi(x) = x Phi(x), by conditioning
    v on u (closed-form inner expectation) and 1-D tanh-sinh quadrature."""
    Phi, pdf = mp.ncdf, mp.npdf

    def E(K11, K22, K12):
        r = K12 / K11
        tau2 = K22 - K12 * K12 / K11
        if tau2 < 0:
            tau2 = mp.mpf(0)
        s = mp.sqrt(1 + tau2)
        sq = mp.sqrt(K11)

        def f_nngp(z):
            u = sq * z
            mu = r * u
            m = mu / s
            inner = mu * Phi(m) + tau2 / s * pdf(m)  # E[v Phi(v) | u]
            return u * Phi(u) * inner * pdf(z)

        def f_dot(z):
            u = sq * z
            mu = r * u
            m = mu / s
            inner = Phi(m) + mu * pdf(m) / s**3  # E[phi'(v) | u]
            return (Phi(u) + u * pdf(u)) * inner * pdf(z)

        nngp = mp.quad(f_nngp, [-mp.inf, 0, mp.inf])
        dot = mp.quad(f_dot, [-mp.inf, 0, mp.inf])
        return nngp, dot

    return E


def mp_expectation(case):
    act, p = case["activation"], case["activation_params"]
    if act == "relu":
        return _abrelu_E(0, 1)
    if act == "abrelu":
        return _abrelu_E(p["a"], p["b"])
    if act == "erf":
        return _erf_E(p["a"], p["b"], p["c"])
    if act == "gelu":
        return _gelu_E()
    raise ValueError(act)


def mp_kernels(case, z):
    """NNGP and NTK Gram matrices (lists of lists of mpf) of the rows of z."""
    E = mp_expectation(case)
    L = case["depth"]
    wvs = [mp.mpf(v) for v in per_layer(case["weight_var"], L)]
    bvs = [mp.mpf(v) for v in per_layer(case["bias_var"], L)]
    n_in = [D] + [case["width"]] * L
    n = len(z)
    zm = [[mp.mpf(float(t)) for t in row] for row in z]
    K = [[mp.fsum(zm[i][k] * zm[j][k] for k in range(D)) / D for j in range(n)] for i in range(n)]
    T = [[mp.mpf(0)] * n for _ in range(n)]
    for ell in range(L + 1):
        Kp = [[wvs[ell] * K[i][j] + bvs[ell] for j in range(n)] for i in range(n)]
        if case["parameterization"] == "ntk":
            Tp = [[Kp[i][j] + wvs[ell] * T[i][j] for j in range(n)] for i in range(n)]
        else:
            one = 1 if bvs[ell] != 0 else 0
            Tp = [[n_in[ell] * K[i][j] + wvs[ell] * T[i][j] + one for j in range(n)] for i in range(n)]
        if ell == L:
            return Kp, Tp
        K = [[None] * n for _ in range(n)]
        T = [[None] * n for _ in range(n)]
        for i in range(n):
            for j in range(i, n):
                nn_, dot = E(Kp[i][i], Kp[j][j], Kp[i][j])
                K[i][j] = K[j][i] = nn_
                T[i][j] = Tp[i][j] * dot
                T[j][i] = Tp[j][i] * dot


def mp_case(case, x1, x2, xs):
    with mp.workdps(MP_DPS):
        z = np.concatenate([x1, x2], axis=0)
        K, T = mp_kernels(case, z)
        Ks, Ts = mp_kernels(case, xs)
    n1 = len(x1)

    def f(M):
        return np.array([[float(v) for v in row] for row in M], dtype=np.float64)

    K, T, Ks, Ts = f(K), f(T), f(Ks), f(Ts)
    return {
        "nngp_11": K[:n1, :n1],
        "ntk_11": T[:n1, :n1],
        "nngp_12": K[:n1, n1:],
        "ntk_12": T[:n1, n1:],
        "nngp_ss": Ks,
        "ntk_ss": Ts,
    }


def wants_mp(case):
    """Closed-form activations: every case.  GELU (quadrature, slow): two cases."""
    if case["activation"] != "gelu":
        return True
    return case["name"] in ("gelu_L1_ntk_w1.7_b0.3", "gelu_L3_standard_w1.7_b0.3")


# --------------------------------------------------------------------------
def main():
    t0 = time.time()
    x1, x2, xs = make_inputs()
    cases = make_cases()
    arrays = {
        "x1": x1,
        "x2": x2,
        "x_sphere": xs,
        "pair_11": pair_categories(x1, x1, True),
        "pair_12": pair_categories(x1, x2, False),
        "pair_ss": pair_categories(xs, xs, True),
    }
    for case in cases:
        i = case["index"]
        res = nt_case(case, x1, x2, xs)
        for k, v in res.items():
            assert np.all(np.isfinite(v)), (case["name"], k)
            arrays[f"c{i:03d}_{k}"] = v
        case["has_mp"] = bool(wants_mp(case))
        if case["has_mp"]:
            t = time.time()
            res = mp_case(case, x1, x2, xs)
            for k, v in res.items():
                arrays[f"c{i:03d}_mp_{k}"] = v
            print(f"  mp {case['name']}: {time.time() - t:.1f}s", flush=True)
        print(f"c{i:03d} {case['name']} done ({time.time() - t0:.0f}s)", flush=True)

    meta = {
        "seed": SEED,
        "d": D,
        "python": platform.python_version(),
        "neural_tangents": nt.__version__ if hasattr(nt, "__version__") else "0.6.5",
        "jax": jax.__version__,
        "numpy": np.__version__,
        "mpmath": mp.__version__,
        "mp_dps": MP_DPS,
        "jax_enable_x64": True,
        "evaluation": "eager kernel_fn calls (no jax.jit)",
        "pair_codes": PAIR_CODES,
        "inputs": INPUT_NOTES,
        "conventions": {
            "input_kernel": "K0 = x.x'/d",
            "dense_nngp": "K = weight_var*K_in + bias_var",
            "dense_ntk_ntk_param": "Theta = K + weight_var*Theta_in",
            "dense_ntk_standard_param": (
                "Theta = n_in*K_in + weight_var*Theta_in + (1 if bias_var != 0 "
                "else 0); n_in = d for the first Dense, width otherwise; "
                "K_in/Theta_in are the kernels entering the Dense layer"
            ),
            "activation": "K = E[phi(u)phi(v)], Theta = Theta*E[phi'(u)phi'(v)]",
            "abrelu": "phi(x) = a*min(x,0) + b*max(x,0)",
            "relu": "abrelu with a=0, b=1",
            "erf": "phi(x) = a*erf(b*x) + c",
            "gelu": "phi(x) = x*Phi(x) (exact, approximate=False)",
            "bias_var_zero": "no bias (stax b_std=None)",
            "depth": "number of hidden Dense+activation layers; plus a Dense(1) readout",
        },
    }
    arrays["cases_json"] = np.array([json.dumps(cases)])
    arrays["meta_json"] = np.array([json.dumps(meta)])
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} cases, {time.time() - t0:.0f}s)")
    report(OUT)


def report(path):
    """Max relative deviation of neural-tangents from the mpmath oracle, by
    activation, kernel and input-pair category."""
    f = np.load(path, allow_pickle=False)
    cases = json.loads(str(f["cases_json"][0]))
    names = {v: k for k, v in PAIR_CODES.items()}
    stats = {}
    for c in cases:
        if not c["has_mp"]:
            continue
        act = act_tag(c["activation"], c["activation_params"])
        p = f"c{c['index']:03d}_"
        for kind in ("nngp", "ntk"):
            for tag in ("11", "12", "ss"):
                a = f[p + f"{kind}_{tag}"]
                b = f[p + f"mp_{kind}_{tag}"]
                scale = np.abs(b).max()
                # relative error; entries that are ~0 relative to the kernel
                # scale are measured relative to the scale instead
                rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-10 * scale)
                cat = f[f"pair_{tag}"]
                for code in np.unique(cat):
                    key = (act, kind, names[int(code)])
                    v = float(rel[cat == code].max())
                    if v > stats.get(key, (-1.0, ""))[0]:
                        stats[key] = (v, c["name"] + ":" + tag)
    print("max relative deviation NT vs mpmath (activation, kernel, pair category):")
    for key in sorted(stats):
        v, where = stats[key]
        print(f"  {key[0]:18s} {key[1]:5s} {key[2]:18s} {v:.2e}  ({where})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--report":
        report(OUT)
    else:
        main()
