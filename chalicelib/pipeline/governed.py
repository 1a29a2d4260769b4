"""The frame every route runs in: size cap, one deadline, error rendering, and exactly one audit
record, one telemetry line and (chat and embeddings) one usage aggregate update per request,
whatever happens inside."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from chalicelib import controls, deadline
from chalicelib.audit import AuditSink
from chalicelib.errors import GatewayError, InternalError, PayloadTooLarge
from chalicelib.incoming import IncomingRequest
from chalicelib.openai_api import responses
from chalicelib.record import RequestRecord
from chalicelib import tracing as trace_port
from chalicelib.telemetry import Telemetry
from chalicelib.tracing import NO_TRACING, Tracing
from chalicelib.usage_store import UsageRecorder

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


@dataclass(frozen=True, slots=True)
class GatewayResponse:
    status: int
    body: Any  # a JSON-able dict, or the SSE text of a buffered stream
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = JSON


Route = Callable[[IncomingRequest, RequestRecord], GatewayResponse]


class Governed:
    def __init__(
        self,
        *,
        audit: AuditSink,
        telemetry: Telemetry,
        max_body_bytes: int,
        request_timeout_s: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        usage: UsageRecorder | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._audit = audit
        self._tracing = tracing if tracing is not None else NO_TRACING
        self._telemetry = telemetry
        self._usage = usage  # never raises (usage_store/__init__.py): bookkeeping never fails an answer
        self._max_body_bytes = max_body_bytes
        self._timeout_s = request_timeout_s
        self._clock = clock
        self._monotonic = monotonic

    def __call__(self, request: IncomingRequest, route: str, run: Route) -> GatewayResponse:
        started = self._monotonic()
        # One deadline for the whole request, seen by every AWS call made while serving it.
        token = deadline.bind(deadline.Deadline(started + self._timeout_s, deadline.TAIL_S, self._monotonic))
        # The request's trace (None: not traced), seen by every stage's span (chalicelib/tracing/).
        trace = self._tracing.begin(request, route)
        trace_token = trace_port.bind(trace)
        try:
            return self._within(request, route, run, started, trace)
        finally:
            trace_port.unbind(trace_token)
            deadline.unbind(token)

    def deadline_at(self) -> float:
        """The bound request's deadline (monotonic), or a fresh one outside a request."""
        bound = deadline.current()
        return bound.at if bound is not None else self._monotonic() + self._timeout_s

    def now(self) -> float:
        return self._clock()

    def _within(self, request: IncomingRequest, route: str, run: Route, started: float,
                trace: trace_port.RequestTrace | None = None) -> GatewayResponse:
        record = RequestRecord(
            request_id=request.request_id,
            timestamp=datetime.fromtimestamp(self._clock(), timezone.utc).isoformat(timespec="milliseconds"),
            route=route,
        )
        if trace is not None:
            trace.record = record  # AWS call spans name the app and model known so far
        try:
            if len(request.body) > self._max_body_bytes:
                raise PayloadTooLarge(f"request body exceeds {self._max_body_bytes} bytes")
            response = run(request, record)
        except GatewayError as error:
            response = error_response(error)
            record.error_code = error.code
            controls.note_error(record, error)
            # The router names on its errors how far a failed call got: keep that in the record.
            record.attempts = int(error.headers.get("x-garden-attempts", record.attempts))
            record.deployment = error.headers.get("x-garden-deployment", record.deployment)
        except Exception as exc:  # an unexpected fault: the caller gets a request id, nothing else
            self._telemetry.fault(request.request_id, exc)
            error = InternalError(f"internal error; quote request id {request.request_id}")
            response = error_response(error)
            record.error_code = error.code
        record.status = response.status
        # Which controls ran, on every answer (controls.py): rendered from the record, so it says
        # what the audit record says.
        response = replace(response, headers={**response.headers, **controls.header(record)})
        record.latency_ms = round((self._monotonic() - started) * 1000, 3)
        self._audit.write(record, request.body)  # chained, body HMAC'd (audit_chain.py)
        self._telemetry.record(record)
        if self._usage is not None:
            self._usage.record(record)
        if trace is not None:
            # Spans leave before the answer does (Lambda freezes the container after it), within
            # bookkeeping's tail of the deadline.
            bound = deadline.current()
            left = bound.remaining(bookkeeping=True) if bound is not None else deadline.TAIL_S
            trace.finish(record, time.monotonic() + max(0.0, left))
        return response


def error_response(error: GatewayError) -> GatewayResponse:
    return GatewayResponse(error.status, responses.error_body(error), dict(error.headers))


def new_request_id() -> str:
    return str(uuid.uuid4())
