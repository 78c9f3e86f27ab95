r"""Experiment configurations (TOML) and their expansion into a grid of runs.

A configuration has five tables; every key is checked before anything is trained (unknown keys,
wrong types, impossible values and missing files are rejected with the key's name)::

    [experiment]
    name = "smoke"
    seed = 0                 # base seed; run i of the grid derives its own from it
    tolerance = 0.25         # pass if the median relative error over P is at most this
    description = "..."      # optional

    [network]
    depth = 1
    activation = "relu"
    weight_var = 2.0
    bias_var = 0.1
    parameterization = "ntk" # or "standard"
    width = [256, 1024]      # one width or a list (a grid axis)

    [training]
    method = "gd"            # "gd" (gradient descent to convergence) or "langevin"
    init = "standard"        # gd: "standard", "centered" or "antisymmetric"
    tol = 1e-6               # gd: stop at train MSE <= tol * mean label power
    max_steps = 20000        # gd
    lr_factor = 1.0          # gd: lr = lr_factor * P / lambda_max(NTK);
                             # langevin: lr = lr_factor / (lambda_max / noise_var + 1)
    ensemble = 1             # networks per run trained together with vmap (gd), or chains (langevin)
    noise_var = 0.01         # langevin: likelihood variance sigma^2 (the temperature)
    steps = 20000            # langevin
    burn_in = 5000           # langevin
    thin = 50                # langevin
    dtype = "float64"        # or "float32" (about twice as fast on CPU)
    noise = "gaussian"       # langevin: or "rademacher" (random signs; cheaper, same weak order)
    estimator = "samples"    # langevin: or "rao_blackwell" (average the read-out layer's exact
                             # conditional posterior mean; far less noisy for wide networks)

    [target]                 # a sphere target ...
    d = 10
    powers = {"1" = 1.0, "2" = 0.5}
    noise = 0.0
    # ... or a data set:  dataset = "digits"   or   data = "x.npy", labels = "y.npy" | column

    [sweep]
    P = [20, 40, 80]
    seeds = 4                # independent runs per (width, P): fresh target, data and init
    n_test = 1000            # sphere: test points per run (data sets: all held-out points)

Relative paths in ``data``/``labels`` are resolved against the configuration file's folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fieldcurve

__all__ = ["Experiment", "Run", "builtin_configs", "load_config", "run_defining"]

_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    # key: (types, required)
    "experiment": {
        "name": (str, True),
        "seed": (int, False),
        "tolerance": ((int, float), False),
        "description": (str, False),
    },
    "network": {
        "depth": (int, True),
        "activation": (str, False),
        "weight_var": ((int, float), False),
        "bias_var": ((int, float), False),
        "parameterization": (str, False),
        "width": ((int, list), True),
    },
    "training": {
        "method": (str, True),
        "init": (str, False),
        "tol": ((int, float), False),
        "max_steps": (int, False),
        "lr_factor": ((int, float), False),
        "ensemble": (int, False),
        "noise_var": ((int, float), False),
        "steps": (int, False),
        "burn_in": (int, False),
        "thin": (int, False),
        "dtype": (str, False),
        "noise": (str, False),
        "estimator": (str, False),
    },
    "target": {
        "d": (int, False),
        "powers": (dict, False),
        "noise": ((int, float), False),
        "dataset": (str, False),
        "data": (str, False),
        "labels": ((str, int), False),
    },
    "sweep": {
        "P": ((int, list), True),
        "seeds": (int, False),
        "n_test": (int, False),
        "finite_width_samples": (int, False),
    },
}

_DEFAULTS: dict[str, dict[str, Any]] = {
    "experiment": {"seed": 0, "tolerance": 0.10, "description": ""},
    "network": {"activation": "relu", "weight_var": 2.0, "bias_var": 0.0, "parameterization": "ntk"},
    "training": {
        "init": "standard",
        "tol": 1e-6,
        "max_steps": 20_000,
        "lr_factor": None,
        "ensemble": 1,
        "noise_var": 0.01,
        "steps": 20_000,
        "burn_in": 5_000,
        "thin": 50,
        "dtype": "float64",
        "noise": "gaussian",
        "estimator": "samples",
    },
    "target": {"noise": 0.0},
    "sweep": {"seeds": 4, "n_test": 1000, "finite_width_samples": 0},
}


@dataclass(frozen=True)
class Run:
    """One training run of the grid: a (width, P, seed) point with the full configuration."""

    experiment: str
    width: int
    P: int
    seed: int
    config: dict

    @property
    def key(self) -> str:
        """SHA-256 of everything that determines the run — its configuration without the grid
        lists, its (width, P, seed) — and the package version. Extending a sweep's grid or
        changing its tolerance keeps the finished runs."""
        blob = json.dumps(
            {
                "config": run_defining(self.config),
                "width": self.width,
                "P": self.P,
                "seed": self.seed,
                "version": fieldcurve.__version__,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


#: keys that describe the grid or the verdict, not what a single run computes
_NOT_RUN_DEFINING = {
    "experiment": ("tolerance", "description", "name"),
    "network": ("width",),
    "sweep": ("P", "seeds"),
}


def run_defining(config: dict) -> dict:
    """The part of a configuration that determines what a single run computes, without the
    settings left at their defaults (so an option added later, whose default keeps the earlier
    behaviour, does not change the keys of stored runs)."""
    out = copy.deepcopy(config)
    for table, keys in _NOT_RUN_DEFINING.items():
        for key in keys:
            out.get(table, {}).pop(key, None)
    for table, defaults in _DEFAULTS.items():
        for key, default in defaults.items():
            if key in out.get(table, {}) and out[table][key] == default:
                del out[table][key]
    return out


@dataclass(frozen=True)
class Experiment:
    """A validated configuration (``config`` holds every table with defaults filled in)."""

    config: dict
    source: str

    @property
    def name(self) -> str:
        return self.config["experiment"]["name"]

    @property
    def widths(self) -> list[int]:
        return _as_list(self.config["network"]["width"])

    @property
    def sizes(self) -> list[int]:
        return _as_list(self.config["sweep"]["P"])

    @property
    def on_data(self) -> bool:
        t = self.config["target"]
        return "dataset" in t or "data" in t

    def runs(self) -> list[Run]:
        """The grid, widths x P x seeds, in that order."""
        base = self.config["experiment"]["seed"]
        out = []
        for width in self.widths:
            for P in self.sizes:
                for s in range(self.config["sweep"]["seeds"]):
                    out.append(Run(self.name, width, P, base * 1_000_003 + s, self.config))
        return out


def _as_list(v: Any) -> list[int]:
    return list(v) if isinstance(v, list) else [v]


def _fail(key: str, msg: str) -> ValueError:
    return ValueError(f"config key {key}: {msg}")


def builtin_configs() -> dict[str, Path]:
    """Name -> path of the configurations shipped in ``fieldcurve/validation/configs``."""
    folder = Path(__file__).parent / "configs"
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def load_config(source: str | Path | dict) -> Experiment:
    """Read and validate a configuration: a TOML path, a built-in name (``smoke``, ...), or a
    dict with the same tables. Raises ``ValueError`` naming the offending key."""
    base_dir = Path.cwd()
    if isinstance(source, dict):
        raw, label = copy.deepcopy(source), "<dict>"
    else:
        path = Path(source)
        builtins = builtin_configs()
        if not path.exists() and str(source) in builtins:
            path = builtins[str(source)]
        if not path.exists():
            raise ValueError(
                f"config {source!s} not found (a TOML file or one of: {', '.join(builtins) or 'none'})"
            )
        try:
            raw = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"config {path} is not valid TOML: {exc}") from exc
        label, base_dir = str(path), path.parent
    return Experiment(config=_validate(raw, base_dir), source=label)


def _validate(raw: dict, base_dir: Path) -> dict:
    if not isinstance(raw, dict):
        raise ValueError("config must be a table of tables")
    for table in raw:
        if table not in _SCHEMA:
            raise _fail(table, f"unknown table (expected {', '.join(_SCHEMA)})")
    cfg: dict[str, dict] = {}
    for table, schema in _SCHEMA.items():
        given = raw.get(table, {})
        if not isinstance(given, dict):
            raise _fail(table, "must be a table")
        for key, value in given.items():
            if key not in schema:
                raise _fail(f"{table}.{key}", f"unknown key (allowed: {', '.join(schema)})")
            types, _ = schema[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise _fail(f"{table}.{key}", f"wrong type {type(value).__name__}")
        for key, (_, required) in schema.items():
            if required and key not in given:
                raise _fail(f"{table}.{key}", "is required")
        merged = dict(_DEFAULTS.get(table, {}))
        merged.update(given)
        cfg[table] = merged
    _check_values(cfg, base_dir)
    return cfg


def _positive_ints(values: Any, key: str) -> None:
    for v in _as_list(values):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise _fail(key, f"must be positive integers, got {v!r}")


def _check_values(cfg: dict, base_dir: Path) -> None:
    net, tr, tg, sw, ex = cfg["network"], cfg["training"], cfg["target"], cfg["sweep"], cfg["experiment"]
    _positive_ints(net["width"], "network.width")
    _positive_ints(sw["P"], "sweep.P")
    for key, table in (("seeds", sw), ("n_test", sw)):
        _positive_ints(table[key], f"sweep.{key}")
    if not ex["tolerance"] > 0:
        raise _fail("experiment.tolerance", "must be positive")
    try:
        fieldcurve.MLP(
            net["depth"],
            net["activation"],
            net["weight_var"],
            net["bias_var"],
            parameterization=net["parameterization"],
            width=_as_list(net["width"])[0],
        )
    except (ValueError, TypeError) as exc:
        raise _fail("network", str(exc)) from exc
    if tr["dtype"] not in ("float64", "float32"):
        raise _fail("training.dtype", f"must be 'float64' or 'float32', got {tr['dtype']!r}")
    if tr["noise"] not in ("gaussian", "rademacher"):
        raise _fail("training.noise", f"must be 'gaussian' or 'rademacher', got {tr['noise']!r}")
    if tr["estimator"] not in ("samples", "rao_blackwell"):
        raise _fail("training.estimator", f"must be 'samples' or 'rao_blackwell', got {tr['estimator']!r}")
    if tr["method"] not in ("gd", "langevin"):
        raise _fail("training.method", f"must be 'gd' or 'langevin', got {tr['method']!r}")
    if tr["init"] not in ("standard", "centered", "antisymmetric"):
        raise _fail("training.init", f"must be standard, centered or antisymmetric, got {tr['init']!r}")
    _positive_ints(tr["ensemble"], "training.ensemble")
    _positive_ints(tr["max_steps"], "training.max_steps")
    _positive_ints(tr["steps"], "training.steps")
    _positive_ints(tr["thin"], "training.thin")
    for key in ("tol", "noise_var"):
        if not (math.isfinite(tr[key]) and tr[key] > 0):
            raise _fail(f"training.{key}", f"must be positive, got {tr[key]!r}")
    if tr["lr_factor"] is None:
        tr["lr_factor"] = 1.0 if tr["method"] == "gd" else 0.5
    elif not tr["lr_factor"] > 0:
        raise _fail("training.lr_factor", "must be positive")
    if tr["method"] == "langevin":
        if not 0 <= tr["burn_in"] < tr["steps"]:
            raise _fail("training.burn_in", "must satisfy 0 <= burn_in < steps")
        if tr["ensemble"] < 2:
            raise _fail("training.ensemble", "Langevin needs at least 2 chains (the Monte Carlo error)")
    fws = sw["finite_width_samples"]
    if fws:
        if fws < 32:
            raise _fail("sweep.finite_width_samples", f"must be 0 (off) or at least 32, got {fws}")
        if tr["method"] != "langevin" or "powers" not in tg:
            raise _fail(
                "sweep.finite_width_samples", "needs training.method = 'langevin' and a sphere target"
            )
    if not (math.isfinite(tg["noise"]) and tg["noise"] >= 0):
        raise _fail("target.noise", "must be a non-negative number")
    sources = [k for k in ("powers", "dataset", "data") if k in tg]
    if len(sources) != 1:
        raise _fail("target", "give exactly one of powers, dataset, data")
    if "powers" in tg:
        if "d" not in tg:
            raise _fail("target.d", "is required with target.powers")
        if tg["d"] < 2:
            raise _fail("target.d", f"must be >= 2, got {tg['d']}")
        powers = {}
        for k, v in tg["powers"].items():
            if not k.isdigit():
                raise _fail("target.powers", f"keys are degrees (non-negative integers), got {k!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise _fail(f"target.powers.{k}", f"must be a non-negative number, got {v!r}")
            powers[k] = float(v)
        tg["powers"] = powers
    if "dataset" in tg and tg["dataset"] != "digits":
        raise _fail("target.dataset", f"unknown data set {tg['dataset']!r} (available: digits)")
    if "data" in tg:
        if "labels" not in tg:
            raise _fail("target.labels", "is required with target.data")
        path = (base_dir / tg["data"]).resolve()
        if not path.exists():
            raise _fail("target.data", f"file {path} not found")
        tg["data"] = str(path)
        if isinstance(tg["labels"], str) and tg["labels"].endswith((".npy", ".csv")):
            lab = (base_dir / tg["labels"]).resolve()
            if not lab.exists():
                raise _fail("target.labels", f"file {lab} not found")
            tg["labels"] = str(lab)
    if "dataset" in tg or "data" in tg:
        size = _data_size(tg)
        if max(_as_list(sw["P"])) >= size:
            raise _fail(
                "sweep.P", f"largest P = {max(_as_list(sw['P']))} must be below the data set size {size}"
            )


def _data_size(tg: dict) -> int:
    from fieldcurve.data import load_dataset, load_digits

    try:
        data = load_digits() if tg.get("dataset") == "digits" else load_dataset(tg["data"], tg["labels"])
    except (ValueError, OSError) as exc:
        raise _fail("target", str(exc)) from exc
    return data.size
