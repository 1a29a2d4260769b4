"""One contract for every Ledger adapter: the same scenarios against SQLite, DynamoDB on moto and
DynamoDB on Amazon's DynamoDB Local (the `ledger` fixture, tests/store/conftest.py).

Where the adapters differ by design (expired holds: SQLite drops them on its own, DynamoDB keeps
them until swept), the contract asserts only what holds after `sweep`.
"""
from __future__ import annotations

import threading

import pytest

from chalicelib.store import Ledger

DAY = "2026-11-27"


def reserve(ledger: Ledger, rid: str, tokens: int, *, limit: int = 1000, now: float = 100.0,
            app: str = "app", day: str = DAY) -> bool:
    return ledger.reserve(reservation_id=rid, app_id=app, day=day, tokens=tokens, limit=limit,
                          now=now, expires_at=now + 60)


def settle(ledger: Ledger, rid: str, tokens: int, cost: float, *, now: float = 100.0,
           app: str = "app") -> None:
    ledger.settle(reservation_id=rid, app_id=app, day=DAY, tokens=tokens, cost_usd=cost, now=now)


def usage(ledger: Ledger, app: str = "app", now: float = 100.0) -> tuple[int, int, int, float]:
    u = ledger.usage(app, DAY, now)
    return u.tokens, u.reserved, u.requests, u.cost_usd


class TestLedgerContract:
    def test_reserve_settle_release(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r1", 600)
        assert not reserve(ledger, "r2", 500)  # 600 held + 500 > 1000
        assert usage(ledger) == (0, 600, 0, 0.0)
        settle(ledger, "r1", 250, 0.5)
        assert reserve(ledger, "r3", 500)  # 250 used + 500 held <= 1000
        assert usage(ledger) == (250, 500, 1, 0.5)
        ledger.release("r3")
        assert usage(ledger) == (250, 0, 1, 0.5)
        assert reserve(ledger, "r4", 750) and not reserve(ledger, "r5", 1)

    def test_limit_is_exact(self, ledger: Ledger) -> None:
        assert not reserve(ledger, "too-big", 101, limit=100)
        assert reserve(ledger, "a", 60, limit=100)
        assert reserve(ledger, "b", 40, limit=100)  # exactly to the limit
        assert not reserve(ledger, "c", 1, limit=100)  # one token more
        assert usage(ledger)[1] == 100

    def test_usage_past_the_reservation_counts(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r", 100, limit=1000)
        settle(ledger, "r", 400, 0.1)  # used more than reserved: what was used is what counts
        assert usage(ledger)[:3] == (400, 0, 1)
        assert reserve(ledger, "s", 600) and not reserve(ledger, "t", 1)

    def test_cost_accumulates(self, ledger: Ledger) -> None:
        for i, cost in enumerate((0.1, 0.2, 0.000001)):
            assert reserve(ledger, f"r{i}", 10)
            settle(ledger, f"r{i}", 5, cost)
        assert usage(ledger) == (15, 0, 3, pytest.approx(0.300001))

    def test_days_are_separate(self, ledger: Ledger) -> None:
        assert reserve(ledger, "a", 1000)
        assert reserve(ledger, "b", 1000, day="2026-11-28")
        assert not reserve(ledger, "c", 1, day="2026-11-28")

    def test_apps_are_separate(self, ledger: Ledger) -> None:
        assert reserve(ledger, "a", 1000, app="one")
        assert reserve(ledger, "b", 1000, app="two")
        settle(ledger, "a", 10, 0.5, app="one")
        assert usage(ledger, "one") == (10, 0, 1, 0.5)
        assert usage(ledger, "two") == (0, 1000, 0, 0.0)

    def test_sweep_frees_expired_holds(self, ledger: Ledger) -> None:
        assert reserve(ledger, "dead", 900, now=100.0)  # a request that died without settling
        assert reserve(ledger, "live", 50, now=140.0)  # expires at 200
        assert not reserve(ledger, "r", 200, now=150.0)  # the dead hold has not expired yet
        assert ledger.sweep("app", DAY, now=150.0) == 0
        assert ledger.sweep("app", DAY, now=161.0) == 1  # past the dead one's expiry only
        assert ledger.sweep("app", DAY, now=161.0) == 0  # idempotent
        assert reserve(ledger, "r", 200, now=161.0)
        assert ledger.usage("app", DAY, now=161.0).reserved == 250
        ledger.release("dead")  # the dead request's late release frees nothing twice
        assert ledger.usage("app", DAY, now=161.0).reserved == 250

    def test_settle_after_sweep_still_records_usage(self, ledger: Ledger) -> None:
        assert reserve(ledger, "slow", 500, now=100.0)
        assert ledger.sweep("app", DAY, now=170.0) == 1
        settle(ledger, "slow", 300, 0.25, now=171.0)
        assert usage(ledger, now=171.0) == (300, 0, 1, 0.25)
        assert reserve(ledger, "next", 700, now=171.0)  # 300 used + 700 = 1000
        assert not reserve(ledger, "over", 1, now=171.0)

    def test_release_of_unknown_id_is_a_no_op(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r", 10)
        ledger.release("never-reserved")
        ledger.release("r")
        ledger.release("r")
        assert usage(ledger) == (0, 0, 0, 0.0)
        assert ledger.sweep("nobody", DAY, now=1e12) == 0

    @pytest.mark.concurrency
    def test_threads_cannot_overshoot(self, ledger: Ledger) -> None:
        granted = concurrent_reservations(ledger, threads=16, per_thread=10, tokens=7, limit=100)
        assert granted == 14  # floor(100 / 7), never more
        assert usage(ledger)[1] == 98

    @pytest.mark.concurrency
    def test_threads_settling_and_reserving_keep_the_books(self, ledger: Ledger) -> None:
        """Reservations racing settlements: every granted token is accounted for, none twice."""
        granted = concurrent_reservations(ledger, threads=8, per_thread=10, tokens=10, limit=500,
                                          settle_tokens=4)
        # Each thread holds one reservation at a time: at most 8 x 10 held + 80 x 4 used < 500.
        assert granted == 80
        assert usage(ledger)[:3] == (320, 0, 80)  # no counter update lost, none applied twice
        assert reserve(ledger, "after", 180, limit=500) and not reserve(ledger, "over", 1, limit=500)


def concurrent_reservations(ledger: Ledger, *, threads: int, per_thread: int, tokens: int,
                            limit: int, settle_tokens: int | None = None) -> int:
    """Threads reserve at once (and settle each grant at `settle_tokens`, if given); returns grants."""
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def one(rid: str) -> bool:
        granted = reserve(ledger, rid, tokens, limit=limit)
        if granted and settle_tokens is not None:
            settle(ledger, rid, settle_tokens, 0.0)
        return granted

    def worker(t: int) -> None:
        start.wait()  # all threads race from the same moment
        try:
            mine = [one(f"t{t}-{i}") for i in range(per_thread)]
        except Exception as exc:  # noqa: BLE001 - surfaced by the assert below, not lost in a thread
            with lock:
                errors.append(exc)
            return
        with lock:
            results.extend(mine)

    workers: list[threading.Thread] = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    return sum(results)
