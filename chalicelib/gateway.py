"""Composition root: settings -> adapters -> pipeline, built lazily once per container.

Nothing connects, reads the environment or creates a client at import time. Tests build their own
pipeline with `build_pipeline(settings, **overrides)` and install it with `use(...)`.
"""
from __future__ import annotations

import threading
from typing import Any

from chalicelib.catalog import load_catalog
from chalicelib.pipeline import Pipeline
from chalicelib.settings import Settings

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
    """Every adapter is chosen from `settings`; any of them can be overridden by keyword."""
    parts: dict[str, Any] = {
        "catalog": lambda: load_catalog(settings.catalog_path),
        "identity": lambda: _identity(settings),
        "quota": lambda: _quota(settings),
        "pii": _pii,
        "guardrail": _guardrail,
        "providers": _providers,
        "audit": lambda: _audit(settings),
        "telemetry": _telemetry,
    }
    built = {name: overrides.pop(name) if name in overrides else make() for name, make in parts.items()}
    return Pipeline(
        **built,
        max_body_bytes=settings.max_body_bytes,
        request_timeout_s=settings.request_timeout_s,
        **overrides,
    )


# Adapters are imported where chosen, so a container loads only the ones it uses.

def _identity(settings: Settings) -> Any:
    if settings.identity == "iam":
        from chalicelib.identity.iam import IamContextIdentity

        return IamContextIdentity()
    from chalicelib.identity.local import LocalSigV4Identity
    from chalicelib.identity.local_credentials import LocalCredentials

    return LocalSigV4Identity(LocalCredentials(settings.local_credentials_path), settings.signing_region)


def _quota(settings: Settings) -> Any:
    from chalicelib.quota import QuotaKeeper
    from chalicelib.store.sqlite import SqliteLedger

    return QuotaKeeper(SqliteLedger(settings.home / "garden.sqlite3"), settings.request_timeout_s)


def _pii() -> Any:
    from chalicelib.pii.local import LocalPiiDetector

    return LocalPiiDetector()


def _guardrail() -> Any:
    from chalicelib.guardrails.local import LocalGuardrail

    return LocalGuardrail()


def _providers() -> Any:
    from chalicelib.providers.local_echo import LocalEchoProvider

    return {"local-echo": LocalEchoProvider()}


def _audit(settings: Settings) -> Any:
    from chalicelib.audit import JsonLinesAuditSink

    return JsonLinesAuditSink(settings.home / "audit")


def _telemetry() -> Any:
    from chalicelib.telemetry import LogTelemetry

    return LogTelemetry()
