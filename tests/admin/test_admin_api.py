"""Admin API contract (issue 10, "Admin API" and "Contract details"): every route's shape and every
error, through requests + SigV4 against the gateway as `make run` serves it."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from admin_support import APP, READER_ARN, AdminGarden

from chalicelib.settings import LOCAL_ADMIN_PRINCIPAL
from support import ACCOUNT


def new_app(app_id: str, role: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": app_id, "business_unit": "wealth", "principal_arns": [f"arn:aws:iam::{ACCOUNT}:role/{role or app_id}"],
        "allowed_models": ["local-echo"], "quotas": {"tokens_per_day": 5000, "requests_per_minute": 60},
        **extra,
    }


def assert_error(response: Any, status: int, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["x-request-id"]
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


# ---- apps -------------------------------------------------------------------------------------

def test_list_and_get_apps_are_the_catalog_apps(served: AdminGarden) -> None:
    listed = served.call("GET", "/admin/v1/apps")
    assert listed.status_code == 200 and listed.headers["x-request-id"]
    body = listed.json()
    assert body["object"] == "list"
    by_id = {a["id"]: a for a in body["data"]}
    assert {"test-app", "small-quota-app", "strict-app"} <= set(by_id)
    one = served.call("GET", "/admin/v1/apps/small-quota-app")
    assert one.status_code == 200
    assert one.json() == by_id["small-quota-app"]
    assert one.json()["quotas"] == {"tokens_per_day": 200}
    assert_error(served.call("GET", "/admin/v1/apps/no-such-app"), 404, "app_not_found")


def test_put_stores_the_app_and_get_reads_it_back_at_once(served: AdminGarden) -> None:
    app = new_app("payments-bot", external_id="execution-garden:payments-bot", geography="eu",
                  quotas={"tokens_per_day": 10_000, "tokens_per_month": 200_000, "requests_per_minute": 30,
                          "tokens_per_minute": 4000, "usd_per_month": 12.5,
                          "models": {"local-echo": {"tokens_per_day": 3000}}})
    put = served.call("PUT", "/admin/v1/apps/payments-bot", json=app)
    assert put.status_code == 200, put.text
    assert put.json() == app
    got = served.call("GET", "/admin/v1/apps/payments-bot")
    assert got.status_code == 200 and got.json() == app
    assert app in served.call("GET", "/admin/v1/apps").json()["data"]
    # The id may be left out of the body: the path names the app.
    without_id = {k: v for k, v in app.items() if k != "id"} | {"quotas": {"tokens_per_day": 9}}
    again = served.call("PUT", "/admin/v1/apps/payments-bot", json=without_id)
    assert again.status_code == 200 and again.json()["quotas"] == {"tokens_per_day": 9}
    assert served.call("GET", "/admin/v1/apps/payments-bot").json()["quotas"] == {"tokens_per_day": 9}


@pytest.mark.parametrize(("change", "param"), [
    ({"quotas": {"tokens_per_day": 0}}, "quotas.tokens_per_day"),
    ({"quotas": {"tokens_per_day": "many"}}, "quotas.tokens_per_day"),
    ({"quotas": {"usd_per_month": -1}}, "quotas.usd_per_month"),
    ({"quotas": {"models": {"local-echo": {"tokens_per_day": 0}}}}, "quotas.models.local-echo.tokens_per_day"),
    ({"quotas": {"tokens_per_week": 5}}, "quotas.tokens_per_week"),
    ({"principal_arns": ["not-an-arn"]}, "principal_arns[0]"),
    ({"principal_arns": []}, "principal_arns"),
    ({"geography": "mars"}, "geography"),
    ({"pii": {"on_unavailable": "maybe"}}, "pii.on_unavailable"),
    ({"nickname": "x"}, "nickname"),
    ({"allowed_models": ["no-such-model"]}, "allowed_models"),
    ({"quotas": {"models": {"echo-small": {"tokens_per_day": 5}}}}, "quotas.models"),
    ({"external_id": "execution-garden:another-app"}, "external_id"),
])
def test_a_schema_error_is_a_400_naming_the_dotted_path(served: AdminGarden, change: dict[str, Any],
                                                         param: str) -> None:
    app = new_app("bad-app") | change
    error = assert_error(served.call("PUT", "/admin/v1/apps/bad-app", json=app), 400, param=param)
    assert error["type"] == "invalid_request_error"
    assert_error(served.call("GET", "/admin/v1/apps/bad-app"), 404, "app_not_found")  # nothing stored


def test_a_missing_field_is_named(served: AdminGarden) -> None:
    app = new_app("half-app")
    del app["business_unit"]
    assert_error(served.call("PUT", "/admin/v1/apps/half-app", json=app), 400, param="business_unit")


@pytest.mark.parametrize("body", [b"", b"{not json", b"[1, 2]"])
def test_a_body_that_is_not_an_object_is_a_400(served: AdminGarden, body: bytes) -> None:
    response = served.call("PUT", "/admin/v1/apps/x-app", data=body, headers={"content-type": "application/json"})
    assert_error(response, 400)


def test_an_id_other_than_the_paths_is_a_400_naming_id(served: AdminGarden) -> None:
    response = served.call("PUT", "/admin/v1/apps/first-name", json=new_app("second-name"))
    assert_error(response, 400, param="id")
    assert_error(served.call("GET", "/admin/v1/apps/first-name"), 404)
    assert_error(served.call("GET", "/admin/v1/apps/second-name"), 404)


def test_a_principal_another_app_holds_is_a_409_principal_in_use(served: AdminGarden) -> None:
    taken = new_app("copycat", role="test-app-role")  # test-app's role
    error = assert_error(served.call("PUT", "/admin/v1/apps/copycat", json=taken), 409, "principal_in_use")
    assert "test-app" not in error["message"] and ACCOUNT not in error["message"]
    # An assumed-role ARN of that role is the same principal.
    assumed = new_app("copycat", principal_arns=[f"arn:aws:sts::{ACCOUNT}:assumed-role/test-app-role/s1"])
    assert_error(served.call("PUT", "/admin/v1/apps/copycat", json=assumed), 409, "principal_in_use")
    assert_error(served.call("GET", "/admin/v1/apps/copycat"), 404)


def test_delete_disables_and_keeps_the_history(served: AdminGarden) -> None:
    app = new_app("short-lived")
    assert served.call("PUT", "/admin/v1/apps/short-lived", json=app).status_code == 200
    deleted = served.call("DELETE", "/admin/v1/apps/short-lived")
    assert deleted.status_code == 200 and deleted.json() == {"id": "short-lived", "deleted": True}
    got = served.call("GET", "/admin/v1/apps/short-lived")
    assert got.status_code == 200 and got.json().get("disabled") is True
    assert_error(served.call("DELETE", "/admin/v1/apps/never-was"), 404, "app_not_found")
    changes = served.call("GET", "/admin/v1/changes").json()["data"]
    mine = [c for c in changes if c["target"] == "app:short-lived"]
    assert [c["action"] for c in mine] == ["app.delete", "app.put"]  # newest first
    assert mine[0]["before"] == app and mine[1]["before"] is None and mine[1]["after"] == app
    # What GET shows of a deleted app, PUT back with "disabled": false, re-enables it; true is refused.
    shown = got.json()
    assert_error(served.call("PUT", "/admin/v1/apps/short-lived", json=shown), 400, param="disabled")
    again = served.call("PUT", "/admin/v1/apps/short-lived", json={**shown, "disabled": False})
    assert again.status_code == 200 and again.json() == app
    assert served.call("DELETE", "/admin/v1/apps/short-lived").status_code == 200
    # Its principal is free again for another app once the app is disabled.
    reuse = new_app("successor-app", role="short-lived")
    assert served.call("PUT", "/admin/v1/apps/successor-app", json=reuse).status_code == 200


# ---- business units ---------------------------------------------------------------------------

def test_business_units_list_and_put(served: AdminGarden) -> None:
    listed = served.call("GET", "/admin/v1/business-units").json()
    assert listed["object"] == "list"
    assert {"id": "retail-banking", "usd_per_month": 500, "tokens_per_month": 50_000_000} in listed["data"]
    put = served.call("PUT", "/admin/v1/business-units/wealth", json={"usd_per_month": 75.5})
    assert put.status_code == 200 and put.json() == {"id": "wealth", "usd_per_month": 75.5}
    assert {"id": "wealth", "usd_per_month": 75.5} in served.call("GET", "/admin/v1/business-units").json()["data"]
    assert_error(served.call("PUT", "/admin/v1/business-units/wealth", json={"usd_per_month": 0}), 400,
                 param="usd_per_month")
    assert_error(served.call("PUT", "/admin/v1/business-units/wealth", json={"tokens_per_month": 1.5}), 400,
                 param="tokens_per_month")
    assert_error(served.call("PUT", "/admin/v1/business-units/wealth", json={"eur_per_month": 3}), 400,
                 param="eur_per_month")
    assert_error(served.call("PUT", "/admin/v1/business-units/Not_A_BU", json={"usd_per_month": 3}), 400,
                 param="business_unit")
    change = served.call("GET", "/admin/v1/changes").json()["data"][0]
    assert change["action"] == "business_unit.put" and change["target"] == "business_unit:wealth"
    assert change["after"] == {"usd_per_month": 75.5}


# ---- deployments ------------------------------------------------------------------------------

def test_deployments_list_each_catalog_deployment_with_its_state(served: AdminGarden) -> None:
    body = served.call("GET", "/admin/v1/deployments").json()
    assert body["object"] == "list"
    by_name = {d["name"]: d for d in body["data"]}
    assert {"echo-primary", "echo-secondary", "embed-primary"} <= set(by_name)
    assert all(d["enabled"] is True for d in body["data"])
    assert by_name["echo-secondary"]["routes"] == [
        {"model": "echo-routed", "provider": "local-echo", "model_id": "echo-b", "region": None}]
    off = served.call("PUT", "/admin/v1/deployments/echo-secondary", json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False and off.json()["name"] == "echo-secondary"
    listed = {d["name"]: d["enabled"] for d in served.call("GET", "/admin/v1/deployments").json()["data"]}
    assert listed["echo-secondary"] is False and listed["echo-primary"] is True
    change = served.call("GET", "/admin/v1/changes").json()["data"][0]
    assert change["action"] == "deployment.put" and change["target"] == "deployment:echo-secondary"
    on = served.call("PUT", "/admin/v1/deployments/echo-secondary", json={"enabled": True})
    assert on.status_code == 200 and on.json()["enabled"] is True
    assert_error(served.call("PUT", "/admin/v1/deployments/no-such", json={"enabled": False}), 404,
                 "deployment_not_found")
    assert_error(served.call("PUT", "/admin/v1/deployments/echo-primary", json={"enabled": "no"}), 400,
                 param="enabled")
    assert_error(served.call("PUT", "/admin/v1/deployments/echo-primary", json={}), 400, param="enabled")


def test_a_deployment_with_its_default_name_can_be_switched(served: AdminGarden) -> None:
    # A deployment with no `name` is "<provider>/<model_id>": its "/" travels as %2F in the path.
    names = {d["name"] for d in served.call("GET", "/admin/v1/deployments").json()["data"]}
    assert "local-echo/echo-1" in names
    off = served.call("PUT", "/admin/v1/deployments/local-echo%2Fecho-1", json={"enabled": False})
    assert off.status_code == 200, off.text
    assert off.json()["name"] == "local-echo/echo-1" and off.json()["enabled"] is False
    assert served.call("PUT", "/admin/v1/deployments/local-echo%2Fecho-1", json={"enabled": True}).status_code == 200


# ---- changes ----------------------------------------------------------------------------------

def test_changes_are_listed_newest_first_with_who_and_what(served: AdminGarden) -> None:
    for quota in (100, 200, 300):
        app = new_app("changing-app", quotas={"tokens_per_day": quota})
        assert served.call("PUT", "/admin/v1/apps/changing-app", json=app).status_code == 200
    body = served.call("GET", "/admin/v1/changes", params={"limit": "3"}).json()
    assert body["object"] == "list" and len(body["data"]) == 3
    for change in body["data"]:
        assert set(change) == {"at", "principal", "action", "target", "before", "after"}
        assert change["principal"] == LOCAL_ADMIN_PRINCIPAL and change["target"] == "app:changing-app"
    assert [c["after"]["quotas"]["tokens_per_day"] for c in body["data"]] == [300, 200, 100]
    assert [c["at"] for c in body["data"]] == sorted((c["at"] for c in body["data"]), reverse=True)
    assert body["data"][0]["before"]["quotas"] == {"tokens_per_day": 200}
    seed = served.call("GET", "/admin/v1/changes", params={"limit": "1000"}).json()["data"][-1]
    assert seed["principal"] == "seed"
    assert_error(served.call("GET", "/admin/v1/changes", params={"limit": "0"}), 400, param="limit")
    assert_error(served.call("GET", "/admin/v1/changes", params={"limit": "many"}), 400, param="limit")
    assert_error(served.call("GET", "/admin/v1/changes", params={"since": "x"}), 400, param="since")


# ---- usage: query validation and CSV shape -----------------------------------------------------

@pytest.mark.parametrize(("params", "param"), [
    ({"from": "2026-13-01", "to": "2026-12-31"}, "from"),
    ({"from": "2026-02-30", "to": "2026-03-31"}, "from"),
    ({"from": "2026-01-01", "to": "31/01/2026"}, "to"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
    ({"from": "2026-01-01", "to": "2026-01-31", "group_by": "app,week"}, "group_by"),
    ({"from": "2026-01-01", "to": "2026-01-31", "format": "xml"}, "format"),
    ({"from": "2026-01-01", "to": "2026-01-31", "app": "test-app"}, "app"),
    ({"from": "2010-01-01", "to": "2026-01-31"}, "from"),
])
def test_bad_usage_query_values_are_400_naming_the_param(served: AdminGarden, params: dict[str, str],
                                                          param: str) -> None:
    assert_error(served.call("GET", "/admin/v1/usage", params=params), 400, param=param)


def test_usage_csv_columns_are_the_grouped_keys_in_contract_order_then_the_metrics(served: AdminGarden) -> None:
    metrics = ["requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "errors", "rejected"]
    for group_by, keys in [("day,app", ["app_id", "day"]), ("month,model,business_unit", ["business_unit", "model", "month"]),
                           ("app,business_unit,model,day,month", ["app_id", "business_unit", "model", "day", "month"]),
                           (None, [])]:
        params = {"from": "2026-01-01", "to": "2026-01-31", "format": "csv"} | ({"group_by": group_by} if group_by else {})
        response = served.call("GET", "/admin/v1/usage", params=params)
        assert response.status_code == 200 and response.headers["x-request-id"]
        assert response.headers["content-type"].split(";")[0] == "text/csv"
        assert next(csv.reader(io.StringIO(response.text))) == keys + metrics


# ---- who may call -------------------------------------------------------------------------------

ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/admin/v1/apps", None), ("GET", "/admin/v1/apps/test-app", None),
    ("PUT", "/admin/v1/apps/test-app", "app"), ("DELETE", "/admin/v1/apps/test-app", None),
    ("GET", "/admin/v1/business-units", None), ("PUT", "/admin/v1/business-units/retail-banking", {"usd_per_month": 1}),
    ("GET", "/admin/v1/deployments", None), ("PUT", "/admin/v1/deployments/echo-primary", {"enabled": False}),
    ("GET", "/admin/v1/changes", None), ("GET", "/admin/v1/usage?from=2026-01-01&to=2026-01-31", None),
    ("POST", "/admin/v1/chargeback", {"month": "2026-01"}), ("POST", "/admin/v1/catalog/import", {"version": 1}),
]


def _body(marker: Any, served: AdminGarden) -> Any:
    if marker == "app":
        return {**served.call("GET", "/admin/v1/apps/test-app").json(), "quotas": {"tokens_per_day": 1}}
    return marker


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_unsigned_and_non_admins_get_403_on_every_route(served: AdminGarden, method: str, path: str,
                                                        body: Any) -> None:
    payload = _body(body, served)
    before = served.call("GET", "/admin/v1/changes", params={"limit": "1"}).json()["data"]
    assert_error(served.call(method, path, json=payload, sign=False), 403)
    assert_error(served.call(method, path, APP, json=payload), 403, "not_an_admin")  # an app's principal
    assert served.call("GET", "/admin/v1/changes", params={"limit": "1"}).json()["data"] == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_readers_may_get_and_never_change(served: AdminGarden, method: str, path: str, body: Any) -> None:
    response = served.call(method, path, served.reader, json=_body(body, served))
    if method == "GET":
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 403, "admin_read_only")
    assert served.call("GET", "/admin/v1/apps/test-app").json()["quotas"] == {"tokens_per_day": 1_000_000}
    assert READER_ARN not in json.dumps(served.call("GET", "/admin/v1/changes").json())


def test_every_admin_request_is_audited_by_route_with_ids_only(served: AdminGarden) -> None:
    marker = "external-marker-7a1c"
    app = new_app("audited-app", external_id=f"{marker}:audited-app")
    assert served.call("PUT", "/admin/v1/apps/audited-app", json=app).status_code == 200
    rid = served.call("GET", "/admin/v1/apps/audited-app").headers["x-request-id"]
    denied = served.call("DELETE", "/admin/v1/apps/audited-app", served.reader)
    records = [json.loads(line) for f in sorted((served.server.home / "audit").rglob("*.jsonl"))
               for line in f.read_text().splitlines()]
    admin = [r for r in records if r["route"].startswith("admin.")]
    puts = [r for r in admin if r["route"] == "admin.apps.put" and r["status"] == 200]
    assert puts and puts[-1]["principal"] == LOCAL_ADMIN_PRINCIPAL
    assert any(r["request_id"] == rid and r["route"] == "admin.apps.get" for r in admin)
    refused = [r for r in admin if r["request_id"] == denied.headers["x-request-id"]]
    assert refused == [dict(refused[0], route="admin.apps.delete", status=403, error_code="admin_read_only",
                            principal=READER_ARN)]
    audit_text = "".join(f.read_text() for f in (served.server.home / "audit").rglob("*.jsonl"))
    assert marker not in audit_text  # the record keeps ids, never what was sent
    assert marker not in served.server.output.read_text()


def test_the_admin_room_and_the_request_path_import_each_other_nowhere() -> None:
    """The admin room and the request path import each other nowhere (DESIGN.md, 'Admin is its own room')."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "chalicelib"
    for path in (root / "admin").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("chalicelib.pipeline", "chalicelib.quota", "chalicelib.router",
                                                   "chalicelib.providers")), (path, node.module)
    for path in list((root / "pipeline").rglob("*.py")) + [root / "quota.py", root / "router.py"]:
        text = path.read_text()
        assert "chalicelib.admin" not in text, path
