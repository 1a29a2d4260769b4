"""The catalog the pipeline serves with, current to within `REFRESH_S` seconds.

What lives where:
- The catalog FILE (`GARDEN_CATALOG`) is the reviewable source of models and routes (deployments,
  prices, lifecycle): packaged with the Lambda, changed by a deploy.
- The REGISTRY (chalicelib/registry/: SQLite locally, the `garden-ledger` table in AWS) holds apps,
  business-unit budgets and deployment switches, changed at run time by the admin API. An empty
  registry is seeded once from the file's apps and business units (a change by "seed"); from then
  on the registry wins, and only `import_catalog` (garden-admin catalog import) re-applies a file.

Freshness: a container keeps the catalog it built and, at most every `REFRESH_S` seconds, reads the
registry's version (one small read); only when the version moved does it read the registry and
rebuild. A version read that starts after a write's response sees that write, so every request a
container admits `REFRESH_S` seconds after a write's response or later is served under it. With
REFRESH_S = 20 and the request deadline of at most 26 s, nothing runs under the old configuration
60 s after the write: the issue's bound, with room for the version read itself.

If the registry cannot be read, the container keeps serving the catalog it has (logged) and tries
again after `REFRESH_S`; with none yet, requests get 503 store_unavailable.

The prod stage (`GARDEN_STAGE=prod`) never serves the embedded demo catalog: it refuses (503
`catalog_not_configured`, one log line per refresh) while `GARDEN_CATALOG` is unset, names the
embedded file, or names a file whose JSON equals it; and it never seeds the registry from the file:
until a `catalog import` has filled it, requests get 503 `registry_not_seeded`.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Protocol

from chalicelib.catalog import AppConfigError, BusinessUnit, Catalog, parse_app
from chalicelib.errors import ServiceUnavailable
from chalicelib.identity.principals import canonical_principal
from chalicelib.registry import Registry, RegistrySnapshot

REFRESH_S = 20.0  # how often a container checks the registry's version (see the module docstring)
ENFORCED_WITHIN_S = 60  # the documented bound a change is enforced within, everywhere
SEED_PRINCIPAL = "seed"
PROD_STAGE = "prod"


class CatalogSource(Protocol):
    @property
    def base(self) -> Catalog:
        """The catalog file as loaded: models and routes (which providers a container needs)."""
        ...

    def current(self) -> Catalog:
        """The catalog to serve this request with; ServiceUnavailable when there is none."""
        ...


class FixedCatalog:
    """A catalog that never changes (tests and tools that build their own)."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    @property
    def base(self) -> Catalog:
        return self._catalog

    def current(self) -> Catalog:
        return self._catalog


def as_source(catalog: Catalog | CatalogSource) -> CatalogSource:
    return FixedCatalog(catalog) if isinstance(catalog, Catalog) else catalog


def prod_refusal(stage: str, catalog_path: Path, embedded: Path) -> str | None:
    """Why the prod stage must not serve this catalog file, or None. The rule: with
    GARDEN_STAGE=prod, GARDEN_CATALOG must name a file other than the embedded demo catalog, and
    whose JSON is not the demo's either (a copy of it is refused too)."""
    if stage != PROD_STAGE:
        return None
    demo = "GARDEN_STAGE=prod never serves the embedded demo catalog: set GARDEN_CATALOG to the platform's catalog"
    try:
        if catalog_path.resolve() == embedded.resolve():
            return demo
        if json.loads(catalog_path.read_text(encoding="utf-8")) == json.loads(embedded.read_text(encoding="utf-8")):
            return demo
    except (OSError, ValueError):
        return None  # load_catalog names the file's own problem
    return None


class RegistryCatalog:
    """The file's models and routes with the registry's apps, budgets and switches (see above)."""

    def __init__(self, file: Catalog, file_raw: Mapping[str, Any], registry: Callable[[], Registry], *,
                 seed_from_file: bool = True, refusal: str | None = None, refresh_s: float = REFRESH_S,
                 monotonic: Callable[[], float] = time.monotonic, log: Callable[[dict[str, Any]], None] | None = None,
                 ) -> None:
        self._file = file
        self._file_apps = list(file_raw.get("apps", ()))
        self._file_units = dict(file_raw.get("business_units", {}))
        self._registry = registry
        self._seed_from_file = seed_from_file
        self._refusal = refusal
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._log = log or _log_line
        self._lock = threading.Lock()
        self._cached: Catalog | None = None
        self._version = -1
        self._checked_at: float | None = None
        self._refused_at: float | None = None

    @property
    def base(self) -> Catalog:
        return self._file

    @property
    def version(self) -> int:
        """The registry version the cached catalog was built from (-1: none yet)."""
        return self._version

    def current(self) -> Catalog:
        if self._refusal is not None:
            self._refuse("catalog_not_configured", self._refusal)
        cached, checked = self._cached, self._checked_at
        if cached is not None and checked is not None and self._monotonic() - checked < self._refresh_s:
            return cached
        with self._lock:
            started = self._monotonic()  # before the read: the bound counts from here
            if self._cached is not None and self._checked_at is not None \
                    and started - self._checked_at < self._refresh_s:
                return self._cached  # another thread refreshed meanwhile
            try:
                return self._refresh(started)
            except ServiceUnavailable as exc:
                if exc.code != "store_unavailable" or self._cached is None:
                    raise
                self._checked_at = started  # keep serving what we have; try again later
                self._log({"event": "catalog_refresh_failed", "served_version": self._version,
                           "message": "registry unreadable: serving the cached catalog"})
                return self._cached

    def _refresh(self, started: float) -> Catalog:
        registry = self._registry()
        if self._cached is not None and registry.version() == self._version:
            self._checked_at = started
            return self._cached
        snapshot = registry.snapshot()
        if snapshot is None:
            if not self._seed_from_file:
                self._refuse("registry_not_seeded", "the registry is empty and this stage never seeds it from the "
                             "catalog file: import the platform's catalog (garden-admin catalog import FILE)")
            registry.seed(self._file_apps, self._file_units, SEED_PRINCIPAL)
            snapshot = registry.snapshot()
            if snapshot is None:  # cannot happen once seed returned; keep the request honest
                raise ServiceUnavailable("the registry could not be read", code="store_unavailable")
        catalog = self._build(snapshot)
        self._cached, self._version, self._checked_at = catalog, snapshot.version, started
        return catalog

    def _build(self, snapshot: RegistrySnapshot) -> Catalog:
        models = self._file.models
        apps: dict[str, Any] = {}
        by_principal: dict[str, Any] = {}
        disabled_by_principal: dict[str, Any] = {}
        for app_id in sorted(snapshot.apps):
            try:
                app = parse_app(snapshot.apps[app_id], models)
            except AppConfigError as exc:
                # e.g. an app naming a model a later deploy removed from the file: left out (its
                # callers get 403 unknown_principal) and said so, ids and field only.
                self._log({"event": "registry_app_invalid", "app_id": app_id, "param": exc.param,
                           "registry_version": snapshot.version})
                continue
            if app.id != app_id:
                self._log({"event": "registry_app_invalid", "app_id": app_id, "param": "id",
                           "registry_version": snapshot.version})
                continue
            target = disabled_by_principal if app.disabled else by_principal
            for arn in app.principal_arns:
                target.setdefault(canonical_principal(arn), app)
            if not app.disabled:
                apps[app.id] = app
        units = {bu: BusinessUnit(bu, float(b["usd_per_month"]) if "usd_per_month" in b else None,
                                  b.get("tokens_per_month"))
                 for bu, b in snapshot.business_units.items()}
        disabled = frozenset(name for name, enabled in snapshot.deployments.items() if not enabled)
        # An enabled app's principal wins; a deleted app's principal still names it (403 app_disabled).
        return Catalog(models, MappingProxyType(apps), MappingProxyType({**disabled_by_principal, **by_principal}),
                       MappingProxyType(units), disabled)

    def _refuse(self, code: str, message: str) -> None:
        now = self._monotonic()
        if self._refused_at is None or now - self._refused_at >= self._refresh_s:
            self._refused_at = now
            self._log({"event": "catalog_refused", "code": code, "message": message})
        raise ServiceUnavailable(message, code=code)


def _log_line(fields: Mapping[str, Any]) -> None:
    from chalicelib.telemetry import gateway_logger  # the request lines' stream and format

    gateway_logger().warning(json.dumps({"level": "WARNING", **fields}, separators=(",", ":")))
