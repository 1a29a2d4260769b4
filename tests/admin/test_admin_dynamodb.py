"""The admin API on the AWS store adapters (GARDEN_STORE=dynamodb: the registry and the usage
aggregates in the ledger table, on moto's server), served as `make run` serves it: what prod wires."""
from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path

from admin_support import APP, admin_catalog, admin_garden

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))  # dynamodb_tables
from dynamodb_tables import create_table, make_client  # noqa: E402

from support import ACCOUNT  # noqa: E402


def test_steering_and_usage_on_dynamodb(tmp_path: Path, moto_url: str) -> None:
    client = make_client(moto_url)
    table = create_table(client)
    env = {"GARDEN_STORE": "dynamodb", "GARDEN_LEDGER_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
           "AWS_REGION": "us-east-1", "GARDEN_REGISTRY_REFRESH_S": "1"}
    with admin_garden(tmp_path, env=env) as served:
        listed = served.call("GET", "/admin/v1/apps")
        assert listed.status_code == 200, listed.text
        assert {"test-app", "small-quota-app", "strict-app"} <= {a["id"] for a in listed.json()["data"]}
        answers = [served.chat(APP, "hello " * n) for n in (1, 30)]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        today = time.strftime("%Y-%m-%d", time.gmtime())
        rows = served.call("GET", "/admin/v1/usage", params={"from": today, "to": today, "group_by": "app"}).json()
        (row,) = [r for r in rows["data"] if r["app_id"] == "test-app"]
        assert row["requests"] == 2
        assert row["prompt_tokens"] == sum(a.json()["usage"]["prompt_tokens"] for a in answers)
        assert Decimal(repr(row["cost_usd"])) == sum(Decimal(a.headers["x-garden-cost-usd"]) for a in answers)

        app = served.call("GET", "/admin/v1/apps/test-app").json()
        put = served.call("PUT", "/admin/v1/apps/test-app", json={**app, "quotas": {"tokens_per_day": 4321}})
        assert put.status_code == 200 and served.call("GET", "/admin/v1/apps/test-app").json()["quotas"] == {
            "tokens_per_day": 4321}
        assert served.call("DELETE", "/admin/v1/apps/test-app").json() == {"id": "test-app", "deleted": True}
        deadline = time.monotonic() + 6
        while (refused := served.chat(APP, "hello")).status_code != 403 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "app_disabled"
        changes = served.call("GET", "/admin/v1/changes").json()["data"]
        assert [c["action"] for c in changes[:2]] == ["app.delete", "app.put"]
        assert served.call("PUT", "/admin/v1/deployments/echo-primary", json={"enabled": False}).status_code == 200
        states = {d["name"]: d["enabled"] for d in served.call("GET", "/admin/v1/deployments").json()["data"]}
        assert states["echo-primary"] is False
    client.delete_table(TableName=table)


def test_an_import_too_big_for_one_write_is_a_400_naming_apps(tmp_path: Path, moto_url: str) -> None:
    client = make_client(moto_url)
    table = create_table(client)
    env = {"GARDEN_STORE": "dynamodb", "GARDEN_LEDGER_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
           "AWS_REGION": "us-east-1"}
    with admin_garden(tmp_path, env=env) as served:
        catalog = admin_catalog()
        template = catalog["apps"][0]
        catalog["apps"] = [{**template, "id": f"bulk-app-{i:03d}", "principal_arns": [
            f"arn:aws:iam::{ACCOUNT}:role/bulk-{i:03d}"]} for i in range(120)]
        response = served.call("POST", "/admin/v1/catalog/import", json=catalog)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "too_many_changes"
        assert response.json()["error"]["param"] == "apps"
        assert served.call("GET", "/admin/v1/apps/bulk-app-000").status_code == 404  # refused whole
    client.delete_table(TableName=table)
