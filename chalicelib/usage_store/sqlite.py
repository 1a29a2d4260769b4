"""Local adapter of the usage aggregates port: a table of its own in `$GARDEN_HOME/garden.sqlite3`.

One row per (app, business unit, model, UTC day), and beside it one row per named count of that
aggregate (`usage_counts`: "<kind>:<code>" -> n, usage.event_counts). `record` is one transaction
under SQLite's write lock: the aggregate's UPSERT plus one UPSERT per named count the request has
(none for most requests; a rejection, PII or a guardrail adds one or a few rows to the same
commit), so concurrent records from threads or processes add up exactly and a request still costs
one commit. Costs are whole 1e-8 USD units (INTEGER: exact). Nothing expires here: the aggregates are
kept at least 13 months, and locally for as long as the file lives.
Stores only ids, numbers and dates: never request text.
"""
from __future__ import annotations

import threading
from pathlib import Path

from chalicelib.sqlite_file import connect
from chalicelib.usage import OUTCOMES, UsageEvent, UsageTotals

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage_aggregates (
    app_id TEXT NOT NULL, business_unit TEXT NOT NULL, model TEXT NOT NULL, day TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0, prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0, cached_tokens INTEGER NOT NULL DEFAULT 0,
    cost_units INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, app_id, business_unit, model)
);
CREATE TABLE IF NOT EXISTS usage_counts (
    app_id TEXT NOT NULL, business_unit TEXT NOT NULL, model TEXT NOT NULL, day TEXT NOT NULL,
    name TEXT NOT NULL, count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, app_id, business_unit, model, name)
);
"""

_RECORD = """
INSERT INTO usage_aggregates (app_id, business_unit, model, day, requests, prompt_tokens,
    completion_tokens, cached_tokens, cost_units, errors, rejected)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (day, app_id, business_unit, model) DO UPDATE SET
    requests = requests + excluded.requests, prompt_tokens = prompt_tokens + excluded.prompt_tokens,
    completion_tokens = completion_tokens + excluded.completion_tokens,
    cached_tokens = cached_tokens + excluded.cached_tokens, cost_units = cost_units + excluded.cost_units,
    errors = errors + excluded.errors, rejected = rejected + excluded.rejected
"""

_COUNT = """
INSERT INTO usage_counts (app_id, business_unit, model, day, name, count) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (day, app_id, business_unit, model, name) DO UPDATE SET count = count + excluded.count
"""

_COUNTS = """
SELECT app_id, business_unit, model, day, name, count FROM usage_counts WHERE day >= ? AND day <= ?
"""

_TOTALS = """
SELECT app_id, business_unit, model, day, requests, prompt_tokens, completion_tokens, cached_tokens,
       cost_units, errors, rejected
FROM usage_aggregates WHERE day >= ? AND day <= ? ORDER BY day, app_id, business_unit, model
"""


def counts(event: UsageEvent) -> tuple[int, int, int]:
    """(requests, errors, rejected) of one event: exactly one of them is 1."""
    if event.outcome not in OUTCOMES:
        raise ValueError("outcome must be one of ok, rejected, error")
    return int(event.outcome == "ok"), int(event.outcome == "error"), int(event.outcome == "rejected")


class SqliteUsageStore:
    def __init__(self, path: Path) -> None:
        # Autocommit: each UPSERT is its own transaction (the ledger's connection is separate).
        self._db = connect(path, timeout_s=5.0)
        self._lock = threading.Lock()
        self._db.executescript(_SCHEMA)

    def record(self, event: UsageEvent) -> None:
        requests, errors, rejected = counts(event)
        key = (event.app_id, event.business_unit, event.model, event.day)
        with self._lock:
            if not event.counts:  # most requests: one statement, its own transaction
                self._db.execute(_RECORD, (*key, requests, event.prompt_tokens, event.completion_tokens,
                                           event.cached_tokens, event.cost_units, errors, rejected))
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(_RECORD, (*key, requests, event.prompt_tokens, event.completion_tokens,
                                           event.cached_tokens, event.cost_units, errors, rejected))
                self._db.executemany(_COUNT, [(*key, name, n) for name, n in event.counts])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def totals(self, from_day: str, to_day: str) -> list[UsageTotals]:
        with self._lock:  # one read transaction: the counts belong to the totals read with them
            self._db.execute("BEGIN")
            try:
                rows = self._db.execute(_TOTALS, (from_day, to_day)).fetchall()
                named = self._db.execute(_COUNTS, (from_day, to_day)).fetchall()
            finally:
                self._db.execute("COMMIT")
        counts: dict[tuple[str, str, str, str], dict[str, int]] = {}
        for app, bu, model, day, name, n in named:
            counts.setdefault((app, bu, model, day), {})[name] = n
        return [UsageTotals(*row, counts=counts.get(tuple(row[:4]), {})) for row in rows]

    def close(self) -> None:
        self._db.close()
