"""The DynamoDB registry's own layout, on moto: its key space in the ledger's table, and its limit."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from dynamodb_tables import create_table, make_client

from chalicelib.registry import TooManyChanges
from chalicelib.registry.dynamodb import MAX_ENTRIES_PER_WRITE, DynamoDbRegistry


@pytest.fixture
def table(moto_url: str) -> Iterator[tuple[Any, str]]:
    client = make_client(moto_url)
    name = create_table(client)
    yield client, name
    client.delete_table(TableName=name)


def test_the_registry_keeps_to_its_own_keys_beside_the_ledger(table: tuple[Any, str]) -> None:
    client, name = table
    # An item of the ledger's own key space (pk APP#<app>#..., TTL'd): the registry neither reads,
    # writes nor deletes it.
    ledger_item = {"pk": {"S": "APP#a1#DAY#2026-11-29"}, "sk": {"S": "USAGE"}, "tokens": {"N": "5"},
                   "expires_at": {"N": "1800000000"}}
    client.put_item(TableName=name, Item=ledger_item)
    registry = DynamoDbRegistry(lambda: client, name)
    registry.seed([{"id": "a1", "principal_arns": ["arn:aws:iam::1:role/x"]}], {"bu": {"usd_per_month": 3}}, "seed")
    registry.set_deployment("nova", False, "ops")
    items = client.scan(TableName=name)["Items"]
    mine = sorted((i["pk"]["S"], i["sk"]["S"]) for i in items if i["pk"]["S"].startswith("REGISTRY"))
    assert mine == [("REGISTRY", "APP#a1"), ("REGISTRY", "BU#bu"), ("REGISTRY", "DEP#nova"),
                    ("REGISTRY", "VERSION"), ("REGISTRY#CHANGES", "000000000001"),
                    ("REGISTRY#CHANGES", "000000000002")]
    assert not any("expires_at" in i for i in items if i["pk"]["S"].startswith("REGISTRY"))  # kept
    assert [i for i in items if not i["pk"]["S"].startswith("REGISTRY")] == [ledger_item]
    assert registry.version() == 2 and set(registry.snapshot().apps) == {"a1"}


def test_a_write_bigger_than_one_transaction_is_refused_whole(table: tuple[Any, str]) -> None:
    client, name = table
    registry = DynamoDbRegistry(lambda: client, name)
    units = {f"bu{n}": {"tokens_per_month": 1} for n in range(MAX_ENTRIES_PER_WRITE + 1)}
    with pytest.raises(TooManyChanges, match="at most 98 entries"):
        registry.seed([], units, "seed")
    assert registry.version() == 0
    registry.seed([], dict(list(units.items())[:MAX_ENTRIES_PER_WRITE]), "seed")
    assert len(registry.snapshot().business_units) == MAX_ENTRIES_PER_WRITE
