"""The SQLite ledger: reservations are atomic, expire, and never let concurrent callers overshoot."""
from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from chalicelib.store.sqlite import SqliteLedger

DAY = "2026-11-27"


def reserve(ledger: SqliteLedger, rid: str, tokens: int, limit: int = 1000, now: float = 100.0) -> bool:
    return ledger.reserve(reservation_id=rid, app_id="app", day=DAY, tokens=tokens, limit=limit,
                          now=now, expires_at=now + 60)


def test_reserve_settle_release(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    assert reserve(ledger, "r1", 600)
    assert not reserve(ledger, "r2", 500)  # 600 held + 500 > 1000
    ledger.settle(reservation_id="r1", app_id="app", day=DAY, tokens=250, cost_usd=0.5, now=100.0)
    assert reserve(ledger, "r3", 500)  # 250 used + 500 held <= 1000
    ledger.release("r3")
    usage = ledger.usage("app", DAY, now=100.0)
    assert (usage.tokens, usage.reserved, usage.requests, usage.cost_usd) == (250, 0, 1, 0.5)


def test_expired_reservations_free_their_hold(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    assert reserve(ledger, "dead", 900, now=100.0)  # a request that died without releasing
    assert not reserve(ledger, "r", 200, now=150.0)
    assert reserve(ledger, "r", 200, now=161.0)  # past the dead one's expiry
    assert ledger.usage("app", DAY, now=161.0).reserved == 200


def test_days_are_separate(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    assert reserve(ledger, "a", 1000)
    assert ledger.reserve(reservation_id="b", app_id="app", day="2026-11-28", tokens=1000, limit=1000,
                          now=100.0, expires_at=160.0)


def test_threads_cannot_overshoot(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "l.db")
    granted: list[bool] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        ok = reserve(ledger, f"t{i}", 7, limit=100)
        with lock:
            granted.append(ok)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 14  # floor(100 / 7), never more
    assert ledger.usage("app", DAY, now=100.0).reserved == 98


def _process_worker(path: str, prefix: str, results: "multiprocessing.Queue[int]") -> None:
    ledger = SqliteLedger(Path(path))
    results.put(sum(reserve(ledger, f"{prefix}-{i}", 10, limit=500) for i in range(40)))
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
    assert SqliteLedger(Path(path)).usage("app", DAY, now=100.0).reserved == 500
