"""Experiments: config validation, the results store, resumable sweeps (SIGKILL), failures,
executors (process pool, dask LocalCluster) and the validate/report commands."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

from fieldcurve.cli import main
from fieldcurve.validation.config import load_config
from fieldcurve.validation.runner import run_sweep
from fieldcurve.validation.store import ResultsStore


def tiny(**changes) -> dict:
    cfg = {
        "experiment": {"name": "tiny", "seed": 1, "tolerance": 10.0},
        "network": {"depth": 1, "activation": "relu", "weight_var": 2.0, "bias_var": 0.1, "width": 32},
        "training": {"method": "gd", "tol": 1e-4, "max_steps": 3000, "ensemble": 1},
        "target": {"d": 4, "powers": {"1": 1.0}, "noise": 0.0},
        "sweep": {"P": [8, 16], "seeds": 2, "n_test": 100},
    }
    for dotted, value in changes.items():
        table, key = dotted.split("__")
        if value is None:
            cfg[table].pop(key, None)
        else:
            cfg[table][key] = value
    return cfg


def trained(counts: dict) -> tuple[int, int, int]:
    """(done, failed, skipped) of a sweep with no other sweep on its store."""
    assert counts["elsewhere"] == counts["busy"] == 0, counts
    return counts["done"], counts["failed"], counts["skipped"]


def write_toml(path: Path, cfg: dict) -> Path:
    lines = []
    for table, entries in cfg.items():
        lines.append(f"[{table}]")
        for k, v in entries.items():
            if isinstance(v, dict):
                inner = ", ".join(f'"{a}" = {b}' for a, b in v.items())
                lines.append(f"{k} = {{ {inner} }}")
            else:
                lines.append(f"{k} = {json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "changes, key",
    [
        ({"network__widht": 3}, "network.widht"),
        ({"network__width": 0}, "network.width"),
        ({"network__width": [64, -1]}, "network.width"),
        ({"sweep__P": [10, 0]}, "sweep.P"),
        ({"training__method": "adam"}, "training.method"),
        ({"training__init": "zero"}, "training.init"),
        ({"training__tol": -1.0}, "training.tol"),
        ({"target__powers": {"x": 1.0}}, "target.powers"),
        ({"target__d": 1}, "target.d"),
        ({"target__noise": -0.1}, "target.noise"),
        ({"network__activation": "nope"}, "network"),
        ({"network__depth": "2"}, "network.depth"),
        ({"experiment__name": None}, "experiment.name"),
        ({"training__method": "langevin", "training__ensemble": 1}, "training.ensemble"),
        (
            {"target__powers": None, "target__d": None, "target__dataset": "digits", "sweep__P": [2000]},
            "sweep.P",
        ),
        ({"target__powers": None, "target__data": "missing.npy", "target__labels": 0}, "target.data"),
        ({"target__dataset": "digits"}, "target"),
        ({"sweep__finite_width_samples": 4096}, "sweep.finite_width_samples"),  # needs langevin
        (
            {"training__method": "langevin", "training__ensemble": 2, "sweep__finite_width_samples": 8},
            "sweep.finite_width_samples",
        ),
    ],
)
def test_bad_config_is_rejected_naming_the_key(changes, key):
    if "target__dataset" in changes and changes.get("sweep__P") == [2000]:
        pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config(tiny(**changes))


def test_bad_toml_and_unknown_table(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\nname = 1")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ValueError, match="extra"):
        load_config({**tiny(), "extra": {}})
    with pytest.raises(ValueError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_builtin_configs_are_valid():
    from fieldcurve.validation.config import builtin_configs

    names = set(builtin_configs())
    assert {"smoke", "gd_relu", "langevin_relu", "width_sweep", "digits"} <= names
    for name in names:
        exp = load_config(name)
        assert exp.runs() and len({r.key for r in exp.runs()}) == len(exp.runs())


# ----------------------------------------------------------------------------- store
def test_store_roundtrip_skips_done_and_exports(tmp_path):
    pa = pytest.importorskip("pyarrow.parquet")
    exp = load_config(tiny())
    store = tmp_path / "s.sqlite"
    first = run_sweep(exp, store, progress=False)
    assert first == {"done": 4, "failed": 0, "skipped": 0, "elsewhere": 0, "busy": 0}
    again = run_sweep(exp, store, progress=False)
    assert again == {"done": 0, "failed": 0, "skipped": 4, "elsewhere": 0, "busy": 0}
    with ResultsStore(store) as s:
        assert s.export_csv(tmp_path / "r.csv") == 4
        assert s.export_parquet(tmp_path / "r.parquet") == 4
        rows = list(s.rows())
    table = pa.read_table(tmp_path / "r.parquet")
    assert table.num_rows == 4 and "test_error" in table.column_names
    assert all(r["status"] == "done" and r["result"]["test_error"] > 0 for r in rows)
    with pytest.raises(ValueError, match="another configuration"):
        run_sweep(load_config(tiny(**{"sweep__n_test": 50})), store, progress=False)
    # a report for widths without finished runs (a sweep extended to new widths) renders
    from fieldcurve.validation.report import write_report

    summary = write_report(store, tmp_path / "rep", config=tiny(network__width=[64]))
    assert summary["widths"] == {} and (tmp_path / "rep" / "report.png").stat().st_size > 0


def test_failed_run_is_stored_and_retried(tmp_path, monkeypatch):
    import fieldcurve.validation.runner as runner

    real = runner.execute_run

    def flaky(run):
        if run.P == 16:
            raise FloatingPointError("diverged on purpose")
        return real(run)

    monkeypatch.setattr(runner, "execute_run", flaky)
    store = tmp_path / "f.sqlite"
    assert trained(run_sweep(load_config(tiny()), store, progress=False)) == (2, 2, 0)
    with ResultsStore(store) as s:
        failed = list(s.rows("failed"))
    assert len(failed) == 2 and "diverged on purpose" in failed[0]["error"]
    monkeypatch.setattr(runner, "execute_run", real)
    assert trained(run_sweep(load_config(tiny()), store, progress=False)) == (2, 0, 2)


def test_interrupted_write_rolls_back(tmp_path):
    """A process that dies inside a write transaction leaves the store readable and unchanged."""
    store = tmp_path / "c.sqlite"
    run_sweep(load_config(tiny(**{"sweep__P": [8], "sweep__seeds": 1})), store, progress=False)
    code = (
        "import os, sys; from fieldcurve.validation.store import ResultsStore\n"
        f"s = ResultsStore({str(store)!r}, write=True)\n"
        "s._db.execute('BEGIN IMMEDIATE')\n"
        "s._db.execute(\"INSERT INTO runs VALUES ('x', 'e', 1, 1, 1, 'done', '{}', NULL, 0, 0, 'v')\")\n"
        "os._exit(9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 9
    with ResultsStore(store) as s:
        assert s.counts() == {"done": 1}
        assert s._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sigkilled_sweep_resumes_without_loss_or_duplicates(tmp_path):
    cfg = write_toml(tmp_path / "k.toml", tiny(**{"sweep__P": [8, 12, 16, 20], "sweep__seeds": 3}))
    store = tmp_path / "k.sqlite"
    argv = ["validate", str(cfg), "--store", str(store), "--out", str(tmp_path / "rep"), "--json"]
    code = f"from fieldcurve.cli import main; main({argv!r})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done_before: dict[str, float] = {}
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        if store.exists():
            try:
                with sqlite3.connect(store, timeout=5) as db:
                    rows = db.execute("SELECT key, result FROM runs WHERE status = 'done'").fetchall()
            except sqlite3.OperationalError:
                continue
            if len(rows) >= 3:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ResultsStore(store) as s:
        done_before = {r["key"]: r["result"]["test_error"] for r in s.rows("done")}
    total = len(load_config(cfg).runs())
    assert 3 <= len(done_before) < total, len(done_before)
    counts = run_sweep(load_config(cfg), store, progress=False)
    assert counts["skipped"] == len(done_before) and counts["done"] == total - len(done_before)
    with ResultsStore(store) as s:
        rows = list(s.rows())
        assert len(rows) == total == len({r["key"] for r in rows})
        for r in rows:
            if r["key"] in done_before:
                assert r["result"]["test_error"] == done_before[r["key"]]


# ----------------------------------------------------------------------------- executors
def test_process_pool_and_dask_give_the_same_results(tmp_path):
    distributed = pytest.importorskip("distributed")
    exp = load_config(tiny())
    run_sweep(exp, tmp_path / "serial.sqlite", progress=False)
    assert run_sweep(exp, tmp_path / "pool.sqlite", workers=2, progress=False)["done"] == 4
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cl:
        with distributed.Client(cl) as client:
            assert run_sweep(exp, tmp_path / "dask.sqlite", scheduler=client, progress=False)["done"] == 4
    results = []
    for name in ("serial", "pool", "dask"):
        with ResultsStore(tmp_path / f"{name}.sqlite") as s:
            results.append({r["key"]: r["result"]["test_error"] for r in s.rows()})
    assert results[0].keys() == results[1].keys() == results[2].keys()
    for key, value in results[0].items():
        assert results[1][key] == pytest.approx(value, rel=1e-9)
        assert results[2][key] == pytest.approx(value, rel=1e-9)


# ----------------------------------------------------------------------------- commands
def test_smoke_config_validates_and_report_rerenders(tmp_path, capsys):
    store, out = tmp_path / "smoke.sqlite", tmp_path / "smoke_report"
    with pytest.raises(SystemExit) as exc:
        main(["validate", "smoke", "--store", str(store), "--out", str(out), "--json"])
    got = json.loads(capsys.readouterr().out)
    assert exc.value.code == 0, got
    assert got["passed"] and got["runs"]["done"] == 16
    report = (out / "report.md").read_text()
    assert "PASS" in report and (out / "report.png").stat().st_size > 10_000
    rows = got["widths"]["512"]["rows"] if "512" in got["widths"] else got["widths"][512]["rows"]
    assert [r["P"] for r in rows] == [10, 20, 40, 80] and all(r["converged"] for r in rows)
    (out / "report.md").unlink()
    with pytest.raises(SystemExit) as exc:
        main(["report", str(store), "--out", str(out), "--csv", str(tmp_path / "runs.csv")])
    assert exc.value.code == 0
    assert (out / "report.md").read_text() == report
    assert (tmp_path / "runs.csv").read_text().count("\n") == 17


def test_validate_list(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--list"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and all(
        name in out for name in ("smoke", "gd_relu", "langevin_relu", "digits")
    )


def test_validate_bad_input_exit_2(tmp_path, capsys):
    for argv in (
        ["validate"],
        ["validate", str(tmp_path / "nope.toml")],
        ["report", str(tmp_path / "none.sqlite")],
        ["validate", "smoke", "--workers", "0", "--store", str(tmp_path / "w.sqlite")],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("error:") and "Traceback" not in err, err


def test_extending_the_grid_keeps_finished_runs(tmp_path):
    store = tmp_path / "g.sqlite"
    assert run_sweep(load_config(tiny()), store, progress=False)["done"] == 4
    wider = tiny(**{"sweep__P": [8, 16, 24], "experiment__tolerance": 0.5})
    assert trained(run_sweep(load_config(wider), store, progress=False)) == (2, 0, 4)


def test_digits_sweep_and_report(tmp_path):
    """The data-set path: ten one-hot outputs, held-out error, theory with the init term."""
    pytest.importorskip("sklearn")
    from fieldcurve.validation.report import write_report

    cfg = tiny(
        **{"target__powers": None, "target__d": None, "target__noise": None, "target__dataset": "digits"},
        **{"sweep__P": [20], "network__width": 64},
    )
    store = tmp_path / "d.sqlite"
    assert run_sweep(load_config(cfg), store, progress=False)["done"] == 2
    summary = write_report(store, tmp_path / "rep")
    row = summary["widths"][64]["rows"][0]
    assert row["P"] == 20 and row["measured"] > 1.0 and row["predicted"] > 1.0  # 10 outputs + init


def test_finite_width_summary_recovers_a_one_over_width_law():
    """Synthetic runs whose gap is exactly -3/n (plus 1% seed noise) and whose prediction is -2/n:
    the fitted slope is -1, the improvement is RMS gap / RMS (gap - prediction) = 3 and the
    regression slope of the gap on the prediction is 1.5."""
    from fieldcurve.validation.report import _finite_width_summary

    rng = np.random.default_rng(0)
    extra = {}
    for n in (32, 64, 128, 256, 8192):
        runs = []
        for _ in range(6):
            e_gp = 0.1
            gap = -3.0 / n * (1 + 0.01 * rng.standard_normal())
            runs.append(
                {
                    "test_error": e_gp * (1 + gap),
                    "infinite_width_same_data": e_gp,
                    "finite_width_gp": e_gp,
                    "finite_width_nlo": -2.0 * e_gp,  # predicted gap -2/n
                }
            )
        extra[(n, 50)] = runs
    fw = _finite_width_summary(extra)["finite_width"][50]
    assert fw["slope"] == pytest.approx(-1.0, abs=0.03)
    assert fw["widths_in_fit"] == [32, 64, 128, 256]
    assert fw["rows"][-1]["rms_gap_signal"] == 0.0 and fw["rows"][0]["rms_gap_signal"] > 0
    row = fw["rows"][0]
    assert row["width"] == 32 and row["predicted"] == pytest.approx(-2 / 32)
    assert row["gap"] == pytest.approx(-3 / 32, rel=0.02)
    assert row["rms_gap"] == pytest.approx(3 / 32, rel=0.02)
    assert row["improvement"] == pytest.approx(3.0, rel=0.05)
    assert row["slope_on_prediction"] == pytest.approx(1.5, rel=0.02)
    assert _finite_width_summary({(64, 10): [{"test_error": 1.0, "infinite_width_same_data": 1.0}] * 3}) == {}


def test_finite_width_summary_removes_per_run_monte_carlo_noise(tmp_path):
    """Runs whose measured gap is -3/n plus Gaussian sampling noise of known standard error
    (stored as test_error_se, 0.4% of E_GP): the noise floor is that error at every width, and
    removing it in quadrature recovers the true RMS gap 3/n and the 1/n law, including at widths
    where the raw RMS gap is dominated by the noise."""
    from fieldcurve.validation.report import _finite_width_summary

    rng = np.random.default_rng(1)
    sigma, e_gp = 0.004, 0.5
    extra = {}
    for n in (32, 64, 128, 256):
        runs = []
        for _ in range(400):
            gap = -3.0 / n + sigma * rng.standard_normal()
            runs.append(
                {
                    "test_error": e_gp * (1 + gap),
                    "test_error_se": sigma * e_gp,
                    "infinite_width_same_data": e_gp,
                    "finite_width_gp": e_gp,
                    "finite_width_nlo": -3.0 * e_gp,
                }
            )
        extra[(n, 20)] = runs
    fw = _finite_width_summary(extra)["finite_width"][20]
    assert fw["noise_source"] == "per-run Monte Carlo errors"
    for r in fw["rows"]:
        assert r["floor"] == pytest.approx(sigma)
        assert r["rms_gap_signal"] == pytest.approx(3.0 / r["width"], rel=0.1)
        assert r["rms_residual"] == pytest.approx(sigma, rel=0.1)  # the prediction is exact here
    assert fw["widths_in_fit"] == [32, 64, 128, 256]
    assert fw["slope"] == pytest.approx(-1.0, abs=0.06)
    assert len(fw["rows"][0]["pairs"]) == 400  # per-run (g, h) for the scatter panel
    from fieldcurve.validation.report import _plot_finite_width

    _plot_finite_width({20: fw}, tmp_path / "fw.png")
    assert (tmp_path / "fw.png").stat().st_size > 10_000
