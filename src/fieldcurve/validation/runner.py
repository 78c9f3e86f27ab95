"""Run an experiment's grid: train, measure, store — locally, in a process pool, or on dask.

Each run draws its own target, training set, test set and initialisation from its seed
(``numpy.random.default_rng(seed)`` and ``jax.random.PRNGKey(seed)``), trains, and returns
a dictionary of results; the parent process writes each run to the store as soon as it
finishes (:mod:`fieldcurve.validation.store`), so nothing finished is lost when a sweep stops.
A run that raises is stored as ``failed`` with its error and the sweep goes on.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import fieldcurve as fc
from fieldcurve.validation.config import Experiment, Run
from fieldcurve.validation.store import ResultsStore

__all__ = ["execute_run", "run_sweep"]


def network_of(config: dict, width: int) -> fc.MLP:
    net = config["network"]
    return fc.MLP(
        net["depth"],
        net["activation"],
        net["weight_var"],
        net["bias_var"],
        parameterization=net["parameterization"],
        width=width,
    )


def target_of(config: dict) -> fc.Target:
    tg = config["target"]
    powers = {int(k): v for k, v in tg["powers"].items()}
    return fc.Target.from_degree_powers(powers, noise=tg["noise"], d=tg["d"])


@functools.cache
def _dataset(source: str, labels: Any) -> Any:
    from fieldcurve.data import load_dataset, load_digits

    return load_digits() if source == "digits" else load_dataset(source, labels)


def dataset_of(config: dict) -> Any:
    tg = config["target"]
    return _dataset("digits", None) if tg.get("dataset") == "digits" else _dataset(tg["data"], tg["labels"])


def _draw(run: Run, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(X, Y, X_test, Y_test): sphere targets get clean test labels; data sets a random split."""
    cfg = run.config
    if "powers" in cfg["target"]:
        d = cfg["target"]["d"]
        f = target_of(cfg).sample(d, seed=rng)
        X = fc.sample_sphere(run.P, d, seed=rng)
        y = f.labels(X, seed=rng)
        Xt = fc.sample_sphere(cfg["sweep"]["n_test"], d, seed=rng)
        return X, y[:, None], Xt, f(Xt)[:, None]
    data = dataset_of(cfg)
    perm = rng.permutation(data.size)
    tr, te = perm[: run.P], perm[run.P :]
    return data.X[tr], data.Y[tr], data.X[te], data.Y[te]


def infinite_width_error(config: dict, width: int, X: Any, Y: Any, Xt: Any, Yt: Any) -> float:
    r"""Test error the infinitely wide network would have on the *same* training and test sets:
    GP posterior mean (NNGP, noise ``noise_var``) for Langevin; NTK regression for GD from
    centred/antisymmetric initialisation; NTK regression plus the exact expected initialisation
    term (:func:`fieldcurve.empirical._init_term`) for GD from standard initialisation. Paired
    with the trained network, it removes the data-draw noise from the comparison."""
    import scipy.linalg as sla

    from fieldcurve.empirical import _factor, _init_term

    mlp = network_of(config, width)
    tr = config["training"]
    nngp, ntk = fc.nngp_kernel(mlp), fc.ntk_kernel(mlp)
    kernel, ridge = (nngp, tr["noise_var"]) if tr["method"] == "langevin" else (ntk, 0.0)
    factor, _ = _factor(kernel.gram(X), ridge)
    K_tX = kernel.gram(Xt, X)
    pred = K_tX @ sla.cho_solve(factor, Y, check_finite=False)
    err = float(np.sum((pred - Yt) ** 2))
    if tr["method"] == "gd" and tr["init"] == "standard":
        norms = np.einsum("ij,ij->i", Xt, Xt)
        if np.ptp(norms) <= 1e-9 * norms.max():  # inputs on one sphere: one diagonal value
            k0_diag = np.full(len(Xt), float(nngp.gram(Xt[:1])[0, 0]))
        else:  # the NNGP's diagonal depends on |x|^2
            k0_diag = np.array([float(nngp.gram(x[None])[0, 0]) for x in Xt])
        err += Y.shape[1] * _init_term(factor, K_tX, nngp.gram(Xt, X), nngp.gram(X), k0_diag)
    return err / len(Xt)


_FW_CACHE: dict[str, dict] = {}


def _finite_width_terms(run: Run, X: Any, Y: Any, Xt: Any, Yt: Any) -> dict:
    """The O(1/width) correction of the GP posterior mean's test error on the run's data
    (:func:`fieldcurve.posterior_correction`). The coefficient does not depend on the width and
    the data of a (P, seed) are the same at every width, so it is computed once per process."""
    cfg = run.config
    net = {k: v for k, v in cfg["network"].items() if k != "width"}
    key = json.dumps([{**cfg, "network": net}, run.P, run.seed], sort_keys=True, default=str)
    if key not in _FW_CACHE:
        _FW_CACHE[key] = _finite_width_coefficient(run, X, Y, Xt, Yt)
    return _FW_CACHE[key]


def _finite_width_coefficient(run: Run, X: Any, Y: Any, Xt: Any, Yt: Any) -> dict:
    cfg = run.config
    units = cfg["sweep"]["finite_width_samples"]
    pc = fc.posterior_correction(
        network_of(cfg, run.width),
        X,
        Y[:, 0],
        Xt,
        noise_var=cfg["training"]["noise_var"],
        width=run.width,
        seed=run.seed,
        y_test=Yt[:, 0],
        unit_samples=units,
        samples=max(512, units // 32),
    )
    return {
        "finite_width_gp": pc.test_error_gp,
        "finite_width_nlo": pc.test_error_nlo,
        "finite_width_nlo_se": pc.test_error_nlo_se,
    }


def execute_run(run: Run) -> dict:
    """Train the run's network(s) and measure the test error (sum over outputs, mean over test
    points; against the clean target on the sphere, on held-out points for data sets)."""
    import jax

    from fieldcurve.validation.networks import init_mlp
    from fieldcurve.validation.training import (
        gd_train_ensemble,
        langevin_sample,
        posterior_test_error,
        posterior_test_error_se,
    )

    cfg, tr = run.config, run.config["training"]
    rng = np.random.default_rng(run.seed)
    X, Y, Xt, Yt = _draw(run, rng)
    same_data = infinite_width_error(run.config, run.width, X, Y, Xt, Yt)
    X64, Y64, Xt64 = X, Y, Xt
    dtype = np.float32 if tr["dtype"] == "float32" else np.float64
    X, Y, Xt = X.astype(dtype), Y.astype(dtype), Xt.astype(dtype)
    mlp = network_of(cfg, run.width)
    keys = jax.random.split(jax.random.PRNGKey(run.seed), tr["ensemble"] + 1)
    params0 = jax.vmap(lambda k: init_mlp(mlp, X.shape[1], run.width, k, outputs=Y.shape[1], dtype=dtype))(
        keys[1:]
    )
    t0 = time.perf_counter()
    if tr["method"] == "gd":
        res = gd_train_ensemble(
            mlp,
            params0,
            X,
            Y,
            init=tr["init"],
            lr_factor=tr["lr_factor"],
            tol=tr["tol"],
            max_steps=tr["max_steps"],
        )
        pred = np.asarray(res.predict(Xt), dtype=np.float64)  # (members, n_test, C)
        errs = np.mean(np.sum((pred - Yt[None]) ** 2, axis=2), axis=1)
        return {
            "test_error": float(errs.mean()),
            "member_errors": [float(e) for e in errs],
            "steps": int(res.steps),
            "converged": bool(np.all(res.converged)),
            "train_mse": float(np.max(res.train_mse)),
            "lr": float(np.mean(res.lr)),
            "lambda_max": float(np.mean(res.lambda_max)),
            "train_seconds": time.perf_counter() - t0,
            "infinite_width_same_data": same_data,
        }
    res = langevin_sample(
        mlp,
        params0,
        X,
        Y,
        Xt,
        noise_var=tr["noise_var"],
        key=keys[0],
        steps=tr["steps"],
        burn_in=tr["burn_in"],
        thin=tr["thin"],
        lr_factor=tr["lr_factor"],
        noise=tr["noise"],
        rao_blackwell=tr["estimator"] == "rao_blackwell",
    )
    raw, corrected = posterior_test_error(res, Yt)
    out = _finite_width_terms(run, X64, Y64, Xt64, Yt) if cfg["sweep"]["finite_width_samples"] else {}
    return {
        **out,
        "test_error": corrected,
        "test_error_raw": raw,
        "test_error_se": posterior_test_error_se(res, Yt),
        "ess": res.ess,
        "ess_median": res.ess_median,
        "samples_per_chain": res.samples_per_chain,
        "lr": res.lr,
        "train_seconds": time.perf_counter() - t0,
        "infinite_width_same_data": same_data,
    }


def _guarded(run: Run) -> tuple[Run, str, dict | None, str | None, float]:
    t0 = time.perf_counter()
    try:
        return run, "done", execute_run(run), None, time.perf_counter() - t0
    except Exception as exc:  # a failed run is stored, the sweep goes on
        msg = f"{type(exc).__name__}: {exc}\n" + traceback.format_exc(limit=3)
        return run, "failed", None, msg, time.perf_counter() - t0


def run_sweep(
    experiment: Experiment,
    store_path: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Run every run of the grid not yet stored as done; returns counts {done, failed, skipped}.

    ``workers`` > 1 uses a local process pool (spawned processes); ``scheduler`` (an address
    such as ``tcp://host:8786``, or a ``distributed.Client``) sends runs to a dask cluster.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    with ResultsStore(store_path) as store:
        store.set_config(experiment.config)
        finished = store.done_keys()
        todo = [r for r in experiment.runs() if r.key not in finished]
        counts = {"done": 0, "failed": 0, "skipped": len(experiment.runs()) - len(todo)}
        bar = tqdm(total=len(todo), desc=experiment.name, unit="run", disable=not progress)

        def record(outcome: tuple) -> None:
            run, status, result, error, seconds = outcome
            store.write(run, status, result, error, seconds)
            counts[status] += 1
            bar.update(1)

        if not todo:
            pass
        elif scheduler is not None:
            _run_dask(todo, scheduler, record)
        elif workers == 1:
            for run in todo:
                record(_guarded(run))
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                futures = [pool.submit(_guarded, run) for run in todo]
                for fut in as_completed(futures):
                    record(fut.result())
        bar.close()
    return counts


def _run_dask(todo: list[Run], scheduler: Any, record: Any) -> None:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ValueError("--scheduler needs dask.distributed: pip install 'fieldcurve[distributed]'") from exc
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        futures = client.map(_guarded, todo, pure=False)
        for fut in dask_completed(futures):
            record(fut.result())
    finally:
        if own:
            client.close()
