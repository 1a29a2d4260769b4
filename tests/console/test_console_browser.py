"""The console in a real headless Chromium (Debian's, driven by Playwright with `executable_path`)
against the gateway as `make run` serves it, with traffic from five apps of three business units:
every page loads with no console error and no request leaving the console's own origin, its charts
draw, its figures equal the admin API's usage answers, the chargeback CSV downloads, and a
screenshot of each page lands in build/test-artifacts/console/."""
from __future__ import annotations

import csv
import http.server
import io
import re
import threading
import time
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterator

import pytest
from console_support import ARTIFACTS, CANARIES, Console, ConsoleGarden, last_month

PAGES = {"overview": "/", "app": "/app.html?id=markets-desk", "changes": "/changes.html",
         "chargeback": "/chargeback.html"}


class Tab:
    """One browser tab with everything it saw: console messages, page errors, requests."""

    def __init__(self, browser: Any, console: Console) -> None:
        self.console = console
        self.page = browser.new_page()
        self.messages: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.messages.append(f"pageerror: {e}"))
        self.page.on("requestfailed", lambda r: self.messages.append(f"requestfailed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(console.url)  # the printed URL: token for cookie, then redirected to /
        assert self.page.url == f"{console.base}/"
        self.page.wait_for_selector("body[data-loaded=true]", timeout=30_000)  # nothing left in flight

    def load(self, path: str) -> Any:
        self.messages.clear()
        self.page.goto(f"{self.console.base}{path}")
        self.page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
        assert self.page.locator("#error").is_hidden(), self.page.locator("#error").text_content()
        return self.page


@pytest.fixture(scope="module")
def tab(browser: Any, console: Console) -> Iterator[Tab]:
    opened = Tab(browser, console)
    yield opened
    opened.page.close()


def month_to_date() -> tuple[str, str]:
    today = datetime.now(timezone.utc).date()
    return today.replace(day=1).isoformat(), today.isoformat()


def drawn(page: Any) -> list[dict[str, Any]]:
    """Each visible canvas: its size and how many of its pixels are painted."""
    return page.evaluate("""() => [...document.querySelectorAll('canvas')].filter((c) => c.offsetParent !== null)
        .map((c) => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
          for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n += 1;
          return { id: c.id, width: c.width, height: c.height, painted: n }; })""")


def cells(page: Any, table_id: str) -> list[dict[str, str]]:
    """The rows of a table: data-key -> data-value (the API's raw figure), plus the shown text."""
    return page.evaluate("""(id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) =>
        Object.fromEntries([...tr.querySelectorAll('td')].flatMap((td) =>
          [[td.dataset.key, td.dataset.value ?? null], [`${td.dataset.key}:text`, td.textContent]])))""", table_id)


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_loads_draws_and_leaves_127_0_0_1_never(tab: Tab, name: str) -> None:
    tab.requests.clear()
    page = tab.load(PAGES[name])
    assert tab.messages == []
    canvases = drawn(page)
    assert canvases, "no chart on the page"
    for canvas in canvases:
        assert canvas["width"] > 100 and canvas["height"] > 100 and canvas["painted"] > 500, canvas
    assert page.locator("text=All times UTC").first.is_visible()
    # Every chart has its table beside it, and every request went to the console itself.
    for panel in page.locator("section.panel:has(canvas:visible)").all():
        assert panel.locator("table").count() >= 1
    assert tab.requests and all(url.startswith(f"{tab.console.base}/") for url in tab.requests), tab.requests
    assert not [url for url in tab.requests if "/admin/v1" in url]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    html = page.content()
    for canary in CANARIES:
        assert canary not in html


def test_overview_totals_equal_the_usage_api(tab: Tab, garden: ConsoleGarden) -> None:
    page = tab.load("/")
    first, last = month_to_date()
    total = garden.admin_get("usage", **{"from": first, "to": last}).json()["data"][0]
    shown = page.locator("#total-spend")
    assert Decimal(shown.get_attribute("data-value")) == Decimal(repr(total["cost_usd"]))
    assert shown.text_content() == "$" + _usd(total["cost_usd"])
    cents = Decimal(repr(total["cost_usd"])).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert page.locator("#total-spend-sub").text_content().startswith(f"${cents:,} to the cent")
    assert int(page.locator("#total-requests").get_attribute("data-value")) == total["requests"]
    assert total["requests"] > 0 and total["rejected"] > 0 and total["errors"] > 0
    assert int(page.locator("#rejected").get_attribute("data-value")) == total["rejected"]

    by_bu = garden.admin_get("usage", **{"from": first, "to": last, "group_by": "business_unit"}).json()["data"]
    rows = {r["business_unit"]: r for r in cells(page, "bu-table")}
    assert set(rows) >= {"markets", "wealth", "retail-banking"}
    for api in by_bu:
        row = rows[api["business_unit"]]
        assert Decimal(row["cost_usd"]) == Decimal(repr(api["cost_usd"])) and row["cost_usd:text"].startswith("$")
        assert int(row["requests"]) == api["requests"] and int(row["rejected"]) == api["rejected"]
    assert rows["markets"]["budget:text"] == "$40.00"

    by_app = garden.admin_get("usage", **{"from": first, "to": last, "group_by": "app"}).json()["data"]
    apps = {r["app_id"]: r for r in cells(page, "app-table")}
    assert set(apps) >= {"markets-desk", "wealth-advisor", "test-app", "small-quota-app"}
    for api in by_app:
        assert Decimal(apps[api["app_id"]]["cost_usd"]) == Decimal(repr(api["cost_usd"])), api
        assert apps[api["app_id"]]["cost_usd:text"] == "$" + _usd(api["cost_usd"])
    by_day = {r["day"]: r for r in garden.admin_get("usage", **{"from": first, "to": last, "group_by": "day"}).json()["data"]}
    days = {r["day"]: r for r in cells(page, "daily-table")}
    assert len(days) == int(last[-2:])  # every day of the month so far, zero where nothing happened
    for day, api in by_day.items():
        assert int(days[day]["requests"]) == api["requests"] and Decimal(days[day]["cost_usd"]) == Decimal(repr(api["cost_usd"]))


def test_app_page_quotas_limit_beside_used_and_models(tab: Tab, garden: ConsoleGarden) -> None:
    page = tab.load("/app.html?id=markets-desk")
    assert page.locator("#app-name").text_content() == "markets-desk"
    windows = garden.admin_get("apps/markets-desk/quotas").json()["data"]
    shown = cells(page, "quota-table")
    assert [r["label:text"] for r in shown][:2] == ["Tokens per day", "USD per month"]
    assert shown[-1]["label:text"] == "Business unit markets: USD per month"  # the BU's budget too
    assert len(shown) == len(windows)
    for row, api in zip(shown, windows, strict=True):  # limit beside used, as the admin API counts them
        assert Decimal(row["limit"]) == Decimal(repr(api["limit"])) and Decimal(row["used"]) == Decimal(repr(api["used"]))
    assert shown[0]["limit:text"] == "20,000" and int(shown[0]["used"]) > 15_000
    assert shown[1]["limit:text"] == "$25.00" and shown[1]["used:text"].startswith("$")
    first, last = month_to_date()
    activity = garden.admin_get("activity", group_by="app", **{"from": first, "to": last}).json()["data"]
    mine = [r for r in activity if r["app_id"] == "markets-desk"]
    refused = {r["label"]: r for r in cells(page, "rejection-table")}
    for api in (r for r in mine if r["kind"] in ("rejected", "error")):
        assert int(refused[f"{api['code']} ({'429' if api['kind'] == 'rejected' else 'error'})"]["count"]) == api["count"]
    assert any(r["kind"] == "rejected" for r in mine)
    for kind, table_id in (("pii", "pii-table"), ("guardrail", "guardrail-table")):
        shown_counts = {r["code"]: int(r["count"]) for r in cells(page, table_id)}
        assert shown_counts == {r["code"]: r["count"] for r in mine if r["kind"] == kind}
        assert shown_counts, kind
    first, last = month_to_date()
    models = garden.admin_get("usage", **{"from": first, "to": last, "group_by": "app,model"}).json()["data"]
    mine = {r["model"]: r for r in models if r["app_id"] == "markets-desk"}
    shown = {r["model"]: r for r in cells(page, "model-table")}
    assert set(shown) == set(mine)
    for model, api in mine.items():
        assert int(shown[model]["prompt_tokens"]) == api["prompt_tokens"]
        assert Decimal(shown[model]["cost_usd"]) == Decimal(repr(api["cost_usd"]))


def test_changes_page_lists_the_admin_changes(tab: Tab, garden: ConsoleGarden) -> None:
    page = tab.load("/changes.html")
    changes = garden.admin_get("changes", limit="1000").json()["data"]
    rows = cells(page, "changes-table")
    assert [r["action"] for r in rows] == [c["action"] for c in changes]
    assert {"app.put", "business_unit.put"} <= {r["action"] for r in rows}


def test_chargeback_month_to_date_and_the_csv_downloads(tab: Tab, garden: ConsoleGarden) -> None:
    page = tab.load("/chargeback.html")
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    assert page.locator("#month").input_value() == month  # the current month, to date
    assert f"{month} (to date)" in page.locator("#month option").first.text_content()
    first, last = month_to_date()
    rows = garden.admin_get("usage", **{"from": first, "to": last, "group_by": "business_unit,app,model"}).json()["data"]
    total = sum(Decimal(repr(r["cost_usd"])) for r in rows)
    assert Decimal(page.locator("#cb-total").get_attribute("data-value")) == total
    for bu in ("markets", "retail-banking", "wealth"):
        with page.expect_download() as info:
            page.locator(f'.csv[data-business-unit="{bu}"] a.button').click()
        download = info.value
        assert download.suggested_filename == f"chargeback-{month}-{bu}.csv"
        body = open(download.path(), encoding="utf-8").read()
        parsed = list(csv.DictReader(io.StringIO(body)))
        assert list(parsed[0]) == ["app", "model", "requests", "prompt_tokens", "completion_tokens", "tokens", "cost_usd"]
        expected = sorted((r for r in rows if r["business_unit"] == bu), key=lambda r: (r["app_id"], r["model"]))
        expected = [r for r in expected if r["requests"] or r["prompt_tokens"] or r["completion_tokens"] or r["cost_usd"]]
        assert [(p["app"], p["model"], int(p["requests"]), int(p["tokens"]), Decimal(p["cost_usd"])) for p in parsed] == [
            (r["app_id"], r["model"], r["requests"], r["prompt_tokens"] + r["completion_tokens"],
             Decimal(repr(r["cost_usd"]))) for r in expected]
        assert all(re.fullmatch(r"\d+\.\d{8}", p["cost_usd"]) for p in parsed)
        (ARTIFACTS / f"chargeback-{month}-{bu}.csv").write_text(body)
    # Closed months are offered too: last month's, with usage, picked in the form.
    options = page.locator("#month option").all_text_contents()
    assert len(options) >= 13 and "(to date)" not in options[1]
    closed = last_month()
    summary = garden.admin_get(f"chargeback/{closed}").json()
    assert summary["closed"] is True and summary["total"]["cost_usd"] == "2.62345679"
    assert options[1] == f"{closed} ($2.62345679)"
    page.locator("#month").select_option(closed)
    page.locator("#month-form button").click()
    page.wait_for_url(f"**/chargeback.html?month={closed}")
    page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
    assert tab.messages == [] and page.locator("#error").is_hidden()
    assert page.locator("#cb-total").get_attribute("data-value") == summary["total"]["cost_usd"]
    assert page.locator("#cb-total").text_content() == "$2.62345679"
    assert "closed" in page.locator("#month-label").text_content()
    shown = {r["business_unit"]: r for r in cells(page, "cb-table")}
    assert {bu: shown[bu]["cost_usd"] for bu in shown} == {
        u["business_unit"]: u["cost_usd"] for u in summary["business_units"]}
    with page.expect_download() as info:
        page.locator('.csv[data-business-unit="retail-banking"] a.button').click()
    body = open(info.value.path(), encoding="utf-8").read()
    assert body == garden.admin_get(f"chargeback/{closed}/retail-banking").text
    assert body.splitlines()[1] == "test-app,local-echo,2,2000,1000,3000,2.50000001"
    page.screenshot(path=str(ARTIFACTS / "chargeback-closed-month.png"), full_page=True)


def _usd(cost: float) -> str:
    """The console's format: thousands separators, 2 to 8 decimals."""
    text = format(Decimal(repr(cost)).quantize(Decimal("0.00000001")), ",f").rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def test_in_the_browser_a_rebound_name_and_another_origin_get_nothing(tab: Tab, browser: Any) -> None:
    """DNS rebinding: a name that resolves to 127.0.0.1 reaches the console's port, but its Host is
    not the console's. Cross-origin: a page of another port of this host (the same site, so the
    SameSite=Strict cookie rides along) fetches the console's API: refused, and nothing readable."""
    console = tab.console
    page = browser.new_page()
    try:
        answer = page.goto(f"http://rebound.test:{console.port}/?token={console.token}")
        assert answer is not None and answer.status == 403
        answer = page.goto(f"http://rebound.test:{console.port}/api/usage")
        assert answer is not None and answer.status == 403
        attack = (f'<!doctype html><title>waiting</title><script>fetch("{console.base}/api/usage", '
                  '{credentials: "include"}).then((r) => r.text()).then((t) => { document.title = "read " + t; })'
                  '.catch(() => { document.title = "blocked"; });</script>').encode()

        class Attacker(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(attack)))
                self.end_headers()
                self.wfile.write(attack)

            def log_message(self, *args: Any) -> None:
                pass

        other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=other.serve_forever, daemon=True).start()
        try:
            before = "".join(console.stderr).count("GET /api/usage 403")
            page.goto(f"http://127.0.0.1:{other.server_address[1]}/attack.html")
            page.wait_for_function("document.title !== 'waiting'", timeout=15_000)
            assert page.title() == "blocked"
            deadline = time.monotonic() + 10  # the console refused it (not only the browser's CORS)
            while "".join(console.stderr).count("GET /api/usage 403") <= before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "".join(console.stderr).count("GET /api/usage 403") > before
        finally:
            other.shutdown()
            other.server_close()
    finally:
        page.close()
