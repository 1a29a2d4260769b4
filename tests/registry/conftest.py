"""The `registry` fixture: every Registry adapter, on every backend worth trusting (as tests/store's
`ledger`): SQLite on a temporary file; DynamoDB on moto's server (item layout, expressions,
conditions) and on Amazon's DynamoDB Local (transactions atomic under concurrency, as DynamoDB's).

Tests marked `@pytest.mark.concurrency` need atomic concurrent transactions: skipped on moto.
Each adapter is built with `clock`, a settable fake clock, so change times are exact.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))  # dynamodb_tables

REGISTRY_BACKENDS = ("sqlite", "moto", "dynamodb-local")
MOTO_IS_NOT_ATOMIC = (
    "moto's transact_write_items checks and writes with no lock, so concurrent conditional "
    "transactions can both succeed; runs on SQLite and DynamoDB Local instead.")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "concurrency: needs a registry whose transactions are atomic under concurrency "
                   "(skipped on moto, which is not)")


class FakeClock:
    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=REGISTRY_BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Any]:
    backend = request.param
    if backend == "sqlite":
        from chalicelib.registry.sqlite import SqliteRegistry

        sqlite = SqliteRegistry(tmp_path / "garden.sqlite3", clock=clock)
        yield sqlite
        sqlite.close()
        return
    if backend == "moto" and request.node.get_closest_marker("concurrency"):
        pytest.skip(MOTO_IS_NOT_ATOMIC)
    from dynamodb_tables import create_table, make_client

    from chalicelib.registry.dynamodb import DynamoDbRegistry

    url = request.getfixturevalue("moto_url" if backend == "moto" else "dynamodb_local_url")
    client = make_client(url)
    table = create_table(client)
    yield DynamoDbRegistry(lambda: client, table, clock=clock)
    client.delete_table(TableName=table)
