"""What a registry write changes, worked out from the state it is applied to: shared by the adapters.

Each adapter reads the state (`RegistrySnapshot`, version 0 and empty maps while never written),
asks a `plan_*` function for the `Plan` (entries to write, the change record, the result), and
writes the plan, the next version and the change record in one atomic step that only succeeds if
the version is still the one it read (SQLite: all of it inside one BEGIN IMMEDIATE; DynamoDB: one
TransactWriteItems conditioned on the VERSION item). So two concurrent writers cannot both plan
against the same state: the second re-reads and plans again, and `PrincipalInUse` is decided on
the state the write commits over.

Plans hold configuration only (app and business-unit JSON, deployment switches), never request
content. A plan that changes nothing (`writes_nothing`) is not written: no version, no change.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from chalicelib.identity.principals import canonical_principal
from chalicelib.registry import Change, PrincipalInUse, RegistrySnapshot

EMPTY = RegistrySnapshot(version=0, apps={}, business_units={}, deployments={})
CATALOG_TARGET = "catalog"


@dataclass
class Plan:
    # id -> the JSON to store (with "disabled": true for a deleted app); None: no entry at all
    apps: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    business_units: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    deployments: dict[str, bool] = field(default_factory=dict)
    action: str = ""
    target: str = ""
    before: Any = None
    after: Any = None
    result: Any = None
    always: bool = False  # written even when it changes no entry (a seed)

    @property
    def writes_nothing(self) -> bool:
        return not (self.always or self.apps or self.business_units or self.deployments)

    def change(self, at: str, principal: str) -> Change:
        return Change(at=at, principal=principal, action=self.action, target=self.target,
                      before=self.before, after=self.after)


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _plain(app: Mapping[str, Any]) -> dict[str, Any]:
    """The app as the catalog spells it: a deep copy, without the registry's own `disabled` flag."""
    body = copy.deepcopy(dict(app))
    body.pop("disabled", None)
    return body


def _principals(app: Mapping[str, Any]) -> set[str]:
    return {canonical_principal(arn) for arn in app.get("principal_arns", ())}


def _check_principals(state: RegistrySnapshot, app: Mapping[str, Any],
                      pending: Mapping[str, Mapping[str, Any] | None] = {}) -> None:
    """PrincipalInUse if an enabled app other than `app` holds one of its principals (in `state`
    overlaid with `pending`, the entries this same write also changes)."""
    wanted = _principals(app)
    apps = {**state.apps, **pending}
    for other_id, other in apps.items():
        if other is None or other_id == app["id"] or other.get("disabled"):
            continue
        if wanted & _principals(other):
            raise PrincipalInUse("principal_arns: already held by another enabled app")


def plan_seed(state: RegistrySnapshot, apps: list[Mapping[str, Any]],
              business_units: Mapping[str, Mapping[str, Any]]) -> Plan | None:
    """None when the registry was ever written (seeding happens once)."""
    if state.version > 0:
        return None
    plan = _plan_catalog(EMPTY, apps, business_units, disable_missing=False)
    plan.action, plan.before = "catalog.seed", None
    plan.after = {"apps": {a["id"]: _plain(a) for a in apps},
                  "business_units": {bu: dict(b) for bu, b in business_units.items()}}
    plan.result, plan.always = True, True  # an empty catalog still marks the registry seeded
    return plan


def plan_import(state: RegistrySnapshot, apps: list[Mapping[str, Any]],
                business_units: Mapping[str, Mapping[str, Any]]) -> Plan:
    """The registry's apps and business units become the file's: apps it lacks are disabled
    (history kept), business units it lacks lose their budget. Deployment switches are incident
    state, not the file's, and are kept. The change lists only the entries that differ."""
    plan = _plan_catalog(state, apps, business_units, disable_missing=True)
    plan.action = "catalog.import"
    return plan


def _plan_catalog(state: RegistrySnapshot, apps: list[Mapping[str, Any]],
                  business_units: Mapping[str, Mapping[str, Any]], *, disable_missing: bool) -> Plan:
    plan = Plan(target=CATALOG_TARGET)
    seen: set[str] = set()
    incoming: dict[str, dict[str, Any]] = {}
    for app in apps:
        if app["id"] in seen:
            raise ValueError("apps: duplicate id")
        seen.add(app["id"])
        incoming[app["id"]] = _plain(app)
    if disable_missing:
        for app_id, old in state.apps.items():
            if app_id not in incoming and not old.get("disabled"):
                plan.apps[app_id] = {**_plain(old), "disabled": True}
    for app_id, body in incoming.items():
        if state.apps.get(app_id) != body:
            plan.apps[app_id] = body
    for body in incoming.values():
        _check_principals(state, body, plan.apps)
    for bu, budget in business_units.items():
        if state.business_units.get(bu) != dict(budget):
            plan.business_units[bu] = dict(budget)
    if disable_missing:
        for bu in state.business_units:
            if bu not in business_units:
                plan.business_units[bu] = None
    plan.before = {"apps": {i: state.apps.get(i) for i in plan.apps},
                   "business_units": {bu: state.business_units.get(bu) for bu in plan.business_units}}
    plan.after = {"apps": dict(plan.apps), "business_units": dict(plan.business_units)}
    return plan


def plan_put_app(state: RegistrySnapshot, app: Mapping[str, Any]) -> Plan:
    body = _plain(app)
    _check_principals(state, body)
    before = state.apps.get(body["id"])
    plan = Plan(action="app.put", target=f"app:{body['id']}", before=before, after=body, result=body)
    if before != body:
        plan.apps[body["id"]] = body
    return plan


def plan_disable_app(state: RegistrySnapshot, app_id: str) -> Plan:
    before = state.apps.get(app_id)
    plan = Plan(action="app.delete", target=f"app:{app_id}", before=before, after=None,
                result=before is not None)
    if before is not None and not before.get("disabled"):
        plan.apps[app_id] = {**_plain(before), "disabled": True}
    return plan


def plan_put_business_unit(state: RegistrySnapshot, business_unit: str, budget: Mapping[str, Any]) -> Plan:
    body = dict(budget)
    before = state.business_units.get(business_unit)
    plan = Plan(action="business_unit.put", target=f"business_unit:{business_unit}",
                before=before, after=body, result=body)
    if before != body:
        plan.business_units[business_unit] = body
    return plan


def plan_set_deployment(state: RegistrySnapshot, name: str, enabled: bool) -> Plan:
    before = state.deployments.get(name)
    plan = Plan(action="deployment.put", target=f"deployment:{name}",
                before=None if before is None else {"enabled": before}, after={"enabled": enabled})
    if before is not enabled and not (before is None and enabled):
        plan.deployments[name] = enabled
    return plan


class PlannedWrites:
    """The port's writes, each a plan applied by the adapter's own atomic `_write`."""

    def _write(self, make_plan: Callable[[RegistrySnapshot], "Plan | None"], principal: str) -> Any:
        raise NotImplementedError

    def seed(self, apps: list[Mapping[str, Any]], business_units: Mapping[str, Mapping[str, Any]],
             principal: str) -> bool:
        return bool(self._write(lambda s: plan_seed(s, apps, business_units), principal))

    def put_app(self, app: Mapping[str, Any], principal: str) -> Mapping[str, Any]:
        return self._write(lambda s: plan_put_app(s, app), principal)

    def disable_app(self, app_id: str, principal: str) -> bool:
        return self._write(lambda s: plan_disable_app(s, app_id), principal)

    def put_business_unit(self, business_unit: str, budget: Mapping[str, Any], principal: str) -> Mapping[str, Any]:
        return self._write(lambda s: plan_put_business_unit(s, business_unit, budget), principal)

    def set_deployment(self, name: str, enabled: bool, principal: str) -> None:
        self._write(lambda s: plan_set_deployment(s, name, enabled), principal)

    def import_catalog(self, apps: list[Mapping[str, Any]], business_units: Mapping[str, Mapping[str, Any]],
                       principal: str) -> None:
        self._write(lambda s: plan_import(s, apps, business_units), principal)
