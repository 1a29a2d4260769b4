"""The SQLite ledger: reservations are atomic across counters, expire on their own, and never let
concurrent callers (threads or processes: several containers on one file) overshoot."""
from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from chalicelib.store import Hold, Limit, Refused
from chalicelib.store.sqlite import SqliteLedger

DAY = Limit("app/app/tokens/day/2026-11-27", 1000, 1e6)
MINUTE = Limit("app/app/requests/minute/2026-11-27T10:00", 5, 1e6)


def reserve(ledger: SqliteLedger, rid: str, tokens: int, limit: Limit = DAY, now: float = 100.0) -> bool:
    return ledger.reserve(reservation_id=rid, holds=[Hold(limit, tokens)], now=now, expires_at=now + 60) is None


def held(ledger: SqliteLedger, limit: Limit = DAY) -> int:
    return ledger.counters([limit], 0.0)[0].held


def test_expired_reservations_free_their_hold_on_the_next_reserve(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    assert reserve(ledger, "dead", 900, now=100.0)  # a request that died without releasing
    assert not reserve(ledger, "r", 200, now=150.0)
    assert reserve(ledger, "r", 200, now=161.0)  # past the dead one's expiry: no sweep needed
    assert held(ledger) == 200


def test_all_or_nothing_across_counters(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    for i in range(5):
        assert reserve(ledger, f"m{i}", 1, limit=MINUTE)
    refused = ledger.reserve(reservation_id="x", holds=[Hold(DAY, 10), Hold(MINUTE, 1)], now=100.0, expires_at=160.0)
    assert refused == Refused(MINUTE)
    assert held(ledger) == 0  # the day's counter was not touched


def test_old_rows_are_pruned_by_sweep(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    assert reserve(ledger, "a", 10)
    ledger.settle(reservation_id="a", used=[Hold(DAY, 5)], now=100.0)
    ledger.sweep(now=100.0 + 3 * 86400)
    rows = ledger._db.execute("SELECT COUNT(*) FROM reservations").fetchone()[0]  # noqa: SLF001
    assert rows == 0


def test_threads_cannot_overshoot(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    granted: list[bool] = []
    lock = threading.Lock()
    tight = Limit("app/app/tokens/day/2026-11-27", 100, 1e6)

    def worker(i: int) -> None:
        ok = reserve(ledger, f"t{i}", 7, limit=tight)
        with lock:
            granted.append(ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 14  # floor(100 / 7), never more
    assert held(ledger, tight) == 98


def _process_worker(path: str, prefix: str, results: "multiprocessing.Queue[int]") -> None:
    ledger = SqliteLedger(Path(path))
    limit = Limit("app/app/tokens/day/2026-11-27", 500, 1e6)
    results.put(sum(reserve(ledger, f"{prefix}-{i}", 10, limit=limit) for i in range(40)))
    ledger.close()


def test_processes_cannot_overshoot(tmp_path: Path) -> None:
    """Several containers (processes) on one ledger file: the write lock keeps the total exact."""
    path = str(tmp_path / "l.db")
    SqliteLedger(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_process_worker, args=(path, f"p{i}", results)) for i in range(4)]
    for p in procs:
        p.start()
    granted = sum(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert granted == 50  # 4 x 40 attempts of 10 tokens against 500
    assert held(SqliteLedger(Path(path)), Limit("app/app/tokens/day/2026-11-27", 500, 1e6)) == 500
