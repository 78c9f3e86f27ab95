"""Real-data learning curves: loaders, empirical-measure spectrum, theory vs kernel regression."""

from __future__ import annotations

import numpy as np
import pytest

import fieldcurve as fc
from fieldcurve.data import Dataset, load_dataset, load_digits, to_sphere
from fieldcurve.empirical import empirical_dataset_curve
from fieldcurve.theory import dataset_learning_curve, dataset_spectrum


def _toy(M=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = fc.sample_sphere(M, d, seed=rng)
    y = np.sin(X[:, 0]) + 0.3 * X[:, 1] * X[:, 2]
    return Dataset(X=X, y=y, name="toy")


def test_dataset_spectrum_parseval_and_trace():
    """sum_rho eta_rho = tr K / M and sum_rho v_rho^2 = (1/M) sum_i |y_i|^2 (orthonormal basis)."""
    data = _toy()
    kernel = fc.ntk_kernel(fc.MLP(2, "relu", 2.0, 0.1))
    spec = dataset_spectrum(kernel, data)
    K = kernel.gram(data.X)
    assert abs(spec.eigenvalues.sum() / (np.trace(K) / data.size) - 1) < 1e-12
    assert abs(spec.total_power / np.mean(data.y**2) - 1) < 1e-12
    assert np.all(np.diff(spec.eigenvalues) <= 1e-15)


def test_toy_theory_matches_held_out_kernel_regression():
    data = _toy(M=600)
    kernel = fc.ntk_kernel(fc.MLP(2, "relu", 2.0, 0.1))
    P = np.array([10, 40, 160])
    curve = dataset_learning_curve(dataset_spectrum(kernel, data), P)
    emp = empirical_dataset_curve(kernel, data, P, trials=30, seed=3)
    rel = np.abs(curve.test_error / emp.test_error - 1)
    z = np.abs(curve.test_error - emp.test_error) / emp.test_error_sem
    assert np.all((rel < 0.15) | (z < 3)), (rel, z)


def test_digits_theory_vs_measurement():
    """Digits (M = 1797): median relative error of the held-out prediction <= 10% for P <= 1000."""
    pytest.importorskip("sklearn")
    data = load_digits()
    assert data.X.shape == (1797, 64) and data.Y.shape == (1797, 10)
    np.testing.assert_allclose(np.linalg.norm(data.X, axis=1), 8.0, rtol=1e-12)
    kernel = fc.ntk_kernel(fc.MLP(2, "relu", 2.0, 0.0))
    P = np.array([10, 30, 100, 300, 1000])
    curve = dataset_learning_curve(dataset_spectrum(kernel, data), P)
    emp = empirical_dataset_curve(kernel, data, P, trials=10, seed=0)
    rel = np.abs(curve.test_error / emp.test_error - 1)
    assert np.median(rel) <= 0.10, rel


def test_loaders(tmp_path):
    rng = np.random.default_rng(1)
    arr = rng.standard_normal((20, 4))
    np.save(tmp_path / "x.npy", arr)
    np.save(tmp_path / "y.npy", arr[:, 0] * 2)
    d = load_dataset(tmp_path / "x.npy", tmp_path / "y.npy")
    assert d.X.shape == (20, 4) and np.allclose(d.y, arr[:, 0] * 2)
    d = load_dataset(tmp_path / "x.npy", 3)
    assert d.X.shape == (20, 3) and np.allclose(d.y, arr[:, 3])
    header = "a,b,c,label"
    np.savetxt(tmp_path / "x.csv", arr, delimiter=",", header=header, comments="")
    d = load_dataset(tmp_path / "x.csv", "label")
    assert d.X.shape == (20, 3) and np.allclose(d.y, arr[:, 3])
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"numeric \.npy"):
        load_dataset(tmp_path / "obj.npy", 0)
    with pytest.raises(ValueError, match="not found"):
        load_dataset(tmp_path / "missing.npy", 0)
    with pytest.raises(ValueError, match="labels y have 3 rows but X has 20"):
        Dataset(X=arr, y=np.ones(3))
    with pytest.raises(ValueError, match="X contains NaN"):
        Dataset(X=np.full((3, 2), np.nan), y=np.ones(3))
    with pytest.raises(ValueError, match="not a column"):
        load_dataset(tmp_path / "x.csv", "nope")
    Xs = to_sphere(arr)
    np.testing.assert_allclose(np.linalg.norm(Xs, axis=1), 2.0, rtol=1e-12)


def test_dataset_curve_bad_inputs():
    data = _toy(M=50)
    kernel = fc.ntk_kernel(fc.MLP(1))
    spec = dataset_spectrum(kernel, data)
    with pytest.raises(ValueError, match="below the data set size"):
        dataset_learning_curve(spec, [10, 50])
    with pytest.raises(ValueError, match="no held-out points"):
        empirical_dataset_curve(kernel, data, [50], trials=3, seed=0)


def test_gradient_descent_on_data_theory_vs_measurement():
    """GD-trained infinite-width network on a data set: NTK regression plus the initialisation
    term, theory (init power u^T K u / M per mode) vs held-out Monte Carlo with the exact
    expected init term; and the init powers sum to tr K_nngp / M (Parseval)."""
    data = _toy(M=600)
    mlp = fc.MLP(2, "relu", 2.0, 0.1)
    ntk, nngp = fc.ntk_kernel(mlp), fc.nngp_kernel(mlp)
    spec = dataset_spectrum(ntk, data, init_kernel=nngp)
    assert abs(spec.init_powers.sum() / (np.trace(nngp.gram(data.X)) / data.size) - 1) < 1e-12
    P = np.array([10, 40, 160])
    curve = dataset_learning_curve(spec, P)
    emp = empirical_dataset_curve(ntk, data, P, trials=30, seed=3, init_kernel=nngp)
    rel = np.abs(curve.test_error / emp.test_error - 1)
    z = np.abs(curve.test_error - emp.test_error) / emp.test_error_sem
    assert np.all((rel < 0.15) | (z < 3)), (rel, z)
    plain = dataset_learning_curve(dataset_spectrum(ntk, data), P)
    assert np.all(curve.test_error > plain.test_error)


# ----------------------------------------------------------------------------- loaders, issue 13
def _write(path, text):
    path.write_text(text)
    return path


def test_headerless_csv_keeps_its_first_row_even_with_an_empty_cell(tmp_path):
    """A first row with an empty cell is data, not a header: it is read (and refused with its line
    and column, like any missing value) instead of silently dropped (M = 49 of 50 before)."""
    rng = np.random.default_rng(0)
    arr = rng.standard_normal((50, 4))
    lines = [",".join(f"{v:.6f}" for v in row) for row in arr]
    np.savetxt(tmp_path / "full.csv", arr, delimiter=",")
    assert load_dataset(tmp_path / "full.csv", 3).size == 50
    gap = _write(tmp_path / "gap.csv", "\n".join(["," + lines[0].split(",", 1)[1], *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match="line 1, column 1: an empty cell"):
        load_dataset(gap, 3)
    mid = _write(tmp_path / "mid.csv", "\n".join([*lines[:4], "1,,2,3", *lines[4:]]) + "\n")
    with pytest.raises(ValueError, match="line 5, column 2: an empty cell"):
        load_dataset(mid, 3)
    ragged = _write(tmp_path / "ragged.csv", "1,2,3\n4,5\n")
    with pytest.raises(ValueError, match="line 2 has 2 values"):
        load_dataset(ragged, 0)


def test_header_detection(tmp_path):
    d = load_dataset(_write(tmp_path / "h.csv", "\n\nx1,x2,label\n1,2,3\n4,5,6\n"), "label")
    np.testing.assert_array_equal(d.X, [[1, 2], [4, 5]])
    np.testing.assert_array_equal(d.y, [3, 6])
    d = load_dataset(_write(tmp_path / "q.csv", '"a","b"\n1,2\n3,4\n5,6\n'), "b")
    assert d.size == 3
    d = load_dataset(_write(tmp_path / "n.csv", "1,2\n3,4\n5,6\n"), 1)  # numbers: no header
    assert d.size == 3
    with pytest.raises(ValueError, match="header has 3 names, the rows 2 values"):
        load_dataset(_write(tmp_path / "w.csv", "a,b,c\n1,2\n3,4\n"), "a")


def test_header_only_and_empty_csv_are_clear_errors(tmp_path, capsys):
    header_only = _write(tmp_path / "header_only.csv", "a,b,label\n")
    with pytest.raises(ValueError, match="a header but no data rows"):
        load_dataset(header_only, "label")
    with pytest.raises(ValueError, match="is empty"):
        load_dataset(_write(tmp_path / "empty.csv", "\n\n"), 0)
    from fieldcurve.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["predict", "--data", str(header_only), "--labels", "label"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "no data rows" in err and "Traceback" not in err, err


def test_complex_and_non_numeric_npy_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((10, 3))
    np.save(tmp_path / "c.npy", a + 1j * a)
    with pytest.raises(ValueError, match="complex"):
        load_dataset(tmp_path / "c.npy", 0)
    np.save(tmp_path / "x.npy", a)
    np.save(tmp_path / "cy.npy", a[:, 0] + 1j)
    with pytest.raises(ValueError, match="complex"):
        load_dataset(tmp_path / "x.npy", tmp_path / "cy.npy")
    np.save(tmp_path / "s.npy", np.array([["1.5", "2"], ["3", "4"]]))
    with pytest.raises(ValueError, match="numeric"):
        load_dataset(tmp_path / "s.npy", 0)
    with pytest.raises(ValueError, match="complex"):
        Dataset(X=a + 0j, y=np.ones(10))
    with pytest.raises(ValueError, match="complex"):
        to_sphere(a * 1j)
    (tmp_path / "t.npy").write_bytes((tmp_path / "x.npy").read_bytes()[:150])
    with pytest.raises(ValueError, match=r"t\.npy"):
        load_dataset(tmp_path / "t.npy", 0)
    np.save(tmp_path / "i.npy", np.arange(12).reshape(6, 2))  # integers are fine
    assert load_dataset(tmp_path / "i.npy", 1).X.dtype == np.float64


def test_size_limits_are_checked_before_reading(tmp_path, monkeypatch):
    """A data set above MAX_ROWS is refused from the .npy header or a line count, before its
    values are parsed (a 1e6-row CSV raised MemoryError downstream: a 7.28 TiB kernel matrix)."""
    import fieldcurve.data as data_mod

    rows = data_mod.MAX_ROWS + 1
    np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float64, shape=(rows, 2)).flush()
    calls = []
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match="MAX_ROWS"):
        load_dataset(tmp_path / "big.npy", 0)
    assert calls == []
    (tmp_path / "big.csv").write_text("1,2\n" * rows)
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: calls.append(1))
    with pytest.raises(ValueError, match="MAX_ROWS"):
        load_dataset(tmp_path / "big.csv", 0)
    assert calls == []
    np.lib.format.open_memmap(
        tmp_path / "wide.npy", mode="w+", dtype=np.float64, shape=(2, 10**5 + 1)
    ).flush()
    with pytest.raises(ValueError, match="MAX_COLUMNS"):
        load_dataset(tmp_path / "wide.npy", 0)
    monkeypatch.setattr(data_mod, "MAX_CSV_BYTES", 10)
    with pytest.raises(ValueError, match="MAX_CSV_BYTES"):
        load_dataset(_write(tmp_path / "s.csv", "1,2\n3,4\n5,6\n"), 0)
    with pytest.raises(ValueError, match="MAX_ROWS"):
        Dataset(X=np.zeros((rows, 1)), y=np.zeros(rows))


def test_one_hot_normalisation_is_stated():
    """Errors on one-hot labels are summed over the outputs (not divided by C): the zero predictor
    scores the label power, 0.9 for the centred 10-class digits labels."""
    pytest.importorskip("sklearn")
    data = load_digits()
    assert data.label_power == pytest.approx(0.9, rel=1e-12)
    assert "one-hot" in data.encoding and "centred" in data.encoding
    assert load_digits(one_hot=False).encoding == "digit value 0-9"
    spec = dataset_spectrum(fc.ntk_kernel(fc.MLP(1)), data)
    assert spec.meta["label_power"] == pytest.approx(data.label_power)
    assert dataset_learning_curve(spec, [1]).test_error[0] == pytest.approx(0.9, rel=0.2)
