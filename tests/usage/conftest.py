"""The `usage_store` fixture: every UsageStore adapter the gateway ships, on every backend worth
trusting (as tests/store/conftest.py's `ledger`):

- `sqlite`: SqliteUsageStore on a temporary file (the embedded default).
- `moto`: DynamoDbUsageStore against moto's server: item layout, expressions, errors.
- `dynamodb-local`: DynamoDbUsageStore against Amazon's DynamoDB Local, whose UpdateItem ADD is
  atomic under concurrency as DynamoDB's is.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import sys
from pathlib import Path as _Path

import pytest

from chalicelib.usage import UsageStore
from chalicelib.usage_store.dynamodb import DynamoDbUsageStore
from chalicelib.usage_store.sqlite import SqliteUsageStore

sys.path.insert(0, str(_Path(__file__).resolve().parent.parent / "store"))
from dynamodb_tables import create_table, make_client  # noqa: E402  (the ledger tests' table layout)

USAGE_BACKENDS = ("sqlite", "moto", "dynamodb-local")
MOTO_LOSES_ADDS = (
    "moto 5's UpdateItem reads, adds and writes the item with no lock, so concurrent ADDs on one "
    "item lose updates (seen: 1 run in 3); DynamoDB applies each ADD atomically. Runs on SQLite and "
    "DynamoDB Local instead.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "concurrency: needs a store whose writes are atomic under concurrency "
                   "(skipped on moto, which is not)")


@pytest.fixture(params=USAGE_BACKENDS)
def usage_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    backend = request.param
    if backend == "sqlite":
        store = SqliteUsageStore(tmp_path / "garden.sqlite3")
        yield store
        store.close()
        return
    if backend == "moto" and request.node.get_closest_marker("concurrency"):
        pytest.skip(MOTO_LOSES_ADDS)
    url = request.getfixturevalue("moto_url" if backend == "moto" else "dynamodb_local_url")
    client = make_client(url)
    table = create_table(client)
    yield DynamoDbUsageStore(lambda: client, table)
    client.delete_table(TableName=table)
