"""Input validation shared by the public functions (private)."""

from __future__ import annotations

import numbers

import numpy as np


def check_dimension(d: object, name: str = "d") -> int:
    """Return ``d`` as an int after checking it is an integer >= 2."""
    if isinstance(d, bool) or not isinstance(d, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 2, got {d!r}")
    if d < 2:
        raise ValueError(f"{name} must be >= 2 (the sphere S^(d-1) needs d >= 2), got {d}")
    return int(d)


def check_nonneg_int(value: object, name: str) -> int:
    """Return ``value`` as an int after checking it is a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def check_variance(value: object, name: str) -> float:
    """Return ``value`` as a float after checking it is finite and >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def check_finite_array(x: object, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``x`` as a float64 array after checking its shape and that it is finite."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of real numbers") from exc
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr
