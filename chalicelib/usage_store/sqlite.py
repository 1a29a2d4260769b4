"""Local adapter of the usage aggregates port: a table of its own in `$GARDEN_HOME/garden.sqlite3`.

One row per (app, business unit, model, UTC day); `record` is one UPSERT (one statement, hence one
transaction under SQLite's write lock), so concurrent records from threads or processes add up
exactly. Costs are whole 1e-8 USD units (INTEGER: exact). Nothing expires here: the aggregates are
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
        with self._lock:
            self._db.execute(_RECORD, (
                event.app_id, event.business_unit, event.model, event.day, requests,
                event.prompt_tokens, event.completion_tokens, event.cached_tokens, event.cost_units,
                errors, rejected,
            ))

    def totals(self, from_day: str, to_day: str) -> list[UsageTotals]:
        with self._lock:
            rows = self._db.execute(_TOTALS, (from_day, to_day)).fetchall()
        return [UsageTotals(*row) for row in rows]

    def close(self) -> None:
        self._db.close()
