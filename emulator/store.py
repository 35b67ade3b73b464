"""SQLite state of the emulator: models, endpoints, deployed models, operations.

One connection guarded by a lock (the server's handlers and deploy threads share it),
WAL journal, JSON documents per row. Everything survives an emulator restart.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    name TEXT PRIMARY KEY,      -- projects/P/locations/L/{models|endpoints}/ID
    kind TEXT NOT NULL,         -- 'models' | 'endpoints'
    parent TEXT NOT NULL,       -- projects/P/locations/L
    seq INTEGER NOT NULL,
    data TEXT NOT NULL          -- the resource JSON (endpoints: without deployedModels)
);
CREATE TABLE IF NOT EXISTS deployed_models (
    endpoint TEXT NOT NULL,
    id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,         -- DeployedModel JSON (without status)
    state TEXT NOT NULL,        -- DEPLOYING | READY | FAILED
    message TEXT NOT NULL DEFAULT '',
    operation TEXT NOT NULL DEFAULT '',  -- the deploy operation's name
    pid INTEGER,
    pid_create_time REAL,
    port INTEGER,
    PRIMARY KEY (endpoint, id)
);
CREATE TABLE IF NOT EXISTS operations (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass
class DeployedRow:
    """One deployed model as stored, with its process bookkeeping."""

    endpoint: str
    id: str
    data: dict
    state: str
    message: str
    operation: str
    pid: int | None
    pid_create_time: float | None
    port: int | None


class Store:
    """Thread-safe access to the emulator's SQLite database."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    @property
    def lock(self) -> threading.RLock:
        """The lock to hold across several calls that must see one state."""
        return self._lock

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _next_seq(self) -> int:
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES ('seq', 1) "
            "ON CONFLICT(name) DO UPDATE SET value = value + 1"
        )
        return self._db.execute("SELECT value FROM counters WHERE name='seq'").fetchone()[0]

    # -- models and endpoints -------------------------------------------------------------
    def put_resource(self, kind: str, parent: str, data: dict) -> None:
        """Insert or replace a model or endpoint document."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq FROM resources WHERE name=?", (data["name"],)
            ).fetchone()
            seq = row[0] if row else self._next_seq()
            self._db.execute(
                "INSERT OR REPLACE INTO resources(name, kind, parent, seq, data) "
                "VALUES (?,?,?,?,?)",
                (data["name"], kind, parent, seq, json.dumps(data)),
            )

    def get_resource(self, name: str) -> dict | None:
        """A model or endpoint document by full name, or None."""
        with self._lock:
            row = self._db.execute("SELECT data FROM resources WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def list_resources(self, kind: str, parent: str) -> list[dict]:
        """All models or endpoints under a parent, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM resources WHERE kind=? AND parent=? ORDER BY seq", (kind, parent)
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def all_resources(self) -> list[dict]:
        """Every model and endpoint document, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM resources ORDER BY seq").fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete_resource(self, name: str) -> None:
        """Remove a model or endpoint document."""
        with self._lock:
            self._db.execute("DELETE FROM resources WHERE name=?", (name,))

    # -- deployed models ------------------------------------------------------------------
    def add_deployed(self, endpoint: str, data: dict, operation: str) -> None:
        """Record a deployed model in state DEPLOYING."""
        with self._lock:
            self._db.execute(
                "INSERT INTO deployed_models(endpoint, id, seq, data, state, operation) "
                "VALUES (?,?,?,?, 'DEPLOYING', ?)",
                (endpoint, data["id"], self._next_seq(), json.dumps(data), operation),
            )

    def update_deployed(self, endpoint: str, dm_id: str, **fields) -> None:
        """Update some of state/message/pid/pid_create_time/port of a deployed model."""
        allowed = {"state", "message", "pid", "pid_create_time", "port", "operation"}
        if not fields or set(fields) - allowed:
            raise ValueError(f"bad fields {sorted(fields)}")
        assignments = ", ".join(f"{k}=?" for k in fields)
        with self._lock:
            self._db.execute(
                f"UPDATE deployed_models SET {assignments} WHERE endpoint=? AND id=?",
                (*fields.values(), endpoint, dm_id),
            )

    def replace_deployed_data(self, endpoint: str, dm_id: str, data: dict) -> None:
        """Replace the stored DeployedModel JSON of a deployed model."""
        with self._lock:
            self._db.execute(
                "UPDATE deployed_models SET data=? WHERE endpoint=? AND id=?",
                (json.dumps(data), endpoint, dm_id),
            )

    def get_deployed(self, endpoint: str, dm_id: str) -> DeployedRow | None:
        """One deployed model, or None."""
        with self._lock:
            rows = self._select_deployed("WHERE endpoint=? AND id=?", (endpoint, dm_id))
        return rows[0] if rows else None

    def list_deployed(self, endpoint: str | None = None) -> list[DeployedRow]:
        """Deployed models of one endpoint (or of all), in deploy order."""
        with self._lock:
            if endpoint is None:
                return self._select_deployed("", ())
            return self._select_deployed("WHERE endpoint=?", (endpoint,))

    def _select_deployed(self, where: str, params: tuple) -> list[DeployedRow]:
        rows = self._db.execute(
            "SELECT endpoint, id, data, state, message, operation, pid, pid_create_time, port "
            f"FROM deployed_models {where} ORDER BY seq",
            params,
        ).fetchall()
        return [DeployedRow(r[0], r[1], json.loads(r[2]), *r[3:]) for r in rows]

    def delete_deployed(self, endpoint: str, dm_id: str) -> None:
        """Forget a deployed model."""
        with self._lock:
            self._db.execute(
                "DELETE FROM deployed_models WHERE endpoint=? AND id=?", (endpoint, dm_id)
            )

    # -- operations -----------------------------------------------------------------------
    def put_operation(self, op: dict) -> None:
        """Insert or replace an operation document."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO operations(name, data) VALUES (?,?)",
                (op["name"], json.dumps(op)),
            )

    def get_operation(self, name: str) -> dict | None:
        """An operation by full name, or None."""
        with self._lock:
            row = self._db.execute("SELECT data FROM operations WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def list_operations(self, prefix: str) -> list[dict]:
        """Operations whose name starts with `prefix` + '/operations/'."""
        pattern = prefix.replace("%", r"\%").replace("_", r"\_") + "/operations/%"
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM operations WHERE name LIKE ? ESCAPE '\\' ORDER BY rowid",
                (pattern,),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete_operation(self, name: str) -> None:
        """Forget an operation."""
        with self._lock:
            self._db.execute("DELETE FROM operations WHERE name=?", (name,))
