"""The Gram-matrix benchmark's two contestants, shared by run.py and memprobe.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from baselines import relu_nngp_ntk_numpy
from numpy.typing import NDArray

import fieldcurve
import fieldcurve.kernels

DEPTH, WEIGHT_VAR, BIAS_VAR = 5, 2.0, 0.1

GramFn = Callable[[NDArray[np.float64]], tuple[NDArray[np.float64], NDArray[np.float64]]]


def benchmark_mlp() -> fieldcurve.MLP:
    return fieldcurve.MLP(DEPTH, "relu", WEIGHT_VAR, BIAS_VAR, parameterization="ntk")


def candidate() -> tuple[GramFn, str]:
    """fieldcurve's Gram route: ``nngp_ntk_gram`` if the installed version has it."""
    mlp = benchmark_mlp()
    fused = getattr(fieldcurve.kernels, "nngp_ntk_gram", None)
    if callable(fused):
        return (lambda X: fused(mlp, X)), "fieldcurve.kernels.nngp_ntk_gram(mlp, X)"
    nngp, ntk = fieldcurve.nngp_kernel(mlp), fieldcurve.ntk_kernel(mlp)
    label = "nngp_kernel(mlp).gram(X), ntk_kernel(mlp).gram(X)"
    return (lambda X: (nngp.gram(X), ntk.gram(X))), label


def baseline() -> tuple[GramFn, str]:
    """Plain whole-matrix numpy recursion (benchmarks/baselines.py)."""
    return (lambda X: relu_nngp_ntk_numpy(X, DEPTH, WEIGHT_VAR, BIAS_VAR)), "plain numpy recursion"


CONTESTANTS = {"candidate": candidate, "baseline": baseline}
