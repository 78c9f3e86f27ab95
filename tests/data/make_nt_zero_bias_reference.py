"""Generate ``tests/data/nt_zero_bias_reference.npz``: neural-tangents NNGP/NTK values of
networks whose Dense layers have a TRAINABLE bias initialised at zero (``b_std=0``).

Sibling of ``make_nt_reference.py`` (same scratch environment, same conventions, read its
docstring first). This script is NOT part of the library and is never run by the test-suite;
its output is committed and ``tests/test_kernels.py`` only reads it with
``np.load(..., allow_pickle=False)``.

Why: in ``stax.Dense(..., b_std=0.0, parameterization="standard")`` the bias is a parameter
(initialised at exactly zero) whose gradient 1 adds +1 to the standard-parameterisation NTK
of every such Dense, while ``b_std=None`` has no bias at all. fieldcurve's
``MLP(..., bias="trainable")`` is the former, ``bias="auto"`` with ``bias_var=0`` the latter.
In the NTK parameterisation the bias enters as ``b_std * beta``, so ``b_std=0`` adds nothing.

Recipe (exactly what produced the committed file)
-------------------------------------------------
Python 3.11.7, scratch virtual env outside the repository::

    python3.11 -m venv /tmp/ntvenv
    /tmp/ntvenv/bin/pip install neural-tangents==0.6.5 jax==0.5.3 jaxlib==0.5.3 \
        tf2jax==0.3.7 'scipy<1.14' numpy mpmath

then, from the repository root::

    /tmp/ntvenv/bin/python tests/data/make_nt_zero_bias_reference.py

Runtime: a few seconds.

File layout
-----------
* ``x1`` (6, 5), ``x2`` (3, 5): float64 inputs off the sphere (norms 0.2 .. 3 sqrt(d)), no
  parallel or antiparallel pairs (the NT ReLU NTK loses ~1e-8 there; see the sibling script).
* ``x_zero`` (3, 5): row 1 is all zeros. Without a bias its preactivations have variance 0;
  stax then uses E[phi'(u) phi'(v)] at the angle pi/2 (ReLU: 1/4, i.e. phi'(0) = 1/2).
* ``cases_json``: 1-element unicode array, a JSON list of case dicts with keys ``index, name,
  activation, depth, parameterization, width, weight_var, bias_var, b_std_zero_means``;
  ``weight_var``/``bias_var`` are scalars or lists (one per Dense, readout last); every Dense
  gets ``b_std = sqrt(bias_var)`` (0.0 included, never None).
* ``meta_json``: versions and conventions.
* For case ``i``: ``c{i:03d}_nngp_11, _ntk_11`` (``kernel_fn(x1, None)``), ``_nngp_12, _ntk_12``
  (x1 vs x2), ``_zz`` (x_zero with itself), ``_z1`` (x_zero vs x1), and
  ``c{i:03d}_ntk_nobias_{11,12,zz,z1}``: the same network with ``b_std=None`` wherever
  ``bias_var == 0`` (what ``bias="auto"`` means).
"""

from __future__ import annotations

import json
import math
import pathlib
import platform

import jax

jax.config.update("jax_enable_x64", True)

import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import stax  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent / "nt_zero_bias_reference.npz"
SEED = 20240612
D = 5


def make_inputs():
    rng = np.random.default_rng(SEED)
    x1 = rng.standard_normal((6, D))
    x1 *= (np.array([0.2, 0.7, 1.0, 1.5, 2.2, 3.0]) * math.sqrt(D) / np.linalg.norm(x1, axis=1))[:, None]
    x2 = rng.standard_normal((3, D)) * np.array([[0.5], [1.3], [2.0]])
    xz = rng.standard_normal((3, D))
    xz[1] = 0.0  # an all-zero input (zero preactivation variance without bias)
    return x1, x2, xz


def make_cases():
    cases = []
    for act, wv in (("relu", 2.0), ("erf", 1.7)):
        for depth in (1, 2, 3):
            for width in (64, 512):
                cases.append(
                    dict(
                        name=f"{act}_L{depth}_standard_n{width}_b0",
                        activation=act,
                        depth=depth,
                        parameterization="standard",
                        width=width,
                        weight_var=wv,
                        bias_var=0.0,
                    )
                )
    # zero and non-zero bias variances mixed per layer
    cases.append(
        dict(
            name="relu_L3_standard_mixed",
            activation="relu",
            depth=3,
            parameterization="standard",
            width=64,
            weight_var=[1.5, 2.0, 2.5, 1.2],
            bias_var=[0.0, 0.3, 0.0, 0.1],
        )
    )
    cases.append(
        dict(
            name="erf_L2_standard_mixed",
            activation="erf",
            depth=2,
            parameterization="standard",
            width=32,
            weight_var=[1.2, 2.0, 0.7],
            bias_var=[0.2, 0.0, 0.0],
        )
    )
    # NTK parameterisation: b_std = 0 must change nothing
    for act, wv in (("relu", 2.0), ("erf", 1.7)):
        cases.append(
            dict(
                name=f"{act}_L3_ntk_b0",
                activation=act,
                depth=3,
                parameterization="ntk",
                width=64,
                weight_var=wv,
                bias_var=0.0,
            )
        )
    for i, c in enumerate(cases):
        c["index"] = i
        c["b_std_zero_means"] = "trainable bias initialised at 0"
    return cases


def per_layer(v, depth):
    if isinstance(v, (list, tuple)):
        assert len(v) == depth + 1
        return [float(t) for t in v]
    return [float(v)] * (depth + 1)


def build_kernel_fn(case, zero_is_none):
    wvs = per_layer(case["weight_var"], case["depth"])
    bvs = per_layer(case["bias_var"], case["depth"])
    layers = []
    for ell in range(case["depth"] + 1):
        out = case["width"] if ell < case["depth"] else 1
        b_std = None if (zero_is_none and bvs[ell] == 0) else math.sqrt(bvs[ell])
        layers.append(
            stax.Dense(out, W_std=math.sqrt(wvs[ell]), b_std=b_std, parameterization=case["parameterization"])
        )
        if ell < case["depth"]:
            layers.append(stax.Relu() if case["activation"] == "relu" else stax.Erf())
    _, _, kernel_fn = stax.serial(*layers)
    return kernel_fn


def main():
    x1, x2, xz = make_inputs()
    cases = make_cases()
    arrays = {"x1": x1, "x2": x2, "x_zero": xz}
    for case in cases:
        i = case["index"]
        kf = build_kernel_fn(case, zero_is_none=False)
        kf_none = build_kernel_fn(case, zero_is_none=True)
        for tag, a, b in (("11", x1, None), ("12", x1, x2), ("zz", xz, None), ("z1", xz, x1)):
            k = kf(a, b, ("nngp", "ntk"))
            arrays[f"c{i:03d}_nngp_{tag}"] = np.asarray(k.nngp, dtype=np.float64)
            arrays[f"c{i:03d}_ntk_{tag}"] = np.asarray(k.ntk, dtype=np.float64)
            arrays[f"c{i:03d}_ntk_nobias_{tag}"] = np.asarray(kf_none(a, b, "ntk"), dtype=np.float64)
        for v in arrays.values():
            assert np.all(np.isfinite(v))
        rel = np.abs(arrays[f"c{i:03d}_ntk_11"] / arrays[f"c{i:03d}_ntk_nobias_11"] - 1).max()
        print(f"c{i:03d} {case['name']}: max |NTK(b_std=0)/NTK(no bias) - 1| = {rel:.3g}")
    meta = {
        "seed": SEED,
        "d": D,
        "python": platform.python_version(),
        "neural_tangents": getattr(nt, "__version__", "0.6.5"),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "jax_enable_x64": True,
        "evaluation": "eager kernel_fn calls (no jax.jit)",
        "conventions": "as make_nt_reference.py; b_std = 0.0 is a trainable zero-initialised bias",
    }
    arrays["cases_json"] = np.array([json.dumps(cases)])
    arrays["meta_json"] = np.array([json.dumps(meta)])
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
