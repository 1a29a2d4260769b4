"""Registry port: the apps, business-unit budgets and deployment switches the platform team changes
at run time, and the log of every change. DynamoDB in AWS, SQLite locally (adapters beside this).

The catalog file stays the reviewable source of models and routes, and seeds an empty registry
with its apps and business units; once seeded, the registry wins. Every write bumps `version`, so a
container can check cheaply whether its cached copy is stale. Entries are the catalog's own JSON
(an app as in the catalog's `apps`, a business unit as in `business_units`), validated by the
catalog schema before they are written. Records hold ids and configuration, never request content.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol


@dataclass(frozen=True, slots=True)
class Change:
    at: str  # ISO 8601 UTC
    principal: str  # the IAM principal that made it (canonical ARN), or "seed" / "import"
    action: str  # e.g. app.put, app.delete, business_unit.put, deployment.put, catalog.import
    target: str  # e.g. "app:demo-app", "business_unit:retail-banking", "deployment:nova-lite"
    before: Any  # the entry before (None when created)
    after: Any  # the entry after (None when deleted)


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    version: int
    apps: Mapping[str, Mapping[str, Any]]  # id -> catalog app JSON (+ "disabled": true when deleted)
    business_units: Mapping[str, Mapping[str, Any]]  # bu -> {"usd_per_month", "tokens_per_month"}
    deployments: Mapping[str, bool] = field(default_factory=dict)  # deployment name -> enabled


class PrincipalInUse(Exception):
    """A principal ARN another (enabled) app already holds: 409 principal_in_use."""


class TooManyChanges(ValueError):
    """One write would change more entries than the store writes atomically (DynamoDB: 98 apps and
    business units per write): import the catalog in parts. A 400, not a 500."""


class Registry(Protocol):
    def version(self) -> int:
        """The current version: one cheap read, for containers checking their cache."""
        ...

    def snapshot(self) -> RegistrySnapshot | None:
        """Everything, at one version; None while the registry has never been seeded."""
        ...

    def seed(self, apps: list[Mapping[str, Any]], business_units: Mapping[str, Mapping[str, Any]],
             principal: str) -> bool:
        """Fill an empty registry (True), or do nothing if it was ever seeded (False)."""
        ...

    def put_app(self, app: Mapping[str, Any], principal: str) -> Mapping[str, Any]:
        """Create or replace an app (re-enabling a deleted one); PrincipalInUse if another enabled
        app holds one of its principal ARNs. Returns the stored app."""
        ...

    def disable_app(self, app_id: str, principal: str) -> bool:
        """Mark an app deleted (its callers get 403 app_disabled; history kept); False if unknown."""
        ...

    def put_business_unit(self, business_unit: str, budget: Mapping[str, Any], principal: str) -> Mapping[str, Any]: ...

    def set_deployment(self, name: str, enabled: bool, principal: str) -> None: ...

    def import_catalog(self, apps: list[Mapping[str, Any]], business_units: Mapping[str, Mapping[str, Any]],
                       principal: str) -> None:
        """Re-apply a catalog file's apps and business units on purpose (recorded as one change)."""
        ...

    def changes(self, limit: int = 100) -> list[Change]:
        """The newest `limit` changes, newest first."""
        ...
