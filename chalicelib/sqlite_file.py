"""The local state file, `$GARDEN_HOME/garden.sqlite3`, shared by the ledger, the usage aggregates
and the registry (their SQLite adapters), each on its own connection.

WAL mode with synchronous=NORMAL: commits do not fsync. The WAL's checkpoint does, and by default
the committing request pays for it every 1,000 pages: a few ms of stall for one request in a few
hundred, which was the whole p99. Here a committing writer checkpoints only past CHECKPOINT_PAGES,
and the ledger's `Checkpointer` runs a PASSIVE checkpoint (it never waits for writers) off the
request path every CHECKPOINT_EVERY_S.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

CHECKPOINT_PAGES = 8000  # ~32 MB of WAL at most before a writer checkpoints on its own
CHECKPOINT_EVERY_S = 5.0


def connect(path: Path, timeout_s: float = 10.0) -> sqlite3.Connection:
    """A connection for explicit transactions (isolation_level=None), shared across threads under
    the adapter's own lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=timeout_s)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    return db


class Checkpointer:
    """A daemon thread checkpointing the file's WAL every `every_s`; `close()` stops it."""

    def __init__(self, path: Path, every_s: float = CHECKPOINT_EVERY_S) -> None:
        self._path = path
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="garden-sqlite-checkpoint", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        db = connect(self._path)
        try:
            while not self._stop.wait(self._every_s):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # busy or locked: the next round, or a writer past CHECKPOINT_PAGES, catches up
        finally:
            db.close()
