"""Issue 13, item 4: a safe store and a clean sweep.

Names cannot leave the output folder; files that are not fieldcurve stores are never modified;
damaged and read-only stores; runs are claimed so concurrent sweeps never train a run twice;
workers end with their parent (SIGKILL); the training extra is checked before any run; bad
seeds, empty grids, infinite tolerances and oversized grids are refused by name."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import fieldcurve
import fieldcurve.validation.config as config_mod
import fieldcurve.validation.runner as runner
from fieldcurve.cli import main
from fieldcurve.validation.config import MAX_GRID_VALUES, MAX_SEED, load_config, run_defining
from fieldcurve.validation.store import APPLICATION_ID, CLAIM_STALE_SECONDS, ResultsStore

BASE = {
    "experiment": {"name": "tiny", "seed": 1, "tolerance": 10.0},
    "network": {"depth": 1, "activation": "relu", "weight_var": 2.0, "bias_var": 0.1, "width": 32},
    "training": {"method": "gd", "tol": 1e-4, "max_steps": 3000, "ensemble": 1},
    "target": {"d": 4, "powers": {"1": 1.0}, "noise": 0.0},
    "sweep": {"P": [8, 16], "seeds": 2, "n_test": 100},
}


def cfg(**changes) -> dict:
    out = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        table, key = dotted.split("__")
        out[table][key] = value
    return out


def fake_result(run) -> dict:
    return {"test_error": 0.5 + 1e-3 * (run.seed % 7), "infinite_width_same_data": 0.5, "converged": True}


@pytest.fixture
def fake_training(monkeypatch):
    """Replace training by a cheap stand-in; returns the list of run keys it trained."""
    trained: list[str] = []
    lock = threading.Lock()

    def execute(run):
        with lock:
            trained.append(run.key)
        time.sleep(0.05)
        return fake_result(run)

    monkeypatch.setattr(runner, "execute_run", execute)
    return trained


def foreign_db(path: Path) -> str:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users VALUES (1, 'ada')")
    db.commit()
    db.close()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal_mode(path: Path) -> str:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        db.close()


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


# ----------------------------------------------------------------------------- config limits
@pytest.mark.parametrize("name", ["/tmp/abs/evil", "../x", "a/b", "a\\b", ".hidden", "", "x" * 65, "a b"])
def test_names_that_could_leave_the_folder_are_refused(name):
    with pytest.raises(ValueError, match=r"experiment\.name"):
        load_config(cfg(experiment__name=name))


def test_plain_names_are_accepted():
    for name in ("smoke", "gd_relu", "run-2", "A1", "x" * 64):
        assert load_config(cfg(experiment__name=name)).name == name


@pytest.mark.parametrize(
    "changes, key, words",
    [
        ({"experiment__seed": -5}, "experiment.seed", "MAX_SEED"),
        ({"experiment__seed": 9223372036854775807}, "experiment.seed", "MAX_SEED"),
        ({"experiment__seed": MAX_SEED + 1}, "experiment.seed", "MAX_SEED"),
        ({"sweep__seeds": 1_000_000_000}, "sweep.seeds", "MAX_SEEDS"),
        ({"sweep__seeds": 0}, "sweep.seeds", "positive"),
        ({"sweep__P": []}, "sweep.P", "empty"),
        ({"network__width": []}, "network.width", "empty"),
        ({"sweep__P": [8, 8]}, "sweep.P", "twice"),
        ({"sweep__P": list(range(1, 20_001))}, "sweep.P", "MAX_GRID_VALUES"),
        ({"sweep__P": [10**9]}, "sweep.P", "MAX_P"),
        ({"experiment__tolerance": float("inf")}, "experiment.tolerance", "finite"),
        ({"experiment__tolerance": float("nan")}, "experiment.tolerance", "finite"),
        ({"training__lr_factor": float("inf")}, "training.lr_factor", "finite"),
        ({"training__tol": float("inf")}, "training.tol", "finite"),
        ({"network__weight_var": float("inf")}, "network.weight_var", "finite"),
        ({"network__depth": 100_000}, "network.depth", "MAX_DEPTH"),
        ({"network__width": 10**9}, "network.width", "MAX_WIDTH"),
        ({"network__width": 60_000, "network__depth": 3}, "sweep", "MAX_RUN_BYTES"),
        ({"sweep__n_test": 10**9}, "sweep.n_test", "MAX_N_TEST"),
        ({"training__ensemble": 10**6}, "training.ensemble", "MAX_ENSEMBLE"),
        ({"training__max_steps": 10**12}, "training.max_steps", "MAX_STEPS"),
        ({"target__d": 10**9}, "target.d", "MAX_D"),
        ({"target__powers": {"1000000000": 1.0}}, "target.powers", "MAX_DEGREE"),
        ({"sweep__seeds": 10_000, "sweep__P": list(range(1, 101))}, "sweep", "MAX_RUNS"),
    ],
)
def test_bad_values_are_refused_naming_the_key_and_limit(changes, key, words):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as exc:
        load_config(cfg(**changes))
    assert words in str(exc.value)


def test_huge_config_file_is_refused_by_size(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text('[experiment]\nname = "x"\ndescription = "' + "a" * 2**20 + '"\n')
    with pytest.raises(ValueError, match="MAX_CONFIG_BYTES"):
        load_config(path)


def test_grid_setup_serialises_the_configuration_once(monkeypatch):
    """Setting up the grid is linear in its size: the run-defining part of the configuration (which
    holds the grid lists) is serialised once per grid, not once per run (that made a TOML with
    20,000 P values take > 150 s)."""
    exp = load_config(cfg(**{"sweep__P": list(range(1, MAX_GRID_VALUES + 1)), "sweep__seeds": 3}))
    calls = []
    real = config_mod.run_defining
    monkeypatch.setattr(config_mod, "run_defining", lambda c: calls.append(1) or real(c))
    runs = exp.runs()
    assert len(runs) == 3 * MAX_GRID_VALUES and len(calls) == 1
    assert len({r.key for r in runs}) == len(runs)


def test_run_keys_are_unchanged_by_the_linear_setup():
    """Keys are the hash of the same JSON as before, so existing stores resume."""
    for name in ("smoke", "gd_relu", "width_sweep"):
        for run in load_config(name).runs()[:5]:
            blob = json.dumps(
                {
                    "config": run_defining(run.config),
                    "width": run.width,
                    "P": run.P,
                    "seed": run.seed,
                    "version": fieldcurve.__version__,
                },
                sort_keys=True,
            )
            assert run.key == hashlib.sha256(blob.encode()).hexdigest()[:32]


def test_largest_seed_is_stored_and_reported(tmp_path, fake_training):
    exp = load_config(cfg(experiment__seed=MAX_SEED))
    assert max(r.seed for r in exp.runs()) < 2**63
    counts = runner.run_sweep(exp, tmp_path / "s.sqlite", progress=False)
    assert counts["done"] == 4 and counts["failed"] == 0
    with ResultsStore(tmp_path / "s.sqlite") as s:
        assert sorted(r["seed"] for r in s.rows()) == sorted(r.seed for r in exp.runs())


# ----------------------------------------------------------------------------- foreign files
def test_report_on_another_apps_database_changes_nothing(tmp_path, capsys):
    other = tmp_path / "other_app.sqlite"
    digest = foreign_db(other)
    code, _, err = run_cli(["report", str(other), "--out", str(tmp_path / "rep")], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a fieldcurve results store" in err, err
    assert hashlib.sha256(other.read_bytes()).hexdigest() == digest
    assert journal_mode(other) == "delete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other_app.sqlite"]


def test_validate_into_another_apps_database_is_refused_before_training(tmp_path, capsys, fake_training):
    other = tmp_path / "other_app.sqlite"
    digest = foreign_db(other)
    toml = tmp_path / "t.toml"
    toml.write_text(
        '[experiment]\nname = "t"\n[network]\ndepth = 1\nwidth = 8\n[training]\nmethod = "gd"\n'
        '[target]\nd = 3\npowers = { "1" = 1.0 }\n[sweep]\nP = [4]\nseeds = 1\nn_test = 10\n'
    )
    code, _, err = run_cli(["validate", str(toml), "--store", str(other)], capsys)
    assert code == 2 and "not a fieldcurve results store" in err, err
    assert fake_training == []
    assert hashlib.sha256(other.read_bytes()).hexdigest() == digest and journal_mode(other) == "delete"
    with pytest.raises(ValueError, match="not a fieldcurve results store"):
        ResultsStore(other, write=True)
    assert hashlib.sha256(other.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize(
    "content",
    [b"name,value\n1,2\n", b"SQLite format 3\x00" + b"\x00" * 200, b"\x00" * 4096],
    ids=["text", "truncated-sqlite", "zeros"],
)
def test_non_store_files_are_refused_untouched(tmp_path, content):
    path = tmp_path / "x.sqlite"
    path.write_bytes(content)
    for write in (False, True):
        with pytest.raises(ValueError, match=str(path.name)):
            ResultsStore(path, write=write)
        assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.sqlite"]


def test_other_application_id_and_empty_database_are_refused(tmp_path):
    marked = tmp_path / "marked.sqlite"
    db = sqlite3.connect(marked)
    db.execute("PRAGMA application_id = 1234")
    db.execute("CREATE TABLE runs (key TEXT)")
    db.commit()
    db.close()
    empty = tmp_path / "empty.sqlite"
    db = sqlite3.connect(empty)
    db.execute("PRAGMA user_version = 3")  # someone's empty database, marked by its version
    db.commit()
    db.close()
    for path in (marked, empty):
        before = path.read_bytes()
        with pytest.raises(ValueError, match="not a fieldcurve results store"):
            ResultsStore(path, write=True)
        assert path.read_bytes() == before


def test_new_store_is_marked_and_an_empty_file_becomes_one(tmp_path, fake_training):
    (tmp_path / "empty.sqlite").touch()
    for name in ("new.sqlite", "empty.sqlite"):
        runner.run_sweep(load_config(cfg()), tmp_path / name, progress=False)
        db = sqlite3.connect(f"file:{tmp_path / name}?mode=ro", uri=True)
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.close()


def test_store_of_a_newer_schema_is_refused(tmp_path, fake_training):
    path = tmp_path / "s.sqlite"
    runner.run_sweep(load_config(cfg()), path, progress=False)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="newer fieldcurve"):
        ResultsStore(path)


# ----------------------------------------------------------------------------- damaged, read-only, legacy
def test_garbled_store_gives_one_clear_error(tmp_path, capsys, fake_training):
    path = tmp_path / "g.sqlite"
    runner.run_sweep(
        load_config(cfg(**{"sweep__P": [8, 16, 24, 32], "sweep__seeds": 8})), path, progress=False
    )
    data = bytearray(path.read_bytes())
    assert len(data) > 3 * 4096
    for i in range(4096 + 100, 3 * 4096, 7):
        data[i] = (data[i] * 31 + 17) % 256
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        ResultsStore(path)
    code, _, err = run_cli(["report", str(path), "--out", str(tmp_path / "rep")], capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "damaged" in err, err


def test_reading_never_writes(tmp_path, fake_training):
    """A read-only open uses mode=ro: no write-ahead-log switch, no -wal/-shm files, no bytes
    changed, and writes through it fail."""
    path = tmp_path / "r.sqlite"
    runner.run_sweep(load_config(cfg()), path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite"]
    before = path.read_bytes()
    with ResultsStore(path) as s:
        assert s.counts() == {"done": 4} and s.config()["experiment"]["name"] == "tiny"
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            s._db.execute("DELETE FROM runs")
        with pytest.raises(ValueError, match="read-only"):
            s.claim("x")
    assert path.read_bytes() == before


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_store_in_a_read_only_folder_can_be_reported(tmp_path, capsys, fake_training):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "r.sqlite"
    runner.run_sweep(load_config(cfg()), path, progress=False)
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        code, out, err = run_cli(["report", str(path), "--out", str(tmp_path / "rep"), "--json"], capsys)
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    assert code == 0, err
    assert json.loads(out)["widths"]


def test_finished_is_iso_8601_and_legacy_stores_are_read_and_upgraded(tmp_path, fake_training):
    from datetime import datetime

    path = tmp_path / "l.sqlite"
    runner.run_sweep(load_config(cfg()), path, progress=False)
    with ResultsStore(path) as s:
        rows = list(s.rows())
        s.export_csv(tmp_path / "runs.csv")
    stamp = rows[0]["finished"]
    assert isinstance(stamp, str) and datetime.fromisoformat(stamp).utcoffset().total_seconds() == 0
    assert stamp in (tmp_path / "runs.csv").read_text()
    # a store as earlier versions wrote it: no marker, no claims table, Unix seconds
    legacy = tmp_path / "legacy.sqlite"
    db = sqlite3.connect(legacy)
    db.executescript(
        """CREATE TABLE runs (key TEXT PRIMARY KEY, experiment TEXT NOT NULL, width INTEGER NOT NULL,
        P INTEGER NOT NULL, seed INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
        result TEXT, error TEXT, seconds REAL, finished REAL NOT NULL, version TEXT NOT NULL);
        CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);"""
    )
    exp = load_config(cfg())
    db.execute("INSERT INTO meta VALUES ('config', ?)", (json.dumps(exp.config, sort_keys=True),))
    run = exp.runs()[0]
    db.execute(
        "INSERT INTO runs VALUES (?, 'tiny', ?, ?, ?, 'done', ?, NULL, 1.0, 1700000000.0, ?)",
        (run.key, run.width, run.P, run.seed, json.dumps(fake_result(run)), fieldcurve.__version__),
    )
    db.commit()
    db.close()
    with ResultsStore(legacy) as s:
        assert [r["finished"] for r in s.rows()] == ["2023-11-14T22:13:20+00:00"]
    counts = runner.run_sweep(exp, legacy, progress=False)
    assert counts["skipped"] == 1 and counts["done"] == 3
    with ResultsStore(legacy) as s:
        assert s.counts() == {"done": 4}


# ----------------------------------------------------------------------------- claims
def test_claims_are_exclusive_and_stale_claims_are_taken_over(tmp_path, fake_training):
    path = tmp_path / "c.sqlite"
    exp = load_config(cfg())
    runner.run_sweep(exp, path, progress=False)
    with ResultsStore(path, write=True) as a, ResultsStore(path, write=True) as b:
        assert a.claim("k1") == "claimed"
        assert b.claim("k1") == "busy" and b.state("k1") == "busy"
        assert a.claim(exp.runs()[0].key) == "done"
        a.release()
        assert b.claim("k1") == "claimed"
        # a claim of a process that is gone (same host) is stale at once
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
        pid = int(dead.stdout)
        b._db.execute("UPDATE claims SET pid = ?, owner = 'gone' WHERE key = 'k1'", (pid,))
        assert a.state("k1") == "free" and a.claim("k1") == "claimed"
        # a claim from another host is live until its heartbeat is older than CLAIM_STALE_SECONDS
        a._db.execute("UPDATE claims SET host = 'elsewhere', owner = 'remote' WHERE key = 'k1'")
        assert b.claim("k1") == "busy"
        old = time.time() - CLAIM_STALE_SECONDS - 1
        a._db.execute("UPDATE claims SET heartbeat = ? WHERE key = 'k1'", (old,))
        assert b.claim("k1") == "claimed"
        b.heartbeat()
        assert b.claims()[0]["heartbeat"] > old + 1


def test_a_busy_run_is_left_to_its_claimant_and_counted(tmp_path, fake_training):
    path = tmp_path / "b.sqlite"
    exp = load_config(cfg())
    with ResultsStore(path, write=True) as other:
        other.set_config(exp.config)
        other.claim(exp.runs()[0].key)
        counts = runner.run_sweep(exp, path, progress=False, wait=False)
    assert counts == {"done": 3, "failed": 0, "skipped": 0, "elsewhere": 0, "busy": 1}
    assert exp.runs()[0].key not in fake_training


def test_concurrent_sweeps_in_threads_train_every_run_once(tmp_path, fake_training):
    path = tmp_path / "t.sqlite"
    exp = load_config(cfg(**{"sweep__P": [8, 12, 16], "sweep__seeds": 4}))
    results = []

    def sweep() -> None:
        results.append(runner.run_sweep(exp, path, progress=False))

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = len(exp.runs())
    assert sorted(fake_training) == sorted(r.key for r in exp.runs())  # each run once
    assert sum(r["done"] for r in results) == total
    for r in results:
        assert r["done"] + r["skipped"] + r["elsewhere"] == total and r["busy"] == 0
    with ResultsStore(path) as s:
        assert s.counts() == {"done": total} and s.claims() == []


def test_concurrent_sweep_processes_train_every_run_once(tmp_path):
    store, log = tmp_path / "p.sqlite", tmp_path / "trained.log"
    exp_cfg = cfg(**{"sweep__P": [8, 12, 16], "sweep__seeds": 3})
    code = textwrap.dedent(
        f"""
        import json, os, time
        import fieldcurve.validation.runner as runner
        from fieldcurve.validation.config import load_config

        def execute(run):
            fd = os.open({str(log)!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, (run.key + "\\n").encode())
            os.close(fd)
            time.sleep(0.2)
            return {{"test_error": 1.0, "converged": True}}

        runner.execute_run = execute
        print(json.dumps(runner.run_sweep(load_config({exp_cfg!r}), {str(store)!r}, progress=False)))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [json.loads(p.communicate()[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    keys = log.read_text().split()
    expected = sorted(r.key for r in load_config(exp_cfg).runs())
    assert sorted(keys) == expected  # every run trained exactly once across both processes
    assert sum(o["done"] for o in outs) == len(expected)


# ----------------------------------------------------------------------------- extras, workers
def test_validate_without_jax_says_what_to_install_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "jax", None)
    store = tmp_path / "nojax.sqlite"
    with pytest.raises(ValueError, match=r'pip install "fieldcurve\[validation\]"'):
        runner.run_sweep(load_config(cfg()), store, progress=False)
    assert not store.exists()


def test_workers_limit():
    with pytest.raises(ValueError, match="MAX_WORKERS"):
        runner.run_sweep(load_config(cfg()), "unused.sqlite", workers=10**6)


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_sigkill_of_the_parent_ends_its_workers_and_the_resource_tracker(tmp_path):
    """A sweep with two worker processes, killed with SIGKILL while the workers train: both
    workers and multiprocessing's resource tracker exit; a new sweep takes over the dead
    sweep's claims."""
    pytest.importorskip("jax")
    store = tmp_path / "k.sqlite"
    exp_cfg = cfg(**{"training__max_steps": 200_000, "training__tol": 1e-12})
    code = (
        "from fieldcurve.validation.config import load_config\n"
        "from fieldcurve.validation.runner import run_sweep\n"
        f"run_sweep(load_config({exp_cfg!r}), {str(store)!r}, workers=2, progress=False)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    children: list[int] = []
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        children = _children(proc.pid)
        workers = [c for c in children if _rss_mb(c) > 150]  # JAX imported: training
        if len(children) >= 3 and len(workers) >= 2:
            break
    assert proc.poll() is None and len(children) >= 3, children
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 120
    while time.time() < deadline and any(_alive(c) for c in children):
        time.sleep(0.2)
    assert not any(_alive(c) for c in children), [c for c in children if _alive(c)]
    with ResultsStore(store) as s:
        assert len(s.claims()) == 2  # left behind by the dead sweep
    exp = load_config(exp_cfg)
    original = runner.execute_run
    runner.execute_run = fake_result
    try:
        counts = runner.run_sweep(exp, store, progress=False)
    finally:
        runner.execute_run = original
    assert counts["done"] + counts["skipped"] == len(exp.runs()) and counts["busy"] == 0
