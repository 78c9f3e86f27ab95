"""Results store: one SQLite file per experiment (write-ahead log), one row per finished run.

A run is keyed by the hash of its full configuration and the package version
(:attr:`fieldcurve.validation.config.Run.key`) and written in a single transaction when it
finishes, so a sweep killed at any moment (even by SIGKILL) leaves only whole runs behind;
running the same sweep again skips the runs stored as ``done`` and retries ``failed`` ones.
SQLite's journal makes an interrupted write roll back on the next open.

**Only fieldcurve stores are ever written.** A store carries a marker in its SQLite header
(``PRAGMA application_id`` = :data:`APPLICATION_ID`, ``PRAGMA user_version`` =
:data:`SCHEMA_VERSION`); stores written before the marker existed are recognised by their exact
tables and columns. Every file is first opened read-only (``mode=ro``) and checked (marker,
schema, ``PRAGMA quick_check``) before anything is written; any other file — another
application's database, a damaged store, a text file — is refused with a ``ValueError`` and left
untouched. Only a path that does not exist yet (or an empty file) becomes a new store.
``ResultsStore(path)`` opens read-only (no write-ahead-log switch, so read-only files and stores
being written by a running sweep can be reported); ``ResultsStore(path, write=True)`` is for
sweeps.

**Claims.** Before a run is trained, its sweep claims it (:meth:`ResultsStore.claim`): an insert
into the ``claims`` table inside an exclusive transaction, recording the claimant (a token, host
name and process id) and a heartbeat refreshed every :data:`CLAIM_HEARTBEAT_SECONDS` while the
run trains. Writing the run's result deletes its claim in the same transaction. Two sweeps on one
store therefore never train the same run at the same time. A claim is stale — and may be taken
over — when its process is gone (same host, process id no longer running) or its heartbeat is
older than :data:`CLAIM_STALE_SECONDS` (any host).

The ``finished`` column holds ISO 8601 UTC timestamps (``2025-01-31T12:00:00+00:00``); stores
of earlier versions that hold Unix seconds are converted when read.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

__all__ = [
    "APPLICATION_ID",
    "CLAIM_HEARTBEAT_SECONDS",
    "CLAIM_STALE_SECONDS",
    "SCHEMA_VERSION",
    "ResultsStore",
]

#: ``PRAGMA application_id`` of a fieldcurve store (the bytes "FCrv")
APPLICATION_ID = 0x46437276
#: ``PRAGMA user_version`` of the current schema (1: runs and meta without a marker; 2: + claims)
SCHEMA_VERSION = 2
#: seconds between heartbeats of a running sweep's claims
CLAIM_HEARTBEAT_SECONDS = 30.0
#: a claim whose heartbeat is older than this (seconds) is stale and may be taken over
CLAIM_STALE_SECONDS = 300.0

_COLUMNS = (
    "key",
    "experiment",
    "width",
    "P",
    "seed",
    "status",
    "result",
    "error",
    "seconds",
    "finished",
    "version",
)
_CLAIM_COLUMNS = ("key", "owner", "host", "pid", "claimed", "heartbeat")

_CREATE = (
    """CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    width INTEGER NOT NULL,
    P INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    result TEXT,
    error TEXT,
    seconds REAL,
    finished TEXT NOT NULL,
    version TEXT NOT NULL
)""",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    claimed TEXT NOT NULL,
    heartbeat REAL NOT NULL
)""",
)
_TABLES = {"runs": _COLUMNS, "meta": ("name", "value"), "claims": _CLAIM_COLUMNS}
_SQLITE_MAGIC = b"SQLite format 3\x00"

_T = TypeVar("_T")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _iso(value: Any) -> Any:
    """ISO 8601 (UTC) from a stored ``finished`` value (earlier stores hold Unix seconds)."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return value


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or not a pid we can ask about): assume alive
    try:  # a zombie has exited; its parent just has not collected it
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


class ResultsStore:
    """SQLite results of one experiment (see the module docstring).

    Parameters
    ----------
    path
        The store's file.
    write
        ``False`` (default): open an existing store read-only. ``True``: open it for a sweep,
        creating it if ``path`` does not exist (or is empty).

    Raises
    ------
    ValueError
        If the file is missing (read-only), is not a fieldcurve store, was written by a newer
        schema, or is damaged — always before anything is written.
    """

    def __init__(self, path: str | Path, *, write: bool = False) -> None:
        self.path = Path(path)
        self.writable = bool(write)
        #: this store object's claimant token (host:pid:random)
        self.claimant = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._db = self._open_for_writing() if self.writable else self._open_read_only()

    # ------------------------------------------------------------------ opening
    def _error(self, exc: sqlite3.Error) -> ValueError:
        if isinstance(exc, sqlite3.OperationalError):
            return ValueError(f"results store {self.path}: {exc}")
        return ValueError(f"{self.path} is not a readable fieldcurve results store (damaged?): {exc}")

    def _guard(self, fn: Callable[[], _T]) -> _T:
        try:
            return fn()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _check_file(self) -> bool:
        """False for a missing or empty file (a new store); True for an SQLite file; raises else."""
        if not self.path.exists():
            return False
        if not self.path.is_file():
            raise ValueError(f"results store {self.path} is not a file")
        with open(self.path, "rb") as fh:
            head = fh.read(100)
        if not head:
            return False
        if not head.startswith(_SQLITE_MAGIC):
            raise ValueError(f"{self.path} is not a fieldcurve results store (not an SQLite database)")
        if len(head) == 100:
            app = int.from_bytes(head[68:72], "big")
            if app not in (0, APPLICATION_ID):
                raise ValueError(
                    f"{self.path} is not a fieldcurve results store (SQLite application_id {app:#x});"
                    " it is left untouched"
                )
        return True

    def _open_read_only(self) -> sqlite3.Connection:
        if not self._check_file():
            raise ValueError(f"results store {self.path} not found (or empty)")
        uri = "file:" + quote(str(self.path.resolve())) + "?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            try:
                kind = _kind(db)
            except sqlite3.OperationalError as exc:
                if "unable to open" not in str(exc):
                    raise
                # a write-ahead-log store in a folder we cannot write (no shared-memory file):
                # read it as an immutable file
                db.close()
                db = sqlite3.connect(uri + "&immutable=1", uri=True, isolation_level=None)
                kind = _kind(db)
            check = db.execute("PRAGMA quick_check").fetchone()[0] if kind in ("store", "legacy") else "ok"
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        if kind not in ("store", "legacy"):
            db.close()
            raise self._refusal(kind)
        if check != "ok":
            db.close()
            detail = " ".join(check.replace("*** in database main ***", "").split())[:200]
            raise ValueError(f"{self.path} is a damaged fieldcurve results store ({detail})")
        return db

    def _refusal(self, kind: str) -> ValueError:
        if kind == "newer":
            return ValueError(f"{self.path} was written by a newer fieldcurve (store schema): upgrade")
        if kind == "empty":
            return ValueError(f"{self.path} holds no fieldcurve results (an empty SQLite database)")
        return ValueError(f"{self.path} is not a fieldcurve results store; it is left untouched")

    def _open_for_writing(self) -> sqlite3.Connection:
        if self._check_file():
            self._open_read_only().close()  # refuses foreign or damaged files before any write
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            try:
                kind = _kind(db)  # again, under the write lock: another process may have been first
                if kind in ("legacy", "empty"):
                    for statement in _CREATE:
                        db.execute(statement)
                    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                db.execute("ROLLBACK")
                db.close()
                raise
            if kind not in ("store", "legacy", "empty"):
                db.execute("ROLLBACK")
                db.close()
                raise self._refusal(kind)
            db.execute("COMMIT")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_write(self) -> None:
        if not self.writable:
            raise ValueError(f"results store {self.path} was opened read-only")

    # ------------------------------------------------------------------ metadata
    def set_config(self, config: dict) -> None:
        """Remember the experiment's configuration. A store may be reused by a configuration that
        differs only in its grid (widths, P, seeds), tolerance or description."""
        from fieldcurve.validation.config import run_defining

        self._require_write()
        old = self.config()
        if old is not None and run_defining(old) != run_defining(config):
            raise ValueError(
                f"store {self.path} belongs to another configuration (experiment"
                f" {old['experiment']['name']!r}); use another --store"
            )
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('config', ?)", (json.dumps(config, sort_keys=True),)
            )

    def config(self) -> dict | None:
        """The stored configuration, or None."""
        row = self._guard(lambda: self._db.execute("SELECT value FROM meta WHERE name = 'config'").fetchone())
        if row is None:
            return None
        try:
            cfg = json.loads(row[0])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{self.path}: the stored configuration is not valid JSON ({exc})") from exc
        if not isinstance(cfg, dict):
            raise ValueError(f"{self.path}: the stored configuration is not a table")
        return cfg

    # ------------------------------------------------------------------ runs
    def done_keys(self) -> set[str]:
        """Keys of the runs stored as done."""
        query = "SELECT key FROM runs WHERE status = 'done'"
        return self._guard(lambda: {r[0] for r in self._db.execute(query)})

    def write(self, run: Any, status: str, result: dict | None, error: str | None, seconds: float) -> None:
        """Store one finished run in one transaction (replacing an earlier failure) and release
        this store's claim on it."""
        from fieldcurve import __version__

        self._require_write()
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.key,
                    run.experiment,
                    run.width,
                    run.P,
                    run.seed,
                    status,
                    json.dumps(result) if result is not None else None,
                    error,
                    seconds,
                    _now_iso(),
                    __version__,
                ),
            )
            self._db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (run.key, self.claimant))

    def rows(self, status: str | None = None) -> Iterator[dict]:
        """Stored runs ordered by (width, P, seed); ``result`` decoded, ``finished`` ISO 8601."""
        query = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY width, P, seed"
        rows = self._guard(lambda: self._db.execute(query, (status,) if status else ()).fetchall())
        for row in rows:
            entry = dict(zip(_COLUMNS, row, strict=True))
            try:
                entry["result"] = json.loads(entry["result"]) if entry["result"] else None
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.path}: run {entry['key']} holds a result that is not JSON") from exc
            entry["finished"] = _iso(entry["finished"])
            yield entry

    def counts(self) -> dict[str, int]:
        """Number of stored runs per status."""
        return self._guard(
            lambda: dict(self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
        )

    # ------------------------------------------------------------------ claims
    def claim(self, key: str) -> str:
        """Claim the run ``key`` for this store's claimant, atomically.

        Returns
        -------
        str
            ``"claimed"`` (train it; :meth:`write` releases the claim), ``"done"`` (stored as done
            meanwhile) or ``"busy"`` (another sweep holds a live claim).
        """
        self._require_write()
        with self._transaction():
            row = self._db.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] == "done":
                return "done"
            if self._live_claim(key):
                return "busy"
            self._db.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?, ?)",
                (key, self.claimant, socket.gethostname(), os.getpid(), _now_iso(), time.time()),
            )
        return "claimed"

    def state(self, key: str) -> str:
        """``"busy"`` while another claimant holds a live claim on ``key``; else the stored
        status (``"done"``/``"failed"``) or ``"free"``."""
        if self._guard(lambda: self._live_claim(key)):
            return "busy"
        query = "SELECT status FROM runs WHERE key = ?"
        row = self._guard(lambda: self._db.execute(query, (key,)).fetchone())
        return row[0] if row else "free"

    def _live_claim(self, key: str) -> bool:
        query = "SELECT owner, host, pid, heartbeat FROM claims WHERE key = ?"
        row = self._db.execute(query, (key,)).fetchone()
        if row is None:
            return False
        owner, host, pid, heartbeat = row
        if owner == self.claimant:
            return False
        if time.time() - heartbeat > CLAIM_STALE_SECONDS:
            return False
        return not (host == socket.gethostname() and not _pid_running(pid))

    def heartbeat(self, claimant: str | None = None) -> None:
        """Refresh the heartbeat of every claim of ``claimant`` (default: this store's)."""
        self._require_write()
        with self._transaction():
            self._db.execute(
                "UPDATE claims SET heartbeat = ? WHERE owner = ?", (time.time(), claimant or self.claimant)
            )

    def release(self, claimant: str | None = None) -> None:
        """Drop every claim of ``claimant`` (default: this store's), e.g. when a sweep stops."""
        self._require_write()
        with self._transaction():
            self._db.execute("DELETE FROM claims WHERE owner = ?", (claimant or self.claimant,))

    def claims(self) -> list[dict]:
        """The current claims (for inspection)."""
        if "claims" not in self._guard(lambda: _tables(self._db)):
            return []
        rows = self._guard(lambda: self._db.execute("SELECT * FROM claims ORDER BY claimed").fetchall())
        return [dict(zip(_CLAIM_COLUMNS, r, strict=True)) for r in rows]

    def _transaction(self) -> Any:
        db, store = self._db, self

        class _Tx:
            def __enter__(self) -> None:
                try:
                    db.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    raise store._error(exc) from exc

            def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
                try:
                    db.execute("ROLLBACK" if exc_type else "COMMIT")
                except sqlite3.Error as err:
                    if exc_type is None:
                        raise store._error(err) from err
                if isinstance(exc, sqlite3.Error):
                    raise store._error(exc) from exc
                return False

        return _Tx()

    # ------------------------------------------------------------------ export
    def _flat_rows(self) -> list[dict]:
        out = []
        for r in self.rows():
            flat = {k: r[k] for k in _COLUMNS if k != "result"}
            for k, v in (r["result"] or {}).items():
                if not isinstance(v, (list, dict)):
                    flat[k] = v
            out.append(flat)
        return out

    def export_csv(self, path: str | Path) -> int:
        """Write every run (scalar results as columns) to CSV; returns the number of rows."""
        rows = self._flat_rows()
        fields = list(dict.fromkeys(k for r in rows for k in r)) or list(_COLUMNS)
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        return len(rows)

    def export_parquet(self, path: str | Path) -> int:
        """Write every run to Parquet (needs pyarrow, part of the ``validation`` extra)."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise ValueError("Parquet export needs pyarrow: pip install 'fieldcurve[validation]'") from exc
        rows = self._flat_rows()
        fields = list(dict.fromkeys(k for r in rows for k in r)) or list(_COLUMNS)
        table = pa.table({f: [r.get(f) for r in rows] for f in fields})
        pq.write_table(table, str(path))
        return len(rows)


def _tables(db: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: tuple(r[1] for r in db.execute(f"PRAGMA table_info({json.dumps(n)})")) for n in names}


def _kind(db: sqlite3.Connection) -> str:
    """What an open SQLite database is: ``store`` (marked, current or older schema), ``legacy``
    (an unmarked store of an earlier version: exactly the runs and meta tables), ``empty`` (no
    schema objects, no marker), ``newer`` (marked, a later schema) or ``foreign``."""
    app = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    objects = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]
    tables = _tables(db)
    if app == APPLICATION_ID:
        if version > SCHEMA_VERSION:
            return "newer"
        return "store" if tables == _TABLES else "foreign"
    if app != 0:
        return "foreign"
    if objects == 0 and version == 0:
        return "empty"
    legacy = {"runs": _COLUMNS, "meta": ("name", "value")}
    return "legacy" if tables == legacy and version == 0 else "foreign"
