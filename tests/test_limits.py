"""Every limit of an app and its business unit, through the gateway (signed requests, the
composition root, a real SQLite ledger): the refusal's code, retry-after and x-ratelimit-* headers,
USD held at the route's highest price and settled at the serving deployment's, the per-model cap,
the business unit's shared budget, whole-limit requests, x-garden-cost-usd, and the store's
fail-open. The keeper's clock is pinned one second into a minute, so windows never roll mid-test."""
from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config
from support import KEY_ID, QUOTA_KEY_ID, TEST_CATALOG, Garden, running_garden

from chalicelib.catalog import parse_catalog
from chalicelib.quota import QuotaKeeper
from chalicelib.store.dynamodb import DynamoDbLedger
from chalicelib.store.sqlite import SqliteLedger

NOW = (time.time() // 60) * 60 + 1.0  # one second into the current minute (UTC windows)
CHEAP = {"input_per_1k": 0.03, "output_per_1k": 0.15}
DEAR = {"input_per_1k": 0.3, "output_per_1k": 1.5}
# "a" x 40 in one user message: 17 prompt tokens (estimate and local-echo's bill alike), and an echo
# of up to 10 completion tokens.


def catalog(quotas: dict[str, Any], *, units: dict[str, Any] | None = None, **app: Any) -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    # Two deployments on local-echo's route: the first (cheap) serves, the second costs 10x.
    raw["models"]["local-echo"]["price"] = CHEAP
    raw["models"]["local-echo"]["deployments"] = [
        {"provider": "local-echo", "model_id": "echo-1", "name": "cheap"},
        {"provider": "local-echo", "model_id": "echo-2", "name": "dear", "price": DEAR}]
    for entry in raw["apps"]:
        if entry["id"] == "small-quota-app":
            entry["quotas"] = quotas
            entry.update(app)
    if units is not None:
        raw["business_units"] = units
    return parse_catalog(raw)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


def garden(tmp_path: Path, cat: Any, ledger: Any = None) -> Any:
    ledger = ledger or SqliteLedger(tmp_path / "limits.db")
    return running_garden(tmp_path, catalog=cat, quota=QuotaKeeper(ledger, 25, clock=lambda: NOW))


def ask(g: Garden, text: str = "hello", max_tokens: int = 10, model: str = "local-echo",
        key_id: str = QUOTA_KEY_ID) -> Any:
    return g.chat({"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}]},
                  key_id=key_id)


def error(response: Any) -> dict[str, Any]:
    return json.loads(response.body)["error"]


def test_requests_per_minute(tmp_path: Path) -> None:
    with garden(tmp_path, catalog({"requests_per_minute": 2})) as g:
        first, second = ask(g), ask(g)
        assert (first.status_code, second.status_code) == (200, 200)
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert (first.headers["x-ratelimit-remaining-requests"], second.headers["x-ratelimit-remaining-requests"]) \
            == ("1", "0")
        assert first.headers["x-ratelimit-reset-requests"] == "59s"  # OpenAI's duration form
        assert "x-ratelimit-limit-tokens" not in first.headers  # no token window applies: no trio
        third = ask(g)
    assert third.status_code == 429
    assert (error(third)["code"], error(third)["type"]) == ("rate_limit_exceeded", "rate_limit_error")
    assert third.headers["retry-after"] == "59"
    assert (third.headers["x-ratelimit-limit-requests"], third.headers["x-ratelimit-remaining-requests"]) == ("2", "0")
    assert "quotas.requests_per_minute" in error(third)["message"]


def test_a_request_that_fails_after_admission_keeps_its_place_in_the_minute(tmp_path: Path) -> None:
    with garden(tmp_path, catalog({"requests_per_minute": 2})) as g:
        blocked = ask(g, "guaranteed returns for everyone")  # the app's guardrail: 400, after admission
        assert blocked.status_code == 400
        assert blocked.headers["x-ratelimit-remaining-requests"] == "1"  # error answers carry them too
        assert ask(g).status_code == 200
        assert ask(g).status_code == 429


def test_tokens_per_minute_and_a_request_bigger_than_the_window(tmp_path: Path) -> None:
    with garden(tmp_path, catalog({"tokens_per_minute": 100})) as g:
        ok = ask(g, "a" * 40, max_tokens=50)  # 17 + 50 held, 17 + 10 used
        assert ok.status_code == 200
        # As the reservation left the window: its own hold counts until it settles.
        assert (ok.headers["x-ratelimit-limit-tokens"], ok.headers["x-ratelimit-remaining-tokens"]) == ("100", "33")
        assert "x-ratelimit-limit-requests" not in ok.headers  # no request window applies
        over = ask(g, "a" * 40, max_tokens=75)  # 92 > 100 - 27
        assert over.status_code == 429 and error(over)["code"] == "rate_limit_exceeded"
        assert over.headers["x-ratelimit-remaining-tokens"] == "73"
        whole = ask(g, "a", max_tokens=200)
    assert whole.status_code == 429 and error(whole)["code"] == "rate_limit_exceeded"
    assert "lower max_tokens" in error(whole)["message"] and "quotas.tokens_per_minute" in error(whole)["message"]
    assert "retry-after" not in whole.headers  # waiting will not help


def test_tokens_per_month_is_a_quota(tmp_path: Path) -> None:
    with garden(tmp_path, catalog({"tokens_per_month": 100})) as g:
        assert ask(g, "a" * 40, max_tokens=50).status_code == 200
        over = ask(g, "a" * 40, max_tokens=75)
    assert over.status_code == 429 and error(over)["code"] == "insufficient_quota"
    assert int(over.headers["retry-after"]) > 60  # to the 1st of next month, 00:00 UTC


def test_usd_is_held_at_the_routes_highest_price_and_settled_at_the_servers(tmp_path: Path) -> None:
    # 17 + 10 tokens cost $0.00201 at the cheap price and $0.0201 at the dear one: each request holds
    # $0.0201 and settles $0.00201. Against $0.025: three fit (0.0201 + 2 x 0.00201 <= 0.025), the
    # fourth does not (0.0201 + 3 x 0.00201 > 0.025), though at the serving price it would.
    with garden(tmp_path, catalog({"usd_per_month": 0.025})) as g:
        first = ask(g, "a" * 40, max_tokens=10)
        assert first.status_code == 200 and first.headers["x-garden-deployment"] == "cheap"
        assert first.headers["x-garden-cost-usd"] == "0.00201"  # plain decimal, the server's price
        assert [ask(g, "a" * 40, max_tokens=10).status_code for _ in range(2)] == [200, 200]
        refused = ask(g, "a" * 40, max_tokens=10)
    assert refused.status_code == 429 and error(refused)["code"] == "insufficient_quota"
    assert "quotas.usd_per_month" in error(refused)["message"]
    assert int(refused.headers["retry-after"]) > 0


def test_the_business_units_budget_is_shared_by_its_apps(tmp_path: Path) -> None:
    # Every test app is in retail-banking; its budget: 60 tokens a month.
    with garden(tmp_path, catalog({"tokens_per_day": 10_000},
                                  units={"retail-banking": {"tokens_per_month": 60}})) as g:
        assert ask(g, "a" * 40, max_tokens=10, key_id=KEY_ID).status_code == 200  # test-app: 27 used
        refused = ask(g, "a" * 40, max_tokens=20)  # small-quota-app: 37 more would pass 60
        assert refused.status_code == 429 and error(refused)["code"] == "insufficient_quota"
        assert "business_units.retail-banking.tokens_per_month" in error(refused)["message"]
        assert ask(g, "a" * 40, max_tokens=10).status_code == 200  # 27 more fits


def test_a_business_unit_without_an_entry_has_no_budget(tmp_path: Path) -> None:
    with garden(tmp_path, catalog({"tokens_per_day": 10_000}, units={"other-bu": {"usd_per_month": 0.000001}})) as g:
        assert ask(g).status_code == 200


def test_the_per_model_cap(tmp_path: Path) -> None:
    with garden(tmp_path, catalog({"tokens_per_day": 10_000, "models": {"echo-small": {"tokens_per_day": 30}}})) as g:
        assert ask(g, "a" * 40, max_tokens=8, model="echo-small").status_code == 200  # 17 + 8 used
        refused = ask(g, "a" * 40, max_tokens=8, model="echo-small")
        assert refused.status_code == 429 and error(refused)["code"] == "insufficient_quota"
        assert "quotas.models.echo-small.tokens_per_day" in error(refused)["message"]
        assert ask(g, "a" * 40, max_tokens=8).status_code == 200  # another model: not capped


def test_embeddings_carry_the_headers_and_cost(tmp_path: Path) -> None:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["models"]["embed"] = {"kind": "embedding", "bytes_per_token": 4, "price": {"input_per_1k": 0.0001},
                              "deployments": [{"provider": "local-embed", "model_id": "e"}]}
    for entry in raw["apps"]:
        entry["allowed_models"].append("embed")
        if entry["id"] == "small-quota-app":
            entry["quotas"] = {"requests_per_minute": 5, "tokens_per_day": 1000}
    with garden(tmp_path, parse_catalog(raw)) as g:
        answer = g.request("POST", "/v1/embeddings", {"model": "embed", "input": "a" * 400}, key_id=QUOTA_KEY_ID)
    assert answer.status_code == 200, answer.body
    assert answer.headers["x-garden-cost-usd"] == "0.00001"  # 100 tokens x $0.0001 / 1k, never 1e-05
    assert answer.headers["x-ratelimit-remaining-requests"] == "4"
    assert answer.headers["x-ratelimit-remaining-tokens"] == "900"


def test_models_listing_shows_the_windows_and_consumes_none(tmp_path: Path) -> None:
    with garden(tmp_path, catalog({"requests_per_minute": 3, "tokens_per_day": 500})) as g:
        assert ask(g, "a" * 40, max_tokens=10).status_code == 200
        for _ in range(2):
            listed = g.request("GET", "/v1/models", key_id=QUOTA_KEY_ID)
            assert listed.status_code == 200
            assert listed.headers["x-ratelimit-remaining-requests"] == "2"
            assert listed.headers["x-ratelimit-remaining-tokens"] == "473"
            assert re.fullmatch(r"\d+m\d+s|\d+s", listed.headers["x-ratelimit-reset-requests"])
        assert "x-ratelimit-limit-requests" not in g.request("GET", "/v1/models", key_id=KEY_ID).headers


def unreachable_store() -> DynamoDbLedger:
    client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                          config=Config(retries={"total_max_attempts": 1}, connect_timeout=1))
    return DynamoDbLedger(lambda: client, "garden-ledger")


@pytest.fixture
def audit(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "garden-home" / "audit"


def test_store_unavailable_fails_closed(tmp_path: Path, audit: Path) -> None:
    with garden(tmp_path, catalog({"tokens_per_day": 10_000}), ledger=unreachable_store()) as g:
        refused = ask(g)
    assert refused.status_code == 503 and error(refused)["code"] == "store_unavailable"


def test_store_unavailable_fails_open_when_the_app_says_so_and_is_counted(tmp_path: Path, audit: Path) -> None:
    cat = catalog({"tokens_per_day": 10_000}, on_store_unavailable="fail_open")
    with garden(tmp_path, cat, ledger=unreachable_store()) as g:
        served = ask(g)
    assert served.status_code == 200, served.body
    (record,) = [json.loads(line) for p in audit.rglob("*.jsonl") for line in p.read_text().splitlines()]
    assert record["quota_store"] == "UNAVAILABLE:FAIL_OPEN" and record["status"] == 200


def test_errors_to_a_known_app_carry_its_windows(tmp_path: Path) -> None:
    with garden(tmp_path, catalog({"requests_per_minute": 5, "usd_per_month": 0.001})) as g:
        invalid = g.chat({"model": "local-echo", "messages": []}, key_id=QUOTA_KEY_ID)  # 400, before any hold
        unknown = ask(g, model="no-such-model")  # 404
        retrieved = g.request("GET", "/v1/models/no-such-model", key_id=QUOTA_KEY_ID)  # 404
        over_budget = ask(g, "a" * 40, max_tokens=10)  # USD: no trio of its own; the app's windows
        stranger = g.chat({"model": "local-echo", "messages": []}, key_id="AKIAGARDENTESTKEY002")  # no app
    for answer, status in ((invalid, 400), (unknown, 404), (retrieved, 404), (over_budget, 429)):
        assert answer.status_code == status, answer.body
        assert answer.headers["x-ratelimit-limit-requests"] == "5", status
        assert "x-ratelimit-limit-tokens" not in answer.headers  # no token window applies
    assert error(over_budget)["code"] == "insufficient_quota"
    assert stranger.status_code == 403 and "x-ratelimit-limit-requests" not in stranger.headers
