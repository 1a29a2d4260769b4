"""Local adapter of the ledger port: one SQLite file under `$GARDEN_HOME`.

Tables: `counters` (one row per limit key: used, held, the window's end), `reservations` (id,
state held|settled|released|swept, expiry) and `holds` (what each reservation holds on which
counter). Every operation is one BEGIN IMMEDIATE..COMMIT under SQLite's write lock, so a check
against several counters and the writes that follow cannot be split by another writer, in this
process or another. Expired holds are freed by the next reserve (and by `sweep`); settled rows are
kept two days after their expiry so that a replayed settle is recognised.

WAL mode with synchronous=NORMAL: commits do not fsync, which suits a developer's machine.
Stores only ids, numbers and dates: never request text.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Sequence

from chalicelib.sqlite_file import Checkpointer, connect
from chalicelib.store import Counter, DailyUsage, Hold, Limit, Refused, day_keys

_VERSION = 3
_KEEP_S = 2 * 86400  # settled reservations are remembered this long past their expiry (replays)
_COUNTER_KEEP_S = 35 * 86400  # counters outlive their window this long (local inspection)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (
    key TEXT PRIMARY KEY, used INTEGER NOT NULL DEFAULT 0, held INTEGER NOT NULL DEFAULT 0,
    resets_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY, state TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_by_expiry ON reservations (state, expires_at);
CREATE TABLE IF NOT EXISTS holds (
    reservation_id TEXT NOT NULL, key TEXT NOT NULL, amount INTEGER NOT NULL,
    PRIMARY KEY (reservation_id, key)
);
"""

_ADD = ("INSERT INTO counters (key, used, held, resets_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET used = used + excluded.used, held = held + excluded.held")


class SqliteLedger:
    def __init__(self, path: Path) -> None:
        # isolation_level=None: transactions are explicit, so each is exactly one BEGIN..COMMIT.
        self._db = connect(path)
        self._lock = threading.Lock()  # chalice local serves each request on its own thread
        self._checkpointer = Checkpointer(path)  # the file's WAL checkpoints, off the request path
        if self._db.execute("PRAGMA user_version").fetchone()[0] < _VERSION:
            # Folders made before the limits ledger: start their bookkeeping over (local dev state).
            self._db.executescript("DROP TABLE IF EXISTS usage; DROP TABLE IF EXISTS reservations; "
                                   "DROP TRIGGER IF EXISTS settle_reservation;"
                                   f"PRAGMA user_version = {_VERSION};")
        self._db.executescript(_SCHEMA)

    # -- port ---------------------------------------------------------------------------------
    def reserve(
        self, *, reservation_id: str, holds: Sequence[Hold], now: float, expires_at: float,
    ) -> Refused | None:
        with self._transaction():
            self._free_expired(now)
            if self._db.execute("SELECT 1 FROM reservations WHERE id = ? AND state = 'held'",
                                (reservation_id,)).fetchone():
                raise ValueError("reservation id already in use")
            refused = self._check(holds)
            if refused is not None:
                return refused
            # A finished reservation's id may serve again (a replayed event): its holds are gone.
            self._db.execute("DELETE FROM holds WHERE reservation_id = ?", (reservation_id,))
            self._db.execute("INSERT INTO reservations (id, state, expires_at) VALUES (?, 'held', ?) "
                             "ON CONFLICT (id) DO UPDATE SET state = 'held', expires_at = excluded.expires_at",
                             (reservation_id, expires_at))
            self._hold(reservation_id, holds)
        return None

    def top_up(self, *, reservation_id: str, holds: Sequence[Hold], now: float) -> Refused | None:
        with self._transaction():
            row = self._db.execute("SELECT state, expires_at FROM reservations WHERE id = ?",
                                   (reservation_id,)).fetchone()
            if row is None or row[0] != "held" or row[1] <= now:
                return Refused(None)
            refused = self._check(holds)
            if refused is not None:
                return refused
            self._hold(reservation_id, holds)
        return None

    def settle(self, *, reservation_id: str, used: Sequence[Hold], now: float) -> None:
        with self._transaction():
            row = self._db.execute("SELECT state FROM reservations WHERE id = ?", (reservation_id,)).fetchone()
            if row is not None and row[0] == "settled":
                return  # a replay: booked once already
            if row is not None and row[0] == "held":
                self._free(reservation_id)
            self._add((h.limit, h.amount, 0) for h in used)
            # Remembered (also when swept or never seen) so that a replay books nothing.
            self._db.execute(
                "INSERT INTO reservations (id, state, expires_at) VALUES (?, 'settled', ?) "
                "ON CONFLICT (id) DO UPDATE SET state = 'settled'", (reservation_id, now))

    def release(self, reservation_id: str) -> None:
        with self._transaction():
            row = self._db.execute("SELECT state FROM reservations WHERE id = ?", (reservation_id,)).fetchone()
            if row is not None and row[0] == "held":
                self._free(reservation_id)
                self._db.execute("UPDATE reservations SET state = 'released' WHERE id = ?", (reservation_id,))

    def counters(self, limits: Sequence[Limit], now: float) -> list[Counter]:
        keys = [limit.key for limit in limits]
        with self._lock:
            rows = dict((k, (u, h)) for k, u, h in self._db.execute(
                f"SELECT key, used, held FROM counters WHERE key IN ({','.join('?' * len(keys))})", keys))
        return [Counter(*rows[k]) if k in rows else Counter(0, 0) for k in keys]

    def remaining(self, limits: Sequence[Limit], now: float) -> list[int | None]:
        return [None if limit.cap is None else limit.cap - c.used - c.held
                for limit, c in zip(limits, self.counters(limits, now), strict=True)]

    def flush(self, now: float) -> None:
        """Nothing is leased here: every hold is a reservation's."""

    def sweep(self, now: float) -> int:
        with self._transaction():
            freed = self._free_expired(now)
            self._db.execute("DELETE FROM holds WHERE reservation_id IN "
                             "(SELECT id FROM reservations WHERE state != 'held' AND expires_at < ?)",
                             (now - _KEEP_S,))
            self._db.execute("DELETE FROM reservations WHERE state != 'held' AND expires_at < ?", (now - _KEEP_S,))
            self._db.execute("DELETE FROM counters WHERE resets_at < ? AND held = 0", (now - _COUNTER_KEEP_S,))
        return freed

    # -- local inspection (tests, `make run`): the app's day from its bookkeeping counters ------
    def usage(self, app_id: str, day: str, now: float) -> DailyUsage:
        tokens, requests, usd = self.counters([Limit(k, None, 0.0) for k in day_keys(app_id, day)], now)
        return DailyUsage(tokens=tokens.used, reserved=tokens.held, requests=requests.used,
                          cost_usd=round(usd.used / 1e8, 8))

    def close(self) -> None:
        self._checkpointer.close()
        self._db.close()

    # -- helpers ------------------------------------------------------------------------------
    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db, self._lock)

    def _check(self, holds: Sequence[Hold]) -> Refused | None:
        capped = [hold for hold in holds if hold.limit.cap is not None]
        if not capped:
            return None
        keys = [hold.limit.key for hold in capped]
        committed = dict(self._db.execute(
            f"SELECT key, used + held FROM counters WHERE key IN ({','.join('?' * len(keys))})", keys).fetchall())
        for hold in capped:
            if committed.get(hold.limit.key, 0) + hold.amount > (hold.limit.cap or 0):
                return Refused(hold.limit)
        return None

    def _hold(self, reservation_id: str, holds: Sequence[Hold]) -> None:
        self._add((h.limit, 0, h.amount) for h in holds)
        self._db.executemany(
            "INSERT INTO holds (reservation_id, key, amount) VALUES (?, ?, ?) "
            "ON CONFLICT (reservation_id, key) DO UPDATE SET amount = amount + excluded.amount",
            [(reservation_id, h.limit.key, h.amount) for h in holds])

    def _add(self, changes: Iterable[tuple[Limit, int, int]]) -> None:
        self._db.executemany(_ADD, [(limit.key, used, held, limit.resets_at) for limit, used, held in changes])

    def _free(self, reservation_id: str) -> None:
        self._db.execute(
            "UPDATE counters SET held = held - (SELECT amount FROM holds WHERE reservation_id = ? "
            "AND holds.key = counters.key) WHERE key IN (SELECT key FROM holds WHERE reservation_id = ?)",
            (reservation_id, reservation_id))

    def _free_expired(self, now: float) -> int:
        expired = [r for (r,) in self._db.execute(
            "SELECT id FROM reservations WHERE state = 'held' AND expires_at <= ?", (now,)).fetchall()]
        for rid in expired:
            self._free(rid)
            self._db.execute("UPDATE reservations SET state = 'swept' WHERE id = ?", (rid,))
        return len(expired)


class _Transaction:
    """The ledger's lock and one BEGIN IMMEDIATE..COMMIT (ROLLBACK on an exception)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
        finally:
            self._lock.release()
