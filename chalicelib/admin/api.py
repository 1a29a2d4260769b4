"""The admin API's routes (/admin/v1): apps, business-unit budgets, deployment switches, the change
log, usage and chargeback; and what the console's pages read (an app's quota windows, policy
activity by code, the chargeback months). It reads and writes the registry port and reads the usage
aggregates port and (through a reader gateway.build_admin hands in: nothing reserved) the limits
ledger; the request path picks changes up from the registry (within its cache bound), never from here.
"""
from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from chalicelib.admin.frame import AdminFrame, AdminResponse, Conflict
from chalicelib.admin.validation import (UsageQuery, app_entry, business_unit_entry, catalog_entries,
                                         enabled_flag, json_body, month_param, month_value)
from chalicelib.catalog import App, AppConfigError, BusinessUnit, Catalog, parse_app
from chalicelib.errors import InvalidRequest, NotFound, ServiceUnavailable
from chalicelib.incoming import IncomingRequest
from chalicelib.registry import Change, PrincipalInUse, Registry, RegistrySnapshot, TooManyChanges
from chalicelib.usage import GROUP_KEYS, METRICS, UsageStore, group_counts, group_usage

CSV = "text/csv"
MAX_CHANGES = 1000


class AdminApi:
    def __init__(self, *, frame: AdminFrame, registry: Callable[[], Registry], usage: Callable[[], UsageStore],
                 catalog: Catalog, chargeback: Callable[[str, UsageStore, Mapping[str, Any]], Any] | None = None,
                 quota_windows: Callable[[App, BusinessUnit | None, float], Sequence[Any]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        """`registry`, `usage`: factories called on first use (a list of apps never opens the usage
        store); `chargeback(month, usage, budgets)` runs a month's chargeback (chargeback.py
        `run_chargeback`) and returns its summary; `quota_windows(app, business_unit, now)` reads
        an app's limits in their current windows (chalicelib/quota_windows.py `window_use`)."""
        self._frame = frame
        self._registry = registry
        self._usage = usage
        self._quota_windows = quota_windows
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

    # --- what the console's pages read

    def app_quotas(self, request: IncomingRequest, app_id: str) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            from chalicelib.admin.quota_windows import business_unit, window_row

            _no_query(req)
            snapshot = self._snapshot()
            raw = snapshot.apps.get(app_id)
            if raw is None:
                raise _no_app()
            if self._quota_windows is None:
                raise ServiceUnavailable("the limits ledger is not configured here", code="store_unavailable")
            try:
                app = parse_app(raw, self._catalog.models)
            except AppConfigError as exc:  # as the request path: such an app is not served
                raise Conflict(f"the stored app breaks the catalog's rules at {exc.param}: it is not served",
                               param=exc.param, code="app_invalid") from None
            now = self._clock()
            uses = self._quota_windows(app, business_unit(snapshot.business_units, app.business_unit), now)
            rows = [window_row(use) for use in uses]
            return AdminResponse(200, {"object": "app.quotas", "app_id": app.id, "business_unit": app.business_unit,
                                       "at": _iso(now), "data": rows})

        return self._frame(request, "admin.apps.quotas", run)

    def activity(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            query = UsageQuery(req.query, self._today(), kinds=True)
            rows = group_counts(self._usage().totals(query.from_day, query.to_day), query.group_by, query.kinds)
            if query.format == "csv":
                columns = [key for name, key in GROUP_KEYS.items() if name in query.group_by] + ["kind", "code", "count"]
                return AdminResponse(200, _table(rows, columns), content_type=CSV)
            return AdminResponse(200, {"object": "list", "data": rows})

        return self._frame(request, "admin.activity", run)

    def chargeback_months(self, request: IncomingRequest) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            from chalicelib.admin.chargeback_view import months

            _no_query(req)
            return AdminResponse(200, {"object": "list", "data": months(self._today(), self._usage())})

        return self._frame(request, "admin.chargeback.months", run)

    def chargeback_month(self, request: IncomingRequest, month: str) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            _no_query(req)
            summary, _ = self._month_report(month)
            return AdminResponse(200, summary)

        return self._frame(request, "admin.chargeback.get", run)

    def chargeback_csv(self, request: IncomingRequest, month: str, business_unit: str) -> AdminResponse:
        def run(req: IncomingRequest, principal: str) -> AdminResponse:
            _no_query(req)
            _, files = self._month_report(month)
            body = files.get(business_unit)
            if body is None:
                raise NotFound("the month has no chargeback for this business unit", param="business_unit",
                               code="business_unit_not_found")
            return AdminResponse(200, body.decode("utf-8"), content_type=CSV, headers={
                "content-disposition": f'attachment; filename="chargeback-{month}-{business_unit}.csv"'})

        return self._frame(request, "admin.chargeback.csv", run)

    # --- helpers

    def _today(self) -> Any:
        return datetime.fromtimestamp(self._clock(), timezone.utc).date()

    def _month_report(self, month: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        from chalicelib.admin.chargeback_view import month_report

        today = self._today()
        month = month_param(month, today)
        return month_report(month, today, self._usage(), self._snapshot().business_units, self._clock)

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


def _no_query(request: IncomingRequest) -> None:
    extra = sorted(request.query or {})
    if extra:
        raise InvalidRequest(f"{extra[0]}: is not a parameter of this route (it takes none)", param=extra[0],
                             code="unknown_parameter")


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[c] for c in columns])
    return out.getvalue()


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
