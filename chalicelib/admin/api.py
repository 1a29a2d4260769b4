"""The admin API's routes (/admin/v1): apps, business-unit budgets, deployment switches, the change
log, usage and chargeback. It reads and writes the registry port and reads the usage aggregates
port; the request path picks changes up from the registry (within its cache bound), never from here.
"""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping

from chalicelib.admin.frame import AdminFrame, AdminResponse, Conflict
from chalicelib.admin.validation import (UsageQuery, app_entry, business_unit_entry, catalog_entries,
                                         enabled_flag, json_body, month_value)
from chalicelib.catalog import Catalog
from chalicelib.errors import InvalidRequest, NotFound, ServiceUnavailable
from chalicelib.incoming import IncomingRequest
from chalicelib.registry import Change, PrincipalInUse, Registry, RegistrySnapshot, TooManyChanges
from chalicelib.usage import GROUP_KEYS, METRICS, UsageStore, group_usage

CSV = "text/csv"
MAX_CHANGES = 1000


class AdminApi:
    def __init__(self, *, frame: AdminFrame, registry: Callable[[], Registry], usage: Callable[[], UsageStore],
                 catalog: Catalog, chargeback: Callable[[str, UsageStore, Mapping[str, Any]], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`registry`, `usage`: factories called on first use (a list of apps never opens the usage
        store); `chargeback(month, usage, budgets)` runs a month's chargeback (chargeback.py
        `run_chargeback`) and returns its summary."""
        self._frame = frame
        self._registry = registry
        self._usage = usage
        self._catalog = catalog
        self._chargeback = chargeback
        self._clock = clock

    # --- apps

    def list_apps(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            apps = self._snapshot().apps
            return AdminResponse(200, {"object": "list", "data": [dict(apps[a]) for a in sorted(apps)]})

        return self._frame(request, "admin.apps.list", run)

    def get_app(self, request: IncomingRequest, app_id: str) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            return AdminResponse(200, dict(self._app(app_id)))

        return self._frame(request, "admin.apps.get", run)

    def put_app(self, request: IncomingRequest, app_id: str) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            raw = json_body(req.body)
            if isinstance(raw, dict) and "disabled" in raw:  # as GET shows a deleted app: a PUT re-enables it
                if raw["disabled"] is not False:
                    raise InvalidRequest("disabled: a PUT stores an enabled app; DELETE disables one",
                                         param="disabled", code="invalid_value")
                raw = {k: v for k, v in raw.items() if k != "disabled"}
            app = app_entry(app_id, raw, self._catalog.models)
            try:
                stored = self._registry().put_app(app, principal)
            except PrincipalInUse:
                raise Conflict("one of principal_arns already belongs to another app", param="principal_arns",
                               code="principal_in_use") from None
            return AdminResponse(200, dict(stored))

        return self._frame(request, "admin.apps.put", run)

    def delete_app(self, request: IncomingRequest, app_id: str) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            if not self._registry().disable_app(app_id, principal):
                raise _no_app()
            return AdminResponse(200, {"id": app_id, "deleted": True})

        return self._frame(request, "admin.apps.delete", run)

    # --- business units

    def list_business_units(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            units = self._snapshot().business_units
            return AdminResponse(200, {"object": "list",
                                       "data": [{"id": bu, **units[bu]} for bu in sorted(units)]})

        return self._frame(request, "admin.business_units.list", run)

    def put_business_unit(self, request: IncomingRequest, business_unit: str) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            budget = business_unit_entry(business_unit, json_body(req.body))
            stored = self._registry().put_business_unit(business_unit, budget, principal)
            return AdminResponse(200, {"id": business_unit, **stored})

        return self._frame(request, "admin.business_units.put", run)

    # --- deployments (the kill switch)

    def list_deployments(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            state = self._snapshot().deployments
            return AdminResponse(200, {"object": "list", "data": [
                self._deployment(name, routes, state) for name, routes in sorted(self._routes().items())]})

        return self._frame(request, "admin.deployments.list", run)

    def put_deployment(self, request: IncomingRequest, name: str) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            routes = self._routes()
            if name not in routes:
                raise NotFound("no deployment of the catalog has this name", param="name",
                               code="deployment_not_found")
            enabled = enabled_flag(json_body(req.body))
            self._registry().set_deployment(name, enabled, principal)
            return AdminResponse(200, self._deployment(name, routes[name], {name: enabled}))

        return self._frame(request, "admin.deployments.put", run)

    # --- the change log

    def list_changes(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            query = req.query or {}
            extra = sorted(set(query) - {"limit"})
            if extra:
                raise InvalidRequest(f"{extra[0]}: is not a parameter of this route (limit)", param=extra[0],
                                     code="unknown_parameter")
            limit = _limit(query.get("limit"))
            changes = self._registry().changes(limit)
            return AdminResponse(200, {"object": "list", "data": [_change(c) for c in changes]})

        return self._frame(request, "admin.changes.list", run)

    # --- the catalog file, re-applied on purpose

    def import_catalog(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            apps, units = catalog_entries(json_body(req.body), self._catalog.models)
            try:
                self._registry().import_catalog(apps, units, principal)
            except PrincipalInUse:
                raise Conflict("an app of the file names a principal another app already holds",
                               param="apps", code="principal_in_use") from None
            except TooManyChanges:
                raise InvalidRequest("the file changes more apps and budgets than one registry write holds: "
                                     "import it in parts", param="apps", code="too_many_changes") from None
            return AdminResponse(200, {"object": "catalog.import", "apps": [a["id"] for a in apps],
                                       "business_units": sorted(units)})

        return self._frame(request, "admin.catalog.import", run)

    # --- usage and chargeback

    def usage(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            query = UsageQuery(req.query, datetime.fromtimestamp(self._clock(), timezone.utc).date())
            rows = group_usage(self._usage().totals(query.from_day, query.to_day), query.group_by)
            if query.format == "csv":
                return AdminResponse(200, _csv(rows, query.group_by), content_type=CSV)
            return AdminResponse(200, {"object": "list", "data": rows})

        return self._frame(request, "admin.usage", run)

    def chargeback(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            month = month_value(json_body(req.body))
            if self._chargeback is None:
                raise ServiceUnavailable("chargeback is not configured on this stage", code="chargeback_unavailable")
            # The month's aggregates and the budgets as the registry holds them now.
            summary = self._chargeback(month, self._usage(), self._snapshot().business_units)
            return AdminResponse(200, dict(summary))

        return self._frame(request, "admin.chargeback.run", run)

    # --- helpers

    def _snapshot(self) -> RegistrySnapshot:
        snapshot = self._registry().snapshot()
        if snapshot is None:  # never seeded: nothing registered yet
            return RegistrySnapshot(version=0, apps={}, business_units={}, deployments={})
        return snapshot

    def _app(self, app_id: str) -> Mapping[str, Any]:
        app = self._snapshot().apps.get(app_id)
        if app is None:
            raise _no_app()
        return app

    def _routes(self) -> dict[str, list[dict[str, Any]]]:
        """Deployment name -> where it serves: (model, provider, model_id, region) per route."""
        routes: dict[str, list[dict[str, Any]]] = {}
        for model in self._catalog.models.values():
            for d in model.deployments:
                routes.setdefault(d.name, []).append(
                    {"model": model.id, "provider": d.provider, "model_id": d.model_id, "region": d.region})
        return routes

    @staticmethod
    def _deployment(name: str, routes: list[dict[str, Any]], state: Mapping[str, bool]) -> dict[str, Any]:
        return {"name": name, "enabled": state.get(name, True), "routes": routes}


def _no_app() -> NotFound:
    return NotFound("no app has this id", param="id", code="app_not_found")


def _limit(values: list[str] | None) -> int:
    if not values:
        return 100
    try:
        limit = int(values[-1])
    except ValueError:
        limit = 0
    if len(values) > 1 or not 1 <= limit <= MAX_CHANGES:
        raise InvalidRequest(f"limit: a number from 1 to {MAX_CHANGES}", param="limit", code="invalid_value")
    return limit


def _change(change: Change) -> dict[str, Any]:
    return {"at": change.at, "principal": change.principal, "action": change.action, "target": change.target,
            "before": change.before, "after": change.after}


def _csv(rows: list[dict[str, Any]], group_by: tuple[str, ...]) -> str:
    """The JSON rows as CSV: grouped keys first (in the contract's order), then the metrics; costs as
    plain decimals (0.000375), exact."""
    columns = [key for name, key in GROUP_KEYS.items() if name in group_by] + list(METRICS)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_plain(row[c]) if c == "cost_usd" else row[c] for c in columns])
    return out.getvalue()


def _plain(cost: Any) -> str:
    text = format(Decimal(repr(cost)).normalize(), "f")
    return text
