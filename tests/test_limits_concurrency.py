"""No limit is overshot under concurrency, on either store: 64 threads x 20 requests of random sizes
against a small limit of each kind (tokens per day, requests per minute, USD per month, a business
unit's budget), through QuotaKeeper as the gateway calls it (reserve, settle at the serving price).

Each request uses at most what it reserved (the estimate is an upper bound, tokens.py), so the
bound "no more than one request's estimation error" is 0 here: admitted usage must stay within the
cap. Every settle is sent twice (a replay books nothing). Some workers are killed after reserving:
their holds are freed by the sweep (SQLite), or, on DynamoDB, a whole container dies with its
leases and the sweep books them as used (over-refusal, never overshoot). Containers are ledger
instances (DynamoDB: 8, each serving 8 threads from its own leases).

`storm()` returns the figures the README quotes (limit vs admitted per kind and store).
"""
from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from store.dynamodb_tables import create_table, make_client

from chalicelib.catalog import (App, BusinessUnit, Deployment, GuardrailPolicy, Model, PiiPolicy, Price,
                                Quotas)
from chalicelib.cost import cost_usd
from chalicelib.chat import Usage
from chalicelib.errors import QuotaExceeded
from chalicelib.quota import QuotaKeeper, plan_for
from chalicelib.store import Ledger
from chalicelib.store.dynamodb import LEASE_GRACE_S, SERVE_S, DynamoDbLedger
from chalicelib.store.sqlite import SqliteLedger
from chalicelib.usage import cost_units

THREADS, PER_THREAD, CONTAINERS = 64, 20, 8
NOW = 1_800_000_001.0  # one second into a minute
SERVED = Price(0.01, 0.03)  # the deployment that serves
MODEL = Model("m", "t", 1000, 0.01, 0.03, (Deployment("local-echo", "a", "served"),
                                           Deployment("local-echo", "b", "dear", price=Price(0.02, 0.06))))
KINDS = {
    "tokens_per_day": dict(quotas=Quotas(tokens_per_day=20_000)),
    "requests_per_minute": dict(quotas=Quotas(requests_per_minute=300)),
    "usd_per_month": dict(quotas=Quotas(usd_per_month=0.3)),
    "business_unit_usd": dict(quotas=Quotas(), unit=BusinessUnit("bu", usd_per_month=0.4)),
}


@dataclass
class Figures:
    kind: str
    cap: float
    admitted: float
    granted: int
    refused: int
    booked: float  # what the store counts, after flush and sweep
    killed: float  # what killed workers held (admitted: they may have used it all)

    @property
    def overshoot(self) -> float:
        return max(0.0, self.admitted - self.cap)


def app(kind: str, app_id: str = "a") -> App:
    return App(app_id, "bu", (f"arn:aws:iam::111122223333:role/{app_id}",), frozenset({"m"}),
               PiiPolicy({}, {}), GuardrailPolicy(), KINDS[kind]["quotas"])


def storm(kind: str, containers: list[Ledger], dies: Callable[[int], bool], seed: int = 10) -> Figures:
    """64 threads x 20 requests; thread t uses container t % len(containers). Returns the figures,
    with the store's own count read after every live container flushed and a sweep."""
    unit = KINDS[kind].get("unit")
    apps = [app(kind, "a"), app(kind, "b")]  # two apps of one business unit
    keepers = [QuotaKeeper(ledger, 25, clock=lambda: NOW) for ledger in containers]
    lock = threading.Lock()
    tally = {"tokens": 0, "requests": 0, "units": 0, "granted": 0, "refused": 0}
    dead_tally = {"tokens": 0, "requests": 0, "units": 0}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        rng = random.Random(seed * 1000 + t)
        keeper = keepers[t % len(keepers)]
        the_app = apps[t % 2] if unit is not None else apps[0]
        try:
            if dies(t):  # reserves as the storm starts, then is killed: no settle, no release
                reservation = keeper.reserve(the_app, 300, 300, f"dead-{t}", model=MODEL, unit=unit)
                units = reservation.plan.price_units(300, 300) if reservation.plan else 0
                with lock:  # it may have used all it held: count that as admitted
                    for name, n in (("tokens", reservation.tokens), ("requests", 1), ("units", units)):
                        tally[name] += n
                        dead_tally[name] += n
                    tally["granted"] += 1
                start.wait()
                return
            start.wait()
            for _ in range(PER_THREAD):
                size_in, size_out = rng.randint(20, 400), rng.randint(10, 300)
                rid = str(uuid.UUID(int=rng.getrandbits(128)))
                try:
                    reservation = keeper.reserve(the_app, size_in, size_out, rid, model=MODEL, unit=unit)
                except QuotaExceeded:
                    with lock:
                        tally["refused"] += 1
                    continue
                used = Usage(rng.randint(size_in // 2, size_in), rng.randint(0, size_out))
                cost = cost_usd(SERVED, used)
                keeper.settle(reservation, used.total_tokens, cost)
                keeper.settle(reservation, used.total_tokens, cost)  # a replay: books nothing
                with lock:
                    tally["tokens"] += used.total_tokens
                    tally["requests"] += 1
                    tally["units"] += cost_units(cost)
                    tally["granted"] += 1
        except Exception as exc:  # noqa: BLE001 - surfaced by the assert below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    later = NOW + 25 + 60 + SERVE_S + LEASE_GRACE_S + 1  # every dead hold and lease has expired
    dead = {c for c in range(len(containers)) if all(dies(t) for t in range(c, THREADS, len(containers)))}
    for c, ledger in enumerate(containers):
        if c not in dead:
            ledger.flush(NOW)
    containers[0].sweep(later)
    plan = plan_for(apps[0], MODEL, unit, NOW)
    limit = {"tokens_per_day": plan.tokens[0], "requests_per_minute": plan.admitted[0] if plan.admitted else None,
             "usd_per_month": plan.usd[-1], "business_unit_usd": plan.usd[-1]}[kind]
    assert limit is not None and limit.cap is not None
    (counted,) = containers[0].counters([limit], later)
    assert counted.held == 0  # nothing left held once the sweep has run
    measure = {"tokens_per_day": "tokens", "requests_per_minute": "requests"}.get(kind, "units")
    scale = 1e-8 if measure == "units" else 1
    return Figures(kind, limit.cap * scale, tally[measure] * scale, tally["granted"], tally["refused"],
                   counted.used * scale, dead_tally[measure] * scale)


def sqlite_containers(tmp_path: Path) -> list[Ledger]:
    return [SqliteLedger(tmp_path / "ledger.db") for _ in range(CONTAINERS)]  # one file, 8 connections


def dynamodb_containers(url: str) -> list[Ledger]:
    client = make_client(url)
    table = create_table(client)
    return [DynamoDbLedger(lambda: client, table, container_id=f"c{i}") for i in range(CONTAINERS)]


@pytest.fixture(params=["sqlite", "dynamodb-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], list[Ledger]]:
    if request.param == "sqlite":
        return lambda: sqlite_containers(tmp_path)
    url = request.getfixturevalue("dynamodb_local_url")
    return lambda: dynamodb_containers(url)


@pytest.mark.parametrize("kind", list(KINDS))
def test_no_limit_is_overshot_under_concurrency(store: Callable[[], list[Ledger]], kind: str) -> None:
    containers = store()
    # Killed workers: on SQLite two threads (their holds expire and the sweep frees them); on
    # DynamoDB every thread of the last container, which dies holding its leases.
    is_dynamodb = isinstance(containers[0], DynamoDbLedger)
    figures = storm(kind, containers, (lambda t: t % CONTAINERS == CONTAINERS - 1) if is_dynamodb
                    else (lambda t: t in (5, 40)))
    assert figures.killed > 0, figures  # killed workers did hold something
    assert figures.refused > 0, figures  # the limit was reached: the test means something
    assert figures.admitted <= figures.cap, figures  # no overshoot: not one token, request or 1e-8 USD
    assert figures.booked <= figures.cap + 1e-9, figures
    if is_dynamodb:
        # A dead container's leases count as used whole (nobody knows how much of them was), so
        # the store counts at least what was admitted: over-refusal, never overshoot.
        assert figures.admitted <= figures.booked + 1e-9, figures
    else:
        # SQLite knows every reservation: what it books is exactly the settled usage (the two
        # killed workers' holds were freed by the sweep, not booked).
        assert figures.booked == pytest.approx(figures.admitted - figures.killed, abs=1e-9), figures


def _figures(url: str, tmp_path: Path) -> list[tuple[str, Figures]]:  # pragma: no cover - for the README
    out = []
    for kind in KINDS:
        out.append(("sqlite", storm(kind, sqlite_containers(tmp_path / kind), lambda t: t in (5, 40))))
        out.append(("dynamodb-local", storm(kind, dynamodb_containers(url),
                                            lambda t: t % CONTAINERS == CONTAINERS - 1)))
    return out


__all__: list[Any] = ["storm", "Figures"]
