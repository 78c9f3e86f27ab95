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
