"""Ledger contract for `top_up`: a live reservation grows atomically, within every limit, on every
backend (SQLite, moto, DynamoDB Local), and what it grew by is freed or booked with it."""
from __future__ import annotations

import threading

import pytest
from test_ledger_contract import END, TOKENS, counter, reserve, settle

from chalicelib.store import Hold, Ledger, Limit, Refused


def top_up(ledger: Ledger, rid: str, tokens: int, *, limit: Limit = TOKENS, now: float = 100.0) -> bool:
    return ledger.top_up(reservation_id=rid, holds=[Hold(limit, tokens)], now=now) is None


class TestTopUp:
    def test_grows_within_the_limit_only(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r1", 600)
        assert top_up(ledger, "r1", 300)
        assert counter(ledger) == (0, 900)
        assert ledger.top_up(reservation_id="r1", holds=[Hold(TOKENS, 101)], now=100.0) == Refused(TOKENS)
        assert top_up(ledger, "r1", 100)
        assert not reserve(ledger, "r2", 1)

    def test_release_frees_what_the_top_up_held(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r1", 200) and top_up(ledger, "r1", 300)
        ledger.release("r1")
        assert counter(ledger) == (0, 0)
        assert reserve(ledger, "r2", 1000)

    def test_settle_books_actual_usage_after_a_top_up(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r1", 200) and top_up(ledger, "r1", 300)
        settle(ledger, "r1", 450)
        assert counter(ledger) == (450, 0)

    def test_a_settled_or_released_reservation_cannot_grow(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r1", 100)
        settle(ledger, "r1", 100)
        assert ledger.top_up(reservation_id="r1", holds=[Hold(TOKENS, 10)], now=100.0) == Refused(None)
        assert reserve(ledger, "r2", 100)
        ledger.release("r2")
        assert not top_up(ledger, "r2", 10)
        assert not top_up(ledger, "never-reserved", 10)
        assert counter(ledger) == (100, 0)

    def test_an_expired_reservation_cannot_grow(self, ledger: Ledger) -> None:
        assert reserve(ledger, "r1", 100, now=100.0)  # lease until 160
        assert not top_up(ledger, "r1", 10, now=161.0)

    @pytest.mark.concurrency
    def test_threads_topping_up_cannot_overshoot(self, ledger: Ledger) -> None:
        limit = Limit("app/app/tokens/day/2026-11-27", 2000, END)
        ids = [f"t{i}" for i in range(32)]
        for rid in ids:
            assert reserve(ledger, rid, 10, limit=limit)  # 320 held
        granted: list[bool] = []
        lock = threading.Lock()

        def grow(rid: str) -> None:
            ok = top_up(ledger, rid, 70, limit=limit)
            with lock:
                granted.append(ok)

        threads = [threading.Thread(target=grow, args=(rid,)) for rid in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(granted) == 24  # floor((2000 - 320) / 70): never more
        assert counter(ledger, limit)[1] == 320 + 24 * 70
