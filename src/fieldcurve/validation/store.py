"""Results store: one SQLite file per experiment (write-ahead log), one row per finished run.

A run is keyed by the hash of its full configuration and the package version
(:attr:`fieldcurve.validation.config.Run.key`) and written in a single transaction when it
finishes, so a sweep killed at any moment (even by SIGKILL) leaves only whole runs behind;
running the same sweep again skips the runs stored as ``done`` and retries ``failed`` ones.
SQLite's journal makes an interrupted write roll back on the next open.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["ResultsStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    width INTEGER NOT NULL,
    P INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    result TEXT,
    error TEXT,
    seconds REAL,
    finished REAL NOT NULL,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

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


class ResultsStore:
    """SQLite results of one experiment (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path} is not a fieldcurve results store: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ metadata
    def set_config(self, config: dict) -> None:
        """Remember the experiment's configuration. A store may be reused by a configuration that
        differs only in its grid (widths, P, seeds), tolerance or description."""
        from fieldcurve.validation.config import run_defining

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
        row = self._db.execute("SELECT value FROM meta WHERE name = 'config'").fetchone()
        return json.loads(row[0]) if row else None

    # ------------------------------------------------------------------ runs
    def done_keys(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT key FROM runs WHERE status = 'done'")}

    def write(self, run: Any, status: str, result: dict | None, error: str | None, seconds: float) -> None:
        """Store one finished run in one transaction (replacing an earlier failure)."""
        from fieldcurve import __version__

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
                    time.time(),
                    __version__,
                ),
            )

    def rows(self, status: str | None = None) -> Iterator[dict]:
        query = "SELECT * FROM runs" + (" WHERE status = ?" if status else "") + " ORDER BY width, P, seed"
        for row in self._db.execute(query, (status,) if status else ()):
            entry = dict(zip(_COLUMNS, row, strict=True))
            entry["result"] = json.loads(entry["result"]) if entry["result"] else None
            yield entry

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())

    def _transaction(self) -> Any:
        db = self._db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type: Any, *rest: Any) -> None:
                db.execute("ROLLBACK" if exc_type else "COMMIT")

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
