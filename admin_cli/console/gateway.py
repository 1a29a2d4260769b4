"""The console's own JSON API (/api/...), each route one signed GET to the gateway's admin API.

The browser never reaches the gateway: it asks this server, which forwards a fixed set of read-only
routes with only their known query parameters and answers the admin API's body unchanged (the
numbers on the page are the admin API's, rendered). A refusal keeps its status and its message
(the admin API's messages name rules and fields, never request content).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import unquote

from admin_cli.api import AdminClient, ApiError, CliError, seg

# A route's template names its parts; each part is one path segment of this shape.
_PARTS = {"id": r"[^/]+", "bu": r"[^/]+", "month": r"\d{4}-(?:0[1-9]|1[0-2])"}


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    filename: str | None = None  # a download (Content-Disposition: attachment)


@dataclass(frozen=True)
class Route:
    template: str  # /api/apps/{id}/quotas: also what the log line shows
    pattern: re.Pattern[str]
    admin_path: Callable[[dict[str, str]], str]
    params: tuple[str, ...] = ()


def _route(template: str, admin_path: Callable[[dict[str, str]], str], *params: str) -> Route:
    pattern = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m[1]}>{_PARTS[m[1]]})", template.replace(".", r"\."))
    return Route(template, re.compile(pattern), admin_path, params)


ROUTES: tuple[Route, ...] = (
    _route("/api/apps", lambda m: "apps"),
    _route("/api/apps/{id}", lambda m: f"apps/{seg(m['id'])}"),
    _route("/api/apps/{id}/quotas", lambda m: f"apps/{seg(m['id'])}/quotas"),
    _route("/api/business-units", lambda m: "business-units"),
    _route("/api/deployments", lambda m: "deployments"),
    _route("/api/usage", lambda m: "usage", "from", "to", "group_by"),
    _route("/api/activity", lambda m: "activity", "from", "to", "group_by", "kind"),
    _route("/api/changes", lambda m: "changes", "limit"),
    _route("/api/chargeback", lambda m: "chargeback"),
    _route("/api/chargeback/{month}", lambda m: f"chargeback/{m['month']}"),
    # The business unit's CSV, the bytes the monthly chargeback writes (a download: attachment).
    _route("/api/chargeback/{month}/{bu}.csv", lambda m: f"chargeback/{m['month']}/{seg(m['bu'])}"),
)


def route_name(path: str) -> str | None:
    """The route's template for a log line (its ids masked); None when unknown."""
    return next((route.template for route in ROUTES if route.pattern.fullmatch(path)), None)


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
                params = {name: query[name][-1] for name in route.params if query.get(name, [""])[-1]}
                return self._forward(route.admin_path(groups), params)
        return None

    def _forward(self, admin_path: str, params: dict[str, str]) -> Answer:
        try:
            response = self._client().request("GET", admin_path, params=params or None)
        except CliError as exc:
            return _error(exc)
        # Served as JSON or CSV only, never as the gateway (or a proxy before it) labelled it: nothing
        # it answers can become a page of this origin.
        is_csv = response.headers.get("content-type", "").split(";")[0].strip() == "text/csv"
        content_type = "text/csv" if is_csv else "application/json"
        filename = None
        if is_csv:  # a download, named as the admin API names it
            match = re.search(r'filename="([^"]+)"', response.headers.get("content-disposition", ""))
            filename = match.group(1) if match else admin_path.replace("/", "-") + ".csv"
        return Answer(response.status_code, response.content, content_type, filename)


def _error(exc: CliError) -> Answer:
    if isinstance(exc, ApiError):
        body = {"error": {"status": exc.status, "code": exc.code, "param": exc.param, "message": exc.message}}
        return Answer(exc.status, json.dumps(body).encode("utf-8"))
    body = {"error": {"status": 502, "code": "gateway_unreachable", "message": str(exc)}}
    return Answer(502, json.dumps(body).encode("utf-8"))


def safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
