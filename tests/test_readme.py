"""The README's two commands, .ci/run and the CLI entry point stay consistent."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

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


def _readme_commands() -> list[str]:
    """Every ``fieldcurve ...`` command of the README's bash blocks (continuations joined,
    comments dropped, ``a && b`` split)."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s+#\s", line)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("fieldcurve "):
                    out.append(" ".join(part.split()))
    return out


# Commands that name files or hosts the reader supplies: they must fail cleanly (one line, exit 2).
_PLACEHOLDERS = ("my_experiment.toml", "runs.sqlite")
# Measured at a few seconds each (2 shared cores): run in the default suite; the rest are slow.
_QUICK = (
    "fieldcurve predict --regime bayes --json",
    "fieldcurve predict --data X.csv --labels label --P 10:400:10",
    "fieldcurve spectrum --activation relu --depth 3 --d 30 --lmax 50 --kind ntk --plot spec.png",
    "fieldcurve finite-width --activation tanh --depth 8 --width 64 --json",
)


def _run_readme_command(command: str, cwd: Path) -> subprocess.CompletedProcess:
    import numpy as np

    rng = np.random.default_rng(0)  # the README's X.csv: 500 rows, a "label" column
    X = rng.standard_normal((500, 5))
    np.savetxt(
        cwd / "X.csv",
        np.column_stack([X, np.sin(X[:, 0])]),
        delimiter=",",
        header="a,b,c,d,e,label",
        comments="",
    )
    args = shlex.split(command)[1:]
    return subprocess.run(
        [sys.executable, "-m", "fieldcurve.cli", *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def test_readme_commands_are_all_covered():
    commands = _readme_commands()
    assert len(commands) >= 20 and "fieldcurve predict" in commands
    assert all(q in commands for q in _QUICK)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(c, marks=() if c in _QUICK or any(p in c for p in _PLACEHOLDERS) else pytest.mark.slow)
        for c in _readme_commands()
    ],
)
def test_readme_command_runs(command, tmp_path):
    """Issue 13: every command of the README works as written (placeholders fail in one line)."""
    if "--dataset digits" in command:
        pytest.importorskip("sklearn")
    if "validate" in command and "my_experiment" not in command:
        pytest.importorskip("jax")
    out = _run_readme_command(command, tmp_path)
    assert "Traceback" not in out.stderr, out.stderr
    if any(p in command for p in _PLACEHOLDERS):
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "not found" in out.stderr, out.stderr
        return
    assert out.returncode == 0, out.stderr
    if "--json" in command:
        json.loads(out.stdout, parse_constant=lambda name: pytest.fail(f"non-strict JSON {name}"))


def test_readme_limits_table_matches_the_code():
    from fieldcurve import _limits as lim

    text = (ROOT / "README.md").read_text()
    for expected in (
        f"| `--lmax` | 0 … {lim.MAX_LMAX} ",
        f"| `--powers` degrees | 0 … {lim.MAX_TARGET_DEGREE} ",
        f"| `--depth`, `--depths` | 0 … {lim.MAX_DEPTH} ",
        f"total degree and every exponent ≤ {lim.MAX_POLY_DEGREE}, ≤ {lim.MAX_POLY_TERMS} terms",
        f"coefficients ≤ {lim.MAX_POLY_COEFF_BITS} bits",
        f"| `monomial(k)` | 1 ≤ k ≤ {lim.MAX_MONOMIAL_ORDER} |",
        f"width ≤ {lim.MAX_MC_WIDTH}",
        f"P ≤ {lim.MAX_EMPIRICAL_P}",
    ):
        assert expected in text, expected
    assert (lim.MAX_P, lim.MAX_P_POINTS, lim.MAX_DATA_ROWS, lim.MAX_MC_NETWORKS) == (
        10**8,
        1000,
        10_000,
        10**8,
    )
    assert (lim.MAX_DIMENSION, lim.MAX_TRIALS, lim.MAX_EMPIRICAL_FLOPS, lim.MAX_MAGNITUDE) == (
        100_000,
        10_000,
        2e13,
        1e100,
    )


def test_validate_without_jax_says_what_to_install(tmp_path):
    """Without the validation extra, validate refuses in one line naming the extra (JAX hidden
    from a subprocess by a meta-path finder that refuses it)."""
    code = (
        "import sys, importlib.abc\n"
        "class NoJax(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'jax' or name.startswith('jax.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, NoJax())\n"
        "from fieldcurve.cli import main\n"
        "main(['validate', 'smoke'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert 'pip install ".[validation]"' in out.stderr and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path):
    """Every ```python block of the README, in order, as one script (~3 minutes on 2 cores)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 3
    script = tmp_path / "readme_blocks.py"
    script.write_text("\n".join(blocks))
    done = subprocess.run(
        [sys.executable, "-W", "ignore", str(script)], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
