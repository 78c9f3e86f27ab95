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

Limits (each refused up front with a ``ValueError`` naming the key and the limit, before anything
is allocated or trained):

=====================================  ====================================================
``experiment.name``                    a plain name: letters, digits, ``_`` and ``-``, at most
                                       :data:`MAX_NAME_LENGTH` (64) characters (it names the
                                       default store ``<name>.sqlite`` and report folder
                                       ``<name>_report``, so it can never leave the folder)
``experiment.seed``                    0 ... :data:`MAX_SEED` (10^12); run ``i`` of a
                                       (width, P) uses seed ``seed * 1000003 + i``, which stays
                                       below 2^63 (numpy, JAX and SQLite integers)
``experiment.tolerance``               finite and positive
``network.width`` / ``sweep.P``        non-empty lists of distinct positive integers, at most
                                       :data:`MAX_GRID_VALUES` (1000) values each; widths at
                                       most :data:`MAX_WIDTH` (65536), P at most
                                       :data:`MAX_P` (100000)
``network.depth``                      1 ... :data:`MAX_DEPTH` (64)
``sweep.seeds``                        1 ... :data:`MAX_SEEDS` (10000)
grid size                              widths x P x seeds at most :data:`MAX_RUNS` (100000)
``sweep.n_test``                       1 ... :data:`MAX_N_TEST` (10^6)
``sweep.finite_width_samples``         0 or 32 ... :data:`MAX_FINITE_WIDTH_SAMPLES` (2^22)
``target.d``                           2 ... :data:`MAX_D` (100000)
``target.powers`` degrees              0 ... :data:`MAX_DEGREE` (100)
``training.ensemble``                  1 ... :data:`MAX_ENSEMBLE` (1024)
``training.max_steps`` / ``steps``     1 ... :data:`MAX_STEPS` (10^7)
memory of the largest run              estimated (Gram matrices, parameters, activations)
                                       at most :data:`MAX_RUN_BYTES` (8 GiB)
configuration file                     at most :data:`MAX_CONFIG_BYTES` (1 MiB)
=====================================  ====================================================

Setting up the grid takes time linear in its size (the run-defining part of the configuration
is serialised once, not once per run).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fieldcurve

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_D",
    "MAX_DEGREE",
    "MAX_DEPTH",
    "MAX_ENSEMBLE",
    "MAX_FINITE_WIDTH_SAMPLES",
    "MAX_GRID_VALUES",
    "MAX_NAME_LENGTH",
    "MAX_N_TEST",
    "MAX_P",
    "MAX_RUNS",
    "MAX_RUN_BYTES",
    "MAX_SEED",
    "MAX_SEEDS",
    "MAX_STEPS",
    "MAX_WIDTH",
    "Experiment",
    "Run",
    "builtin_configs",
    "load_config",
    "run_defining",
    "run_key",
]

#: longest experiment name (names are plain: letters, digits, ``_`` and ``-``)
MAX_NAME_LENGTH = 64
#: largest base seed; derived seeds ``seed * 1000003 + i`` stay below 2**63
MAX_SEED = 10**12
#: runs per (width, P)
MAX_SEEDS = 10_000
#: values per grid axis (``network.width``, ``sweep.P``)
MAX_GRID_VALUES = 1_000
#: runs in a grid (widths x P x seeds)
MAX_RUNS = 100_000
#: largest network width
MAX_WIDTH = 65_536
#: largest training-set size
MAX_P = 100_000
#: largest number of hidden layers
MAX_DEPTH = 64
#: largest number of test points per run
MAX_N_TEST = 1_000_000
#: largest input dimension of a sphere target
MAX_D = 100_000
#: largest degree in ``target.powers``
MAX_DEGREE = 100
#: largest ensemble (GD members or Langevin chains) per run
MAX_ENSEMBLE = 1_024
#: largest ``training.max_steps`` / ``training.steps``
MAX_STEPS = 10_000_000
#: largest ``sweep.finite_width_samples``
MAX_FINITE_WIDTH_SAMPLES = 2**22
#: largest estimated memory of one run, in bytes (see :func:`_run_bytes`)
MAX_RUN_BYTES = 8 * 2**30
#: largest configuration file, in bytes
MAX_CONFIG_BYTES = 2**20

_SEED_STRIDE = 1_000_003
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")

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
    """One training run of the grid: a (width, P, seed) point with the full configuration.

    ``key`` is the SHA-256 (first 32 hex digits) of everything that determines the run — its
    configuration without the grid lists (:func:`run_defining`), its (width, P, seed) — and the
    package version; extending a sweep's grid or changing its tolerance keeps the finished runs.
    :meth:`Experiment.runs` fills it in from one serialisation of the configuration; left empty,
    it is computed here.
    """

    experiment: str
    width: int
    P: int
    seed: int
    config: dict
    key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.key:
            defining = json.dumps(run_defining(self.config), sort_keys=True)
            object.__setattr__(self, "key", run_key(defining, self.width, self.P, self.seed))


def run_key(defining: str, width: int, P: int, seed: int) -> str:
    """The key of a run from the JSON of its configuration's run-defining part (``json.dumps(
    run_defining(config), sort_keys=True)``) — the same string as hashing ``{"config": ...,
    "width": ..., "P": ..., "seed": ..., "version": ...}`` with sorted keys."""
    blob = (
        f'{{"P": {json.dumps(P)}, "config": {defining}, "seed": {json.dumps(seed)},'
        f' "version": {json.dumps(fieldcurve.__version__)}, "width": {json.dumps(width)}}}'
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
        """The grid, widths x P x seeds, in that order (time linear in its size)."""
        base = self.config["experiment"]["seed"]
        defining = json.dumps(run_defining(self.config), sort_keys=True)
        out = []
        for width in self.widths:
            for P in self.sizes:
                for s in range(self.config["sweep"]["seeds"]):
                    seed = base * _SEED_STRIDE + s
                    key = run_key(defining, width, P, seed)
                    out.append(Run(self.name, width, P, seed, self.config, key))
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
        if not path.is_file():
            raise ValueError(
                f"config {source!s} not found (a TOML file or one of: {', '.join(builtins) or 'none'})"
            )
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ValueError(
                f"config {path} has {size} bytes, above the limit of {MAX_CONFIG_BYTES} (MAX_CONFIG_BYTES)"
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


def _positive_ints(values: Any, key: str, limit: int | None = None, limit_name: str = "") -> None:
    for v in _as_list(values):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise _fail(key, f"must be positive integers, got {v!r}")
        if limit is not None and v > limit:
            raise _fail(key, f"{v} is above the limit {limit} ({limit_name})")


def _grid_axis(values: Any, key: str, limit: int, limit_name: str) -> None:
    """A grid axis: one positive integer or a non-empty list of distinct ones, each <= limit."""
    items = _as_list(values)
    if not items:
        raise _fail(key, "must not be empty")
    if len(items) > MAX_GRID_VALUES:
        raise _fail(key, f"has {len(items)} values, above the limit {MAX_GRID_VALUES} (MAX_GRID_VALUES)")
    _positive_ints(items, key, limit, limit_name)
    seen: set[int] = set()
    for v in items:
        if v in seen:
            raise _fail(key, f"lists {v} twice")
        seen.add(v)


def _check_name(name: str) -> None:
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name):
        raise _fail(
            "experiment.name",
            f"must be a plain name of at most {MAX_NAME_LENGTH} letters, digits, '_' or '-' (it names"
            f" the store and the report folder), got {name[:80]!r}",
        )


def _finite(value: Any, key: str, *, positive: bool = True) -> None:
    if not math.isfinite(value) or (positive and not value > 0):
        raise _fail(key, f"must be a finite {'positive ' if positive else ''}number, got {value!r}")


def _check_values(cfg: dict, base_dir: Path) -> None:
    net, tr, tg, sw, ex = cfg["network"], cfg["training"], cfg["target"], cfg["sweep"], cfg["experiment"]
    _check_name(ex["name"])
    if not 0 <= ex["seed"] <= MAX_SEED:
        raise _fail("experiment.seed", f"must be between 0 and {MAX_SEED} (MAX_SEED), got {ex['seed']}")
    _finite(ex["tolerance"], "experiment.tolerance")
    _grid_axis(net["width"], "network.width", MAX_WIDTH, "MAX_WIDTH")
    _grid_axis(sw["P"], "sweep.P", MAX_P, "MAX_P")
    _positive_ints(sw["seeds"], "sweep.seeds", MAX_SEEDS, "MAX_SEEDS")
    _positive_ints(sw["n_test"], "sweep.n_test", MAX_N_TEST, "MAX_N_TEST")
    n_runs = len(_as_list(net["width"])) * len(_as_list(sw["P"])) * sw["seeds"]
    if n_runs > MAX_RUNS:
        raise _fail(
            "sweep",
            f"the grid has {n_runs} runs (widths x P x seeds), above the limit {MAX_RUNS} (MAX_RUNS)",
        )
    _positive_ints(net["depth"], "network.depth", MAX_DEPTH, "MAX_DEPTH")
    for key in ("weight_var", "bias_var"):
        _finite(net[key], f"network.{key}", positive=False)
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
    _positive_ints(tr["ensemble"], "training.ensemble", MAX_ENSEMBLE, "MAX_ENSEMBLE")
    _positive_ints(tr["max_steps"], "training.max_steps", MAX_STEPS, "MAX_STEPS")
    _positive_ints(tr["steps"], "training.steps", MAX_STEPS, "MAX_STEPS")
    _positive_ints(tr["thin"], "training.thin", MAX_STEPS, "MAX_STEPS")
    for key in ("tol", "noise_var"):
        _finite(tr[key], f"training.{key}")
    if tr["lr_factor"] is None:
        tr["lr_factor"] = 1.0 if tr["method"] == "gd" else 0.5
    else:
        _finite(tr["lr_factor"], "training.lr_factor")
    if tr["method"] == "langevin":
        if not 0 <= tr["burn_in"] < tr["steps"]:
            raise _fail("training.burn_in", "must satisfy 0 <= burn_in < steps")
        if tr["thin"] > tr["steps"] - tr["burn_in"]:
            raise _fail("training.thin", "must be at most steps - burn_in (no sample would be taken)")
        if tr["ensemble"] < 2:
            raise _fail("training.ensemble", "Langevin needs at least 2 chains (the Monte Carlo error)")
    fws = sw["finite_width_samples"]
    if fws:
        if not 32 <= fws <= MAX_FINITE_WIDTH_SAMPLES:
            raise _fail(
                "sweep.finite_width_samples",
                f"must be 0 (off) or between 32 and {MAX_FINITE_WIDTH_SAMPLES} (MAX_FINITE_WIDTH_SAMPLES),"
                f" got {fws}",
            )
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
        if not 2 <= tg["d"] <= MAX_D:
            raise _fail("target.d", f"must be between 2 and {MAX_D} (MAX_D), got {tg['d']}")
        powers = {}
        for k, v in tg["powers"].items():
            if not (k.isascii() and k.isdigit()):
                raise _fail("target.powers", f"keys are degrees (non-negative integers), got {k!r}")
            if len(k) > 3 or int(k) > MAX_DEGREE:
                raise _fail("target.powers", f"degree {k[:20]} is above the limit {MAX_DEGREE} (MAX_DEGREE)")
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
    d, outputs = tg.get("d", 0), 1
    P_max = max(_as_list(sw["P"]))
    if "dataset" in tg or "data" in tg:
        size, d, outputs = _data_shape(tg)
        if P_max >= size:
            raise _fail("sweep.P", f"largest P = {P_max} must be below the data set size {size}")
    need, width = max((_run_bytes(cfg, w, P_max, d, outputs), w) for w in _as_list(net["width"]))
    if need > MAX_RUN_BYTES:
        raise _fail(
            "sweep",
            f"a run at width {width}, P = {P_max} needs about {need / 2**30:.3g} GiB, above the limit of"
            f" {MAX_RUN_BYTES / 2**30:g} GiB (MAX_RUN_BYTES); use smaller widths, P, n_test or ensemble",
        )


def _run_bytes(cfg: dict, width: int, P: int, d: int, outputs: int) -> int:
    """Estimated peak memory of one run in bytes (float64): the P x P and test x P Gram matrices
    of the infinite-width comparison, and per ensemble member the parameters (with gradients and
    copies), the activations of every layer on the training and test inputs and, for Langevin's
    Rao-Blackwell estimator, a width x width read-out solve."""
    net, tr, tg, sw = cfg["network"], cfg["training"], cfg["target"], cfg["sweep"]
    L, n = net["depth"], width
    n_test = sw["n_test"] if "powers" in tg else P
    params = d * n + (L - 1) * n * n + n * outputs + (L + 1) * n
    member = 4 * params + 6 * L * (P + n_test) * n + (n * n if tr["estimator"] == "rao_blackwell" else 0)
    return 8 * (6 * P * P + 3 * n_test * P + tr["ensemble"] * member)


def _data_shape(tg: dict) -> tuple[int, int, int]:
    """(rows, input dimension, label columns) of the configured data set."""
    from fieldcurve.data import load_dataset, load_digits

    try:
        data = load_digits() if tg.get("dataset") == "digits" else load_dataset(tg["data"], tg["labels"])
    except (ValueError, OSError) as exc:
        raise _fail("target", str(exc)) from exc
    return data.size, data.d, data.Y.shape[1]
