"""fieldcurve.tune: the optimum it reports is the best of its own landscape, its values are the
learning-curve predictions at the reported hyperparameters, and bad input is rejected."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import fieldcurve as fc
from fieldcurve.cli import main
from fieldcurve.tuning import tune

TARGET = fc.Target.from_degree_powers({1: 1.0, 2: 0.5, 3: 0.25}, noise=0.05, d=20)


def tune_noting_bounds(*args, **kwargs):
    """tune(), with its search-bound warnings checked against the result instead of raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = tune(*args, **kwargs)
    messages = [str(w.message) for w in caught]
    assert all("search bound" in m for m in messages), messages
    assert len(messages) == len(res.best["at_bound"]) and tuple(messages) == res.warnings
    return res


def test_tune_budget_optimum_beats_its_landscape_and_matches_the_theory():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = tune(TARGET, P=300, regime="gd", depths=(1, 2), activations=("relu", "erf"), landscape=8)
    assert len(res.ranking) == 4
    errs = [e["test_error"] for e in res.ranking]
    assert errs == sorted(errs)
    best = res.best
    # the reported value is the theory at the reported hyperparameters (independent call)
    mlp = fc.MLP(best["depth"], best["activation"], best["weight_var"], best["bias_var"])
    direct = fc.network_learning_curve(mlp, TARGET, [300], regime="gd", lmax=12).test_error[0]
    assert best["test_error"] == pytest.approx(direct, rel=1e-9)
    # the local optimisation did at least as well as every landscape grid point (to 1%)
    assert best["test_error"] <= 1.01 * np.min(res.landscape["values"])
    # and better than a default configuration
    default = fc.network_learning_curve(
        fc.MLP(best["depth"], best["activation"], 2.0, 0.0), TARGET, [300], regime="gd", lmax=12
    ).test_error[0]
    assert best["test_error"] <= default
    # an optimum on a search bound is reported and warned about, and only then
    bound_warnings = [str(w.message) for w in caught if "search bound" in str(w.message)]
    assert len(bound_warnings) == len(best["at_bound"])
    for note in best["at_bound"]:
        name, value = note.split(" = ")[0], float(note.split(" = ")[1].split()[0])
        assert value == pytest.approx(best[name], rel=1e-3)
        assert any(note in w for w in bound_warnings)
    assert res.d == 20 and "E_g(P = 300)" in res.error_definition and "l=1: 1" in res.target


def test_tune_target_error_gives_the_samples_where_the_curve_crosses_it():
    res = tune_noting_bounds(
        TARGET,
        target_error=0.3,
        regime="kernel",
        depths=(1,),
        activations=("erf",),
        landscape=0,
        max_evaluations=15,
    )
    best = res.best
    P_star = best["samples_needed"]
    assert np.isfinite(P_star) and P_star > 1
    mlp = fc.MLP(1, "erf", best["weight_var"], best["bias_var"])
    curve = fc.network_learning_curve(
        mlp,
        TARGET,
        [np.floor(0.97 * P_star), np.ceil(1.03 * P_star)],
        regime="kernel",
        ridge=best["ridge"],
        lmax=11,
    )
    assert curve.test_error[0] > 0.3 > curve.test_error[1]


def test_tune_warns_about_an_optimum_on_a_search_bound():
    """GD error grows with the initial function's variance: with ReLU and no bias, weight_var is
    a pure scale of both kernels, so E_g increases with it and the optimum is the lower bound."""
    with pytest.warns(RuntimeWarning, match="weight_var = 0.7 is the lower bound"):
        res = tune(
            TARGET,
            P=200,
            regime="gd",
            depths=(1,),
            activations=("relu",),
            weight_var=(0.7, 3.0),
            bias_var=0.0,
        )
    assert res.best["weight_var"] == pytest.approx(0.7) and res.best["at_bound"]
    assert res.warnings and "widen the range" in res.warnings[0]


def test_tune_interior_optimum_is_not_flagged():
    """Bayesian regime: the prior scale sets the effective ridge noise/sigma_w^2, whose optimum is
    interior here; fixing the bias leaves one free variable and no bound is reported for it."""
    target = fc.Target.from_degree_powers({1: 1.0, 2: 0.5}, noise=0.2, d=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = tune(
            target,
            P=50,
            regime="bayes",
            depths=(1,),
            activations=("relu",),
            weight_var=(0.2, 50.0),
            bias_var=0.0,
        )
    assert res.best["at_bound"] == [] and 0.2 < res.best["weight_var"] < 50.0
    # and it is a local minimum of the theory along weight_var (independent calls)
    w = res.best["weight_var"]
    values = [
        fc.network_learning_curve(
            fc.MLP(1, "relu", x, 0.0), target, [50], regime="bayes", lmax=12
        ).test_error[0]
        for x in (w / 1.2, w, w * 1.2)
    ]
    assert values[1] <= min(values[0], values[2]) * (1 + 1e-6)


def test_tune_unreachable_error_is_infinite_samples():
    res = tune_noting_bounds(
        TARGET, target_error=1e-9, depths=(1,), activations=("relu",), weight_var=2.0, bias_var=0.0
    )
    assert res.best["samples_needed"] == np.inf  # label noise 0.05 and GD: the error never gets there


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"P": 10, "target_error": 0.1}, "exactly one"),
        ({"P": 0}, "P must"),
        ({"P": 10, "weight_var": (2.0, 1.0)}, "weight_var"),
        ({"P": 10, "bias_var": -1.0}, "bias_var"),
        ({"P": 10, "activations": ("nope",)}, "nope"),
        ({"P": 10, "regime": "adam"}, "regime"),
        ({"P": 10, "depths": (0,)}, "depths"),
    ],
)
def test_tune_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tune(TARGET, **kwargs)


def test_tune_cli_json_and_plot(tmp_path, capsys):
    argv = ["tune", "--d", "10", "--P", "100", "--depths", "1", "--activations", "relu,erf"]
    argv += ["--bias-var", "0.1", "--json", "--plot", str(tmp_path / "t.png")]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    assert exc.value.code == 0, out.err
    got = json.loads(out.out)
    assert [e["activation"] for e in got["ranking"]] != [] and got["P"] == 100
    assert all(e["bias_var"] == 0.1 for e in got["ranking"])
    assert (tmp_path / "t.png").stat().st_size > 10_000
    with pytest.raises(SystemExit) as exc:
        main(["tune", "--weight-var", "a:b", "--plot", ""])
    assert exc.value.code == 2 and "weight-var" in capsys.readouterr().err


@pytest.mark.parametrize(("regime", "ridge"), [("gd", (1e-4, 10.0)), ("kernel", 0.05), ("bayes", 0.1)])
def test_tune_data_route_equals_the_eigendecomposition_route(regime, ridge):
    """The search's eigenvector-free evaluation on a data set (eigvalsh + Cholesky) against
    dataset_learning_curve on a full eigendecomposition (independent bias and init terms)."""
    pytest.importorskip("sklearn")
    from fieldcurve.data import Dataset, load_digits
    from fieldcurve.tuning import _DataModel

    digits = load_digits()
    data = Dataset(X=digits.X[:400], y=digits.y[:400], name="digits subset")
    r = 0.05 if regime == "kernel" else (0.1 if regime == "bayes" else 0.0)
    model = _DataModel(data, regime, "ntk", 0.1 if regime == "bayes" else None)
    for act, wv, bv in [("relu", 1.3, 0.2), ("erf", 0.7, 0.9), ("tanh", 2.0, 0.0)]:
        mlp = fc.MLP(2, act, wv, bv)
        fast = model.error_at(mlp, 120, r)
        kernel = fc.nngp_kernel(mlp) if regime == "bayes" else fc.ntk_kernel(mlp)
        spec = fc.theory.dataset_spectrum(
            kernel, data, init_kernel=fc.nngp_kernel(mlp) if regime == "gd" else None
        )
        ref = fc.theory.dataset_learning_curve(spec, [120], ridge=r).test_error[0]
        assert fast == pytest.approx(ref, rel=1e-9), (act, fast, ref)


def test_tune_result_does_not_depend_on_the_workers():
    kwargs = {"P": 200, "regime": "gd", "depths": (1, 2), "activations": ("relu", "gelu"), "bias_var": 0.1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = tune(TARGET, workers=1, **kwargs)
        b = tune(TARGET, workers=2, **kwargs)
    assert [e["test_error"] for e in a.ranking] == [e["test_error"] for e in b.ranking]
    assert a.evaluations == b.evaluations


def test_tune_bayes_on_data_needs_a_fixed_noise_variance():
    pytest.importorskip("sklearn")
    from fieldcurve.data import load_digits

    digits = load_digits()
    with pytest.raises(ValueError, match="noise variance"):
        tune(digits, P=100, regime="bayes", depths=(1,), activations=("relu",))
    res = tune_noting_bounds(
        digits,
        P=100,
        regime="bayes",
        ridge=0.1,
        depths=(1,),
        activations=("relu",),
        weight_var=2.0,
        bias_var=0.0,
        landscape=0,
    )
    assert res.best["ridge"] == 0.1 and 0 < res.best["test_error"] < 2


def test_tune_widths_add_the_finite_width_bayesian_correction():
    target = fc.Target.from_degree_powers({1: 1.0, 2: 0.5}, noise=0.2, d=8)
    res = tune_noting_bounds(
        target,
        P=30,
        regime="bayes",
        depths=(1,),
        activations=("relu",),
        weight_var=2.0,
        bias_var=0.1,
        widths=(32, 128),
        landscape=0,
    )
    e = res.best
    fw = fc.finite_width_learning_curve(
        fc.MLP(1, "relu", 2.0, 0.1),
        target,
        [30],
        width=32,
        seed=0,
        trials=2,
        n_test=200,
        unit_samples=8192,
        samples=256,
    )
    coef = fw.correction[0]
    assert e["finite_width"][32]["test_error"] == pytest.approx(e["test_error"] + coef / 32, rel=1e-9)
    assert e["finite_width"][128]["test_error"] == pytest.approx(e["test_error"] + coef / 128, rel=1e-9)
    assert e["best_width"] in (32, 128)
    with pytest.raises(ValueError, match="widths"):
        tune(target, P=30, regime="gd", widths=(32,))
