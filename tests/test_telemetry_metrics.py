"""The request line's metrics: valid Embedded Metric Format (every declared metric has a value, every
dimension is a member), the operator's alarm metrics on the paths that raise them, the router's
throttles, fallbacks and breaker opens, a business unit's budget pace; and no content anywhere."""
from __future__ import annotations

import copy
import json
from typing import Any, Iterator

import pytest
import requests
from botocore.credentials import Credentials
from local_server import Server, serve
from support import BLOCK_KEY_ID, KEY_ID, QUOTA_KEY_ID, SECRET, TEST_CATALOG
from test_router import OK, REQUEST, Clock, Scripted, app, model, router

from chalicelib import errors
from chalicelib.catalog import App, BusinessUnit, Deployment, GuardrailPolicy, Model, PiiPolicy, Quotas
from chalicelib.quota import QuotaKeeper
from chalicelib.record import RequestRecord
from chalicelib.store.sqlite import SqliteLedger
from chalicelib.telemetry import NAMESPACE, audit_failure_metric, emf_metrics

from client.garden_auth import SigV4RequestsAuth

CANARY = "CANARY-emf-5b1d2e"
UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes",
         "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second",
         "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second",
         "Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"}


def assert_valid_emf(line: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """The EMF specification's rules for one log event; returns its (metric, dimension set) series."""
    meta = line["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    series = []
    assert 1 <= len(meta["CloudWatchMetrics"])
    for directive in meta["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert directive["Namespace"] == NAMESPACE
        assert isinstance(directive["Dimensions"], list) and directive["Dimensions"]
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30
            for key in dimension_set:  # a target member: a string of 1..1024 characters
                assert isinstance(line[key], str) and 0 < len(line[key]) <= 1024, key
        names = [m["Name"] for m in directive["Metrics"]]
        assert len(names) == len(set(names)) and len(names) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"} and metric.get("Unit", "None") in UNITS
            value = line[metric["Name"]]  # every declared metric has its member, a number
            assert isinstance(value, (int, float)) and not isinstance(value, bool), metric["Name"]
            series += [(metric["Name"], tuple(d)) for d in directive["Dimensions"]]
    return series


def catalog() -> dict[str, Any]:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["business_units"] = {"retail-banking": {"usd_per_month": 1000}}
    return raw


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("metrics")
    path = root / "metrics-catalog.json"
    path.write_text(json.dumps(catalog()))
    with serve(root, env={"GARDEN_CATALOG": str(path)}) as server:
        yield server


def chat(server: Server, content: str, key_id: str = KEY_ID, **extra: Any) -> requests.Response:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(key_id, SECRET))
    return requests.post(f"{server.base_url}/v1/chat/completions", auth=auth, timeout=15,
                         json={"model": "local-echo", "messages": [{"role": "user", "content": content}], **extra})


def request_line(server: Server, request_id: str) -> dict[str, Any]:
    for text in server.output.read_text().splitlines():
        if text.startswith("{") and f'"request_id":"{request_id}"' in text:
            line = json.loads(text)
            if line.get("event") == "request":
                return line
    raise AssertionError(f"no request line for {request_id}")


def served_line(server: Server, content: str, key_id: str = KEY_ID, **extra: Any) -> dict[str, Any]:
    response = chat(server, content, key_id, **extra)
    return request_line(server, response.headers["x-request-id"])


def test_a_clean_call_has_the_service_wide_zeros_alarms_need(served: Server) -> None:
    line = served_line(served, f"{CANARY} hello")
    series = assert_valid_emf(line)
    for name in ("Requests", "Errors", "ClientErrors", "DeadlineHits", "QuotaRejections", "ProviderThrottles",
                 "Fallbacks", "BreakerOpens", "GuardrailInterventions", "PiiEntities", "ControlsFailedOpen"):
        assert (name, ()) in series
    assert ("LatencyMs", ("Model",)) in series and ("CostUSD", ("AppId", "Model")) in series
    assert (line["Requests"], line["Errors"], line["ClientErrors"], line["GuardrailInterventions"]) == (1, 0, 0, 0)
    assert not any(name.startswith("PiiEntities_") for name, _ in series)


def test_budget_pace_per_business_unit(served: Server) -> None:
    line = served_line(served, f"{CANARY} hello")
    assert ("BudgetPace", ("BusinessUnit",)) in assert_valid_emf(line)
    assert line["BusinessUnit"] == "retail-banking" and line["BudgetPace"] > 0  # this request's hold counts
    assert line["budget_pace"] == line["BudgetPace"]


def test_pii_entities_by_type(served: Server) -> None:
    line = served_line(served, f"{CANARY} wire 4111 1111 1111 1111 to jane.doe@example.com")
    series = assert_valid_emf(line)
    assert line["PiiEntities_CREDIT_DEBIT_NUMBER"] == line["PiiEntities_EMAIL"] == 1
    assert ("PiiEntities_EMAIL", ()) in series and ("PiiEntities", ("AppId",)) in series
    assert line["PiiEntities"] == 2


def test_a_guardrail_intervention_and_a_4xx_by_code(served: Server) -> None:
    line = served_line(served, f"{CANARY} promise guaranteed returns")
    series = assert_valid_emf(line)
    assert (line["StatusCode"], line["ErrorCode"], line["ClientErrors"]) == ("400", "content_filter", 1)
    assert ("ClientErrors", ("StatusCode", "ErrorCode")) in series
    assert line["GuardrailInterventions"] == 1 and ("GuardrailInterventions", ("AppId",)) in series


def test_a_quota_rejection(served: Server) -> None:
    line = served_line(served, f"{CANARY} hi", QUOTA_KEY_ID, max_tokens=4000)
    series = assert_valid_emf(line)
    assert line["status"] == 429 and line["QuotaRejections"] == 1 and ("QuotaRejections", ("AppId",)) in series
    pii_block = served_line(served, f"{CANARY} 4111 1111 1111 1111", BLOCK_KEY_ID)
    assert pii_block["QuotaRejections"] == 0 and pii_block["ErrorCode"] == "pii_blocked"


def test_no_content_in_any_line(served: Server) -> None:
    served_line(served, f"{CANARY} hello")
    output = served.output.read_text()
    assert output.count('"event":"request"') >= 1 and CANARY not in output


def test_the_router_reports_throttles_fallbacks_and_breaker_opens() -> None:
    clock = Clock()
    throttled = errors.UpstreamThrottled("t")
    provider = Scripted({"a": [throttled, throttled], "b": [errors.ServiceUnavailable("u"), OK, OK], "c": [OK]})
    route = router(provider, clock, threshold=2)
    first = RequestRecord("r1", "2026-11-29T10:00:00.000+00:00", "chat.completions")
    route.complete(app(), model("a", "b", "c"), REQUEST, 10, clock.now + 25, record=first)
    assert (first.upstream_throttles, first.fallbacks, first.breaker_opens) == (1, 2, 0)
    second = RequestRecord("r2", "2026-11-29T10:00:01.000+00:00", "chat.completions")
    route.complete(app(), model("a", "b", "c"), REQUEST, 10, clock.now + 25, record=second)
    # a's second throttle opens this app's own circuit for it; b answers
    assert (second.upstream_throttles, second.fallbacks, second.breaker_opens) == (1, 1, 1)
    third = RequestRecord("r3", "2026-11-29T10:00:02.000+00:00", "chat.completions")
    route.complete(app(), model("a", "b", "c"), REQUEST, 10, clock.now + 25, record=third)
    assert (third.upstream_throttles, third.fallbacks, third.breaker_opens) == (0, 1, 0)  # a skipped, open
    line = {**third.to_dict(), **emf_metrics(third)}
    assert ("Fallbacks", ("Model",)) in assert_valid_emf(line)


def test_deadline_hits_and_5xx_by_code() -> None:
    record = RequestRecord("r", "2026-11-29T10:00:00.000+00:00", "chat.completions", status=504, error_code="timeout",
                           app_id="a", model="m", business_unit="bu")
    line = {**record.to_dict(), **emf_metrics(record)}
    series = assert_valid_emf(line)
    assert (line["DeadlineHits"], line["Errors"], line["ClientErrors"]) == (1, 1, 0)
    assert ("Errors", ("StatusCode", "ErrorCode")) in series


def test_audit_write_failures_have_a_service_wide_series() -> None:
    record = RequestRecord("r", "2026-11-29T10:00:00.000+00:00", "chat.completions", business_unit="bu")
    line = {**record.to_dict(), **audit_failure_metric(record)}
    assert {("AuditWriteFailures", ()), ("AuditWriteFailures", ("BusinessUnit",))} <= set(assert_valid_emf(line))


@pytest.mark.parametrize(("now_iso", "to_date_usd"), [
    ("2026-11-16T00:00:00+00:00", 15.0),  # half of November: half of the $30 budget is due
    ("2026-11-01T01:00:00+00:00", 1.0),  # the first day counts whole: one day's budget
])
def test_budget_pace_is_spend_over_the_budget_to_date(tmp_path: Any, now_iso: str, to_date_usd: float) -> None:
    from datetime import datetime

    now = datetime.fromisoformat(now_iso).timestamp()
    keeper = QuotaKeeper(SqliteLedger(tmp_path / "l.db"), 25, clock=lambda: now)
    unit = BusinessUnit("bu", usd_per_month=30.0)
    priced = Model("m", "x", 1000, 0.003, 0.015, (Deployment("fake", "d", "d"),))
    caller = App("a", "bu", ("arn:aws:iam::111122223333:role/r",), frozenset({"m"}), PiiPolicy({}, {}),
                 GuardrailPolicy(), Quotas())
    first = keeper.reserve(caller, 1000, 1000, "r1", model=priced, unit=unit)  # holds $0.018
    assert first.budget_pace == round(0.018 / to_date_usd, 4)
    keeper.settle(first, 2000, 0.018)
    second = keeper.reserve(caller, 1000, 1000, "r2", model=priced, unit=unit)  # spent + its own hold
    assert second.budget_pace == round(0.036 / to_date_usd, 4)
    assert keeper.reserve(caller, 10, 10, "r3", model=priced, unit=BusinessUnit("bu")).budget_pace is None


def test_a_model_name_the_caller_typed_never_becomes_a_dimension(served: Server) -> None:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(KEY_ID, SECRET))
    response = requests.post(f"{served.base_url}/v1/chat/completions", auth=auth, timeout=15,
                             json={"model": f"{CANARY}-model", "messages": [{"role": "user", "content": "hi"}]})
    line = request_line(served, response.headers["x-request-id"])
    assert_valid_emf(line)
    assert (line["status"], line["Model"], line["ErrorCode"]) == (404, "_none", "model_not_found")
    assert CANARY not in json.dumps(line)
