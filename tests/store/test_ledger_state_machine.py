"""A Hypothesis state machine for the ledger: random sequences of reserve, top-up, settle (and its
replays), release, time passing and sweep, checked step by step against a plain model of counters
and reservations. On SQLite (and on DynamoDB Local, one container, compared after `flush`)."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

from dynamodb_tables import create_table, make_client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from chalicelib.store import Hold, Ledger, Limit, Refused
from chalicelib.store.dynamodb import DynamoDbLedger
from chalicelib.store.sqlite import SqliteLedger

TOKENS = Limit("app/a/tokens/day/2026-11-27", 100, 1e9)
REQUESTS = Limit("app/a/requests/minute/2026-11-27T10:00", 4, 1e9)
FREE = Limit("app/a/usd/day/2026-11-27", None, 1e9)
LIMITS = (TOKENS, REQUESTS, FREE)
HOLD_S = 60.0


class LedgerMachine(RuleBasedStateMachine):
    make: Callable[[], Ledger]

    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = self.make()
        self.now = 1000.0
        self.used = {limit.key: 0 for limit in LIMITS}
        self.live: dict[str, tuple[float, dict[str, int]]] = {}  # id -> (expires_at, holds)
        self.settled: set[str] = set()
        self.count = 0

    # -- the model ---------------------------------------------------------------------------
    def held(self, key: str) -> int:
        return sum(holds.get(key, 0) for _, holds in self.live.values())

    def fits(self, amounts: dict[str, int]) -> Limit | None:
        for limit in LIMITS:
            if limit.cap is not None and self.used[limit.key] + self.held(limit.key) + amounts.get(limit.key, 0) > limit.cap:
                return limit
        return None

    def free_expired(self) -> int:
        dead = [rid for rid, (at, _) in self.live.items() if at <= self.now]
        for rid in dead:
            del self.live[rid]
        return len(dead)

    # -- rules ------------------------------------------------------------------------------
    @rule(target=reservations, tokens=st.integers(0, 60), usd=st.integers(0, 10**6))
    def reserve(self, tokens: int, usd: int) -> str:
        self.count += 1
        rid = f"r{self.count}"
        amounts = {TOKENS.key: tokens, REQUESTS.key: 1, FREE.key: usd}
        got = self.ledger.reserve(reservation_id=rid, holds=[Hold(limit, amounts[limit.key]) for limit in LIMITS],
                                  now=self.now, expires_at=self.now + HOLD_S)
        self.free_expired()  # both adapters free expired holds before they check
        expected = self.fits(amounts)
        assert got == (None if expected is None else Refused(expected))
        if got is None:
            self.live[rid] = (self.now + HOLD_S, amounts)
        return rid

    @rule(rid=reservations, tokens=st.integers(1, 40))
    def top_up(self, rid: str, tokens: int) -> None:
        got = self.ledger.top_up(reservation_id=rid, holds=[Hold(TOKENS, tokens)], now=self.now)
        entry = self.live.get(rid)
        if entry is None or entry[0] <= self.now:
            assert got == Refused(None)
            return
        expected = self.fits({TOKENS.key: tokens})
        assert got == (None if expected is None else Refused(expected))
        if got is None:
            entry[1][TOKENS.key] += tokens

    @rule(rid=reservations, tokens=st.integers(0, 80), replays=st.integers(0, 2))
    def settle(self, rid: str, tokens: int, replays: int) -> None:
        for _ in range(1 + replays):
            self.ledger.settle(reservation_id=rid, used=[Hold(TOKENS, tokens), Hold(REQUESTS, 1), Hold(FREE, 7)],
                               now=self.now)
        if rid in self.settled:
            return  # a replay: nothing
        self.live.pop(rid, None)
        self.settled.add(rid)
        self.used[TOKENS.key] += tokens
        self.used[REQUESTS.key] += 1
        self.used[FREE.key] += 7

    @rule(rid=reservations)
    def release(self, rid: str) -> None:
        self.ledger.release(rid)
        self.live.pop(rid, None)

    @rule(seconds=st.sampled_from([1.0, 30.0, 61.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def sweep(self) -> None:
        freed = self.ledger.sweep(self.now)
        assert freed == self.free_expired()

    @invariant()
    def counters_agree(self) -> None:
        self.ledger.flush(self.now)
        got = self.ledger.counters(list(LIMITS), self.now)
        assert [(c.used, c.held) for c in got] == [(self.used[limit.key], self.held(limit.key)) for limit in LIMITS]

    def teardown(self) -> None:
        close = getattr(self.ledger, "close", None)
        if close is not None:
            close()


def run(make: Callable[[], Ledger], examples: int, steps: int) -> None:
    machine: Any = type("Machine", (LedgerMachine,), {"make": staticmethod(make)})
    machine.TestCase.settings = settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                                         suppress_health_check=list(HealthCheck))
    machine.TestCase().runTest()


def test_sqlite_ledger_behaves_as_the_model() -> None:
    with tempfile.TemporaryDirectory() as folder:
        made = iter(range(10**6))
        run(lambda: SqliteLedger(Path(folder) / f"{next(made)}.db"), examples=60, steps=40)


def test_dynamodb_ledger_behaves_as_the_model(dynamodb_local_url: str) -> None:
    client = make_client(dynamodb_local_url)
    # One container, compared after `flush` (which also renews its leases' expiry: time moves at
    # most 61 s a step, so its own sweep never takes it for a dead container's).
    run(lambda: DynamoDbLedger(lambda: client, create_table(client)), examples=15, steps=12)
