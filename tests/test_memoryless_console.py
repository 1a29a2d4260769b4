"""Memoryless, the console: prompts carrying canaries go through the gateway (answered, redacted,
guardrail-blocked and quota-refused requests of five apps in three business units); then every page,
script and JSON or CSV answer `garden-admin console` serves, error answers included, and everything
the console process printed, are searched for the canaries. (tests/console/test_console_browser.py
searches each page's rendered DOM in Chromium too.)"""
from __future__ import annotations

import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent / "console"))

from console_support import CANARIES, console_garden, running_console  # noqa: E402

from client.garden_auth import SigV4RequestsAuth  # noqa: E402

PAGES = ("/", "/index.html", "/app.html", "/changes.html", "/chargeback.html", "/console.css", "/favicon.svg",
         "/js/common.js", "/js/overview.js", "/js/app.js", "/js/changes.js", "/js/chargeback.js")
GROUPINGS = ("", "app", "business_unit", "model", "day", "month", "app,business_unit,model,day,month")


def test_no_canary_in_anything_the_console_serves(tmp_path: Path) -> None:
    with console_garden(tmp_path) as garden, running_console(garden) as console:
        # The control: the canaries did reach the gateway (local-echo answers them back).
        auth = SigV4RequestsAuth(region="us-east-1", credentials=garden.traffic.apps["test-app"])
        echoed = requests.post(f"{garden.server.base_url}/v1/chat/completions", auth=auth, timeout=30,
                               json={"model": "local-echo", "messages": [{"role": "user", "content": CANARIES[0]}]})
        assert CANARIES[0] in echoed.text
        assert 429 in garden.traffic.statuses["markets-desk"] and 400 in garden.traffic.statuses["markets-desk"]

        session = requests.Session()
        assert session.get(console.url, timeout=10).status_code == 200  # token for cookie, redirected to /
        apps = [a["id"] for a in session.get(f"{console.base}/api/apps", timeout=30).json()["data"]]
        months = session.get(f"{console.base}/api/chargeback", timeout=30).json()["data"]
        paths = [*PAGES, "/api/apps", "/api/business-units", "/api/deployments", "/api/changes?limit=1000",
                 "/api/chargeback"]
        for app_id in apps:
            paths += [f"/api/apps/{app_id}", f"/api/apps/{app_id}/quotas"]
        for group_by in GROUPINGS:
            paths += [f"/api/usage?group_by={group_by}", f"/api/activity?group_by={group_by}"]
        for month in months:
            paths.append(f"/api/chargeback/{month['month']}")
            for unit in session.get(f"{console.base}/api/chargeback/{month['month']}", timeout=30).json()["business_units"]:
                paths.append(f"/api/chargeback/{month['month']}/{unit['business_unit']}.csv")
        # Error answers: a canary in the console's own request is not echoed either.
        paths += [f"/api/apps/{CANARIES[0]}", f"/api/usage?from={CANARIES[0]}", f"/api/{CANARIES[0]}",
                  f"/{CANARIES[0]}.html", f"/api/chargeback/2026-01/{CANARIES[0]}.csv"]
        statuses = {}
        for path in paths:
            response = session.get(f"{console.base}{path}", timeout=30)
            statuses[path] = response.status_code
            body = response.content.decode("utf-8", "replace") + "".join(f"{k}: {v}" for k, v in response.headers.items())
            for canary in CANARIES:
                assert canary not in body, (canary, path)
        assert [p for p, s in statuses.items() if s != 200 and CANARIES[0] not in p] == [], statuses
        assert statuses[f"/api/apps/{CANARIES[0]}"] == 404
        console.process.terminate()
        out, _ = console.process.communicate(timeout=10)
        printed = out + "".join(console.stderr)
        assert "GET /api/usage" in printed  # the log the canaries are searched in is the real one
        for canary in CANARIES:
            assert canary not in printed
