"""DynamoDB adapter specifics the contract cannot see: item layout and TTLs, the lazy client, error
mapping, transaction conflicts, races with sweep, and paging (moto server on 127.0.0.1)."""
from __future__ import annotations

import calendar
import threading
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import NoRegionError
from botocore.stub import Stubber

from chalicelib.errors import ServiceUnavailable
from chalicelib.store.dynamodb import DynamoDbLedger
from dynamodb_tables import create_table, make_client

DAY = "2026-11-27"
END_OF_DAY = calendar.timegm(time.strptime(DAY, "%Y-%m-%d")) + 86400
PK = {"S": f"APP#app#DAY#{DAY}"}


@pytest.fixture(scope="module")
def client(moto_url: str) -> Any:
    return make_client(moto_url)


@pytest.fixture
def table(client: Any) -> str:
    return create_table(client)


def reserve(ledger: DynamoDbLedger, rid: str, tokens: int, limit: int = 1000, now: float = 100.0) -> bool:
    return ledger.reserve(reservation_id=rid, app_id="app", day=DAY, tokens=tokens, limit=limit,
                          now=now, expires_at=now + 60)


def item(client: Any, table: str, pk: dict[str, str], sk: str) -> dict[str, Any] | None:
    return client.get_item(TableName=table, Key={"pk": pk, "sk": {"S": sk}}, ConsistentRead=True).get("Item")


def test_items_and_ttls(client: Any, table: str) -> None:
    ledger = DynamoDbLedger(lambda: client, table)
    assert reserve(ledger, "r1", 600)
    usage = item(client, table, PK, "USAGE")
    assert usage is not None
    assert (usage["committed"]["N"], usage["held"]["N"]) == ("600", "600")
    assert int(usage["expires_at"]["N"]) == END_OF_DAY + 35 * 86400  # a month of cost reports
    res = item(client, table, PK, "RES#r1")
    assert res is not None and res["tokens"]["N"] == "600" and float(res["lease_until"]["N"]) == 160.0
    # TTL may delete an item days late, or early in its day: never before the day is over.
    assert int(res["expires_at"]["N"]) >= END_OF_DAY
    assert item(client, table, {"S": "RESID#r1"}, "RES") is not None
    ledger.settle(reservation_id="r1", app_id="app", day=DAY, tokens=250, cost_usd=0.1, now=101.0)
    ledger.settle(reservation_id="gone", app_id="app", day=DAY, tokens=0, cost_usd=0.2, now=101.0)
    usage = item(client, table, PK, "USAGE")
    assert usage is not None
    assert {k: usage[k]["N"] for k in ("committed", "held", "tokens", "requests", "cost_usd")} == {
        "committed": "250", "held": "0", "tokens": "250", "requests": "2", "cost_usd": "0.3"}
    assert item(client, table, PK, "RES#r1") is None
    assert item(client, table, {"S": "RESID#r1"}, "RES") is None


def test_client_is_made_lazily_and_once(client: Any, table: str) -> None:
    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)
        return client

    ledger = DynamoDbLedger(factory, table)
    assert calls == []
    assert not reserve(ledger, "huge", 1001)  # cannot fit even in an empty day: no call at all
    assert calls == []
    # Eight first callers at once make one client. Reads only: moto's transactions are not
    # atomic under concurrency (see the contract test), which is not what this test is about.
    threads = [threading.Thread(target=ledger.usage, args=("app", DAY, 100.0)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    assert reserve(ledger, "one", 1) and ledger.usage("app", DAY, 100.0).reserved == 1


def test_duplicate_reservation_id_is_refused_and_changes_nothing(client: Any, table: str) -> None:
    ledger = DynamoDbLedger(lambda: client, table)
    assert reserve(ledger, "r", 10)
    with pytest.raises(ValueError):
        reserve(ledger, "r", 20)
    assert ledger.usage("app", DAY, 100.0).reserved == 10


@pytest.mark.parametrize("operation", ["reserve", "settle", "release", "usage", "sweep"])
def test_aws_errors_are_store_unavailable(client: Any, operation: str) -> None:
    ledger = DynamoDbLedger(lambda: client, "no-such-table")  # ResourceNotFoundException
    calls = {
        "reserve": lambda: reserve(ledger, "r", 1),
        "settle": lambda: ledger.settle(reservation_id="r", app_id="app", day=DAY, tokens=1,
                                        cost_usd=0.0, now=1.0),
        "release": lambda: ledger.release("r"),
        "usage": lambda: ledger.usage("app", DAY, 1.0),
        "sweep": lambda: ledger.sweep("app", DAY, 1.0),
    }
    with pytest.raises(ServiceUnavailable) as caught:
        calls[operation]()
    assert (caught.value.code, caught.value.message) == ("store_unavailable", "quota store unavailable")


def test_unreachable_store_and_broken_factory_are_store_unavailable() -> None:
    refused = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                           config=Config(retries={"total_max_attempts": 1},
                                  connect_timeout=1))
    with pytest.raises(ServiceUnavailable):
        reserve(DynamoDbLedger(lambda: refused, "t"), "r", 1)

    def no_region() -> Any:
        raise NoRegionError()

    with pytest.raises(ServiceUnavailable):
        DynamoDbLedger(no_region, "t").usage("app", DAY, 1.0)


def _cancelled(stubber: Stubber, *codes: str) -> None:
    stubber.add_client_error(
        "transact_write_items", service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled", http_status_code=400,
        modeled_fields={"CancellationReasons": [{"Code": c} for c in codes]},
    )


def test_transaction_conflicts_are_retried_then_unavailable() -> None:
    stubbed = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(stubbed) as stubber:
        _cancelled(stubber, "TransactionConflict", "None", "None")  # contention on the usage item
        stubber.add_response("transact_write_items", {})
        assert reserve(DynamoDbLedger(lambda: stubbed, "t"), "r", 1)
        for _ in range(5):
            _cancelled(stubber, "TransactionConflict", "None", "None")
        with pytest.raises(ServiceUnavailable):
            reserve(DynamoDbLedger(lambda: stubbed, "t"), "r", 1)
        stubber.assert_no_pending_responses()


class _SweptDuringSettle:
    """A client that lets another container sweep the reservation between settle's read and write."""

    def __init__(self, client: Any, sweeper: DynamoDbLedger) -> None:
        self._client, self._sweeper = client, sweeper

    def get_item(self, **kwargs: Any) -> Any:
        found = self._client.get_item(**kwargs)
        self._sweeper.sweep("app", DAY, now=1e12)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_settle_racing_a_sweep_records_usage_once(client: Any, table: str) -> None:
    plain = DynamoDbLedger(lambda: client, table)
    assert reserve(plain, "slow", 500)
    racing = DynamoDbLedger(lambda: _SweptDuringSettle(client, plain), table)
    racing.settle(reservation_id="slow", app_id="app", day=DAY, tokens=300, cost_usd=0.5, now=200.0)
    u = plain.usage("app", DAY, 200.0)
    assert (u.tokens, u.reserved, u.requests, u.cost_usd) == (300, 0, 1, 0.5)
    assert reserve(plain, "next", 700) and not reserve(plain, "over", 1)


class _SmallPages:
    """Query pages of two items, to exercise sweep's paging without a megabyte of reservations."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def query(self, **kwargs: Any) -> Any:
        return self._client.query(Limit=2, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_sweep_pages_through_every_reservation(client: Any, table: str) -> None:
    ledger = DynamoDbLedger(lambda: _SmallPages(client), table)
    for i in range(7):
        assert ledger.reserve(reservation_id=f"r{i}", app_id="app", day=DAY, tokens=10, limit=1000,
                              now=100.0, expires_at=150.0 if i % 2 else 500.0)
    assert ledger.sweep("app", DAY, now=200.0) == 3
    assert ledger.usage("app", DAY, 200.0).reserved == 40
