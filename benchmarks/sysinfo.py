"""Machine, library and BLAS description recorded with every benchmark table."""

from __future__ import annotations

import ctypes
import datetime
import os
import platform
import subprocess
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _numpy_blas() -> dict[str, str]:
    """BLAS numpy was built against, from ``numpy.show_config(mode="dicts")``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "install pyyaml for better output"
            cfg = np.show_config(mode="dicts")
    except TypeError:  # numpy < 1.26: no mode argument
        cfg = getattr(np.__config__, "CONFIG", {})
    blas = (cfg or {}).get("Build Dependencies", {}).get("blas", {})
    return {
        "name": str(blas.get("name", "unknown")),
        "version": str(blas.get("version", "unknown")),
        "config": str(blas.get("openblas configuration", "")).strip(),
    }


_OPENBLAS_SYMBOLS = {
    "corename": (
        "scipy_openblas_get_corename64_",
        "scipy_openblas_get_corename",
        "openblas_get_corename64_",
        "openblas_get_corename",
    ),
    "threads": (
        "scipy_openblas_get_num_threads64_",
        "scipy_openblas_get_num_threads",
        "openblas_get_num_threads64_",
        "openblas_get_num_threads",
    ),
}


def _loaded_openblas() -> list[dict[str, Any]]:
    """Runtime core type and thread count of every OpenBLAS loaded in this process.

    Uses threadpoolctl when installed, else reads /proc/self/maps and asks each library
    through ctypes (what threadpoolctl does internally).
    """
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        return [
            {
                "library": Path(i.get("filepath", "?")).name,
                "api": i.get("internal_api"),
                "corename": i.get("architecture"),
                "threads": i.get("num_threads"),
                "source": "threadpoolctl",
            }
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
    paths: list[str] = []
    try:
        for line in Path("/proc/self/maps").read_text().splitlines():
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "openblas" in path.lower() and ".so" in path and path not in paths:
                paths.append(path)
    except OSError:
        return []
    out = []
    for path in paths:
        info: dict[str, Any] = {"library": Path(path).name, "source": "ctypes"}
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for key, names in _OPENBLAS_SYMBOLS.items():
            for name in names:
                fn = getattr(lib, name, None)
                if fn is None:
                    continue
                if key == "corename":
                    fn.restype = ctypes.c_char_p
                    info[key] = fn().decode()
                else:
                    fn.restype = ctypes.c_int
                    info[key] = fn()
                break
        out.append(info)
    return out


def _git_state(repo: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in src/" if dirty else " (src/ clean)")


def describe(repo: Path) -> dict[str, Any]:
    """Everything needed to interpret (and reproduce) a timing."""
    import mpmath

    try:
        import flint

        flint_version = flint.__version__
    except ImportError:
        flint_version = "not installed"
    import fieldcurve

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.node()} / {platform.platform()}",
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "mpmath": mpmath.__version__,
        "python-flint": flint_version,
        "fieldcurve": f"{fieldcurve.__version__}, git {_git_state(repo)}",
        "blas": _numpy_blas(),
        "openblas_runtime": _loaded_openblas(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
        "thread_env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ
        },
    }


def to_markdown(info: dict[str, Any]) -> str:
    blas = info["blas"]
    runtime = (
        "; ".join(
            f"{r.get('library')}: core {r.get('corename', '?')}, {r.get('threads', '?')} threads"
            f" (via {r.get('source')})"
            for r in info["openblas_runtime"]
        )
        or "not detected"
    )
    threads = ", ".join(f"{k}={v}" for k, v in info["thread_env"].items()) or "none set"
    lines = [
        f"- date: {info['date']}",
        f"- machine: {info['machine']}",
        f"- CPU: {info['cpu']}; os.cpu_count() = {info['cpu_count']},"
        f" usable (affinity) = {info['cpu_affinity']}",
        f"- Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']},"
        f" mpmath {info['mpmath']}, python-flint {info['python-flint']}",
        f"- fieldcurve {info['fieldcurve']}",
        f"- numpy BLAS (numpy.show_config): {blas['name']} {blas['version']}"
        + (f" — `{blas['config']}`" if blas["config"] else ""),
        f"- BLAS at run time: {runtime}",
        f"- OPENBLAS_CORETYPE: {info['OPENBLAS_CORETYPE']}; thread env vars: {threads}",
    ]
    return "\n".join(lines)
