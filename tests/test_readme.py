"""The README's two commands, .ci/run and the CLI entry point stay consistent."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _first_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [b.strip() for b in blocks[:2]]


def test_readme_starts_with_install_and_test_commands():
    run, test = _first_commands()
    assert "pip install ." in run and run.rstrip().endswith("fieldcurve predict")
    assert 'pip install ".[dev]"' in test and "python -m pytest" in test


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    _, test = _first_commands()
    install = re.search(r'pip install "\.\[dev\]"', test).group(0)
    assert install in ci
    assert "python -m pytest" in ci
    assert "-eq 5" in ci  # "no tests collected" is a failure


def test_predict_default_run_writes_plot(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fieldcurve.cli",
            "predict",
            "--P",
            "10:1000:5",
            "--plot",
            str(tmp_path / "lc.png"),
            "--csv",
            str(tmp_path / "lc.csv"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "E_g+noise" in out.stdout and (tmp_path / "lc.png").stat().st_size > 1000
    rows = (tmp_path / "lc.csv").read_text().strip().splitlines()
    assert rows[0].startswith("P,test_error") and len(rows) == 6
    bad = subprocess.run(
        [sys.executable, "-m", "fieldcurve.cli", "predict", "--powers", "1:-1"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "power of degree 1 must be >= 0" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_default_run_and_bad_input(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fieldcurve.cli",
            "spectrum",
            "--lmax",
            "8",
            "--plot",
            str(tmp_path / "s.png"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "cum. frac." in out.stdout and (tmp_path / "s.png").stat().st_size > 1000
    bad = subprocess.run(
        [sys.executable, "-m", "fieldcurve.cli", "spectrum", "--d", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "--d must be between 2 and" in bad.stderr
    assert "Traceback" not in bad.stderr
