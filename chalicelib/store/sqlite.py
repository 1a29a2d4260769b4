"""Local adapter of the store port: one SQLite file under `$GARDEN_HOME`.

WAL mode with synchronous=NORMAL: commits do not fsync, which suits a developer's machine; the
write lock makes check-and-reserve atomic across threads and processes.
Stores only ids, numbers and dates: never request text.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from chalicelib.store import DailyUsage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    app_id TEXT NOT NULL, day TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, day)
);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY, app_id TEXT NOT NULL, day TEXT NOT NULL,
    tokens INTEGER NOT NULL, expires_at REAL NOT NULL,
    used INTEGER, cost_usd REAL  -- set once, by settle; the trigger below does the rest
);
CREATE INDEX IF NOT EXISTS reservations_by_app ON reservations (app_id, day, expires_at);
-- Settling is one UPDATE: this trigger books the usage and drops the hold in the same statement,
-- hence the same transaction (one commit per settle instead of a BEGIN..COMMIT of three).
CREATE TRIGGER IF NOT EXISTS settle_reservation AFTER UPDATE OF used ON reservations
WHEN NEW.used IS NOT NULL
BEGIN
    INSERT INTO usage (app_id, day, tokens, requests, cost_usd)
        VALUES (NEW.app_id, NEW.day, NEW.used, 1, NEW.cost_usd)
        ON CONFLICT (app_id, day) DO UPDATE SET tokens = tokens + excluded.tokens,
            requests = requests + 1, cost_usd = cost_usd + excluded.cost_usd;
    DELETE FROM reservations WHERE id = NEW.id;
END;
"""

_BOOK_USAGE = (
    "INSERT INTO usage (app_id, day, tokens, requests, cost_usd) VALUES (?, ?, ?, 1, ?) "
    "ON CONFLICT (app_id, day) DO UPDATE SET tokens = tokens + excluded.tokens, "
    "requests = requests + 1, cost_usd = cost_usd + excluded.cost_usd"
)

_RESERVE = """
INSERT INTO reservations (id, app_id, day, tokens, expires_at)
SELECT ?, ?, ?, ?, ?
WHERE (SELECT COALESCE(SUM(tokens), 0) FROM usage WHERE app_id = ? AND day = ?)
    + (SELECT COALESCE(SUM(tokens), 0) FROM reservations WHERE app_id = ? AND day = ? AND expires_at > ?)
    + ? <= ?
"""

_TOP_UP = """
UPDATE reservations SET tokens = tokens + ?
WHERE id = ? AND app_id = ? AND day = ? AND expires_at > ? AND used IS NULL
  AND (SELECT COALESCE(SUM(tokens), 0) FROM usage WHERE app_id = ? AND day = ?)
    + (SELECT COALESCE(SUM(tokens), 0) FROM reservations WHERE app_id = ? AND day = ? AND expires_at > ?)
    + ? <= ?
"""


class SqliteLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit, so each is exactly one BEGIN..COMMIT.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=5.0)
        self._lock = threading.Lock()  # chalice local serves each request on its own thread
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        if self._db.execute("PRAGMA user_version").fetchone()[0] < 2:
            # Folders made before settle became one statement lack the columns: start them over
            # (local dev state; nothing here outlives a day's quota).
            self._db.executescript("DROP TABLE IF EXISTS reservations; PRAGMA user_version = 2;")
        self._db.executescript(_SCHEMA)

    def reserve(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, limit: int,
        now: float, expires_at: float,
    ) -> bool:
        # One statement is one implicit transaction under SQLite's write lock: the check and the
        # insert cannot be split by another writer, in this process or another.
        with self._lock:
            cursor = self._db.execute(_RESERVE, (
                reservation_id, app_id, day, tokens, expires_at,
                app_id, day, app_id, day, now, tokens, limit,
            ))
        return cursor.rowcount == 1

    def top_up(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, limit: int, now: float,
    ) -> bool:
        with self._lock:  # one statement: check and grow under the write lock, as reserve does
            cursor = self._db.execute(_TOP_UP, (
                tokens, reservation_id, app_id, day, now, app_id, day, app_id, day, now, tokens, limit,
            ))
        return cursor.rowcount == 1

    def settle(
        self, *, reservation_id: str, app_id: str, day: str, tokens: int, cost_usd: float, now: float
    ) -> None:
        with self._lock:
            cursor = self._db.execute("UPDATE reservations SET used = ?, cost_usd = ? WHERE id = ?",
                                      (tokens, cost_usd, reservation_id))
            if cursor.rowcount == 0:  # swept already: the call still happened, so book it
                self._db.execute(_BOOK_USAGE, (app_id, day, tokens, cost_usd))

    def release(self, reservation_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))

    def usage(self, app_id: str, day: str, now: float) -> DailyUsage:
        with self._lock:
            row = self._db.execute(
                "SELECT tokens, requests, cost_usd FROM usage WHERE app_id = ? AND day = ?", (app_id, day)
            ).fetchone()
            held = self._held(app_id, day, now)
        tokens, requests, cost = row if row else (0, 0, 0.0)
        return DailyUsage(tokens=tokens, reserved=held, requests=requests, cost_usd=cost)

    def sweep(self, app_id: str, day: str, now: float) -> int:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM reservations WHERE app_id = ? AND day = ? AND expires_at <= ?", (app_id, day, now)
            )
        return cursor.rowcount

    def close(self) -> None:
        self._db.close()

    def _held(self, app_id: str, day: str, now: float) -> int:
        row = self._db.execute(
            "SELECT COALESCE(SUM(tokens), 0) FROM reservations WHERE app_id = ? AND day = ? AND expires_at > ?",
            (app_id, day, now),
        ).fetchone()
        return int(row[0])
