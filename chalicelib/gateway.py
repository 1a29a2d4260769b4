"""Composition root: settings -> adapters -> pipeline, built lazily once per container.

Nothing connects, reads the environment or creates a client at import time. Tests build their own
pipeline with `build_pipeline(settings, **overrides)` and install it with `use(...)`.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Mapping

from chalicelib.audit import FallbackAuditSink
from chalicelib.aws.clients import aws_client
from chalicelib.catalog import load_catalog
from chalicelib.catalog_source import PROD_STAGE, CatalogSource, RegistryCatalog, as_source, prod_refusal
from chalicelib.lazy import OnFirstUse
from chalicelib.pipeline import Pipeline
from chalicelib.providers.wiring import build_providers
from chalicelib.settings import DEFAULT_CATALOG, Settings
from chalicelib.tracing import NoTracing
from chalicelib.usage_store import UsageRecorder

_lock = threading.Lock()
_pipeline: Pipeline | None = None


def pipeline() -> Pipeline:
    """The container's pipeline, built on first use from the environment."""
    global _pipeline
    if _pipeline is None:
        with _lock:
            if _pipeline is None:
                _pipeline = build_pipeline(Settings.from_env())
    return _pipeline


def use(new: Pipeline | None) -> None:
    """Install a pipeline (tests, benchmarks); None rebuilds from the environment on next use."""
    global _pipeline
    with _lock:
        _pipeline = new


def build_pipeline(settings: Settings, **overrides: Any) -> Pipeline:
    """Every adapter is chosen from `settings`; any of them can be overridden by keyword
    (`catalog`, `identity`, `quota`, `pii`, `guardrail`, `providers`, `router`, `audit`,
    `telemetry`, `usage`, and the pipeline's own `clock` / `monotonic`). A `catalog` override (a Catalog)
    is served as is; else the catalog file's models with the registry's apps (catalog_source.py)."""
    source = as_source(overrides.pop("catalog", None) or catalog_source(settings))
    providers = overrides.pop("providers", None)
    tracer = overrides.pop("tracing", None) or _tracing(settings)
    traced = not isinstance(tracer, NoTracing)
    parts: dict[str, Any] = {
        "identity": lambda: _identity(settings),
        "quota": lambda: _quota(settings),
        "pii": lambda: _pii(settings),
        "guardrail": lambda: _guardrail(settings),
        "router": lambda: _router(settings, source, providers, traced),
        "audit": lambda: _audit(settings),
        "telemetry": _telemetry,
        "usage": lambda: _usage(settings),
    }
    built = {name: overrides.pop(name) if name in overrides else make() for name, make in parts.items()}
    # Every sink, overridden or not: a failed audit write never fails the request nor loses the record.
    # Then chained (audit_chain.py): each record links to the one before and is checkpointed.
    built["audit"] = _audit_trail(settings, FallbackAuditSink(built["audit"], built["telemetry"]),
                                  built["telemetry"])
    # Likewise the usage aggregates (a `usage` store, or None: not recorded): a failed write is logged.
    built["usage"] = UsageRecorder(built["usage"]) if built["usage"] is not None else None
    built["tracing"] = tracer
    if traced:  # spans around the quota keeper and the audit sink (tracing/wrappers.py)
        from chalicelib.tracing.wrappers import wrap_ports

        wrap_ports(built)
    return Pipeline(
        catalog=source,
        **built,
        max_body_bytes=settings.max_body_bytes,
        request_timeout_s=settings.request_timeout_s,
        **overrides,
    )


def catalog_source(settings: Settings, registry: Any = None) -> RegistryCatalog:
    """The catalog file's models and routes with the registry's apps, budgets and switches, the
    registry seeded from the file when empty, except on the prod stage (catalog_source.py)."""
    import json

    file = load_catalog(settings.catalog_path)
    raw = json.loads(settings.catalog_path.read_text(encoding="utf-8"))  # load_catalog validated it
    return RegistryCatalog(
        file, raw, (lambda: registry) if registry is not None else OnFirstUse(lambda: _registry(settings)),
        seed_from_file=settings.stage != PROD_STAGE,
        refusal=prod_refusal(settings.stage, settings.catalog_path, DEFAULT_CATALOG),
        refresh_s=settings.registry_refresh_s)


def lifecycle_check(settings: Settings | None = None) -> Any:
    """The scheduled lifecycle check (lifecycle_check.py): the catalog, and a `bedrock` control-plane
    client per region, made on first use like every client here (AWS_ENDPOINT_URL_BEDROCK
    honoured). It runs with the function's own role: the operations account's role is for calls
    made on behalf of an app."""
    from chalicelib.lifecycle_check import LifecycleCheck
    from chalicelib.telemetry import gateway_logger  # the request lines' stream and format

    settings = settings or Settings.from_env()
    return LifecycleCheck(load_catalog(settings.catalog_path),
                          lambda region: aws_client("bedrock", region, read_timeout=5)(),
                          settings.bedrock_region, gateway_logger())


def scheduled_chargeback(event_time: str | None) -> Any:
    """The monthly chargeback task (chargeback.py) over this container's registry and settings."""
    from chalicelib.chargeback import scheduled_chargeback as run

    settings = Settings.from_env()
    return run(event_time, settings, _registry(settings))


_admin: Any = None


def admin() -> Any:
    """The container's admin API (chalicelib/admin/), built on first use: a container serving only
    /v1 never loads it, and the request path never imports it."""
    global _admin
    if _admin is None:
        with _lock:
            if _admin is None:
                _admin = build_admin(Settings.from_env())
    return _admin


def use_admin(new: Any) -> None:
    """Install an admin API (tests); None rebuilds it from the environment on next use."""
    global _admin
    with _lock:
        _admin = new


def build_admin(settings: Settings, **overrides: Any) -> Any:
    """The admin API over the same ports as the pipeline: identity, audit, telemetry, the registry
    and the usage aggregates (`catalog`, `identity`, `audit`, `telemetry`, `registry`, `usage`,
    `ledger`, `chargeback` may be overridden by keyword)."""
    from chalicelib.admin import AdminApi, AdminFrame

    catalog = overrides.pop("catalog", None) or load_catalog(settings.catalog_path)
    telemetry = overrides.pop("telemetry", None) or _telemetry()
    frame = AdminFrame(
        identity=overrides.pop("identity", None) or _identity(settings),
        audit=_audit_trail(settings, FallbackAuditSink(overrides.pop("audit", None) or _audit(settings), telemetry),
                           telemetry),
        telemetry=telemetry, admins=settings.admin_principals, readers=settings.admin_readers,
        max_body_bytes=settings.max_body_bytes)
    registry = overrides.pop("registry", None)
    usage = overrides.pop("usage", None)
    ledger = overrides.pop("ledger", None)
    return AdminApi(
        frame=frame, catalog=catalog,
        registry=(lambda: registry) if registry is not None else OnFirstUse(lambda: _seeded_registry(settings)),
        usage=(lambda: usage) if usage is not None else OnFirstUse(lambda: _usage(settings)),
        quota_windows=_quota_windows(settings, catalog, ledger),
        chargeback=overrides.pop("chargeback", None) or (lambda month, usage_store, budgets: _chargeback(
            settings, month, usage_store, budgets)),
        **overrides)


def _quota_windows(settings: Settings, catalog: Any, ledger: Any = None) -> Callable[..., Any]:
    """The admin room's read of an app's quota windows (chalicelib/quota_windows.py): the request
    path's windows over the ledger, counters read, nothing reserved or leased. Composed here, so the
    admin room imports no request-path module."""
    store = (lambda: ledger) if ledger is not None else OnFirstUse(lambda: _ledger(settings))

    def read(app: Any, unit: Any, now: float) -> Any:
        from chalicelib.quota_windows import window_use

        return window_use(store(), app, unit, catalog.models, now)

    return read


def _seeded_registry(settings: Settings) -> Any:
    """The registry, seeded from the catalog file if it never was (a no-op once seeded), as the
    request path seeds it; never on the prod stage, whose catalog is imported on purpose."""
    import json

    registry = _registry(settings)
    if settings.stage != "prod":
        raw = json.loads(settings.catalog_path.read_text(encoding="utf-8"))  # load_catalog validated it
        registry.seed(raw["apps"], raw.get("business_units", {}), "seed")
    return registry


def _registry(settings: Settings) -> Any:
    if settings.store == "dynamodb":
        from chalicelib.registry.dynamodb import DynamoDbRegistry

        return DynamoDbRegistry(aws_client("dynamodb", settings.aws_region, read_timeout=2, bookkeeping=True),
                                settings.ledger_table)
    from chalicelib.registry.sqlite import SqliteRegistry

    return SqliteRegistry(settings.home / "garden.sqlite3")


def _usage(settings: Settings) -> Any:
    if settings.store == "dynamodb":
        from chalicelib.usage_store.dynamodb import DynamoDbUsageStore

        return DynamoDbUsageStore(aws_client("dynamodb", settings.aws_region, read_timeout=2, bookkeeping=True),
                                  settings.ledger_table)
    from chalicelib.usage_store.sqlite import SqliteUsageStore

    return SqliteUsageStore(settings.home / "garden.sqlite3")


def _chargeback(settings: Settings, month: str, usage: Any, budgets: Any) -> Any:
    from chalicelib.chargeback import run_chargeback

    return run_chargeback(month, settings, usage=usage, budgets=budgets)


# Adapters are imported where chosen, so a container loads only the ones it uses.

def _identity(settings: Settings) -> Any:
    if settings.identity == "iam":
        from chalicelib.identity.iam import IamContextIdentity

        return IamContextIdentity()
    from chalicelib.identity.local import LocalSigV4Identity
    from chalicelib.identity.local_credentials import LocalCredentials

    return LocalSigV4Identity(LocalCredentials(settings.local_credentials_path), settings.signing_region,
                              settings.served_hosts)


def _quota(settings: Settings) -> Any:
    from chalicelib.quota import QuotaKeeper

    return QuotaKeeper(_ledger(settings), settings.request_timeout_s)


def _ledger(settings: Settings) -> Any:
    if settings.store == "dynamodb":
        from chalicelib.store.dynamodb import DynamoDbLedger

        return DynamoDbLedger(aws_client("dynamodb", settings.aws_region, read_timeout=2, bookkeeping=True),
                              settings.ledger_table)
    from chalicelib.store.sqlite import SqliteLedger

    return SqliteLedger(settings.home / "garden.sqlite3")


def _pii(settings: Settings) -> Any:
    if settings.pii == "comprehend":
        from chalicelib.pii.comprehend import ComprehendPiiDetector

        return ComprehendPiiDetector(aws_client("comprehend", settings.aws_region, read_timeout=3))
    from chalicelib.pii.local import LocalPiiDetector

    return LocalPiiDetector()


def _guardrail(settings: Settings) -> Any:
    from chalicelib.guardrails.local import LocalGuardrail

    if settings.guardrail == "bedrock":
        from chalicelib.guardrails.bedrock import BedrockGuardrail
        from chalicelib.guardrails.chain import GuardrailChain

        bedrock: Any = BedrockGuardrail(aws_client("bedrock-runtime", settings.aws_region, read_timeout=3))
        if settings.bedrock_guardrail_id:  # the platform's guardrail for apps that name none
            from chalicelib.guardrails.platform_default import PlatformDefault

            bedrock = PlatformDefault(bedrock, settings.bedrock_guardrail_id, settings.bedrock_guardrail_version)
        return GuardrailChain(LocalGuardrail(), bedrock)
    return LocalGuardrail()


def _router(settings: Settings, source: CatalogSource, providers: Mapping[str, Any] | None,
            traced: bool = False) -> Any:
    from chalicelib.router import CircuitBreaker, Router

    breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown_s)
    # The kill switch: the current catalog's switched-off deployments, read per request.
    routed = providers or build_providers(settings, source.base)
    if traced:  # one CLIENT span per provider attempt (tracing/wrappers.py)
        from chalicelib.tracing.wrappers import wrap_providers

        routed = wrap_providers(routed, traced)
    return Router(routed, breaker, settings.bedrock_region,
                  disabled=lambda: source.current().disabled_deployments)


def _audit(settings: Settings) -> Any:
    if settings.audit == "s3":
        from chalicelib.audit_s3 import S3AuditSink

        return S3AuditSink(aws_client("s3", settings.aws_region, read_timeout=2, bookkeeping=True),
                           settings.audit_bucket or "", settings.bu_keys, settings.bu_keys["_unidentified"])
    from chalicelib.audit import JsonLinesAuditSink

    return JsonLinesAuditSink(settings.home / "audit")


def _audit_trail(settings: Settings, sink: Any, telemetry: Any) -> Any:
    """The tamper-evident trail over `sink`: keys, checkpoint signer and chain registry (audit_trail.py)."""
    from chalicelib.audit_trail import build_audit_trail

    return build_audit_trail(settings, sink, telemetry, aws_client)


def _tracing(settings: Settings) -> Any:
    """The no-op adapter unless GARDEN_TRACING or OTEL_EXPORTER_OTLP_* say otherwise (chalicelib/tracing/):
    with tracing off nothing of OpenTelemetry is imported."""
    import os

    from chalicelib.tracing import from_settings

    return from_settings(settings.tracing, os.environ)


def _telemetry() -> Any:
    from chalicelib.telemetry import LogTelemetry

    return LogTelemetry()
