"""What the console's pages read from the admin API, as `make run` serves it (SigV4 with `requests`):
an app's quota windows beside what the /v1 answers used, policy activity by code (rejections,
errors, PII types, guardrail interventions: counts that add up to /usage's), and the chargeback
months, a month's summary and a business unit's CSV (the bytes the monthly run writes). Same rules
as the rest of /admin/v1: readers may GET, apps may not; parameters are checked and named; no
request content ever shows (canary)."""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterator

import pytest
from admin_support import APP, SMALL_QUOTA_APP, AdminGarden, admin_garden
from botocore.credentials import Credentials

from support import BLOCK_KEY_ID, SECRET

CANARY = "zq-canary-7c4d21-console"
STRICT_APP = Credentials(BLOCK_KEY_ID, SECRET)
ALL_QUOTAS = {"tokens_per_day": 900_000, "tokens_per_month": 9_000_000, "requests_per_minute": 500,
              "tokens_per_minute": 400_000, "usd_per_month": 25, "models": {"local-echo": {"tokens_per_day": 800_000}}}


def days() -> dict[str, str]:
    today = datetime.now(timezone.utc).date()
    return {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}


def get(served: AdminGarden, path: str, who: Credentials | None = None, **params: str) -> Any:
    response = served.call("GET", path, who, params=params)
    assert response.status_code == 200, response.text
    assert CANARY not in response.text
    return response.json() if response.headers["content-type"].startswith("application/json") else response.text


def error(served: AdminGarden, path: str, status: int, **params: str) -> dict[str, Any]:
    response = served.call("GET", path, params=params)
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AdminGarden, dict[str, Any]]]:
    """test-app with every kind of quota, then /v1 traffic from three apps: answered, rejected (429),
    refused by PII policy and by the guardrail; what the answers reported."""
    with admin_garden(tmp_path_factory.mktemp("console"), env={"GARDEN_REGISTRY_REFRESH_S": "1"}) as served:
        app = get(served, "/admin/v1/apps/test-app")
        put = served.call("PUT", "/admin/v1/apps/test-app", json={**app, "quotas": ALL_QUOTAS})
        assert put.status_code == 200, put.text
        deadline = time.monotonic() + 10  # the registry's cache bound here: 1 s
        while "x-ratelimit-limit-requests" not in served.call("GET", "/v1/models", APP).headers:
            assert time.monotonic() < deadline, "the PUT quotas were not picked up"
            time.sleep(0.2)
        seen = {"tokens": 0, "echo_tokens": 0, "cost": Decimal(0), "bu_cost": Decimal(0), "bu_tokens": 0}

        def answered(response: Any, app_id: str = "test-app", model: str = "local-echo") -> None:
            assert response.status_code == 200, response.text
            usage = response.json()["usage"]
            tokens = usage["prompt_tokens"] + usage.get("completion_tokens", 0)
            cost = Decimal(response.headers["x-garden-cost-usd"])
            seen["bu_tokens"] += tokens
            seen["bu_cost"] += cost
            if app_id == "test-app":
                seen["tokens"] += tokens
                seen["cost"] += cost
                seen["echo_tokens"] += tokens if model == "local-echo" else 0

        for words in (1, 9, 40):
            answered(served.chat(APP, f"{CANARY} " + "ledger " * words, max_tokens=300))
        answered(served.chat(APP, f"{CANARY} mail jane.doe@example.com or ops@example.org", max_tokens=100))
        answered(served.embed(APP, f"{CANARY} embed me"), model="local-embed")
        blocked = served.chat(APP, f"{CANARY} we promise guaranteed returns")
        assert blocked.status_code == 400 and blocked.json()["error"]["code"] == "content_filter"
        answered(served.chat(SMALL_QUOTA_APP, f"{CANARY} hi", max_tokens=20), app_id="small-quota-app")
        for _ in range(2):
            rejected = served.chat(SMALL_QUOTA_APP, f"{CANARY} " + "x" * 2000, max_tokens=20)
            assert rejected.status_code == 429 and rejected.json()["error"]["code"] == "insufficient_quota"
        refused = served.chat(STRICT_APP, f"{CANARY} card 4111 1111 1111 1111")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "pii_blocked"
        yield served, seen


def test_quota_windows_show_each_limit_beside_what_the_answers_used(traffic: tuple[AdminGarden, dict[str, Any]]) -> None:
    served, seen = traffic
    body = get(served, "/admin/v1/apps/test-app/quotas")
    assert (body["object"], body["app_id"], body["business_unit"]) == ("app.quotas", "test-app", "retail-banking")
    rows = {r["quota"]: r for r in body["data"]}
    assert list(rows) == ["quotas.tokens_per_day", "quotas.tokens_per_month", "quotas.requests_per_minute",
                          "quotas.tokens_per_minute", "quotas.usd_per_month", "quotas.models.local-echo.tokens_per_day",
                          "business_units.retail-banking.tokens_per_month",
                          "business_units.retail-banking.usd_per_month"]
    today = datetime.now(timezone.utc).date().isoformat()
    for row in rows.values():
        assert set(row) == {"quota", "scope", "model", "unit", "window", "period", "resets_at", "limit", "used",
                            "held", "remaining"}
        assert row["held"] == 0  # nothing in flight (SQLite: holds are reservations only)
        assert row["remaining"] == row["limit"] - row["used"]
    day, month = rows["quotas.tokens_per_day"], rows["quotas.tokens_per_month"]
    assert (day["unit"], day["window"], day["period"], day["limit"]) == ("tokens", "day", today, 900_000)
    assert day["resets_at"] == f"{(datetime.now(timezone.utc).date() + timedelta(days=1)).isoformat()}T00:00:00Z"
    assert (month["window"], month["period"], month["limit"]) == ("month", today[:7], 9_000_000)
    # What the /v1 answers used (settled tokens; refusals book none), exactly.
    assert day["used"] == month["used"] == seen["tokens"] > 0
    model = rows["quotas.models.local-echo.tokens_per_day"]
    assert (model["model"], model["used"], model["limit"]) == ("local-echo", seen["echo_tokens"], 800_000)
    usd = rows["quotas.usd_per_month"]
    assert (usd["unit"], usd["limit"]) == ("usd", 25)
    assert Decimal(repr(usd["used"])) == seen["cost"] > 0
    bu = rows["business_units.retail-banking.usd_per_month"]
    assert (bu["scope"], bu["limit"]) == ("business_unit", 500)
    assert Decimal(repr(bu["used"])) == seen["bu_cost"]
    assert rows["business_units.retail-banking.tokens_per_month"]["used"] == seen["bu_tokens"]
    rpm = rows["quotas.requests_per_minute"]
    assert (rpm["unit"], rpm["window"], rpm["limit"]) == ("requests", "minute", 500)
    assert 0 <= rpm["used"] <= 6  # admitted in the current minute (the traffic may straddle one)
    # An app without those quotas lists only what it has.
    small = get(served, "/admin/v1/apps/small-quota-app/quotas")["data"]
    assert [r["quota"] for r in small][:1] == ["quotas.tokens_per_day"] and small[0]["limit"] == 200


def test_activity_counts_rejections_errors_pii_and_guardrail_by_code(traffic: tuple[AdminGarden, dict[str, Any]]) -> None:
    served, _ = traffic
    rows = get(served, "/admin/v1/activity", group_by="app", **days())["data"]
    assert rows == [
        {"app_id": "small-quota-app", "kind": "rejected", "code": "insufficient_quota", "count": 2},
        {"app_id": "strict-app", "kind": "error", "code": "pii_blocked", "count": 1},
        {"app_id": "strict-app", "kind": "pii", "code": "CREDIT_DEBIT_NUMBER", "count": 1},
        {"app_id": "test-app", "kind": "error", "code": "content_filter", "count": 1},
        {"app_id": "test-app", "kind": "pii", "code": "EMAIL", "count": 2},
        {"app_id": "test-app", "kind": "guardrail", "code": "INPUT:BLOCKED:DENIED_WORD", "count": 1}]
    # They add up to /usage's rejected and errors, app by app and day by day.
    usage = get(served, "/admin/v1/usage", group_by="app,day", **days())["data"]
    by_day = get(served, "/admin/v1/activity", group_by="app,day", kind="rejected,error", **days())["data"]
    for row in usage:
        mine = [r for r in by_day if (r["app_id"], r["day"]) == (row["app_id"], row["day"])]
        assert sum(r["count"] for r in mine if r["kind"] == "rejected") == row["rejected"]
        assert sum(r["count"] for r in mine if r["kind"] == "error") == row["errors"]
    only_pii = get(served, "/admin/v1/activity", group_by="business_unit", kind="pii", **days())["data"]
    assert only_pii == [{"business_unit": "retail-banking", "kind": "pii", "code": "CREDIT_DEBIT_NUMBER", "count": 1},
                        {"business_unit": "retail-banking", "kind": "pii", "code": "EMAIL", "count": 2}]
    table = list(csv.reader(io.StringIO(get(served, "/admin/v1/activity", group_by="app,day", format="csv", **days()))))
    json_rows = get(served, "/admin/v1/activity", group_by="app,day", **days())["data"]
    assert table[0] == ["app_id", "day", "kind", "code", "count"]
    assert [dict(zip(table[0], r, strict=True)) for r in table[1:]] == [
        {k: str(v) for k, v in row.items()} for row in json_rows]


def test_chargeback_months_summary_and_csv_are_the_monthly_runs(traffic: tuple[AdminGarden, dict[str, Any]]) -> None:
    served, seen = traffic
    today = datetime.now(timezone.utc).date()
    month = today.isoformat()[:7]
    months = get(served, "/admin/v1/chargeback")["data"]
    assert months[0] == {"month": month, "from": f"{month}-01", "to": today.isoformat(), "closed": False,
                         "requests": 6, "cost_usd": format(seen["bu_cost"], ".8f"),
                         "cost_usd_cents": months[0]["cost_usd_cents"]}
    assert all(m["closed"] for m in months[1:])
    summary = get(served, f"/admin/v1/chargeback/{month}")
    assert (summary["object"], summary["month"], summary["to"], summary["closed"]) == (
        "chargeback.summary", month, today.isoformat(), False)
    (unit,) = summary["business_units"]
    assert unit["csv"] == f"/admin/v1/chargeback/{month}/retail-banking"
    assert (unit["errors"], unit["rejected"], unit["budget"]) == (
        2, 2, {"usd_per_month": 500, "tokens_per_month": 50_000_000})
    assert Decimal(summary["total"]["cost_usd"]) == seen["bu_cost"]
    response = served.call("GET", unit["csv"])
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == f'attachment; filename="chargeback-{month}-retail-banking.csv"'
    # The monthly run (on demand) writes the same figures and the same bytes.
    run = served.call("POST", "/admin/v1/chargeback", json={"month": month}).json()
    assert run["total"] == summary["total"]
    assert (served.server.home / "chargeback" / month / "retail-banking.csv").read_text() == response.text
    assert CANARY not in response.text


def test_readers_may_read_apps_may_not(traffic: tuple[AdminGarden, dict[str, Any]]) -> None:
    served, _ = traffic
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    paths = ["/admin/v1/apps/test-app/quotas", "/admin/v1/activity", "/admin/v1/chargeback",
             f"/admin/v1/chargeback/{month}", f"/admin/v1/chargeback/{month}/retail-banking"]
    for path in paths:
        assert served.call("GET", path, served.reader).status_code == 200, path
        denied = served.call("GET", path, APP)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "not_an_admin", path
        assert served.call("GET", path, sign=False).status_code == 403, path


def test_parameters_are_checked_and_named(traffic: tuple[AdminGarden, dict[str, Any]]) -> None:
    served, _ = traffic
    next_month = (datetime.now(timezone.utc).date().replace(day=1) + timedelta(days=32)).strftime("%Y-%m")
    cases = [
        ("/admin/v1/apps/no-such-app/quotas", {}, 404, "id", "app_not_found"),
        ("/admin/v1/apps/test-app/quotas", {"from": "2026-01-01"}, 400, "from", "unknown_parameter"),
        ("/admin/v1/activity", {"kind": "pii,secrets"}, 400, "kind", "invalid_value"),
        ("/admin/v1/activity", {"from": "2026-13-01"}, 400, "from", "invalid_value"),
        ("/admin/v1/activity", {"group_by": "principal"}, 400, "group_by", "invalid_value"),
        ("/admin/v1/activity", {"format": "xml"}, 400, "format", "invalid_value"),
        ("/admin/v1/activity", {"app": "test-app"}, 400, "app", "unknown_parameter"),
        ("/admin/v1/chargeback", {"month": "2026-11"}, 400, "month", "unknown_parameter"),
        ("/admin/v1/chargeback/2026-1", {}, 400, "month", "invalid_value"),
        (f"/admin/v1/chargeback/{next_month}", {}, 400, "month", "invalid_value"),
        ("/admin/v1/chargeback/2026-11/nobody", {}, 404, "business_unit", "business_unit_not_found"),
    ]
    for path, params, status, param, code in cases:
        got = error(served, path, status, **params)
        assert (got["param"], got["code"]) == (param, code), (path, got)
        assert CANARY not in got["message"]
    assert get(served, "/admin/v1/activity", **{"from": "2020-01-01", "to": "2020-01-31"})["data"] == []


def test_the_console_reads_on_dynamodb(tmp_path_factory: pytest.TempPathFactory, moto_url: str) -> None:
    """The same reads on the AWS adapters (ledger, usage aggregates, registry in the ledger table on
    moto's server), as prod wires them. The ledger's counters there hold leases: used + held covers
    what the answers used, and used never exceeds it."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))
    from dynamodb_tables import create_table, make_client

    client = make_client(moto_url)
    table = create_table(client)
    env = {"GARDEN_STORE": "dynamodb", "GARDEN_LEDGER_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
           "AWS_REGION": "us-east-1", "GARDEN_REGISTRY_REFRESH_S": "1"}
    with admin_garden(tmp_path_factory.mktemp("console-ddb"), env=env) as served:
        answers = [served.chat(APP, f"{CANARY} mail jane.doe@example.com " + "ledger " * n, max_tokens=50)
                   for n in (1, 20)]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        assert served.chat(SMALL_QUOTA_APP, f"{CANARY} " + "x" * 2000, max_tokens=20).status_code == 429
        tokens = sum(a.json()["usage"]["total_tokens"] for a in answers)
        cost = sum(Decimal(a.headers["x-garden-cost-usd"]) for a in answers)

        rows = {r["quota"]: r for r in get(served, "/admin/v1/apps/test-app/quotas")["data"]}
        day = rows["quotas.tokens_per_day"]
        assert day["used"] <= tokens <= day["used"] + day["held"]
        assert day["remaining"] == day["limit"] - day["used"] - day["held"]
        bu_usd = rows["business_units.retail-banking.usd_per_month"]
        assert Decimal(repr(bu_usd["used"])) <= cost <= Decimal(repr(bu_usd["used"])) + Decimal(repr(bu_usd["held"]))

        activity = get(served, "/admin/v1/activity", group_by="app", **days())["data"]
        assert {"app_id": "test-app", "kind": "pii", "code": "EMAIL", "count": 2} in activity
        assert {"app_id": "small-quota-app", "kind": "rejected", "code": "insufficient_quota", "count": 1} in activity
        month = datetime.now(timezone.utc).strftime("%Y-%m")
        summary = get(served, f"/admin/v1/chargeback/{month}")
        assert Decimal(summary["total"]["cost_usd"]) == cost
        table_text = get(served, f"/admin/v1/chargeback/{month}/retail-banking")
        assert table_text.splitlines()[1].startswith("test-app,local-echo,2,")
        assert get(served, "/admin/v1/chargeback")["data"][0]["month"] == month
    client.delete_table(TableName=table)


def test_garden_admin_reads_the_same(traffic: tuple[AdminGarden, dict[str, Any]]) -> None:
    """The installed CLI (a subprocess, signing with the admin's keys from its environment) prints
    what the admin API answers: quotas, activity (JSON and the gateway's CSV), chargeback months,
    summary and a business unit's CSV."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    served, seen = traffic
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GARDEN_"))}
    env.update(AWS_ACCESS_KEY_ID=served.admin.access_key, AWS_SECRET_ACCESS_KEY=served.admin.secret_key,
               AWS_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_EC2_METADATA_DISABLED="true", GARDEN_URL=served.url)

    def cli(*args: str) -> str:
        done = subprocess.run([str(Path(sys.executable).parent / "garden-admin"), *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert CANARY not in done.stdout
        return done.stdout

    rows = {r["quota"]: r for r in json.loads(cli("apps", "quotas", "test-app"))["data"]}
    assert rows["quotas.tokens_per_day"]["used"] == seen["tokens"]
    span = days()
    by_app = json.loads(cli("activity", "--from", span["from"], "--to", span["to"], "--group-by", "app",
                            "--kind", "rejected"))["data"]
    assert by_app == [{"app_id": "small-quota-app", "kind": "rejected", "code": "insufficient_quota", "count": 2}]
    table = cli("activity", "--from", span["from"], "--to", span["to"], "--csv")
    # (text-mode pipes read the CSV's \r\n as \n)
    assert table == get(served, "/admin/v1/activity", group_by="app,day", format="csv", **span).replace("\r\n", "\n")
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    assert json.loads(cli("chargeback", "list"))["data"][0]["month"] == month
    assert Decimal(json.loads(cli("chargeback", "show", "--month", month))["total"]["cost_usd"]) == seen["bu_cost"]
    assert cli("chargeback", "csv", "--month", month, "--business-unit", "retail-banking") == get(
        served, f"/admin/v1/chargeback/{month}/retail-banking")
    refused = subprocess.run([str(Path(sys.executable).parent / "garden-admin"), "chargeback", "csv", "--month",
                              month, "--business-unit", "nobody"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "business_unit" in refused.stderr
