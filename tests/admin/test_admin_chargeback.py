"""POST /admin/v1/chargeback runs a month's chargeback on demand (chalicelib/chargeback.py
`run_chargeback`) over the usage aggregates and the budgets the registry holds now."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from admin_support import AdminGarden


def test_chargeback_on_demand_writes_the_month_with_the_registrys_budgets(served: AdminGarden) -> None:
    assert served.call("PUT", "/admin/v1/business-units/wealth", json={"usd_per_month": 42}).status_code == 200
    response = served.call("POST", "/admin/v1/chargeback", json={"month": "2026-10"})
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["object"] == "chargeback.summary" and summary["month"] == "2026-10"
    assert (summary["from"], summary["to"]) == ("2026-10-01", "2026-10-31")
    budgets = {u["business_unit"]: u["budget"] for u in summary["business_units"]}
    assert budgets["wealth"] == {"usd_per_month": 42, "tokens_per_month": None}  # changed at run time
    assert budgets["retail-banking"] == {"usd_per_month": 500, "tokens_per_month": 50_000_000}
    written = Path(summary["summary_file"])
    assert written.is_relative_to(served.server.home / "chargeback" / "2026-10")
    assert json.loads(written.read_text())["business_units"] == summary["business_units"]
    audited = "".join(f.read_text() for f in (served.server.home / "audit").rglob("*.jsonl"))
    assert '"route":"admin.chargeback.run"' in audited


@pytest.mark.parametrize(("body", "param"), [({"month": "2026-13"}, "month"), ({"month": "October"}, "month"),
                                             ({}, "month"), ({"month": "2026-10", "bu": "x"}, "bu")])
def test_a_bad_month_is_a_400_naming_it(served: AdminGarden, body: dict[str, str], param: str) -> None:
    response = served.call("POST", "/admin/v1/chargeback", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert response.headers["x-request-id"]
