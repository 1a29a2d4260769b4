"""The `ledger` fixture: every Ledger adapter the gateway ships, on every backend worth trusting.

- `sqlite`: SqliteLedger on a temporary file (the embedded default).
- `moto`: DynamoDbLedger against moto's server: item layout, expressions, conditions, errors.
- `dynamodb-local`: DynamoDbLedger against Amazon's own DynamoDB Local, whose transactions are
  atomic under concurrency as DynamoDB's are (moto's are not).

A test that only holds when concurrent transactions are atomic is marked `@pytest.mark.concurrency`:
it runs on SQLite and DynamoDB Local and is skipped, with the reason, on moto. Contract test files
in this folder take `ledger` as an argument and get all three.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from dynamodb_tables import create_table, make_client

from chalicelib.store import Ledger
from chalicelib.store.dynamodb import DynamoDbLedger
from chalicelib.store.sqlite import SqliteLedger

LEDGER_BACKENDS = ("sqlite", "moto", "dynamodb-local")
MOTO_IS_NOT_ATOMIC = (
    "moto 5.2.5's transact_write_items checks, writes and rolls back (by restoring a deep copy of "
    "the table) with no lock, so concurrent transactions overshoot, lose counter updates and fail "
    "with HTTP 500; DynamoDB serialises them per item. Runs on SQLite and DynamoDB Local instead.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "concurrency: needs a ledger whose transactions are atomic under concurrency "
                   "(skipped on moto, which is not)")


@pytest.fixture(params=LEDGER_BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    backend = request.param
    if backend == "sqlite":
        sqlite = SqliteLedger(tmp_path / "ledger.db")
        yield sqlite
        sqlite.close()
        return
    if backend == "moto" and request.node.get_closest_marker("concurrency"):
        pytest.skip(MOTO_IS_NOT_ATOMIC)
    url = request.getfixturevalue("moto_url" if backend == "moto" else "dynamodb_local_url")
    client = make_client(url)
    table = create_table(client)
    yield DynamoDbLedger(lambda: client, table)
    client.delete_table(TableName=table)
