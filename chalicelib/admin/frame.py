"""The admin API's frame: who is calling and may they, one audit record and one telemetry line per
request, OpenAI-shaped errors. Its own, small: the admin room does not reach into the request
pipeline; it shares only the ports (identity, audit, telemetry) and the record's shape.

Admins (GARDEN_ADMIN_PRINCIPALS) may call every route; readers (GARDEN_ADMIN_READERS) every GET;
everyone else, an app's principal included, gets 403. The record names the route
(`admin.apps.put`...), the caller and the outcome: ids only, never what was sent.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from chalicelib.audit import AuditSink
from chalicelib.errors import GatewayError, InternalError, PayloadTooLarge, PermissionDenied
from chalicelib.identity import Identity
from chalicelib.identity.principals import canonical_principal
from chalicelib.incoming import IncomingRequest
from chalicelib.openai_api.responses import error_body
from chalicelib.record import RequestRecord
from chalicelib.telemetry import Telemetry

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class AdminResponse:
    """What web.respond renders (the same fields as the pipeline's GatewayResponse)."""

    status: int
    body: Any  # a JSON-able value, or text (CSV)
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


Handler = Callable[[IncomingRequest, str], AdminResponse]  # (request, caller's canonical principal)


class AdminFrame:
    def __init__(self, *, identity: Identity, audit: AuditSink, telemetry: Telemetry,
                 admins: frozenset[str], readers: frozenset[str], max_body_bytes: int,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._identity = identity
        self._audit = audit
        self._telemetry = telemetry
        self._admins = frozenset(canonical_principal(a) for a in admins)
        self._readers = frozenset(canonical_principal(r) for r in readers)
        self._max_body_bytes = max_body_bytes
        self._clock = clock
        self._monotonic = monotonic

    def __call__(self, request: IncomingRequest, route: str, handler: Handler) -> AdminResponse:
        started = self._monotonic()
        record = RequestRecord(
            request_id=request.request_id or str(uuid.uuid4()),
            timestamp=datetime.fromtimestamp(self._clock(), timezone.utc).isoformat(timespec="milliseconds"),
            route=route,
        )
        try:
            principal = self._authorize(request, record)
            if len(request.body) > self._max_body_bytes:
                raise PayloadTooLarge(f"request body exceeds {self._max_body_bytes} bytes")
            response = handler(request, principal)
        except GatewayError as error:
            response = error_response(error)
            record.error_code = error.code
        except Exception as exc:  # unexpected: the caller gets a request id, the log the class only
            self._telemetry.fault(record.request_id, exc)
            error = InternalError(f"internal error; quote request id {record.request_id}")
            response = error_response(error)
            record.error_code = error.code
        record.status = response.status
        record.latency_ms = round((self._monotonic() - started) * 1000, 3)
        self._audit.write(record, request.body)  # the same trail: chained, body HMAC'd (audit_chain.py)
        self._telemetry.record(record)
        return response

    def _authorize(self, request: IncomingRequest, record: RequestRecord) -> str:
        principal = canonical_principal(self._identity.principal(request))  # 403 when unsigned or bad
        record.principal = principal
        if principal in self._admins:
            return principal
        if principal in self._readers:
            if request.method in ("GET", "HEAD"):
                return principal
            raise PermissionDenied("read-only auditors (GARDEN_ADMIN_READERS) may only call GET on the admin API",
                                   code="admin_read_only")
        raise PermissionDenied("the admin API is for the platform team's principals (GARDEN_ADMIN_PRINCIPALS, "
                               "GARDEN_ADMIN_READERS)", code="not_an_admin")


def error_response(error: GatewayError) -> AdminResponse:
    return AdminResponse(error.status, error_body(error), dict(error.headers))
