"""Everything downstream of a spectrum stays physical, or stops with one clear ValueError.

Property tests over the parameter box of issue #12 (activation x depth x weight and bias
variance x d x P x ridge): the spectrum table's cumulative trace fraction stays in [0, 1], tails
are non-negative, a teacher's powers add up to k(1), and every learning curve (kernel, gd and
bayes regimes, EK and renormalised EK, data-set curves) is finite and non-negative; with a ridge
delta > 0 the kernel-regime prediction obeys the bound derived below. A case the theory cannot
answer must end in a ValueError whose message names the cause.

The bound (kernel ridge regression, delta > 0). The kappa equation
P = sum_i m_i L_i + delta_eff/kappa (delta_eff >= delta: the tail mass beyond lmax acts as extra
ridge) gives kappa <= (sum_i m_i lam_i + delta_eff)/P and P - sum_i m_i L_i^2 >= delta_eff/kappa,
so E0 = P/(P - sum m L^2) <= P kappa/delta_eff <= 1 + k(1)/delta. With B <= F (each
(1 - L)^2 <= 1; F the target's total power) E_g = E0 B + (E0 - 1) s2 <= (1 + k(1)/delta)(F + s2)
- s2. Nothing in it comes from the code under test.

Small P with a dominant constant mode (issue #12): the theory is checked against exact kernel
regression (``fc.empirical_learning_curve``) and against the exact P = 1 error,
E_g(1) = (F + s2) sum_l N_l lam_l^2/(k(1) + delta)^2 - 2 sum_l lam_l v_l^2/(k(1) + delta) + F
(one training point x1: f_hat(x) = k(x.x1/d) y1/(k(1) + delta); E_x k(x, x1)^2 = sum_l N_l lam_l^2,
E_x,x1 k(x, x1) f(x1) f(x) = sum_l lam_l v_l^2), which shares no code with the theory.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fieldcurve as fc
from fieldcurve.activations import abrelu, get_activation, leaky_relu
from fieldcurve.cli import cumulative_fractions
from fieldcurve.theory import dataset_learning_curve, dataset_spectrum, equivalent_kernel_curve

ACTIVATIONS = ["relu", "erf", "tanh", "gelu", "sigmoid", "silu", "softplus", "abs", "leaky_relu"]
SMOOTH = {"tanh", "sigmoid", "silu", "softplus"}  # arbitrary-precision Hermite route: costly
# the messages of the refusals the theory may legitimately give over the box
CLEAN_REFUSAL = re.compile(
    r"uncertain by|depends on how the .*spectrum continues|interpolation peak|are not resolved|diverges"
    r"|2-D quadrature of this activation"
)


def activation(name: str):
    if name == "abs":
        return abrelu(-1.0, 1.0)
    if name == "leaky_relu":
        return leaky_relu(0.2)
    return get_activation(name)


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: 10.0**e)


def check_curve(curve, *, target_power: float, noise: float, k1: float | None, ridge: float) -> None:
    """Finite, non-negative, and (ridge > 0, kernel ridge regression) within the bound."""
    for name in ("test_error", "test_error_noisy", "kappa", "test_error_uncertainty"):
        values = np.asarray(getattr(curve, name))
        assert np.all(np.isfinite(values)), (name, values)
        assert np.all(values >= 0), (name, values)
    np.testing.assert_allclose(curve.test_error_noisy, curve.test_error + noise, rtol=1e-12)
    if k1 is not None and ridge > 0:
        bound = (1 + k1 / ridge) * (target_power + noise) - noise
        assert np.all(curve.test_error <= bound * (1 + 1e-9) + 1e-12 * target_power), (
            curve.test_error,
            bound,
        )


def run_or_refuse(fn, *args, **kwargs):
    """The call's result, or None after a clean refusal (one-line ValueError naming the cause)."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message and CLEAN_REFUSAL.search(message), message
        return None


def check_spectrum(spec) -> None:
    assert np.all(np.isfinite(spec.eigenvalues)) and np.all(spec.eigenvalues >= 0)
    assert 0 <= spec.tail_mass <= max(spec.kernel_at_one, 0.0)
    frac, err = cumulative_fractions(spec)
    assert np.all((frac >= 0) & (frac <= 1)) and np.all(np.diff(frac) >= 0)
    assert np.all((err >= 0) & (err <= 1))


def box_case(draw, max_depth: int, max_smooth_depth: int, max_lmax: int) -> dict:
    act = draw(st.sampled_from(ACTIVATIONS))
    depth = draw(st.integers(1, max_smooth_depth if act in SMOOTH else max_depth))
    return {
        "act": act,
        "depth": depth,
        "weight_var": draw(log_uniform(0.1, 100.0)),
        "bias_var": draw(st.one_of(st.just(0.0), st.floats(0.0, 10.0))),
        "d": draw(st.floats(math.log10(2), 4.0).map(lambda e: max(2, round(10.0**e)))),
        "lmax": draw(st.integers(4, max_lmax)),
        "P": sorted(
            {1, *draw(st.lists(st.floats(0.0, 9.0).map(lambda e: round(10.0**e)), min_size=1, max_size=3))}
        ),
        "ridge": draw(st.one_of(st.just(0.0), log_uniform(1e-8, 1e3))),
        "noise": draw(st.one_of(st.just(0.0), log_uniform(1e-4, 1.0))),
        "regime": draw(st.sampled_from(["kernel", "gd", "bayes", "data"])),
        "powers": draw(st.dictionaries(st.integers(0, 4), st.floats(0.0, 2.0), min_size=1, max_size=3)),
    }


def check_box_case(case: dict) -> None:
    mlp = fc.MLP(case["depth"], activation(case["act"]), case["weight_var"], case["bias_var"])
    d, lmax, P = case["d"], case["lmax"], np.array(case["P"], dtype=float)
    powers = {l: v for l, v in case["powers"].items() if l <= lmax}
    target = fc.Target.from_degree_powers(powers or {1: 1.0}, noise=case["noise"], d=d)
    F, s2 = target.total_power, target.noise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # unresolved eigenvalues: propagated, checked below
        ntk = fc.ntk_kernel(mlp)
        spec = run_or_refuse(fc.spectrum, ntk, d, lmax)
        if spec is None:
            return
        check_spectrum(spec)
        if case["regime"] == "kernel":
            curve = run_or_refuse(fc.learning_curve, spec, target, P, ridge=case["ridge"])
            if curve is not None:
                check_curve(curve, target_power=F, noise=s2, k1=spec.kernel_at_one, ridge=case["ridge"])
            for renormalised in (False, True):
                ek = run_or_refuse(
                    equivalent_kernel_curve, spec, target, P, ridge=case["ridge"], renormalised=renormalised
                )
                if ek is not None:
                    check_curve(ek, target_power=F, noise=s2, k1=None, ridge=case["ridge"])
        elif case["regime"] in ("gd", "bayes"):
            curve = run_or_refuse(fc.network_learning_curve, mlp, target, P, regime=case["regime"], lmax=lmax)
            if curve is not None:
                k1 = float(fc.nngp_kernel(mlp)(1.0)) if case["regime"] == "bayes" else None
                check_curve(curve, target_power=F, noise=s2, k1=k1, ridge=s2)
            teacher = run_or_refuse(fc.Target.from_kernel, fc.nngp_kernel(mlp), d, lmax)
            if teacher is None:
                return
            total = teacher.total_power + teacher.meta["tail_power"]
            k1 = float(fc.nngp_kernel(mlp)(1.0))
            assert all(math.isfinite(v) and v >= 0 for v in teacher.powers.values())
            assert abs(total - k1) <= teacher.meta["tail_power_error"] + 1e-9 * k1, (total, k1)
        else:
            M = 40
            X = fc.sample_sphere(M, d, seed=1)
            y = target.sample(d, seed=2, max_features=4).labels(X, seed=3)
            data = run_or_refuse(dataset_spectrum, ntk, X, y, init_kernel=fc.nngp_kernel(mlp))
            if data is None:
                return
            Pd = np.unique(np.clip(P, 1, M - 1))
            curve = run_or_refuse(dataset_learning_curve, data, Pd, ridge=case["ridge"], noise=s2)
            if curve is not None:
                check_curve(curve, target_power=data.total_power, noise=s2, k1=None, ridge=case["ridge"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_box_outputs_physical_or_clean_refusal(data):
    """The box at its cheap end (depth <= 2, smooth activations depth 1, lmax <= 8)."""
    check_box_case(box_case(data.draw, max_depth=2, max_smooth_depth=1, max_lmax=8))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_box_outputs_physical_or_clean_refusal_deep(data):
    """The full box of issue #12: depth up to 50 (smooth activations up to 3), lmax up to 30."""
    case = box_case(data.draw, max_depth=50, max_smooth_depth=3, max_lmax=30)
    check_box_case(case)


# ----------------------------------------------------------------------------- edge cases


def _target(d: int, powers=None, noise: float = 0.0) -> fc.Target:
    return fc.Target.from_degree_powers(powers or {1: 1.0, 2: 0.5, 3: 0.25}, noise=noise, d=d)


def test_odd_kernel_every_other_eigenvalue_zero():
    """erf without bias is odd: even degrees vanish exactly; the tail fit works per parity and a
    ridgeless prediction moves by < 1e-3 when lmax doubles (tail model against more degrees)."""
    spec20 = fc.spectrum(fc.nngp_kernel(fc.MLP(2, "erf", 1.5, 0.0)), 10, 20)
    spec40 = fc.spectrum(fc.nngp_kernel(fc.MLP(2, "erf", 1.5, 0.0)), 10, 40)
    assert np.all(spec20.eigenvalues[0::2] == 0) and np.all(spec20.eigenvalues[1::2] > 0)
    target = _target(10, {1: 1.0, 3: 0.5}, noise=0.01)
    P = np.geomspace(1, 1e6, 13).round()
    a, b = fc.learning_curve(spec20, target, P), fc.learning_curve(spec40, target, P)
    check_curve(a, target_power=1.5, noise=0.01, k1=None, ridge=0.0)
    assert np.max(np.abs(a.test_error / b.test_error - 1)) < 1e-3


def test_eigenvalues_below_double_precision_are_harmless():
    """e^t at d = 10^4: lambda_l underflows beyond l ~ 75 (the logarithms stay exact); those
    degrees carry N lambda ~ 1e-300 and change no prediction against lmax = 40 (to 1e-10)."""
    kernel = fc.exponential_kernel(1.0)
    deep, shallow = fc.spectrum(kernel, 10_000, 90), fc.spectrum(kernel, 10_000, 40)
    assert np.any(deep.eigenvalues == 0) and np.all(np.isfinite(deep.log_eigenvalues))
    target = _target(10_000, noise=0.1)
    P = np.array([1.0, 1e3, 1e6, 1e9])
    for ridge in (0.0, 1e-3, 1e3):
        a = fc.learning_curve(deep, target, P, ridge=ridge)
        b = fc.learning_curve(shallow, target, P, ridge=ridge)
        check_curve(a, target_power=1.75, noise=0.1, k1=deep.kernel_at_one, ridge=ridge)
        np.testing.assert_allclose(a.test_error, b.test_error, rtol=1e-10)


@pytest.mark.parametrize("scale", [1e-60, 1e60])
def test_kernel_scale_is_irrelevant_from_1e_minus_60_to_1e60(scale):
    """Kernel ridge regression with c k and ridge c delta is the same predictor as with k and
    delta: for c = 1e-60 and 1e60 (k(1) ~ 0 or huge) the spectra agree to their rtol 1e-10 and
    every prediction to 1e-7 (E_g amplifies the eigenvalues' last digits near interpolation)."""
    coeffs = [1.0 / math.factorial(n) for n in range(10)]
    base = fc.spectrum(fc.polynomial_kernel(coeffs), 5, 12)
    scaled = fc.spectrum(fc.polynomial_kernel([scale * c for c in coeffs]), 5, 12)
    np.testing.assert_allclose(scaled.eigenvalues, scale * base.eigenvalues, rtol=1e-10)
    target = _target(5, noise=0.05)
    P = np.array([1.0, 10.0, 100.0, 1e4, 1e9])
    for ridge in (1e-6, 1.0, 1e3):
        a = fc.learning_curve(base, target, P, ridge=ridge)
        b = fc.learning_curve(scaled, target, P, ridge=scale * ridge)
        np.testing.assert_allclose(b.test_error, a.test_error, rtol=1e-7)
        check_curve(b, target_power=1.75, noise=0.05, k1=scaled.kernel_at_one, ridge=scale * ridge)


def test_interpolation_peak_is_refused_and_noiseless_interpolation_is_exact():
    """k(t) = t has rank d: ridgeless at P = d the theory's E0 is infinite (refused, naming the
    peak) unless there is neither noise nor unlearned power, when E_g = 0 exactly."""
    d = 8
    spec = fc.spectrum(fc.polynomial_kernel([0.0, 1.0]), d, 3)
    with pytest.raises(ValueError, match="interpolation peak"):
        fc.learning_curve(spec, _target(d, {1: 1.0}, noise=0.1), [d])
    exact = fc.learning_curve(spec, _target(d, {1: 1.0}), [d, 2 * d])
    np.testing.assert_array_equal(exact.test_error, [0.0, 0.0])


def test_equivalent_kernel_without_ridge_and_with_noise_is_refused():
    spec = fc.spectrum(fc.nngp_kernel(fc.MLP(2, "relu", 2.0, 0.1)), 10, 20)
    with pytest.raises(ValueError, match="diverges"):
        equivalent_kernel_curve(spec, _target(10, noise=0.1), [10, 100])
    assert np.all(np.isfinite(equivalent_kernel_curve(spec, _target(10), [10, 100]).test_error))


def _with_errors(spec, degrees, rel):
    err = spec.error_estimates.copy()
    err[degrees] = rel * spec.eigenvalues[degrees]
    return dataclasses.replace(spec, error_estimates=err)


def test_unresolved_eigenvalues_are_propagated_or_refused():
    """An eigenvalue known to 1e-4 enters test_error_uncertainty; the bound holds against the
    prediction recomputed with that eigenvalue moved by its error (independent call); one known
    only to 50% is refused, naming the degree."""
    spec = fc.spectrum(fc.ntk_kernel(fc.MLP(2, "relu", 2.0, 0.1)), 10, 30)
    target = _target(10, noise=0.01)
    P = np.array([10.0, 100.0, 1000.0])
    nominal = fc.learning_curve(spec, target, P)
    loose = _with_errors(spec, [2], 1e-4)
    curve = fc.learning_curve(loose, target, P)
    np.testing.assert_allclose(curve.test_error, nominal.test_error, rtol=1e-13)
    assert np.all(curve.test_error_uncertainty > 0) and np.all(
        curve.test_error_uncertainty < 0.05 * curve.test_error
    )
    for factor in (1 - 1e-4, 1 + 1e-4):
        lam = spec.eigenvalues.copy()
        lam[2] *= factor
        moved = dataclasses.replace(
            spec,
            eigenvalues=lam,
            log_eigenvalues=np.log(np.where(lam > 0, lam, 1.0)) + np.where(lam > 0, 0.0, -np.inf),
            tail_mass=spec.tail_mass - (factor - 1) * spec.multiplicities[2] * spec.eigenvalues[2],
        )
        change = np.abs(fc.learning_curve(moved, target, P).test_error - nominal.test_error)
        assert np.all(change <= curve.test_error_uncertainty * (1 + 1e-6) + 1e-15)
    with pytest.raises(ValueError, match=r"degrees 2 are not resolved.*lmax below 2"):
        fc.learning_curve(_with_errors(spec, [2], 0.5), target, P)


def test_teacher_power_adds_up_to_k1_or_is_refused(monkeypatch):
    kernel = fc.nngp_kernel(fc.MLP(3, "relu", 2.0, 0.2))
    teacher = fc.Target.from_kernel(kernel, 10, 30, scale=2.0)
    k1 = float(kernel(1.0))
    assert teacher.total_power + teacher.meta["tail_power"] == pytest.approx(2.0 * k1, rel=1e-10)
    assert all(math.isfinite(v) and 0 <= v <= 2.0 * k1 for v in teacher.powers.values())
    spectrum_module = sys.modules["fieldcurve.spectrum"]  # the package attribute is the function
    real = spectrum_module.spectrum
    monkeypatch.setattr(spectrum_module, "spectrum", lambda *a, **k: _with_errors(real(*a, **k), [4, 5], 0.5))
    with pytest.raises(ValueError, match=r"degrees 4, 5 are not resolved.*lmax below 4"):
        fc.Target.from_kernel(kernel, 10, 30)


def test_cumulative_trace_fraction_stays_in_unit_interval_when_unresolved():
    """Every degree at the positive-definiteness bound N lambda = k(1) (what the spectrum reports
    for a value it could not resolve): the raw cumulative sum is lmax + 1 times k(1); the table's
    fraction stays in [0, 1] and carries its uncertainty."""
    spec = fc.spectrum(fc.ntk_kernel(fc.MLP(2, "relu", 2.0, 0.1)), 5, 6)
    k1 = spec.kernel_at_one
    lam = k1 / spec.multiplicities
    clipped = dataclasses.replace(
        spec, eigenvalues=lam, log_eigenvalues=np.log(lam), error_estimates=lam, tail_mass=0.0
    )
    frac, err = cumulative_fractions(clipped)
    assert np.all((frac >= 0) & (frac <= 1)) and frac[-1] == 1.0 and np.all(err > 0)
    from fieldcurve.cli import format_spectrum_table

    table = format_spectrum_table(clipped)
    assert "not resolved" in table
    for line in table.splitlines()[2:-1]:
        assert 0.0 <= float(line.split()[4].split("+-")[0]) <= 1.0


# ----------------------------------------------------------------------------- small P (issue #12)


def exact_error_at_one_sample(spec, target, ridge: float) -> float:
    """E_g(P = 1) of kernel ridge regression, exact (module docstring; degrees beyond lmax,
    whose N lambda^2 is below max(lambda) * tail, are neglected)."""
    n, lam, k1 = np.exp(spec.log_multiplicities), spec.eigenvalues, spec.kernel_at_one
    v2, F, s2 = target.power_array(spec.lmax), target.total_power, target.noise
    return (
        (F + s2) * float(np.sum(n * lam**2)) / (k1 + ridge) ** 2
        - 2 * float(np.sum(lam * v2)) / (k1 + ridge)
        + F
    )


def test_dominant_constant_mode_at_small_P_is_flagged_and_the_rest_agrees_with_regression():
    """Issue #12: depth-1 GELU NTK, weight_var 0.1, bias_var 10 (the constant mode carries 99.8%
    of k(1)), d = 30. Exact kernel regression gives E_g(1) = 3.49 (closed form; the Monte Carlo
    agrees), the theory 21.9: such points are flagged (constant_mode_share > 0.25), and every
    unflagged point is within 10% or 3 standard errors of exact kernel regression. The
    per-degree errors and error_rest add up to E_g."""
    mlp = fc.MLP(1, "gelu", 0.1, 10.0)
    kernel = fc.ntk_kernel(mlp)
    spec = fc.spectrum(kernel, 30, 40)
    target = _target(30)
    P = np.array([1, 2, 3, 5, 10, 20])
    curve = fc.learning_curve(spec, target, P)
    emp = fc.empirical_learning_curve(kernel, target, P, trials=30, seed=3, n_test=200, per_degree=False)
    exact1 = exact_error_at_one_sample(spec, target, 0.0)
    assert abs(emp.test_error[0] - exact1) < 3 * emp.test_error_sem[0]
    assert curve.test_error[0] > 5 * exact1 and not curve.valid[0]
    np.testing.assert_array_equal(curve.valid, curve.constant_mode_share <= 0.25)
    assert list(curve.valid) == [False, False, False, True, True, True]
    ok = curve.valid
    rel = np.abs(curve.test_error[ok] / emp.test_error[ok] - 1)
    z = np.abs(curve.test_error[ok] - emp.test_error[ok]) / emp.test_error_sem[ok]
    assert np.all((rel < 0.10) | (z < 3)), (rel, z)
    assert np.all(curve.test_error[~ok] > emp.test_error[~ok] - 3 * emp.test_error_sem[~ok])  # high, not low
    shown = curve.error_per_degree[:, curve.shown_degrees].sum(axis=1)
    np.testing.assert_allclose(shown + curve.error_rest, curve.test_error, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("act", "wv", "bv", "depth", "kind", "d"),
    [
        ("relu", 2.0, 1.0, 1, "ntk", 30),
        ("gelu", 1.0, 1.0, 1, "ntk", 30),
        ("erf", 1.0, 0.0, 2, "ntk", 30),
        ("relu", 2.0, 0.1, 3, "ntk", 10),
        ("gelu", 0.5, 3.0, 2, "nngp", 10),
        ("relu", 1.0, 5.0, 2, "nngp", 30),
    ],
)
def test_validity_flag_at_small_P_against_regression(act, wv, bv, depth, kind, d):
    """The measurement behind VALID_CONSTANT_SHARE: P = 1 ... 40, 300 trials; unflagged points
    within 10% or 3 SE of exact kernel regression, and E_g(1) of the regression equals the exact
    one-sample formula."""
    mlp = fc.MLP(depth, act, wv, bv)
    kernel = fc.ntk_kernel(mlp) if kind == "ntk" else fc.nngp_kernel(mlp)
    spec = fc.spectrum(kernel, d, 30)
    target = _target(d)
    P = np.array([1, 2, 3, 5, 8, 13, 20, 40])
    curve = fc.learning_curve(spec, target, P)
    emp = fc.empirical_learning_curve(
        kernel, target, P, d=d, trials=300, seed=1, n_test=1000, per_degree=False
    )
    assert abs(emp.test_error[0] - exact_error_at_one_sample(spec, target, 0.0)) < 4 * emp.test_error_sem[0]
    ok = curve.valid
    rel = np.abs(curve.test_error[ok] / emp.test_error[ok] - 1)
    z = np.abs(curve.test_error[ok] - emp.test_error[ok]) / emp.test_error_sem[ok]
    assert np.all((rel < 0.10) | (z < 3)), (rel, z)
