"""Run an experiment's grid: train, measure, store — locally, in a process pool, or on dask.

Each run draws its own target, training set, test set and initialisation from its seed
(``numpy.random.default_rng(seed)`` and ``jax.random.PRNGKey(seed)``), trains, and returns
a dictionary of results; the parent process writes each run to the store as soon as it
finishes (:mod:`fieldcurve.validation.store`), so nothing finished is lost when a sweep stops.
A run that raises is stored as ``failed`` with its error and the sweep goes on.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import fieldcurve as fc
from fieldcurve.validation.config import Experiment, Run
from fieldcurve.validation.store import CLAIM_HEARTBEAT_SECONDS, ResultsStore

__all__ = ["MAX_WORKERS", "execute_run", "run_sweep"]


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


#: largest number of local worker processes
MAX_WORKERS = 256
#: seconds between checks for runs another sweep is training
_POLL_SECONDS = 1.0
#: exit status of a worker whose parent has gone
_ORPHAN_EXIT = 75
_NEEDS_DASK = '--scheduler needs dask.distributed: pip install "fieldcurve[distributed]"'


def _require_extras(scheduler: Any) -> None:
    """Refuse, before any run is attempted, a sweep whose training packages are missing."""
    if importlib.util.find_spec("jax") is None:
        raise ValueError(
            'training networks needs JAX, which is not installed: pip install "fieldcurve[validation]"'
        )
    if (
        scheduler is not None
        and isinstance(scheduler, str)
        and importlib.util.find_spec("distributed") is None
    ):
        raise ValueError('--scheduler needs dask.distributed: pip install "fieldcurve[distributed]"')


def run_sweep(
    experiment: Experiment,
    store_path: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
    wait: bool = True,
) -> dict[str, int]:
    """Run every run of the grid not yet stored as done.

    Parameters
    ----------
    experiment
        A validated configuration (:func:`fieldcurve.validation.config.load_config`).
    store_path
        The results store (:class:`~fieldcurve.validation.store.ResultsStore`); created if
        missing, refused (untouched) if it is not a fieldcurve store.
    workers
        1 (default) trains in this process; 2 ... :data:`MAX_WORKERS` uses that many spawned
        worker processes, which exit as soon as this process ends (however it ends, SIGKILL
        included).
    scheduler
        A dask scheduler address (``tcp://host:8786``) or a ``distributed.Client``.
    progress
        Show a progress bar on stderr.
    wait
        When another sweep on the same store holds claims on runs of this grid, wait for them
        (and take over those whose claims go stale) so that the store is complete on return.

    Returns
    -------
    dict
        Run counts: ``done`` and ``failed`` (trained here), ``skipped`` (already stored as done),
        ``elsewhere`` (finished meanwhile by another sweep on the store) and ``busy`` (still
        claimed by another sweep on return; only with ``wait=False``).

    Raises
    ------
    ValueError
        For a bad ``workers``, a store that is not a fieldcurve store or belongs to another
        configuration, or a missing extra (JAX: ``pip install "fieldcurve[validation]"``) —
        before any run is attempted.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an integer from 1 to {MAX_WORKERS} (MAX_WORKERS), got {workers!r}")
    _require_extras(scheduler)
    runs = experiment.runs()
    with ResultsStore(store_path, write=True) as store:
        store.set_config(experiment.config)
        finished = store.done_keys()
        todo = [r for r in runs if r.key not in finished]
        counts = {"done": 0, "failed": 0, "skipped": len(runs) - len(todo), "elsewhere": 0, "busy": 0}
        bar = tqdm(total=len(todo), desc=experiment.name, unit="run", disable=None if progress else True)

        def record(outcome: tuple) -> None:
            run, status, result, error, seconds = outcome
            store.write(run, status, result, error, seconds)
            counts[status] += 1
            bar.update(1)

        def elsewhere(run: Run) -> None:
            counts["elsewhere"] += 1
            bar.update(1)

        try:
            if todo:
                with _Heartbeat(store_path, store.claimant):
                    pool = _executor(workers, scheduler)
                    try:
                        counts["busy"] = _drive(todo, store, pool, record, elsewhere, wait)
                    finally:
                        pool.close()
        finally:
            store.release()
            bar.close()
    return counts


def _drive(todo: list[Run], store: ResultsStore, pool: Any, record: Any, elsewhere: Any, wait: bool) -> int:
    """Claim and submit runs up to the pool's capacity, record results as they come; runs another
    sweep holds are revisited until they are stored or their claim goes stale. Returns the
    number of runs left to other sweeps (only when ``wait`` is False)."""
    queue, waiting = deque(todo), []
    in_flight = 0
    while True:
        while in_flight < pool.capacity and queue:
            run = queue.popleft()
            state = store.claim(run.key)
            if state == "claimed":
                pool.submit(run)
                in_flight += 1
            elif state == "done":
                elsewhere(run)
            else:
                waiting.append(run)
        if in_flight:
            for outcome in pool.wait(_POLL_SECONDS):
                in_flight -= 1
                record(outcome)
            continue
        if not waiting or not wait:
            return len(waiting)
        time.sleep(_POLL_SECONDS)
        still = []
        for run in waiting:
            state = store.state(run.key)
            if state == "busy":
                still.append(run)
            elif state == "free":  # released or stale: train it here
                queue.append(run)
            else:  # stored meanwhile by the other sweep (done or failed)
                elsewhere(run)
        waiting = still


class _Heartbeat:
    """Refresh a claimant's claims every ``CLAIM_HEARTBEAT_SECONDS`` from a thread (with its
    own connection), so that long runs keep their claims."""

    def __init__(self, store_path: str | Path, claimant: str) -> None:
        self._path, self._claimant = store_path, claimant
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="fieldcurve-claims", daemon=True)

    def _beat(self) -> None:
        store = ResultsStore(self._path, write=True)
        try:
            while not self._stop.wait(CLAIM_HEARTBEAT_SECONDS):
                try:
                    store.heartbeat(self._claimant)
                except ValueError:  # store busy beyond the timeout: try again at the next beat
                    continue
        finally:
            store.close()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _executor(workers: int, scheduler: Any) -> Any:
    if scheduler is not None:
        return _DaskPool(scheduler)
    if workers == 1:
        return _InlinePool()
    return _ProcessPool(workers)


class _InlinePool:
    """Runs in this process, one at a time."""

    capacity = 1

    def __init__(self) -> None:
        self._done: list[tuple] = []

    def submit(self, run: Run) -> None:
        self._done.append(_guarded(run))

    def wait(self, timeout: float) -> list[tuple]:
        out, self._done = self._done, []
        return out

    def close(self) -> None:
        pass


def _worker_main(conn: Any, lifeline: Any) -> None:
    """A worker process: train the runs the parent sends until it sends None or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with_parent, args=(lifeline,), daemon=True).start()
    while True:
        try:
            run = conn.recv()
        except (EOFError, OSError):
            return
        if run is None:
            return
        conn.send(_guarded(run))


def _exit_with_parent(lifeline: Any) -> None:
    """Block on the lifeline pipe, whose only writer is the parent: it reads end-of-file when the
    parent exits, however it exits (SIGKILL included); then end this worker at once."""
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    os._exit(_ORPHAN_EXIT)


class _ProcessPool:
    """Spawned worker processes, one run each at a time, tied to this process by a lifeline pipe
    (see :func:`_exit_with_parent`). A worker that dies records its run as failed and is
    replaced. No multiprocessing queues or locks: nothing for the resource tracker to keep."""

    def __init__(self, workers: int) -> None:
        self.capacity = workers
        self._ctx = multiprocessing.get_context("spawn")
        self._lifeline_r, self._lifeline_w = self._ctx.Pipe(duplex=False)
        self._idle: list[tuple[Any, Any]] = []
        self._busy: dict[Any, tuple[Any, Run]] = {}  # conn -> (process, run)

    def _start(self) -> tuple[Any, Any]:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self._lifeline_r), name="fieldcurve-worker", daemon=True
        )
        proc.start()
        child.close()
        return proc, parent

    def submit(self, run: Run) -> None:
        proc, conn = self._idle.pop() if self._idle else self._start()
        conn.send(run)
        self._busy[conn] = (proc, run)

    def wait(self, timeout: float) -> list[tuple]:
        watch = list(self._busy) + [proc.sentinel for proc, _ in self._busy.values()]
        ready = set(multiprocessing.connection.wait(watch, timeout))
        out = []
        for conn, (proc, run) in list(self._busy.items()):
            if conn not in ready and proc.sentinel not in ready:
                continue
            try:
                outcome = conn.recv() if conn.poll() else None
            except (EOFError, OSError):
                outcome = None
            del self._busy[conn]
            if outcome is None:  # the worker died in the middle of the run
                proc.join(5)
                conn.close()
                out.append((run, "failed", None, f"worker process died (exit code {proc.exitcode})", 0.0))
            else:
                self._idle.append((proc, conn))
                out.append(outcome)
        return out

    def close(self) -> None:
        workers = self._idle + [(proc, conn) for conn, (proc, _) in self._busy.items()]
        for _, conn in self._idle:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc, _ in self._busy.values():
            proc.terminate()  # interrupted mid-run (an exception or Ctrl-C in the parent)
        self._lifeline_w.close()
        for proc, conn in workers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
            conn.close()
        self._lifeline_r.close()
        self._idle, self._busy = [], {}


class _DaskPool:
    """Runs on a dask cluster (a scheduler address or a ``distributed.Client``)."""

    def __init__(self, scheduler: Any) -> None:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ValueError(
                '--scheduler needs dask.distributed: pip install "fieldcurve[distributed]"'
            ) from exc
        self._own = not isinstance(scheduler, Client)
        self._client = Client(scheduler) if self._own else scheduler
        self.capacity = max(1, sum(self._client.nthreads().values()))
        self._futures: dict[Any, Run] = {}

    def submit(self, run: Run) -> None:
        self._futures[self._client.submit(_guarded, run, pure=False)] = run

    def wait(self, timeout: float) -> list[tuple]:
        from distributed import wait as dask_wait

        try:
            done = dask_wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return []
        out = []
        for fut in done:
            run = self._futures.pop(fut)
            try:
                out.append(fut.result())
            except Exception as exc:  # the worker was lost: the run failed, the sweep goes on
                out.append((run, "failed", None, f"{type(exc).__name__}: {exc}", 0.0))
        return out

    def close(self) -> None:
        for fut in self._futures:
            fut.cancel()
        if self._own:
            self._client.close()
