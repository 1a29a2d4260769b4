"""Every governed chat and embeddings request records one usage event at its end, through the whole
gateway (`running_garden`: SigV4-signed requests, the app's real routes): outcomes 200 / 429 / 400 /
502, the model that served (or `_unknown`), nothing for /v1/models or unknown callers, sums equal
to what the /v1 answers reported, and a store that fails never fails the answer."""
from __future__ import annotations

import copy
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from fakes.bedrock_server import Fail, FakeBedrock
from support import OTHER_KEY_ID, QUOTA_KEY_ID, TEST_CATALOG, running_garden

from chalicelib.catalog import parse_catalog
from chalicelib.usage import group_usage
from chalicelib.usage_store.dynamodb import DynamoDbUsageStore
from chalicelib.usage_store.sqlite import SqliteUsageStore

PRIMARY = "anthropic.claude-3-haiku-20240307-v1:0"


def catalog() -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["embed"] = {
        "kind": "embedding", "dimensions": {"default": 256, "max": 256}, "bytes_per_token": 4,
        "price": {"input_per_1k": 0.0001, "output_per_1k": 0.0},
        "deployments": [{"provider": "local-embed", "model_id": "hashed-trigrams-256", "name": "local-embed"}],
    }
    raw["models"]["claude"] = {
        "max_output_tokens": 512, "price": {"input_per_1k": 0.00025, "output_per_1k": 0.00125},
        "deployments": [{"provider": "bedrock", "model_id": PRIMARY, "name": "haiku"}],
    }
    raw["apps"][0]["allowed_models"] += ["embed", "claude"]
    return parse_catalog(raw)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBedrock]:
    with FakeBedrock() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.endpoint_url)
        yield server


def totals(home: Path, *group_by: str) -> list[dict[str, Any]]:
    store = SqliteUsageStore(home / "garden.sqlite3")
    try:
        return group_usage(store.totals("2000-01-01", "2999-12-31"), list(group_by))
    finally:
        store.close()


def audit_records(home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted((home / "audit").rglob("*.jsonl")) for line in f.read_text().splitlines()]


def test_outcomes_models_and_sums_equal_the_answers(tmp_path: Path, fake: FakeBedrock) -> None:
    answered: list[Any] = []
    with running_garden(tmp_path, env={"GARDEN_BEDROCK_REGION": "us-east-1"}, catalog=catalog()) as g:
        for text in ("hello", "a longer question about the fees on my account", "x" * 400):
            answered.append(g.chat({"model": "local-echo", "messages": [{"role": "user", "content": text}]}))
        answered.append(g.request("POST", "/v1/embeddings", {"model": "embed", "input": ["one", "two three"]}))
        answered.append(g.chat({"model": "claude", "messages": [{"role": "user", "content": "hi there"}]}))
        assert [r.status_code for r in answered] == [200] * 5, [r.body for r in answered]
        fake.script[PRIMARY] = Fail("ModelErrorException")
        failed = g.chat({"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
        invalid = g.chat({"model": "local-echo"})  # no messages: 400 before any model is resolved
        big = g.chat({"model": "local-echo", "messages": [{"role": "user", "content": "y" * 4000}]},
                     key_id=QUOTA_KEY_ID)  # small-quota-app: 200 tokens a day
        stranger = g.chat({"model": "local-echo", "messages": [{"role": "user", "content": "hi"}]},
                          key_id=OTHER_KEY_ID)
        models = g.request("GET", "/v1/models")
    assert (failed.status_code, invalid.status_code, big.status_code) == (502, 400, 429)
    assert (stranger.status_code, models.status_code) == (403, 200)

    rows = {(r["app_id"], r["model"]): r for r in totals(g.home, "app", "model")}
    assert set(rows) == {("test-app", "local-echo"), ("test-app", "embed"), ("test-app", "claude"),
                         ("test-app", "_unknown"), ("small-quota-app", "local-echo")}  # no stranger, no /models
    assert (rows["test-app", "local-echo"]["requests"], rows["test-app", "local-echo"]["errors"]) == (3, 0)
    assert (rows["test-app", "claude"]["requests"], rows["test-app", "claude"]["errors"]) == (1, 1)
    assert (rows["test-app", "_unknown"]["errors"], rows["test-app", "_unknown"]["requests"]) == (1, 0)
    assert (rows["small-quota-app", "local-echo"]["rejected"], rows["small-quota-app", "local-echo"]["requests"]) \
        == (1, 0)
    assert rows["small-quota-app", "local-echo"]["prompt_tokens"] == 0  # refused before any call: nothing used

    # Sums equal what the answers reported: usage in the bodies, cost in x-garden-cost-usd.
    [app_row] = [r for r in totals(g.home, "app") if r["app_id"] == "test-app"]
    bodies = [json.loads(r.body) for r in answered]
    assert app_row["prompt_tokens"] == sum(b["usage"]["prompt_tokens"] for b in bodies)
    assert app_row["completion_tokens"] == sum(b["usage"].get("completion_tokens", 0) for b in bodies)
    audited = [a for a in audit_records(g.home) if a["app_id"] == "test-app"]
    cost = sum(Decimal(repr(a["cost_usd"])) for a in audited)
    assert cost > 0 and Decimal(repr(app_row["cost_usd"])) == cost
    assert Decimal(repr(app_row["cost_usd"])) == sum(Decimal(r.headers["x-garden-cost-usd"]) for r in answered)
    # Business unit and day as the audit record has them.
    [bu_row] = [r for r in totals(g.home, "business_unit", "day") if r["business_unit"] == "retail-banking"]
    assert bu_row["day"] == audited[0]["timestamp"][:10]


def test_a_failing_store_never_fails_the_answer(tmp_path: Path) -> None:
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Keep()
    logger = logging.getLogger("execution_garden")
    logger.addHandler(handler)
    try:
        import boto3
        client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1")
        down = DynamoDbUsageStore(lambda: client, "garden-ledger")
        with running_garden(tmp_path, usage=down) as g:
            response = g.chat({"model": "local-echo", "messages": [{"role": "user", "content": "SECRET-TEXT"}]})
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 200, response.body
    [fallback] = [json.loads(line) for line in lines if '"usage_fallback"' in line]
    assert fallback["app_id"] == "test-app" and fallback["outcome"] == "ok" and fallback["UsageRecordFailures"] == 1
    assert fallback["cost_units"] > 0 and fallback["error_class"] == "ServiceUnavailable"
    assert "SECRET" not in json.dumps(fallback)


def test_no_store_records_nothing(tmp_path: Path) -> None:
    with running_garden(tmp_path, usage=None) as g:
        assert g.chat({"model": "local-echo", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    assert totals(g.home, "app") == []


def test_cached_prompt_tokens_reach_the_aggregates(tmp_path: Path, fake: FakeBedrock) -> None:
    from fakes.bedrock_server import Reply

    fake.script[PRIMARY] = [Reply("cached answer", cache_read=120)]
    with running_garden(tmp_path, catalog=catalog()) as garden:
        response = garden.chat({"model": "claude", "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 200, response.body
        reported = json.loads(response.body)["usage"]["prompt_tokens_details"]["cached_tokens"]
        [row] = totals(garden.home, "app", "model")
    assert reported == 120 and row["cached_tokens"] == 120
    assert audit_records(garden.home)[-1]["cached_tokens"] == 120
