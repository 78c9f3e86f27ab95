"""The command line: every documented path runs, prints what the library computes, and bad input
gives one line on stderr and exit status 2 (never a traceback)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import fieldcurve as fc
from fieldcurve.cli import main


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_predict_defaults_write_table_and_plot(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(["predict"], capsys)
    assert code == 0, err
    assert (tmp_path / "learning_curve.png").stat().st_size > 10_000
    rows = [line for line in out.splitlines() if line and line.split()[0].isdigit()]
    assert len(rows) >= 20  # one row per P of the default grid
    assert "Traceback" not in err


def test_predict_json_equals_library(capsys):
    code, out, _ = run(
        ["predict", "--json", "--plot", "", "--P", "20,200", "--d", "10", "--depth", "2"], capsys
    )
    assert code == 0
    got = json.loads(out)
    mlp = fc.MLP(2, "relu", 2.0, 0.0)
    tgt = fc.Target.from_degree_powers({1: 1.0, 2: 0.5, 3: 0.25}, noise=0.01, d=10)
    ref = fc.learning_curve(fc.spectrum(fc.ntk_kernel(mlp), 10, 40), tgt, [20, 200])
    np.testing.assert_allclose([p["test_error"] for p in got["points"]], ref.test_error, rtol=1e-10)
    assert got["regime"] == "kernel" and got["d"] == 10


@pytest.mark.parametrize("regime", ["gd", "bayes", "kernel"])
def test_predict_regimes_with_empirical_overlay(regime, tmp_path, capsys):
    argv = ["predict", "--regime", regime, "--d", "6", "--depth", "1", "--P", "20,60", "--empirical", "3"]
    code, out, err = run(
        [*argv, "--json", "--plot", str(tmp_path / "c.png"), "--csv", str(tmp_path / "c.csv")], capsys
    )
    assert code == 0, err
    got = json.loads(out)
    assert [e["P"] for e in got["empirical"]] == [20.0, 60.0]
    assert all(e["test_error"] > 0 and e["sem"] >= 0 for e in got["empirical"])
    assert (tmp_path / "c.png").exists() and (tmp_path / "c.csv").read_text().count("\n") >= 3


def test_predict_polynomial_and_spectrum_plot(tmp_path, capsys):
    argv = ["predict", "--polynomial", "x1*x2 + x3", "--d", "5", "--P", "10,100", "--plot", ""]
    code, _out, err = run([*argv, "--spectrum-plot", str(tmp_path / "s.png")], capsys)
    assert code == 0, err
    assert (tmp_path / "s.png").exists()


@pytest.mark.parametrize("regime", ["kernel", "gd"])
def test_predict_on_digits(regime, capsys):
    pytest.importorskip("sklearn")
    argv = ["predict", "--dataset", "digits", "--regime", regime, "--depth", "2", "--P", "10,50"]
    code, out, err = run([*argv, "--empirical", "2", "--json", "--plot", ""], capsys)
    assert code == 0, err
    got = json.loads(out)
    assert got["M"] == 1797 and len(got["points"]) == 2 and len(got["empirical"]) == 2


def test_predict_on_user_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 4))
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", np.sin(X[:, 0]))
    argv = ["predict", "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]
    code, out, err = run([*argv, "--P", "10,40", "--json", "--plot", ""], capsys)
    assert code == 0, err
    assert json.loads(out)["M"] == 120


def test_spectrum_json(capsys):
    code, out, err = run(["spectrum", "--json", "--d", "5", "--lmax", "6", "--depth", "1"], capsys)
    assert code == 0, err
    got = json.loads(out)
    lam = fc.spectrum(fc.ntk_kernel(fc.MLP(1, "relu", 2.0, 0.0)), 5, 6).eigenvalues
    assert len(json.dumps(got)) > 100
    flat = json.dumps(got)
    assert f"{lam[1]:.6e}"[:6] in flat or str(lam[1])[:8] in flat


@pytest.mark.parametrize(
    "argv, words",
    [
        (["predict", "--d", "1"], "d"),
        (["predict", "--activation", "nope"], "activation"),
        (["predict", "--P", "0,10"], "P"),
        (["predict", "--P", "1.5"], "P"),
        (["predict", "--powers", "1:abc"], "power"),
        (["predict", "--noise", "-1"], "noise"),
        (["predict", "--ridge", "nan"], "ridge"),
        (["predict", "--depth", "-1"], "depth"),
        (["predict", "--weight-var", "-2"], "weight"),
        (["predict", "--data", "/nonexistent.npy", "--labels", "0"], "not found"),
        (["predict", "--dataset", "digits", "--spectrum-plot", "s.png"], "spectrum-plot"),
        (["predict", "--polynomial", "__import__('os')"], "polynomial"),
        (["spectrum", "--d", "0"], "d"),
        (["spectrum", "--lmax", "-3"], "lmax"),
        (["predict", "--unknown-option"], "no such option"),
        (["predict", "--width", "64"], "regime bayes"),
        (["tune", "--widths", "32,64"], "widths"),
        (["tune", "--regime", "bayes", "--widths", "a"], "widths"),
        (["predict", "--regime", "bayes", "--width", "0", "--P", "10"], "width"),
        (["predict", "--regime", "bayes", "--width", "8", "--P", "2000", "--fw-pmax", "100"], "fw-pmax"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(
        [*argv, "--plot", ""] if argv[0] == "predict" and "--unknown-option" not in argv else argv, capsys
    )
    assert code == 2, (out, err)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert words.lower() in lines[0].lower(), lines[0]


def test_finite_width_json_table_and_plot(tmp_path, capsys):
    code, out, err = run(
        ["finite-width", "--activation", "relu", "--depth", "4", "--width", "64", "--json"], capsys
    )
    assert code == 0, err
    got = json.loads(out)
    assert len(got["layers"]) == 5 and got["critical_initialization"]["weight_var"] == 2.0
    for key in ("kernel", "kernel_nlo", "fourth_cumulant", "fourth_cumulant_exact"):
        assert key in got["layers"][-1]
    assert got["layers"][-1]["fourth_cumulant_exact"] == pytest.approx((1 + 5 / 64) ** 4 - 1, rel=1e-12)
    assert got["layers"][-1]["ntk"] == pytest.approx(10.0) and abs(got["layers"][-1]["ntk_nlo"]) < 1e-9
    code, out, err = run(
        ["finite-width", "--depth", "3", "--mc", "2000", "--plot", str(tmp_path / "c.png")], capsys
    )
    assert code == 0 and "tanh" in out and (tmp_path / "c.png").exists(), err
    assert "NTK of the output: theory H = -0.1227" in out  # tanh depth 3 at criticality


@pytest.mark.parametrize(
    "argv, words",
    [
        (["finite-width", "--activation", "sigmoid"], "critical"),
        (["finite-width", "--width", "0"], "width"),
        (["finite-width", "--d", "0"], "--d"),
        (["finite-width", "--activation", "relu", "--depth", "-2"], "depth"),
    ],
)
def test_finite_width_bad_input(argv, words, capsys):
    code, _out, err = run(argv, capsys)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and words in lines[0], err


def test_predict_finite_width_curve(tmp_path, capsys):
    """--width adds the finite-width curve of the Bayesian network: its infinite-width part is the
    main curve, and the JSON carries the correction with its error bar."""
    argv = ["predict", "--regime", "bayes", "--depth", "1", "--d", "6", "--powers", "1:1"]
    argv += ["--noise", "0.1", "--P", "8,16", "--width", "32", "--fw-trials", "2", "--json"]
    code, out, err = run([*argv, "--plot", str(tmp_path / "fw.png")], capsys)
    assert code == 0, err
    got = json.loads(out)
    fw = got["finite_width"]
    assert fw["width"] == 32 and fw["P"] == [8.0, 16.0]
    np.testing.assert_allclose(
        fw["test_error_infinite"], [p["test_error"] for p in got["points"]], rtol=1e-12
    )
    np.testing.assert_allclose(
        fw["test_error"], np.add(fw["test_error_infinite"], np.divide(fw["correction"], 32)), rtol=1e-12
    )
    assert all(s > 0 for s in fw["correction_se"])
    assert (tmp_path / "fw.png").stat().st_size > 10_000


def test_figure_list_quick_json_and_unknown(tmp_path, capsys):
    code, out, err = run(["figure", "--list"], capsys)
    assert code == 0 and "canatar2021" in out and "multiple_descent" in out, err
    code, out, err = run(
        ["figure", "pdlt_fourth_cumulant", "--quick", "--out", str(tmp_path), "--json"], capsys
    )
    assert code == 0, err
    got = json.loads(out)
    assert got["name"] == "pdlt_fourth_cumulant" and (tmp_path / "pdlt_fourth_cumulant.png").exists()
    code, _out, err = run(["figure", "nope"], capsys)
    assert code == 2 and "unknown figure" in err


def test_predict_table_adds_up_and_marks_points_outside_validity(capsys):
    """Issue #12: the per-degree columns and 'rest' add up to E_g; the points where a dominant
    constant mode puts the theory outside its validity (P = 1, 2 here) are marked and explained;
    JSON carries the same numbers."""
    argv = ["predict", "--depth", "1", "--activation", "gelu", "--weight-var", "0.1", "--bias-var", "10"]
    argv += ["--noise", "0", "--P", "1,2,5,10", "--plot", ""]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("P "))
    cols = header.split()
    assert cols[-1] == "rest" and "E_l=1" in cols
    rows = [line for line in lines if line and line.split()[0].isdigit()]
    assert [r.rstrip().endswith("!") for r in rows] == [True, True, False, False]
    for r in rows:
        values = r.replace("!", "").split()
        got = dict(zip(cols, values, strict=True))
        parts = sum(float(got[c]) for c in cols if c.startswith("E_l=")) + float(got["rest"])
        assert parts == pytest.approx(float(got["E_g"]), rel=2e-3)
    assert any(line.startswith("# ! P = 1, 2: outside the theory's validity") for line in lines)
    code, out, _ = run([*argv, "--json"], capsys)
    points = json.loads(out)["points"]
    assert [p["valid"] for p in points] == [False, False, True, True]
    for p in points:
        assert sum(p["error_per_degree"].values()) + p["error_rest"] == pytest.approx(
            p["test_error"], rel=1e-12
        )
        assert p["test_error_uncertainty"] >= 0


def test_spectrum_json_cumulative_fraction_is_the_trace_fraction(capsys):
    code, out, err = run(
        ["spectrum", "--json", "--d", "7", "--lmax", "12", "--depth", "2", "--bias-var", "0.3"], capsys
    )
    assert code == 0, err
    got = json.loads(out)
    rows = got["degrees"]
    frac = [r["cumulative_fraction"] for r in rows]
    assert all(0 <= f <= 1 for f in frac) and frac == sorted(frac)
    # independent: fsum of N(d, l) lambda_l over k(1), from the printed values
    running = [
        math.fsum(r["multiplicity"] * r["eigenvalue"] for r in rows[: i + 1]) for i in range(len(rows))
    ]
    np.testing.assert_allclose(frac, np.array(running) / got["kernel_at_one"], rtol=1e-12)
    assert all(r["resolved"] for r in rows) and got["tail_mass_error"] >= 0
    assert 1 - frac[-1] == pytest.approx(got["tail_mass"] / got["kernel_at_one"], rel=1e-6, abs=1e-12)


def test_tune_prints_what_it_optimised_and_warns_about_bounds(capsys):
    argv = ["tune", "--d", "10", "--P", "100", "--depths", "1", "--activations", "relu", "--regime", "gd"]
    argv += ["--bias-var", "0", "--weight-var", "0.7:3", "--plot", ""]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "# target: powers l=1: 1, l=2: 0.5, l=3: 0.25; label noise 0.01" in out and "d = 10" in out
    assert "# error: E_g(P = 100), E_g = E_x[(f_hat(x) - f*(x))^2] against the clean target" in out
    row = next(line for line in out.splitlines() if line.split()[:2] == ["1", "1"])
    assert row.split()[-1] == "b" and "weight_var = 0.7 is the lower bound" in out
    assert "warning: the best configuration (depth 1, relu) has its optimum on a search bound" in err
    code, out, err = run([*argv, "--json"], capsys)
    got = json.loads(out)
    assert got["d"] == 10 and got["error_definition"].startswith("E_g(P = 100)")
    assert got["ranking"][0]["at_bound"] == ["weight_var = 0.7 is the lower bound of its range 0.7:3"]
    assert got["warnings"] and "search bound" in err
