"""POST /admin/v1/catalog/import (`garden-admin catalog import FILE`): a catalog file's apps and
business units re-applied on purpose, checked as the catalog is, recorded as one change."""
from __future__ import annotations

import copy
from pathlib import Path

from admin_support import admin_catalog, admin_garden

from chalicelib.settings import LOCAL_ADMIN_PRINCIPAL


def test_import_reapplies_the_files_apps_and_budgets_as_one_change(tmp_path: Path) -> None:
    with admin_garden(tmp_path) as served:
        catalog = admin_catalog()
        catalog["apps"] = [a for a in catalog["apps"] if a["id"] != "strict-app"]
        catalog["apps"][0]["quotas"] = {"tokens_per_day": 1234}
        catalog["business_units"]["markets"] = {"tokens_per_month": 1000}

        bad = copy.deepcopy(catalog)
        bad["apps"][1]["quotas"]["tokens_per_day"] = -5
        response = served.call("POST", "/admin/v1/catalog/import", json=bad)
        assert response.status_code == 400 and response.json()["error"]["param"] == "apps[1].quotas.tokens_per_day"
        twice = copy.deepcopy(catalog)
        twice["apps"].append(copy.deepcopy(twice["apps"][0]))
        response = served.call("POST", "/admin/v1/catalog/import", json=twice)
        assert response.status_code == 400 and response.json()["error"]["param"] == "apps[2].id"
        unknown = copy.deepcopy(catalog)
        unknown["apps"][0]["allowed_models"] = ["not-deployed"]
        unknown["models"]["not-deployed"] = unknown["models"]["local-echo"]
        response = served.call("POST", "/admin/v1/catalog/import", json=unknown)
        assert response.status_code == 400 and response.json()["error"]["param"] == "apps[0].allowed_models"
        assert served.call("POST", "/admin/v1/catalog/import", served.reader, json=catalog).status_code == 403
        assert served.call("GET", "/admin/v1/apps/strict-app").json().get("disabled") is not True

        done = served.call("POST", "/admin/v1/catalog/import", json=catalog)
        assert done.status_code == 200, done.text
        assert done.json() == {"object": "catalog.import", "apps": ["test-app", "small-quota-app"],
                               "business_units": ["markets", "retail-banking"]}
        assert served.call("GET", "/admin/v1/apps/test-app").json()["quotas"] == {"tokens_per_day": 1234}
        assert served.call("GET", "/admin/v1/apps/strict-app").json()["disabled"] is True
        units = served.call("GET", "/admin/v1/business-units").json()["data"]
        assert {"id": "markets", "tokens_per_month": 1000} in units
        change = served.call("GET", "/admin/v1/changes").json()["data"][0]
        assert (change["action"], change["principal"]) == ("catalog.import", LOCAL_ADMIN_PRINCIPAL)
