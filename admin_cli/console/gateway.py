"""The console's own JSON API (/api/...), each route one signed GET to the gateway's admin API.

The browser never reaches the gateway: it asks this server, which forwards a fixed set of read-only
routes with only their known query parameters and answers the admin API's body unchanged (the
numbers on the page are the admin API's, rendered). A refusal keeps its status and its message
(the admin API's messages name rules and fields, never request content).
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable
from urllib.parse import unquote

from admin_cli.api import AdminClient, ApiError, CliError, seg

_ID = r"(?P<id>[^/]+)"
_MONTH = r"(?P<month>\d{4}-(?:0[1-9]|1[0-2]))"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    filename: str | None = None  # a download (Content-Disposition: attachment)


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    admin_path: Callable[[dict[str, str]], str]
    params: tuple[str, ...] = ()


def _route(pattern: str, admin_path: Callable[[dict[str, str]], str], *params: str) -> Route:
    return Route(re.compile(pattern), admin_path, params)


ROUTES: tuple[Route, ...] = (
    _route(r"/api/apps", lambda m: "apps"),
    _route(rf"/api/apps/{_ID}", lambda m: f"apps/{seg(m['id'])}"),
    _route(r"/api/business-units", lambda m: "business-units"),
    _route(r"/api/deployments", lambda m: "deployments"),
    _route(r"/api/usage", lambda m: "usage", "from", "to", "group_by"),
    _route(r"/api/changes", lambda m: "changes", "limit"),
)
_CHARGEBACK_CSV = re.compile(rf"/api/chargeback/{_MONTH}/(?P<bu>[^/]+)\.csv")


class ConsoleApi:
    def __init__(self, client: Callable[[], AdminClient]) -> None:
        """`client()`: this thread's admin API client (requests' Session is not shared across threads)."""
        self._client = client

    def answer(self, path: str, query: dict[str, list[str]]) -> Answer | None:
        """The answer to GET `path` (already percent-decoded per segment below), None when unknown."""
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if match:
                groups = {k: unquote(v) for k, v in match.groupdict().items()}
                params = {name: query[name][-1] for name in route.params if query.get(name)}
                return self._forward(route.admin_path(groups), params)
        match = _CHARGEBACK_CSV.fullmatch(path)
        if match:
            return self._chargeback_csv(match["month"], unquote(match["bu"]))
        return None

    def _forward(self, admin_path: str, params: dict[str, str]) -> Answer:
        try:
            response = self._client().request("GET", admin_path, params=params or None)
        except CliError as exc:
            return _error(exc)
        return Answer(response.status_code, response.content,
                      response.headers.get("content-type", "application/json").split(";")[0])

    def _chargeback_csv(self, month: str, bu: str) -> Answer:
        """The business unit's chargeback CSV for the month (the current one: to date), in the
        columns and figures of chalicelib/chargeback.py, from the admin API's usage rows."""
        from chalicelib.chargeback import CSV_COLUMNS, month_range

        first, last = month_range(month)
        try:
            usage = self._client().json("GET", "usage", params={"from": first, "to": last,
                                                                 "group_by": "app,business_unit,model"})
        except CliError as exc:
            return _error(exc)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        rows = [r for r in usage.get("data", []) if r.get("business_unit") == bu]
        for r in sorted(rows, key=lambda r: (r["app_id"], r["model"])):
            tokens = r["prompt_tokens"] + r["completion_tokens"]
            cost = Decimal(repr(r["cost_usd"])).quantize(Decimal("0.00000001"))
            if r["requests"] or tokens or cost:
                writer.writerow((r["app_id"], r["model"], r["requests"], r["prompt_tokens"],
                                 r["completion_tokens"], tokens, format(cost, "f")))
        return Answer(200, out.getvalue().encode("utf-8"), "text/csv", f"chargeback-{month}-{bu}.csv")


def _error(exc: CliError) -> Answer:
    if isinstance(exc, ApiError):
        body = {"error": {"status": exc.status, "code": exc.code, "param": exc.param, "message": exc.message}}
        return Answer(exc.status, json.dumps(body).encode("utf-8"))
    body = {"error": {"status": 502, "code": "gateway_unreachable", "message": str(exc)}}
    return Answer(502, json.dumps(body).encode("utf-8"))


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
