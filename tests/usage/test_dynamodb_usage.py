"""DynamoDB specifics of the usage aggregates: the item layout (own key space in garden-ledger,
shards summed on read, 400-day TTL), one write unit per request, and what a hot app does to the
hottest partition key."""
from __future__ import annotations

import calendar
import collections
import random
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib.errors import ServiceUnavailable
from chalicelib.usage import UsageEvent
from chalicelib.usage_store.dynamodb import RETENTION_S, SHARDS, DynamoDbUsageStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))
from dynamodb_tables import create_table, make_client  # noqa: E402


@pytest.fixture(params=("moto", "dynamodb-local"))
def table(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    client = make_client(request.getfixturevalue("moto_url" if request.param == "moto" else "dynamodb_local_url"))
    name = create_table(client)
    yield client, name
    client.delete_table(TableName=name)


def ok(day: str = "2026-11-30", cost: int = 375) -> UsageEvent:
    return UsageEvent("app", "retail", "m", day, "ok", 10, 5, 1, cost)


def test_item_layout_and_ttl(table: tuple[Any, str]) -> None:
    client, name = table
    shards = iter([3, 5])
    store = DynamoDbUsageStore(lambda: client, name, shard=lambda: next(shards))
    store.record(ok())
    store.record(ok(cost=25))
    items = client.scan(TableName=name, ConsistentRead=True)["Items"]
    assert sorted(i["pk"]["S"] for i in items) == ["USAGE#2026-11#3", "USAGE#2026-11#5"]
    assert {i["sk"]["S"] for i in items} == {"2026-11-30#app#retail#m"}
    end_of_day = calendar.timegm((2026, 12, 1, 0, 0, 0))
    assert {int(i["expires_at"]["N"]) for i in items} == {end_of_day + RETENTION_S}
    assert RETENTION_S >= 396 * 86400  # 13 months of 31 days, and then some
    [t] = store.totals("2026-11-01", "2026-11-30")
    assert (t.requests, t.prompt_tokens, t.cost_units) == (2, 20, 400)


def test_ranges_cross_months_and_years(table: tuple[Any, str]) -> None:
    client, name = table
    store = DynamoDbUsageStore(lambda: client, name)
    for day in ("2026-11-30", "2026-12-01", "2026-12-31", "2027-01-01", "2027-01-02"):
        store.record(ok(day))
    assert [t.day for t in store.totals("2026-11-30", "2027-01-01")] == [
        "2026-11-30", "2026-12-01", "2026-12-31", "2027-01-01"]
    assert store.totals("2027-01-02", "2026-11-30") == []


def test_one_write_unit_per_request(dynamodb_local_url: str) -> None:
    """The figure the README quotes: ReturnConsumedCapacity on the exact UpdateItem record() sends."""
    client = make_client(dynamodb_local_url)
    name = create_table(client)
    seen: list[float] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "TOTAL"

    def note(parsed: dict[str, Any], **_: Any) -> None:
        seen.append(parsed["ConsumedCapacity"]["CapacityUnits"])

    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", count)
    client.meta.events.register("after-call.dynamodb.UpdateItem", note)
    store = DynamoDbUsageStore(lambda: client, name)
    for _ in range(5):
        store.record(UsageEvent("a-long-application-id-of-fifty-six-characters-x" * 1, "retail-banking",
                                "anthropic.claude-3-5-sonnet-20240620-v1:0", "2026-11-30", "ok",
                                123456, 654321, 1000, 12345678901))
    client.delete_table(TableName=name)
    assert seen == [1.0] * 5


def test_hottest_key_at_500_rps_for_one_app() -> None:
    """One app at 500 requests per second for 60 s: the busiest partition key's busiest second
    stays far below DynamoDB's ~1,000 writes per second per key (1 write unit per record)."""
    rng = random.Random(500)
    worst = 0
    for _second in range(60):
        per_key = collections.Counter(rng.randrange(SHARDS) for _ in range(500))
        worst = max(worst, max(per_key.values()))
    assert 500 / SHARDS == 62.5 and worst < 100


def test_unreachable_store_is_unavailable() -> None:
    client = make_client("http://127.0.0.1:9")
    store = DynamoDbUsageStore(lambda: client, "garden-ledger")
    with pytest.raises(ServiceUnavailable):
        store.record(ok())
