r"""Data sets for learning curves: user arrays and files, and bundled real data.

A :class:`Dataset` holds inputs ``X`` (M, d) and labels ``y`` (M,) or (M, C). Inputs are used
as given by the kernels (neural-tangents convention :math:`x\cdot x'/d`); :func:`to_sphere`
centres them and projects each row onto the sphere of radius :math:`\sqrt d`, the convention of
the rest of fieldcurve.

Files are read without pickle: ``.npy`` through its header (shape and type checked before the
data are read, ``allow_pickle=False``; real integer, boolean or floating types only — complex
arrays are refused, never truncated), ``.csv`` with numpy's text reader. A CSV's first line is a
header if and only if one of its cells is non-empty and not a number (so a first data row with
an empty cell is never taken for a header: it is read, and refused with the row and column of
the empty cell, like every other row with a missing value).

**Errors on multi-output labels** (one-hot classes): the test error of a data set is the squared
error *summed over the C outputs* and averaged over the held-out points — absolute, not divided
by C nor by the labels' power. :attr:`Dataset.label_power` (the mean over points of
:math:`\sum_c y_c^2`) is the error of the zero predictor, the scale to compare it with; the
encoding is stated in :attr:`Dataset.encoding`. For :func:`load_digits`' centred one-hot labels
(:math:`1 - 1/10` for the true class, :math:`-1/10` for the others) it is 0.9.

Limits (refused with a ``ValueError`` before the data are allocated): at most
:data:`MAX_ROWS` (20000) points — the M x M kernel matrix of a data-set learning curve takes
8 M^2 bytes (3.2 GB at the limit) and its eigendecomposition O(M^3) —, at most
:data:`MAX_COLUMNS` (100000) columns, at most :data:`MAX_VALUES` (10^8) values per array, and
CSV files of at most :data:`MAX_CSV_BYTES` (2 GiB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from fieldcurve._checks import check_finite_array

__all__ = [
    "MAX_COLUMNS",
    "MAX_CSV_BYTES",
    "MAX_ROWS",
    "MAX_VALUES",
    "Dataset",
    "load_dataset",
    "load_digits",
    "to_sphere",
]

#: most points (rows) of a data set
MAX_ROWS = 20_000
#: most columns of a data file
MAX_COLUMNS = 100_000
#: most values (rows x columns) of one array read from a file
MAX_VALUES = 100_000_000
#: largest CSV file, in bytes
MAX_CSV_BYTES = 2**31

_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floating point


def _check_real(x: object, name: str) -> None:
    kind = np.asarray(x).dtype.kind if not isinstance(x, np.ndarray) else x.dtype.kind
    if kind == "c":
        raise ValueError(f"{name} is complex; fieldcurve needs real values (split real and imaginary parts)")


@dataclass(frozen=True)
class Dataset:
    """Inputs ``X`` (M, d) and labels ``y`` (M,) or (M, C).

    Parameters
    ----------
    X
        Inputs, M rows of d real numbers (2 <= M <= :data:`MAX_ROWS`).
    y
        Labels, one value or one row of C values per point.
    name
        A label for tables and plots.
    encoding
        How the labels encode the task (e.g. ``"one-hot, centred"``); reported with results.
        Errors are always summed over the C outputs (see the module docstring).
    """

    X: NDArray[np.float64]
    y: NDArray[np.float64]
    name: str = "data"
    encoding: str = "values"

    def __post_init__(self) -> None:
        _check_real(self.X, "X")
        _check_real(self.y, "y")
        X = check_finite_array(self.X, "X", ndim=2)
        y = check_finite_array(self.y, "y")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"labels y have {y.shape[0]} rows but X has {X.shape[0]}")
        if X.shape[0] < 2:
            raise ValueError("a data set needs at least two points")
        if X.shape[0] > MAX_ROWS:
            raise ValueError(
                f"a data set of {X.shape[0]} points is above the limit of {MAX_ROWS} (MAX_ROWS): its"
                f" {X.shape[0]} x {X.shape[0]} kernel matrix would need {8 * X.shape[0] ** 2 / 1e9:.3g} GB;"
                " use a random subset"
            )
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)

    @property
    def size(self) -> int:
        """Number of points M."""
        return int(self.X.shape[0])

    @property
    def d(self) -> int:
        """Input dimension."""
        return int(self.X.shape[1])

    @property
    def Y(self) -> NDArray[np.float64]:
        """Labels as a 2-D array (M, C)."""
        return self.y[:, None] if self.y.ndim == 1 else self.y

    @property
    def label_power(self) -> float:
        r"""Mean over points of :math:`\sum_c y_c^2`: the test error of the zero predictor, on the
        scale of the (absolute, summed over outputs) errors reported for this data set."""
        return float(np.mean(np.sum(self.Y**2, axis=1)))


def to_sphere(X: ArrayLike) -> NDArray[np.float64]:
    r"""Centre the columns and scale every row to norm :math:`\sqrt d`."""
    _check_real(X, "X")
    X = check_finite_array(X, "X", ndim=2)
    Xc = X - X.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(Xc, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a row of X equals the mean; it cannot be projected onto the sphere")
    return Xc * (np.sqrt(X.shape[1]) / norms)


def load_digits(*, one_hot: bool = True) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, d = 64; no network needed), projected onto
    the sphere by :func:`to_sphere`.

    Labels one-hot, centred (``1 - 1/10`` for the true class, ``-1/10`` otherwise: label power
    0.9, errors summed over the 10 outputs), or the digit value (``one_hot=False``). Needs
    scikit-learn (the ``validation`` extra).
    """
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
        encoding = "one-hot over 10 classes, centred (0.9 true class, -0.1 others)"
    else:
        y = labels.astype(np.float64)
        encoding = "digit value 0-9"
    return Dataset(X=X, y=y, name="digits", encoding=encoding)


def _check_shape(shape: tuple[int, ...], path: Path) -> None:
    rows = shape[0] if shape else 1
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    if rows > MAX_ROWS:
        raise ValueError(
            f"{path} has {rows} rows, above the limit of {MAX_ROWS} (MAX_ROWS); use a random subset"
        )
    if cols > MAX_COLUMNS:
        raise ValueError(f"{path} has {cols} columns, above the limit of {MAX_COLUMNS} (MAX_COLUMNS)")
    if rows * cols > MAX_VALUES:
        raise ValueError(f"{path} has {rows * cols} values, above the limit of {MAX_VALUES} (MAX_VALUES)")


def _read_npy(path: Path) -> NDArray[np.float64]:
    """A numeric .npy array; shape and type are checked from the header before reading."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            if dtype.kind == "c":
                raise ValueError(
                    f"{path} holds complex numbers ({dtype}); fieldcurve needs real values"
                    " (split real and imaginary parts into columns)"
                )
            if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject:
                raise ValueError(f"{path} holds {dtype} values; a numeric .npy array is needed")
            _check_shape(shape, path)
            fh.seek(0)
            data = np.lib.format.read_array(fh, allow_pickle=False)
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"cannot read {path} as a numeric .npy array: {exc}") from exc
    except EOFError as exc:
        raise ValueError(f"cannot read {path} as a numeric .npy array: the file is truncated") from exc
    return np.asarray(data, dtype=np.float64)


def _header(first: str) -> list[str] | None:
    """The header names if the first line is a header: some cell is non-empty and not a number."""
    cells = [c.strip().strip('"').strip("'") for c in first.lstrip("#").split(",")]
    for cell in cells:
        if not cell:
            continue
        try:
            float(cell)
        except ValueError:
            return cells
    return None


def _read_csv(path: Path) -> tuple[NDArray[np.float64], list[str] | None]:
    """(data (rows, columns), header names or None); size limits checked before reading."""
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise ValueError(f"{path} has {size} bytes, above the limit of {MAX_CSV_BYTES} (MAX_CSV_BYTES)")
    try:
        with open(path, encoding="utf-8") as fh:
            first, lines_before = fh.readline(), 0
            while first and not first.strip():
                first, lines_before = fh.readline(), lines_before + 1
            header = _header(first)
            rows = 0 if header is not None else 1
            for line in fh:  # count data rows without keeping them
                stripped = line.lstrip()
                if stripped and not stripped.startswith("#"):
                    rows += 1
    except UnicodeDecodeError as exc:
        raise ValueError(f"cannot read {path} as text (UTF-8): {exc}") from exc
    if not first.strip():
        raise ValueError(f"{path} is empty")
    if rows == 0:
        raise ValueError(f"{path} has a header but no data rows")
    _check_shape((rows, len(first.split(","))), path)
    try:
        skip = lines_before + (1 if header is not None else 0)
        data = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, encoding="utf-8")
    except ValueError as exc:
        raise ValueError(f"cannot read {path} as numeric CSV: {_first_bad_cell(path, skip) or exc}") from exc
    if header is not None and data.shape[1] != len(header):
        raise ValueError(f"{path}: the header has {len(header)} names, the rows {data.shape[1]} values")
    return data, header


def _first_bad_cell(path: Path, skip: int) -> str | None:
    """Where a CSV that numpy could not read first goes wrong (line and column, 1-based)."""
    width = None
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            stripped = line.strip()
            if number <= skip or not stripped or stripped.startswith("#"):
                continue
            cells = stripped.split(",")
            if width is None:
                width = len(cells)
            if len(cells) != width:
                return f"line {number} has {len(cells)} values, the first data line {width}"
            for column, cell in enumerate(cells, start=1):
                try:
                    float(cell)
                except ValueError:
                    what = "an empty cell" if not cell.strip() else f"{cell.strip()[:40]!r}, not a number"
                    return f"line {number}, column {column}: {what}"
    return None


def _read(path: Path) -> tuple[NDArray[np.float64], list[str] | None]:
    if not path.is_file():
        raise ValueError(f"data file not found: {path}")
    if path.suffix == ".npy":
        return _read_npy(path), None
    if path.suffix == ".csv":
        return _read_csv(path)
    raise ValueError(f"unsupported data file {path} (use .npy or .csv)")


def load_dataset(path: str | Path, labels: str | Path | int | None = None) -> Dataset:
    """Read ``X`` from a ``.npy`` or ``.csv`` file and labels from a column of it or a file.

    Parameters
    ----------
    path
        A ``.npy`` file (2-D, real numeric type) or a ``.csv`` file (comma-separated numbers, an
        optional header line; see the module docstring for how a header is recognised).
    labels
        A column index (the column is removed from X), a column name (CSV with a header), or
        the path of a ``.npy``/``.csv`` file with one label (or one row of labels) per point.

    Raises
    ------
    ValueError
        For a missing or unreadable file, complex or non-numeric values, a missing value (named
        by row and column), a header without data, sizes above :data:`MAX_ROWS`,
        :data:`MAX_COLUMNS`, :data:`MAX_VALUES` or :data:`MAX_CSV_BYTES` (checked before the
        data are read), or labels that do not match the inputs.
    """
    path = Path(path)
    data, header = _read(path)
    if data.ndim != 2:
        raise ValueError(f"{path} must hold a 2-D array, got shape {data.shape}")
    if labels is None:
        raise ValueError("labels are required: a column (index or name) or a file")
    if isinstance(labels, (int, np.integer)) or (isinstance(labels, str) and labels.lstrip("-").isdigit()):
        col = int(labels)
        if not -data.shape[1] <= col < data.shape[1]:
            raise ValueError(f"label column {col} is outside the {data.shape[1]} columns")
        if data.shape[1] < 2:
            raise ValueError(f"{path} has one column: no inputs are left once the labels are taken out")
        y = data[:, col]
        X = np.delete(data, col % data.shape[1], axis=1)
    elif isinstance(labels, str) and header is not None and labels in header:
        col = header.index(labels)
        if data.shape[1] < 2:
            raise ValueError(f"{path} has one column: no inputs are left once the labels are taken out")
        y = data[:, col]
        X = np.delete(data, col, axis=1)
    else:
        lpath = Path(labels)
        if not lpath.is_file():
            raise ValueError(f"labels {str(labels)!r}: not a column of {path.name} and not a file")
        y, _ = _read(lpath)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        X = data
    return Dataset(X=X, y=y, name=path.stem)
