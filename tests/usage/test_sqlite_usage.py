"""SQLite specifics: the aggregates share garden.sqlite3 with the ledger, in a table of their own
that the ledger's schema (and its migrations) never touch, and add up exactly across connections
(as two gateway processes on one machine would)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from chalicelib.store.sqlite import SqliteLedger
from chalicelib.usage import UsageEvent
from chalicelib.usage_store.sqlite import SqliteUsageStore


def test_shares_the_ledger_file_in_its_own_table(tmp_path: Path) -> None:
    path = tmp_path / "garden.sqlite3"
    ledger, usage, again = SqliteLedger(path), SqliteUsageStore(path), SqliteUsageStore(path)
    try:
        usage.record(UsageEvent("app", "retail", "m", "2026-11-27", "ok", 5, 2, 0, 50_000_000))
        again.record(UsageEvent("app", "retail", "m", "2026-11-27", "ok", 1, 1, 0, 1))
        ledger.close()
        ledger = SqliteLedger(path)  # the ledger opening the file again (its migrations run) keeps them
        [t] = usage.totals("2026-11-27", "2026-11-27")
        assert (t.requests, t.prompt_tokens, t.cost_units) == (2, 6, 50_000_001)
        with sqlite3.connect(path) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "usage_aggregates" in tables and len(tables) > 1
    finally:
        ledger.close()
        usage.close()
        again.close()
