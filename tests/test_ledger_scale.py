"""One app at 500 requests a second on DynamoDB does not throttle: proven by numbers, since DynamoDB
Local does not throttle hot keys.

20 containers (ledger instances, 2 threads each) serve 6,000 requests of one app, whose clock runs
at 500 requests a second (12 simulated seconds across a minute boundary: leases are extended,
trimmed and renewed, and per-minute counters roll over, as in production), against every limit kind at once (tokens per minute, day and month, requests per
minute, USD per month, a per-model cap, the business unit's USD and tokens) plus the day's
bookkeeping counters. Every write asks DynamoDB Local for `ReturnConsumedCapacity`: the test sums
the write units per request and per partition key, and scales the hottest key's share to 500
requests a second. DynamoDB allows about 1,000 WCU a second on one partition key; the design
before leases (two transactions on the app's counter per request, 2 WCU per item) needed 2,000.

`measure()` returns the figures the README quotes.
"""
from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from store.dynamodb_tables import create_table, make_client

from chalicelib.catalog import App, BusinessUnit, Deployment, GuardrailPolicy, Model, PiiPolicy, Price, Quotas
from chalicelib.chat import Usage
from chalicelib.cost import cost_usd
from chalicelib.quota import QuotaKeeper
from chalicelib.store.dynamodb import DynamoDbLedger

RPS, REQUESTS, CONTAINERS, THREADS_PER_CONTAINER = 500, 6_000, 20, 2
T0 = 1_800_000_000.0 - 6  # the 12 simulated seconds straddle a minute boundary (new per-minute counters)
MODEL = Model("m", "t", 4096, 0.003, 0.015, (Deployment("bedrock", "a", "a"),
                                              Deployment("bedrock", "b", "b", price=Price(0.004, 0.02))))
APP = App("hot", "bu", ("arn:aws:iam::111122223333:role/hot",), frozenset({"m"}), PiiPolicy({}, {}),
          GuardrailPolicy(), Quotas(tokens_per_day=10**9, tokens_per_month=10**10, requests_per_minute=10**6,
                                    tokens_per_minute=10**8, usd_per_month=10**6, model_tokens_per_day={"m": 10**9}))
UNIT = BusinessUnit("bu", usd_per_month=10**6, tokens_per_month=10**10)


class Metered:
    """The DynamoDB client, asking every write for its consumed capacity and keeping it per key."""

    WRITES = ("update_item", "put_item", "delete_item", "transact_write_items")

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.units: Counter[str] = Counter()  # partition key -> write units
        self.writes: Counter[str] = Counter()  # partition key -> write requests

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name not in self.WRITES:
            return method

        def metered(**kwargs: Any) -> Any:
            try:
                answer = method(ReturnConsumedCapacity="TOTAL", **kwargs)
            except Exception as exc:
                self._count(kwargs, getattr(exc, "response", {}).get("ConsumedCapacity"))
                raise
            self._count(kwargs, answer.get("ConsumedCapacity"))
            return answer

        return metered

    def _count(self, kwargs: dict[str, Any], consumed: Any) -> None:
        pk = kwargs["Key"]["pk"]["S"] if "Key" in kwargs else "(transaction)"
        # A failed conditional write consumes a unit too: count one where DynamoDB Local says nothing.
        units = float(consumed["CapacityUnits"]) if isinstance(consumed, dict) else 1.0
        with self._lock:
            self.units[pk] += units
            self.writes[pk] += 1


@dataclass
class Scale:
    requests: int
    wcu_per_request: float
    hottest_key: str
    hottest_wcu_per_s_at_500: float
    hottest_writes_per_s_at_500: float
    granted: int


def measure(url: str) -> Scale:
    client = make_client(url)
    table = create_table(client)
    metered = Metered(client)
    containers = [DynamoDbLedger(lambda: metered, table, container_id=f"c{i:02d}") for i in range(CONTAINERS)]
    local = threading.local()
    keepers = [QuotaKeeper(ledger, 25, clock=lambda: local.now) for ledger in containers]
    lock = threading.Lock()
    sequence = iter(range(REQUESTS))
    granted: list[int] = []
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        keeper = keepers[w % CONTAINERS]
        rng = random.Random(w)
        try:
            while True:
                with lock:
                    i = next(sequence, None)
                if i is None:
                    return
                local.now = T0 + i / RPS  # the app's requests arrive at 500 a second
                size_in, size_out = rng.randint(200, 2000), rng.randint(50, 800)
                reservation = keeper.reserve(APP, size_in, size_out, str(uuid.uuid4()), model=MODEL, unit=UNIT)
                used = Usage(rng.randint(size_in // 2, size_in), rng.randint(0, size_out))
                keeper.settle(reservation, used.total_tokens, cost_usd(MODEL.price, used))
                with lock:
                    granted.append(i)
        except Exception as exc:  # noqa: BLE001 - surfaced below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(CONTAINERS * THREADS_PER_CONTAINER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:3]
    seconds = REQUESTS / RPS
    total = sum(metered.units.values())
    hottest, units = metered.units.most_common(1)[0]
    return Scale(REQUESTS, total / REQUESTS, hottest, units / seconds, metered.writes[hottest] / seconds, len(granted))


def test_one_app_at_500_rps_stays_far_below_a_partitions_write_limit(dynamodb_local_url: str) -> None:
    scale = measure(dynamodb_local_url)
    assert scale.granted == REQUESTS  # the limits are large: every request was served
    assert scale.hottest_key.startswith("LIMIT#")
    # Well below 1,000 WCU/s on any key, and well below one write unit per request overall.
    assert scale.hottest_wcu_per_s_at_500 < 250, scale
    assert scale.wcu_per_request < 1.0, scale
