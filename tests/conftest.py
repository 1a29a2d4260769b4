"""Fixtures shared by every test. Tests never reach beyond 127.0.0.1: fake AWS credentials, no
instance metadata, loopback servers only."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

# app.py, chalicelib/ and client/ live at the project root; helpers (support.py, ...) beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dynamodb_local import DynamoDbLocalUnavailable  # noqa: E402
from dynamodb_local import start as start_dynamodb_local  # noqa: E402
from litellm_proxy import LiteLlmTier, LiteLlmUnavailable  # noqa: E402
from litellm_proxy import start_tier as start_litellm_tier  # noqa: E402
from local_server import Server, serve  # noqa: E402
from support import Garden, running_garden  # noqa: E402


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def garden(tmp_path: Path) -> Iterator[Garden]:
    with running_garden(tmp_path) as g:
        yield g


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server on a free loopback port, one per run: moto keeps one state per process
    anyway, so tests give their tables, buckets and stacks unique names."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    yield f"http://{host}:{port}"
    moto.stop()


@pytest.fixture(scope="session")
def dynamodb_local_url() -> Iterator[str]:
    """Amazon's DynamoDB Local (in memory) on a free loopback port, one per run. Skipped when it is
    not installed (`make dynamodb-local`); under CI=true that is a failure, never a skip."""
    try:
        local = start_dynamodb_local()
    except DynamoDbLocalUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and DynamoDB Local could not start: {exc}", pytrace=False)
        pytest.skip(str(exc))
    yield local.url
    local.stop()


@pytest.fixture(scope="session")
def litellm_tier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLlmTier]:
    """A REAL LiteLLM proxy (.venv-litellm, `make litellm`) on a free loopback port, in front of a
    loopback fake OpenAI upstream, one per run. Skipped when it is not installed; under CI=true that
    is a failure, never a skip."""
    try:
        tier = start_litellm_tier(tmp_path_factory.mktemp("litellm"))
    except LiteLlmUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and LiteLLM could not start: {exc}", pytrace=False)
        pytest.skip(str(exc))
    yield tier
    tier.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The gateway served as `make run` serves it (devserver/, Chalice's local server with a larger
    backlog) on a free loopback port, shared by the end-to-end tests."""
    with serve(tmp_path_factory.mktemp("e2e")) as running:
        yield running
