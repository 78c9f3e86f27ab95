r"""Data sets for learning curves: user arrays and files, and bundled real data.

A :class:`Dataset` holds inputs ``X`` (M, d) and labels ``y`` (M,) or (M, C). Inputs are used
as given by the kernels (neural-tangents convention :math:`x\cdot x'/d`); :func:`to_sphere`
centres them and projects each row onto the sphere of radius :math:`\sqrt d`, the convention of
the rest of fieldcurve. Files are read without pickle (``.npy`` with ``allow_pickle=False``,
``.csv`` with numpy's text reader).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldcurve._checks import check_finite_array

__all__ = ["Dataset", "load_dataset", "load_digits", "to_sphere"]


@dataclass(frozen=True)
class Dataset:
    """Inputs ``X`` (M, d) and labels ``y`` (M,) or (M, C)."""

    X: NDArray[np.float64]
    y: NDArray[np.float64]
    name: str = "data"

    def __post_init__(self) -> None:
        X = check_finite_array(self.X, "X", ndim=2)
        y = check_finite_array(self.y, "y")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"labels y have {y.shape[0]} rows but X has {X.shape[0]}")
        if X.shape[0] < 2:
            raise ValueError("a data set needs at least two points")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)

    @property
    def size(self) -> int:
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        return int(self.X.shape[1])

    @property
    def Y(self) -> NDArray[np.float64]:
        """Labels as a 2-D array (M, C)."""
        return self.y[:, None] if self.y.ndim == 1 else self.y


def to_sphere(X: ArrayLike) -> NDArray[np.float64]:
    r"""Centre the columns and scale every row to norm :math:`\sqrt d`."""
    X = check_finite_array(X, "X", ndim=2)
    Xc = X - X.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(Xc, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a row of X equals the mean; it cannot be projected onto the sphere")
    return Xc * (np.sqrt(X.shape[1]) / norms)


def load_digits(*, one_hot: bool = True) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, d = 64; no network needed), projected onto
    the sphere by :func:`to_sphere`; labels one-hot (centred: 1 - 1/10 for the true class,
    -1/10 otherwise) or the digit value."""
    try:
        from sklearn.datasets import load_digits as _sk_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError(
            "the digits data set needs scikit-learn: pip install 'fieldcurve[validation]'"
        ) from exc
    raw = _sk_digits()
    X = to_sphere(raw.data.astype(np.float64))
    labels = raw.target.astype(np.int64)
    if one_hot:
        y = np.full((len(labels), 10), -0.1)
        y[np.arange(len(labels)), labels] += 1.0
    else:
        y = labels.astype(np.float64)
    return Dataset(X=X, y=y, name="digits")


def load_dataset(path: str | Path, labels: str | Path | int | None = None) -> Dataset:
    """Read ``X`` from a ``.npy`` or ``.csv`` file and labels from a column of it or a file.

    ``labels`` is a column index (CSV: the column is removed from X), a column name (CSV with a
    header row), or the path of a ``.npy``/``.csv`` file with one label per row.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"data file not found: {path}")
    header: list[str] | None = None
    if path.suffix == ".npy":
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"cannot read {path} as a numeric .npy array: {exc}") from exc
    elif path.suffix == ".csv":
        with open(path) as fh:
            first = fh.readline()
        try:
            [float(v) for v in first.split(",")]
            skip = 0
        except ValueError:
            header = [h.strip() for h in first.split(",")]
            skip = 1
        try:
            data = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
        except ValueError as exc:
            raise ValueError(f"cannot read {path} as numeric CSV: {exc}") from exc
    else:
        raise ValueError(f"unsupported data file {path} (use .npy or .csv)")
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"{path} must hold a 2-D array, got shape {data.shape}")
    if labels is None:
        raise ValueError("labels are required: a column (index or name) or a file")
    if isinstance(labels, (int, np.integer)) or (isinstance(labels, str) and labels.lstrip("-").isdigit()):
        col = int(labels)
        if not -data.shape[1] <= col < data.shape[1]:
            raise ValueError(f"label column {col} is outside the {data.shape[1]} columns")
        y = data[:, col]
        X = np.delete(data, col % data.shape[1], axis=1)
    elif isinstance(labels, str) and header is not None and labels in header:
        col = header.index(labels)
        y = data[:, col]
        X = np.delete(data, col, axis=1)
    else:
        lpath = Path(labels)
        if not lpath.exists():
            raise ValueError(f"labels {labels!r}: not a column of {path.name} and not a file")
        if lpath.suffix == ".npy":
            y = np.load(lpath, allow_pickle=False).astype(np.float64)
        else:
            y = np.loadtxt(lpath, delimiter=",", ndmin=1)
        X = data
    return Dataset(X=X, y=y, name=path.stem)
