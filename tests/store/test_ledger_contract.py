"""One contract for every Ledger adapter: the same scenarios against SQLite, DynamoDB on moto and
DynamoDB on Amazon's DynamoDB Local (the `ledger` fixture, tests/store/conftest.py).

Where the adapters differ by design (DynamoDB serves reservations from leased blocks and frees an
expired hold only when swept), the contract asserts what holds after `flush` and `sweep`.
"""
from __future__ import annotations

import threading
from typing import Sequence

import pytest

from chalicelib.store import Counter, Hold, Ledger, Limit, Refused

END = 10_000.0  # every window of these tests ends after them
TOKENS = Limit("app/app/tokens/day/2026-11-27", 1000, END)
REQUESTS = Limit("app/app/requests/minute/2026-11-27T10:00", 3, END)
USD = Limit("bu/bu/usd/month/2026-11", 50_000, END)
FREE = Limit("app/app/usd/day/2026-11-27", None, END)  # counted, never refused


def reserve(ledger: Ledger, rid: str, tokens: int, *, limit: Limit = TOKENS, now: float = 100.0,
            extra: Sequence[Hold] = ()) -> bool:
    return ledger.reserve(reservation_id=rid, holds=[Hold(limit, tokens), *extra], now=now,
                          expires_at=now + 60) is None


def settle(ledger: Ledger, rid: str, tokens: int, *, limit: Limit = TOKENS, now: float = 100.0,
           extra: Sequence[Hold] = ()) -> None:
    ledger.settle(reservation_id=rid, used=[Hold(limit, tokens), *extra], now=now)


def counter(ledger: Ledger, limit: Limit = TOKENS, now: float = 100.0) -> tuple[int, int]:
    ledger.flush(now)
    (c,) = ledger.counters([limit], now)
    return c.used, c.held


class TestLedgerContract:
    def test_reserve_settle_release(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r1", 600)
        assert not reserve(ledger, "r2", 500)  # 600 held + 500 > 1000
        assert counter(ledger) == (0, 600)
        settle(ledger, "r1", 250)
        assert reserve(ledger, "r3", 500)  # 250 used + 500 held <= 1000
        assert counter(ledger) == (250, 500)
        ledger.release("r3")
        assert counter(ledger) == (250, 0)
        assert reserve(ledger, "r4", 750) and not reserve(ledger, "r5", 1)

    def test_limit_is_exact(self, ledger: Ledger) -> None:
        small = Limit("app/app/tokens/minute/2026-11-27T10:00", 100, END)
        assert not reserve(ledger, "too-big", 101, limit=small)
        assert reserve(ledger, "a", 60, limit=small)
        assert reserve(ledger, "b", 40, limit=small)  # exactly to the limit
        assert not reserve(ledger, "c", 1, limit=small)  # one token more
        assert counter(ledger, small)[1] == 100

    def test_refusal_names_the_limit_and_holds_nothing(self, ledger: Ledger) -> None:
        assert reserve(ledger, "a", 10, extra=[Hold(REQUESTS, 1), Hold(USD, 20_000)])
        assert reserve(ledger, "b", 10, extra=[Hold(REQUESTS, 1), Hold(USD, 20_000)])
        refused = ledger.reserve(reservation_id="c", holds=[Hold(TOKENS, 10), Hold(REQUESTS, 1),
                                                           Hold(USD, 20_000)], now=100.0, expires_at=160.0)
        assert refused == Refused(USD)  # 40,000 + 20,000 > 50,000: all or none
        assert counter(ledger) == (0, 20) and counter(ledger, REQUESTS) == (0, 2)
        assert reserve(ledger, "d", 10, extra=[Hold(REQUESTS, 1), Hold(USD, 10_000)])
        assert ledger.reserve(reservation_id="e", holds=[Hold(TOKENS, 1), Hold(REQUESTS, 1)], now=100.0,
                              expires_at=160.0) == Refused(REQUESTS)

    def test_uncapped_limits_are_counted(self, ledger: Ledger) -> None:
        assert reserve(ledger, "a", 10, extra=[Hold(FREE, 10**12)])
        settle(ledger, "a", 5, extra=[Hold(FREE, 3)])
        assert counter(ledger, FREE) == (3, 0)
        assert ledger.remaining([FREE, TOKENS], 100.0) == [None, 995]

    def test_usage_past_the_reservation_counts(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r", 100)
        settle(ledger, "r", 400)  # used more than reserved: what was used is what counts
        assert counter(ledger) == (400, 0)
        assert reserve(ledger, "s", 600) and not reserve(ledger, "t", 1)

    def test_settle_is_idempotent(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r", 100)
        settle(ledger, "r", 80)
        settle(ledger, "r", 80)  # a replay
        settle(ledger, "r", 500)  # even one that says otherwise
        ledger.release("r")
        assert counter(ledger) == (80, 0)

    def test_windows_are_separate(self, ledger: Ledger) -> None:
        tomorrow = Limit("app/app/tokens/day/2026-11-28", 1000, END)
        assert reserve(ledger, "a", 1000)
        assert reserve(ledger, "b", 1000, limit=tomorrow)
        assert not reserve(ledger, "c", 1, limit=tomorrow)

    def test_sweep_frees_expired_holds(self, ledger: Ledger) -> None:
        assert reserve(ledger, "dead", 900, now=100.0)  # a request that died without settling
        assert reserve(ledger, "live", 50, now=140.0)  # expires at 200
        assert not reserve(ledger, "r", 200, now=150.0)  # the dead hold has not expired yet
        ledger.sweep(now=150.0)
        assert counter(ledger, now=150.0) == (0, 950)
        assert ledger.sweep(now=161.0) >= 1  # past the dead one's expiry
        assert ledger.sweep(now=161.0) == 0  # idempotent
        assert reserve(ledger, "r", 200, now=161.0)
        assert counter(ledger, now=161.0) == (0, 250)
        ledger.release("dead")  # the dead request's late release frees nothing twice
        assert counter(ledger, now=161.0) == (0, 250)

    def test_settle_after_sweep_still_records_usage(self, ledger: Ledger) -> None:
        assert reserve(ledger, "slow", 500, now=100.0)
        assert ledger.sweep(now=170.0) >= 1
        settle(ledger, "slow", 300, now=171.0)
        assert counter(ledger, now=171.0) == (300, 0)
        assert reserve(ledger, "next", 700, now=171.0)  # 300 used + 700 = 1000
        assert not reserve(ledger, "over", 1, now=171.0)

    def test_release_of_unknown_id_is_a_no_op(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r", 10)
        ledger.release("never-reserved")
        ledger.release("r")
        ledger.release("r")
        assert counter(ledger) == (0, 0)

    def test_duplicate_reservation_id_is_refused(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r", 10)
        with pytest.raises(ValueError):
            reserve(ledger, "r", 20)
        assert counter(ledger) == (0, 10)

    @pytest.mark.concurrency
    def test_threads_cannot_overshoot(self, ledger: Ledger) -> None:
        granted = concurrent_reservations(ledger, threads=16, per_thread=10, tokens=7, limit=100)
        assert granted == 14  # floor(100 / 7), never more
        assert counter(ledger, Limit("app/app/tokens/day/2026-11-27", 100, END))[1] == 98

    @pytest.mark.concurrency
    def test_threads_settling_and_reserving_keep_the_books(self, ledger: Ledger) -> None:
        """Reservations racing settlements: every granted token is accounted for, none twice."""
        limit = Limit("app/app/tokens/day/2026-11-27", 500, END)
        granted = concurrent_reservations(ledger, threads=8, per_thread=10, tokens=10, limit=500,
                                          settle_tokens=4)
        # Each thread holds one reservation at a time: at most 8 x 10 held + 80 x 4 used < 500.
        assert granted == 80
        assert counter(ledger, limit) == (320, 0)  # no counter update lost, none applied twice
        assert reserve(ledger, "after", 180, limit=limit) and not reserve(ledger, "over", 1, limit=limit)


def concurrent_reservations(ledger: Ledger, *, threads: int, per_thread: int, tokens: int,
                            limit: int, settle_tokens: int | None = None) -> int:
    """Threads reserve at once (and settle each grant at `settle_tokens`, if given); returns grants."""
    capped = Limit("app/app/tokens/day/2026-11-27", limit, END)
    results: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def one(rid: str) -> bool:
        granted = reserve(ledger, rid, tokens, limit=capped)
        if granted and settle_tokens is not None:
            settle(ledger, rid, settle_tokens, limit=capped)
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


__all__ = ["Counter", "END", "TOKENS", "counter", "reserve", "settle"]
