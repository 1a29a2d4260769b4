"""The one record of a request: metadata only, shared by audit and telemetry.

There is no field for text. Anything added here must be an id, a number, a category or a time.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    timestamp: str  # ISO 8601, UTC
    route: str
    status: int = 0
    error_code: str | None = None
    app_id: str | None = None
    business_unit: str | None = None
    principal: str | None = None
    model: str | None = None  # the catalog model that served
    upgraded_from: str | None = None  # the retired catalog model the caller named, when auto-upgraded
    deployment: str | None = None
    attempts: int = 0  # deployments called
    stream: bool = False
    finish_reason: str | None = None
    reserved_tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    completion_tokens: int = 0
    cost_usd: float = 0.0
    pii: dict[str, int] = field(default_factory=dict)  # "<TYPE>:<ACTION>" -> count, in and out
    guardrail: list[str] = field(default_factory=list)  # "<INPUT|OUTPUT>:<CATEGORY>"
    quota_store: str | None = None  # "UNAVAILABLE:FAIL_OPEN": the quota store was down, served unmetered
    latency_ms: float = 0.0
    # The audit chain (audit_chain.py), set as the record is written, so an audit_fallback line
    # carries its place too: chain, position, the previous record's hash and request id, and the
    # HMAC-SHA256 of the request body under the data plane's secret (never the body).
    chain_id: str | None = None
    seq: int = 0
    prev_hash: str | None = None
    prev_request_id: str | None = None
    body_hmac: str | None = None
    # Which controls ran and what each decided (controls.py: stage -> verdict or counts, never content);
    # the x-garden-controls header is rendered from it.
    controls: dict[str, str] = field(default_factory=dict)
    upstream_throttles: int = 0  # provider attempts that answered "throttled" (router.py)
    fallbacks: int = 0  # deployments passed over (failed or breaker open) before the last one called
    breaker_opens: int = 0  # circuits this request's failures opened
    budget_pace: float | None = None  # the app's business unit: USD spent / budget to date (quota.py)

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose (dataclasses.asdict deep-copies): the values are JSON-ready already.
        return {name: getattr(self, name) for name in _FIELDS}


_FIELDS = tuple(f.name for f in fields(RequestRecord))
