"""Local adapter of the registry port: its own tables in the ledger's SQLite file
(`$GARDEN_HOME/garden.sqlite3`).

Every write is one `BEGIN IMMEDIATE` transaction: it takes SQLite's write lock first, then reads
the state, plans (see _plan.py), writes the entries, bumps `registry_version` and appends the
change, and commits. The lock serialises writers across threads and processes, so two concurrent
PUTs cannot both see a principal as free: the second reads the state the first committed and gets
PrincipalInUse. Stores configuration only (app and budget JSON, switches), never request content.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Callable

from chalicelib.sqlite_file import connect
from chalicelib.registry import Change, RegistrySnapshot
from chalicelib.registry._plan import Plan, PlannedWrites, dumps, iso_utc

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_version (
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_apps (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registry_business_units (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registry_deployments (name TEXT PRIMARY KEY, enabled INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS registry_changes (
    version INTEGER PRIMARY KEY, at TEXT NOT NULL, principal TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL
);
"""


class SqliteRegistry(PlannedWrites):
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._db = connect(path, timeout_s=5.0)
        self._lock = threading.Lock()
        self._clock = clock
        self._db.executescript(_SCHEMA)

    # -- reads --------------------------------------------------------------------------------
    def version(self) -> int:
        with self._lock:
            return self._version()

    def snapshot(self) -> RegistrySnapshot | None:
        with self._lock:
            self._db.execute("BEGIN")  # one read transaction: one version
            try:
                state = self._state()
            finally:
                self._db.execute("COMMIT")
        return state if state.version > 0 else None

    def changes(self, limit: int = 100) -> list[Change]:
        with self._lock:
            rows = self._db.execute(
                "SELECT at, principal, action, target, before, after FROM registry_changes "
                "ORDER BY version DESC LIMIT ?", (max(0, int(limit)),)).fetchall()
        return [Change(at, principal, action, target, json.loads(before), json.loads(after))
                for at, principal, action, target, before, after in rows]

    # -- writes -------------------------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    # -- helpers ------------------------------------------------------------------------------
    def _write(self, make_plan: Callable[[RegistrySnapshot], Plan | None], principal: str) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock before the read: see the docstring
            try:
                plan = make_plan(self._state())
                if plan is None or plan.writes_nothing:
                    self._db.execute("ROLLBACK")
                    return None if plan is None else plan.result
                self._apply(plan, principal)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return plan.result

    def _apply(self, plan: Plan, principal: str) -> None:
        db = self._db
        for app_id, body in plan.apps.items():
            if body is None:
                db.execute("DELETE FROM registry_apps WHERE id = ?", (app_id,))
            else:
                db.execute("INSERT INTO registry_apps (id, body) VALUES (?, ?) "
                           "ON CONFLICT (id) DO UPDATE SET body = excluded.body", (app_id, dumps(body)))
        for bu, budget in plan.business_units.items():
            if budget is None:
                db.execute("DELETE FROM registry_business_units WHERE id = ?", (bu,))
            else:
                db.execute("INSERT INTO registry_business_units (id, body) VALUES (?, ?) "
                           "ON CONFLICT (id) DO UPDATE SET body = excluded.body", (bu, dumps(budget)))
        for name, enabled in plan.deployments.items():
            db.execute("INSERT INTO registry_deployments (name, enabled) VALUES (?, ?) "
                       "ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled", (name, int(enabled)))
        version = self._version() + 1
        db.execute("INSERT INTO registry_version (id, version) VALUES (1, ?) "
                   "ON CONFLICT (id) DO UPDATE SET version = excluded.version", (version,))
        change = plan.change(iso_utc(self._clock()), principal)
        db.execute("INSERT INTO registry_changes (version, at, principal, action, target, before, after) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (version, change.at, change.principal, change.action, change.target,
                    dumps(change.before), dumps(change.after)))

    def _version(self) -> int:
        row = self._db.execute("SELECT version FROM registry_version WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def _state(self) -> RegistrySnapshot:
        db = self._db
        return RegistrySnapshot(
            version=self._version(),
            apps={i: json.loads(b) for i, b in db.execute("SELECT id, body FROM registry_apps ORDER BY id")},
            business_units={i: json.loads(b) for i, b in
                            db.execute("SELECT id, body FROM registry_business_units ORDER BY id")},
            deployments={n: bool(e) for n, e in
                         db.execute("SELECT name, enabled FROM registry_deployments ORDER BY name")},
        )
