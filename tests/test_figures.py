"""Tests of fieldcurve.figures: the quick version of every figure, checked on its numbers.

Each figure is computed once per session (``quick=True``, seed 0) into a temporary directory.
The checks are on the summary (peak positions, agreement statistics, orderings) and on the
written files (PNG signature, CSV header and curves), not on pixels. Oracles that share no code
with the figures: the ReLU cumulant's closed forms 5(l-1)/n and (1+5/n)^(l-1) - 1, and the
multiplicities N(d,1) = d, N(d,2) = (d+2)(d-1)/2. Tolerances follow what the quick runs give
at seed 0 with margin (see docs/figures/gallery.md for the measured values).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from fieldcurve.figures import CSV_COLUMNS, FIGURES, FigureResult, list_figures, make_figure

NAMES = (
    "canatar2021",
    "bordelon2020",
    "cohen2021",
    "pdlt_fourth_cumulant",
    "spectral_bias",
    "multiple_descent",
)
SOURCES = {
    "theory",
    "kernel_regression",
    "monte_carlo",
    "exact",
    "reference",
    "theory_over_experiment",
    "interpolated",
}


@pytest.fixture(scope="module")
def figure(tmp_path_factory: pytest.TempPathFactory):
    """figure(name) -> FigureResult of the quick run (computed once per module)."""
    out = tmp_path_factory.mktemp("figures")
    cache: dict[str, FigureResult] = {}

    def get(name: str) -> FigureResult:
        if name not in cache:
            cache[name] = make_figure(name, out, quick=True, seed=0)
        return cache[name]

    return get


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def curves(rows: list[dict[str, str]], source: str | None = None) -> set[tuple[str, str]]:
    return {(r["panel"], r["curve"]) for r in rows if source is None or r["source"] == source}


# ----------------------------------------------------------------------------- registry and API
def test_registry_and_list() -> None:
    assert tuple(FIGURES) == NAMES
    listed = list_figures()
    assert [n for n, _ in listed] == list(NAMES)
    assert all(isinstance(desc, str) and len(desc) > 20 for _, desc in listed)


def test_unknown_name_raises_and_lists_known(tmp_path: Path) -> None:
    out = tmp_path / "never"
    with pytest.raises(ValueError, match="nosuchfigure") as info:
        make_figure("nosuchfigure", out)
    for name in NAMES:
        assert name in str(info.value)
    assert not out.exists()


def test_bad_seed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed"):
        make_figure("spectral_bias", tmp_path, seed=-1)


@pytest.mark.parametrize("name", NAMES)
def test_files_and_summary(figure, name: str) -> None:
    res = figure(name)
    assert isinstance(res, FigureResult)
    assert res.name == name
    assert res.png.name == f"{name}.png" and res.csv.name == f"{name}.csv"
    assert res.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert res.png.stat().st_size > 20_000
    header, rows = read_rows(res.csv)
    assert tuple(header) == CSV_COLUMNS
    assert len(rows) > 50
    assert {r["source"] for r in rows} <= SOURCES
    for r in rows:
        assert r["panel"] and r["curve"]
        assert math.isfinite(float(r["x"])) and math.isfinite(float(r["y"]))
    measured = [r for r in rows if r["source"] in ("kernel_regression", "monte_carlo")]
    assert measured and all(r["y_sem"] != "" for r in measured)
    json.dumps(res.summary, allow_nan=False)  # JSON-serialisable, no NaN
    assert res.summary["quick"] is True and res.summary["seed"] == 0


def test_same_seed_same_numbers(figure, tmp_path: Path) -> None:
    again = make_figure("spectral_bias", tmp_path / "again", quick=True, seed=0)
    assert again.csv.read_text() == figure("spectral_bias").csv.read_text()
    other = make_figure("spectral_bias", tmp_path / "other", quick=True, seed=1)
    assert other.csv.read_text() != again.csv.read_text()


# ----------------------------------------------------------------------------- canatar2021
def test_canatar2021_peaks(figure) -> None:
    s = figure("canatar2021").summary
    peaks = s["theory_peaks"]
    assert s["reference_peaks"] == {"1+N(d,1)": 26, "1+N(d,1)+N(d,2)": 350}
    assert peaks["0"] == []  # noiseless: monotone
    for noise in ("0.5", "2", "5"):
        # the second peak, where P crosses 1 + N(25,1) + N(25,2) = 350 modes
        assert any(350 / 1.5 < p < 350 * 1.5 for p in peaks[noise]), (noise, peaks[noise])
    # the first peak needs enough noise: absent for sigma^2 = 0.5, present at 5 just above 26
    # (shifted to larger P by the effective ridge of the unlearned modes)
    assert not any(10 < p < 100 for p in peaks["0.5"])
    assert any(26 < p < 2 * 26 for p in peaks["5"]), peaks["5"]
    # the variance factor E0 peaks near both mode counts, whatever the noise
    e0 = s["overfitting_peaks"]
    assert len(e0) == 2 and 26 < e0[0] < 4 * 26 and 350 / 1.5 < e0[1] < 350 * 1.5


def test_canatar2021_agreement(figure) -> None:
    s = figure("canatar2021").summary
    a = s["agreement"]["all"]
    assert a["points"] == 4 * len(s["P_experiment"])
    assert a["median_rel_error"] < 0.08
    assert a["fraction_within"] >= 0.9
    m = s["mode_errors"]["agreement"]
    assert m["E_g"]["median_rel_error"] < 0.08
    assert m["all"]["median_rel_error"] < 0.1 and m["all"]["fraction_within"] >= 0.8
    # the measured error rises from the dip into the second peak (noisy curves)
    for noise in ("0.5", "2", "5"):
        rise = s["measured_second_peak_rise"][noise]
        assert rise["P_max"] > rise["P_min"] and rise["z"] > 2.0, (noise, rise)


def test_canatar2021_csv_curves(figure) -> None:
    res = figure("canatar2021")
    _, rows = read_rows(res.csv)
    expected = {("a", f"noise={n}") for n in ("0", "0.5", "2", "5")}
    expected |= {("b", c) for c in ("E_1", "E_2", "E_4", "E_g")}
    assert curves(rows, "theory") == expected
    assert curves(rows, "kernel_regression") == expected
    n_exp = sum(1 for r in rows if r["curve"] == "noise=2" and r["source"] == "kernel_regression")
    assert n_exp == len(res.summary["P_experiment"])


# ----------------------------------------------------------------------------- bordelon2020
def test_bordelon2020(figure) -> None:
    s = figure("bordelon2020").summary
    a = s["agreement"]
    assert set(a) == {
        "pure l=1",
        "pure l=2",
        "pure l=4",
        "mixed E_1",
        "mixed E_2",
        "mixed E_4",
        "mixed E_g",
        "all",
    }
    assert a["all"]["median_rel_error"] < 0.06
    assert a["all"]["fraction_within"] >= 0.9
    assert a["mixed E_g"]["max_rel_error"] < 0.15
    h = s["mixed_half_points"]
    assert h["1"] < h["2"] < h["4"]  # spectral bias: lower degrees first


# ----------------------------------------------------------------------------- cohen2021
def test_cohen2021(figure) -> None:
    s = figure("cohen2021").summary
    med = s["median_rel_error"]
    assert med["eigenlearning"] < 0.05
    # the EK forms miss the variance factor: worse than eigenlearning, rEK better than EK
    assert med["EK"] > 3 * med["eigenlearning"]
    assert med["eigenlearning"] < med["rEK"] < med["EK"]
    big = s["rel_error_at_largest_P"]
    # at large P and large noise the EK forms approach the experiment
    assert big["noise=1"]["rEK"] < 0.1 and big["noise=1"]["EK"] < 0.15
    assert big["noise=1"]["EK"] < big["noise=0.1"]["EK"]
    for noise in ("noise=0.1", "noise=1"):  # both EK forms improve towards large P
        for name in ("EK", "rEK"):
            assert big[noise][name] < s["agreement"][noise][name]["median_rel_error"], (noise, name)
    assert s["target_powers"] == pytest.approx({"1": 1.0, "2": 10 / 12, "3": 100 / 168})


# ----------------------------------------------------------------------------- PDLT
def test_pdlt_relu_theory_is_exact_product(figure) -> None:
    s = figure("pdlt_fourth_cumulant").summary
    n, layers = s["width"], np.array(s["layer"])
    relu = s["relu"]
    lo, exact = np.array(relu["leading_order"]), np.array(relu["exact"])
    assert lo == pytest.approx(5 * (layers - 1) / n, abs=1e-12)
    assert exact == pytest.approx((1 + 5 / n) ** (layers - 1) - 1, rel=1e-12, abs=1e-15)
    # leading order = the product to first order: the difference is second order in 5/n
    m = layers - 1
    assert np.all(exact - lo <= m * (m - 1) / 2 * (5 / n) ** 2 * (1 + 5 / n) ** np.maximum(m - 2, 0) + 1e-15)
    assert np.all(exact - lo >= m * (m - 1) / 2 * (5 / n) ** 2 - 1e-15)
    assert relu["leading_order_slope_times_width"] == pytest.approx(5.0, abs=1e-9)


def test_pdlt_monte_carlo(figure) -> None:
    s = figure("pdlt_fourth_cumulant").summary
    relu, tanh = s["relu"], s["tanh"]
    assert relu["reference"] == "exact" and relu["mc_max_z_vs_reference"] < 4.0
    # at depth/width ~ 0.2 the leading order is far off for ReLU, the exact product is not
    assert relu["mc_max_z_vs_leading_order"] > 5.0
    assert relu["expansion_warning"] is not None
    # tanh: much smaller slope, approaching 2/3 per layer from below; MC within the O(1/n) error
    assert 0.55 < tanh["leading_order_slope_times_width"] < 2 / 3
    assert 0.6 < tanh["last_layer_increment_times_width"] < 2 / 3
    assert tanh["mc_max_rel_dev_vs_reference"] < 0.08
    assert relu["leading_order"][-1] > 5 * tanh["leading_order"][-1]


# ----------------------------------------------------------------------------- spectral bias
def test_spectral_bias_order(figure) -> None:
    s = figure("spectral_bias").summary
    assert s["order_increasing"] is True
    h = [s["half_points_theory"][str(l)] for l in (1, 2, 3, 4)]
    assert all(a < b for a, b in itertools.pairwise(h))
    d = s["d"]
    modes = np.cumsum([1, d, (d + 2) * (d - 1) // 2])
    assert [s["modes_up_to_degree"][str(l)] for l in (1, 2)] == list(modes[1:])
    for l in (1, 2, 3, 4):
        ratio = s["half_points_theory"][str(l)] / s["modes_up_to_degree"][str(l)]
        assert 1.0 < ratio < 6.0, (l, ratio)
    # kernel regression crosses 1/2 for degrees 1 and 2 within the quick range, in the same order;
    # degree 2 close to the theory, degree 1 (only d = 20 modes, large scatter, measured up to
    # 33% late in the full run) loosely
    meas, theory = s["half_points_measured"], s["half_points_theory"]
    assert meas["1"] is not None and meas["2"] is not None and meas["1"] < meas["2"]
    assert meas["2"] == pytest.approx(theory["2"], rel=0.1)
    assert meas["1"] == pytest.approx(theory["1"], rel=0.5)
    assert s["agreement"]["all"]["median_rel_error"] < 0.05
    assert s["agreement"]["all"]["fraction_within"] >= 0.9


# ----------------------------------------------------------------------------- multiple descent
def test_multiple_descent_peaks(figure) -> None:
    s = figure("multiple_descent").summary
    for d_str, info in s["theory"].items():
        d = int(d_str)
        n1, n2 = d, (d + 2) * (d - 1) // 2
        assert info["N(d,1)"] == n1 and info["N(d,2)"] == n2
        assert len(info["maxima"]) == 2
        p1, p2 = info["maxima"]
        assert 1.0 < p1 / n1 < 1.3 and 0.95 < p2 / (1 + n1 + n2) < 1.3, (d, info["maxima"])
        # a dip (plateau) between the two peaks
        assert any(p1 < m < p2 for m in info["minima"])
    e = s["experiment"]
    assert 0.8 < e["theory"]["peak_1/M_1"] < 1.3 and 0.8 < e["theory"]["peak_2/M_2"] < 1.3
    assert e["agreement"]["median_rel_error"] < 0.08
    assert e["measured_rise_to_second_peak"]["z"] > 1.0
    assert e["agreement"]["fraction_within"] >= 0.9
