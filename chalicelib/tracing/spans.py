"""The child spans of a request's trace: recorded by the adapter itself, under the SDK's root span.

Why not one SDK span each: through `Tracer.start_span` a span costs ~18 µs of CPU (sampler, locks,
attribute validation, a ReadableSpan copy at its end), and a chat has nine children: ~0.16 ms, a
third of tracing's whole budget (at most half the pipeline's own CPU, bench/tracing_cost.py). The
SDK still decides everything that makes them OpenTelemetry spans: the root span, the sampling
decision (a child exists only when the root records), the trace id, each span id (the provider's
id generator: X-Ray's under X-Ray), the resource, and propagation (`context()` gives the SDK's
SpanContext, so W3C and X-Ray headers are the SDK propagators' own). A child here is a few
slots written once; the OTLP encoder writes it (otlp.py).
"""
from __future__ import annotations

import time
from typing import Any, Mapping

INTERNAL, CLIENT = 1, 3  # OTLP's SpanKind numbers
ERROR = 2  # OTLP's Status code


class ChildSpan:
    __slots__ = ("trace_id", "span_id", "parent_id", "name", "kind", "start_time", "end_time", "attributes",
                 "status_code")

    def __init__(self, trace_id: int, span_id: int, parent_id: int, name: str, kind: int,
                 attributes: Mapping[str, Any] | None) -> None:
        self.trace_id, self.span_id, self.parent_id, self.name, self.kind = trace_id, span_id, parent_id, name, kind
        self.attributes: dict[str, Any] = (
            {k: v for k, v in attributes.items() if v is not None} if attributes else {})
        self.status_code = 0
        self.end_time = 0
        self.start_time = time.time_ns()

    def set_attribute(self, key: str, value: Any) -> None:
        if value is not None:
            self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            if value is not None:
                self.attributes[key] = value

    def fail(self, error_type: str) -> None:
        """error.type (a code or an exception's class: never a message) and status ERROR."""
        self.attributes["error.type"] = error_type
        self.status_code = ERROR

    def end(self) -> None:
        if not self.end_time:
            self.end_time = time.time_ns()

    def context(self, flags: Any, state: Any) -> Any:
        """This span as the SDK's SpanContext (propagators inject from it)."""
        from opentelemetry.trace import SpanContext

        return SpanContext(self.trace_id, self.span_id, is_remote=False, trace_flags=flags, trace_state=state)
