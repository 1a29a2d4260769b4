"""DynamoDB adapter specifics the contract cannot see: item layout and TTLs, leases (a block serves
many requests without a write), dead and frozen containers, the lazy client and error mapping
(moto server on 127.0.0.1)."""
from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import NoRegionError

from chalicelib.errors import ServiceUnavailable
from chalicelib.store import Hold, Limit, Refused
from chalicelib.store.dynamodb import BLOCK_MULTIPLE, LEASE_GRACE_S, SERVE_S, DynamoDbLedger
from dynamodb_tables import create_table, make_client

END = 86400.0
TOKENS = Limit("app/app/tokens/day/1970-01-01", 100_000, END)
PK = {"S": f"LIMIT#{TOKENS.key}"}


@pytest.fixture(scope="module")
def client(moto_url: str) -> Any:
    return make_client(moto_url)


@pytest.fixture
def table(client: Any) -> str:
    return create_table(client)


class Counting:
    """The client, counting the calls made through it."""

    def __init__(self, client: Any) -> None:
        self.client, self.calls = client, []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self.client, name)


class SweepRole:
    """The client as the scheduled sweep's role may use it (.chalice/policy-sweep-prod.json)."""

    ALLOWED = ("query", "update_item", "delete_item")

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        assert name in self.ALLOWED, f"the sweep's role may not {name}"
        return getattr(self._client, name)


def reserve(ledger: DynamoDbLedger, rid: str, tokens: int, limit: Limit = TOKENS, now: float = 100.0) -> bool:
    return ledger.reserve(reservation_id=rid, holds=[Hold(limit, tokens)], now=now, expires_at=now + 60) is None


def counter_item(client: Any, table: str, limit: Limit = TOKENS) -> dict[str, Any]:
    return client.get_item(TableName=table, Key={"pk": {"S": f"LIMIT#{limit.key}"}, "sk": {"S": "C"}},
                           ConsistentRead=True)["Item"]


def test_a_block_serves_many_requests_with_one_write(client: Any, table: str) -> None:
    counting = Counting(client)
    ledger = DynamoDbLedger(lambda: counting, table, container_id="c1")
    assert reserve(ledger, "r0", 100)
    item = counter_item(client, table)
    block = 100 * BLOCK_MULTIPLE  # 3,200 <= 100,000 / 16
    assert {k: item[k]["N"] for k in ("committed", "leased", "L_c1")} == {k: str(block) for k in
                                                                         ("committed", "leased", "L_c1")}
    assert float(item["X_c1"]["N"]) == 100.0 + SERVE_S + LEASE_GRACE_S
    assert int(item["expires_at"]["N"]) == int(END) + 2 * 86400  # the window's end + 2 days
    index = client.get_item(TableName=table, Key={"pk": {"S": f"LEASES#{_shard('c1')}"}, "sk": {"S": "c1"}})["Item"]
    assert index["keys"]["SS"] == [TOKENS.key]
    writes = len(counting.calls)
    for i in range(1, 31):
        assert reserve(ledger, f"r{i}", 100)
        ledger.settle(reservation_id=f"r{i}", used=[Hold(TOKENS, 90)], now=100.0)
    assert len(counting.calls) == writes  # served from the lease in memory
    ledger.flush(100.0)
    item = counter_item(client, table)
    assert (item["used"]["N"], item["leased"]["N"], item["committed"]["N"]) == ("2700", "100", "2800")
    assert item["L_c1"]["N"] == "100"  # r0, still in flight


def test_usage_past_the_hold_is_written_through_at_once(client: Any, table: str) -> None:
    ledger = DynamoDbLedger(lambda: client, table, container_id="c1")
    small = Limit("app/app/tokens/minute/1970-01-01T00:01", 1000, END)
    assert reserve(ledger, "r", 60, limit=small)  # a block of 62 (1000 // 16)
    ledger.settle(reservation_id="r", used=[Hold(small, 500)], now=100.0)
    other = DynamoDbLedger(lambda: client, table, container_id="c2")
    assert other.counters([small], 100.0)[0].used == 500  # every container sees it
    assert other.reserve(reservation_id="x", holds=[Hold(small, 501)], now=100.0, expires_at=160.0) == Refused(small)
    assert reserve(other, "y", 500, limit=small)


def test_a_dead_containers_lease_is_booked_as_used_by_the_sweep(client: Any, table: str) -> None:
    dead = DynamoDbLedger(lambda: client, table, container_id="dead")
    assert reserve(dead, "r", 100)  # leases 3,200, then the container dies
    alive = DynamoDbLedger(lambda: SweepRole(client), table, container_id="alive")
    assert alive.sweep(now=150.0) == 0  # not expired yet
    later = 100.0 + SERVE_S + LEASE_GRACE_S + 1
    assert alive.sweep(now=later) == 1
    item = counter_item(client, table)
    # Nobody knows how much of it was used: all of it counts (over-refusal, never overshoot).
    assert (item["used"]["N"], item["leased"]["N"], "L_dead" in item) == ("3200", "0", False)
    index = client.query(TableName=table, KeyConditionExpression="pk = :pk",
                         ExpressionAttributeValues={":pk": {"S": f"LEASES#{_shard('dead')}"}})["Items"]
    assert all("keys" not in i for i in index if i["sk"]["S"] == "dead")
    assert alive.sweep(now=later) == 0  # idempotent


def test_a_frozen_container_that_wakes_after_the_sweep_books_nothing_twice(client: Any, table: str) -> None:
    frozen = DynamoDbLedger(lambda: client, table, container_id="frozen")
    assert reserve(frozen, "r", 100)
    ledger_now = 100.0 + SERVE_S + LEASE_GRACE_S + 1
    DynamoDbLedger(lambda: client, table, container_id="sweeper").sweep(now=ledger_now)
    # The request in flight when it froze settles within what the swept lease covered: no write.
    frozen.settle(reservation_id="r", used=[Hold(TOKENS, 80)], now=ledger_now)
    assert reserve(frozen, "s", 100, now=ledger_now)  # a new lease
    frozen.settle(reservation_id="s", used=[Hold(TOKENS, 100)], now=ledger_now)
    frozen.flush(ledger_now)
    item = counter_item(client, table)
    assert (item["used"]["N"], item["leased"]["N"]) == ("3300", "0")  # 3,200 swept + 100


def test_cannot_fit_needs_no_call_and_the_client_is_made_lazily_and_once(client: Any, table: str) -> None:
    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)
        return client

    ledger = DynamoDbLedger(factory, table)
    tiny = Limit("app/app/tokens/day/1970-01-01", 10, END)
    assert ledger.reserve(reservation_id="huge", holds=[Hold(tiny, 11)], now=1.0, expires_at=2.0) == Refused(tiny)
    assert calls == []
    threads = [threading.Thread(target=ledger.counters, args=([tiny], 1.0)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]


@pytest.mark.parametrize("operation", ["reserve", "settle", "counters", "sweep"])
def test_aws_errors_are_store_unavailable(client: Any, operation: str) -> None:
    ledger = DynamoDbLedger(lambda: client, "no-such-table")  # ResourceNotFoundException
    calls = {
        "reserve": lambda: reserve(ledger, "r", 1),
        "settle": lambda: ledger.settle(reservation_id="r", used=[Hold(TOKENS, 1)], now=1.0),
        "counters": lambda: ledger.counters([TOKENS], 1.0),
        "sweep": lambda: ledger.sweep(1.0),
    }
    with pytest.raises(ServiceUnavailable) as caught:
        calls[operation]()
    assert (caught.value.code, caught.value.message) == ("store_unavailable", "quota store unavailable")


def test_unreachable_store_and_broken_factory_are_store_unavailable() -> None:
    refused = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                           config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    with pytest.raises(ServiceUnavailable):
        reserve(DynamoDbLedger(lambda: refused, "t"), "r", 1)

    def no_region() -> Any:
        raise NoRegionError()

    with pytest.raises(ServiceUnavailable):
        DynamoDbLedger(no_region, "t").counters([TOKENS], 1.0)


def _shard(container: str) -> int:
    import zlib

    from chalicelib.store.dynamodb import LEASE_SHARDS

    return zlib.crc32(container.encode()) % LEASE_SHARDS


class LandsThenTimesOut:
    """A client whose next update_item reaches DynamoDB, then loses the answer (a read timeout)."""

    def __init__(self, client: Any) -> None:
        self._client, self.armed = client, False

    def update_item(self, **kwargs: Any) -> Any:
        answer = self._client.update_item(**kwargs)
        if self.armed and kwargs["Key"]["pk"]["S"].startswith("LIMIT#"):
            self.armed = False
            from botocore.exceptions import ReadTimeoutError

            raise ReadTimeoutError(endpoint_url="http://127.0.0.1")
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_lease_write_that_landed_but_timed_out_is_adopted(client: Any, table: str) -> None:
    flaky = LandsThenTimesOut(client)
    ledger = DynamoDbLedger(lambda: flaky, table, container_id="c1")
    assert reserve(ledger, "a", 6250)  # the whole first block (1/16 of the cap)
    flaky.armed = True
    with pytest.raises(ServiceUnavailable):
        reserve(ledger, "b", 100)  # its block was leased, the answer lost
    assert reserve(ledger, "c", 100)  # the store's figure is adopted: no 503 loop, no double lease
    for rid in ("a", "c"):
        ledger.settle(reservation_id=rid, used=[Hold(TOKENS, 100)], now=100.0)
    ledger.flush(100.0)
    item = counter_item(client, table)
    assert (item["used"]["N"], item["leased"]["N"], item["committed"]["N"]) == ("200", "0", "200")
