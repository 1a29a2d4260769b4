"""The OpenTelemetry SDK adapter of the tracing port (imported only when tracing is on).

Per request: a SERVER span (the caller's W3C `traceparent` as its parent; under X-Ray, Lambda's
`_X_AMZN_TRACE_ID`, so the trace joins API Gateway's and Lambda's segments, with the caller's
context kept as a link) and child spans for each stage, provider attempt and AWS call.

Export: spans are kept in memory until the request's frame ends, then handed over at once, bounded
by the request's bookkeeping tail: in Lambda nothing runs between invocations (a background export
thread would be frozen mid-flight), so the invocation does not return before its spans are gone.
To an OTLP endpoint when one is set (otlp.py: one POST; to the ADOT layer's Collector on localhost
about a millisecond, to a remote collector one round trip); under X-Ray without one, to Lambda's
X-Ray daemon in UDP datagrams (xray_udp.py: nothing waited for).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Mapping, MutableMapping

from opentelemetry import trace as otel_trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from chalicelib.incoming import IncomingRequest
from chalicelib.record import RequestRecord
from chalicelib.settings import VERSION
from chalicelib.tracing import NO_SPAN, Value, attributes
from chalicelib.tracing.otlp import OtlpHttpExporter
from chalicelib.tracing.spans import CLIENT, INTERNAL, ChildSpan

SCOPE = ("execution-garden", VERSION)
MAX_PENDING = 4096  # spans held between flushes at most (a collector down must not grow memory)
_W3C = TraceContextTextMapPropagator()


class _LowerCaseGetter(Getter[Mapping[str, str]]):
    """The request's headers are lower-cased (web.py); propagators ask in their own case."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key.lower())
        return [value] if value is not None else None

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _LowerCaseGetter()


class ExportAtRequestEnd(SpanProcessor):
    """Holds ended spans until `flush`; the frame flushes at the end of every request."""

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self._pending: list[Any] = []  # ended roots (ReadableSpan) and their ChildSpans
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        with self._lock:
            if len(self._pending) < MAX_PENDING:
                self._pending.append(span)

    def add(self, children: list[ChildSpan]) -> None:
        """A request's child spans (spans.py), exported with its root."""
        with self._lock:
            room = MAX_PENDING - len(self._pending)
            self._pending.extend(children[:max(0, room)])

    def flush(self, until: float) -> bool:
        with self._lock:
            spans, self._pending = self._pending, []
        return self.exporter.export(spans, until, time.monotonic) if spans else True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.flush(time.monotonic() + timeout_millis / 1000)


class OtelTracing:
    def __init__(self, provider: TracerProvider, processor: ExportAtRequestEnd, xray: bool = False) -> None:
        self.provider = provider
        self.processor = processor
        self.xray = xray
        self._tracer = provider.get_tracer(*SCOPE)
        self._xray_propagator: Any = None
        if xray:
            from opentelemetry.propagators.aws import AwsXRayPropagator

            self._xray_propagator = AwsXRayPropagator()

    @classmethod
    def from_env(cls, env: Mapping[str, str], xray: bool = False, exporter: Any = None) -> "OtelTracing":
        """OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG) and the
        OTEL_EXPORTER_OTLP_* variables, as the SDK's own configuration reads them. Under X-Ray
        with no OTLP endpoint set, spans go to Lambda's X-Ray daemon (xray_udp.py)."""
        resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "execution-garden",
                                    "service.version": VERSION, **_lambda_resource(env)})
        if exporter is None:
            endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            if xray and not endpoint:
                from chalicelib.tracing.xray_udp import XrayDaemonExporter, daemon_address

                exporter = XrayDaemonExporter(daemon_address(env), dict(resource.attributes), SCOPE)
            else:
                exporter = OtlpHttpExporter.from_env(env, dict(resource.attributes), SCOPE)
        processor = ExportAtRequestEnd(exporter)
        kwargs: dict[str, Any] = {"resource": resource, "sampler": _sampler(env)}
        if xray:
            from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator

            kwargs["id_generator"] = AwsXRayIdGenerator()  # trace ids X-Ray accepts (epoch seconds first)
        provider = TracerProvider(**kwargs)
        provider.add_span_processor(processor)
        return cls(provider, processor, xray)

    def begin(self, request: IncomingRequest, route: str) -> "RequestTraceImpl":
        caller = _W3C.extract(request.headers, getter=_GETTER)
        links: list[Link] = []
        parent = caller
        if self.xray:
            # Lambda sets _X_AMZN_TRACE_ID per invocation: API Gateway's and Lambda's segments.
            header = os.environ.get("_X_AMZN_TRACE_ID") or request.headers.get("x-amzn-trace-id")
            if header:
                parent = self._xray_propagator.extract({"x-amzn-trace-id": header}, getter=_GETTER)
                caller_span = otel_trace.get_current_span(caller).get_span_context()
                if caller_span.is_valid:
                    links.append(Link(caller_span))
        root = self._tracer.start_span(attributes.server_span_name(route), context=parent, kind=SpanKind.SERVER,
                                       attributes=attributes.request_start(route, request.request_id),
                                       links=links)
        return RequestTraceImpl(self, root)

    def inject(self, span: Any, headers: MutableMapping[str, str]) -> None:
        context = otel_trace.set_span_in_context(span)
        _W3C.inject(headers, context=context)
        if self._xray_propagator is not None:
            self._xray_propagator.inject(headers, context=context)

    def flush(self, until: float) -> bool:
        return self.processor.flush(until)


class RequestTraceImpl:
    """One request's trace: the SDK's root span, its children (spans.py) and the stack of open
    spans (children nest under the innermost), used by one thread at a time, as a request is."""

    def __init__(self, tracing: OtelTracing, root: Any) -> None:
        self._tracing = tracing
        self.root = root
        self.recording = root.is_recording()
        context = root.get_span_context()
        self._trace_id, self._flags, self._state = context.trace_id, context.trace_flags, context.trace_state
        self._new_id = tracing.provider.id_generator.generate_span_id
        self.stack: list[Any] = [root]  # the root, then open ChildSpans, innermost last
        self._root_id = context.span_id
        self.children: list[ChildSpan] = []
        self.record: RequestRecord | None = None  # set by the frame: AWS call spans name app and model

    def span(self, name: str, attrs: Mapping[str, Value | None] | None = None, client: bool = False) -> Any:
        if not self.recording:
            return NO_SPAN
        return _Scope(self, self.start(name, attrs, client))

    def start(self, name: str, attrs: Mapping[str, Value | None] | None, client: bool = False) -> ChildSpan:
        """A span under the innermost open one, not made current (AWS calls: leaves)."""
        parent = self.stack[-1]
        child = ChildSpan(self._trace_id, self._new_id(), self._root_id if parent is self.root else parent.span_id,
                          name, CLIENT if client else INTERNAL, attrs)
        self.children.append(child)
        return child

    def inject(self, headers: MutableMapping[str, str]) -> None:
        top = self.stack[-1]
        self._tracing.inject(top if top is self.root else NonRecordingSpan(top.context(self._flags, self._state)),
                             headers)

    def finish(self, record: RequestRecord, flush_until: float) -> None:
        del self.stack[1:]  # a scope an exception skipped past: nothing is left open
        if self.recording:
            self.root.set_attributes(attributes.request_end(record))
            if record.status >= 500:
                self.root.set_status(Status(StatusCode.ERROR))
            for child in self.children:
                child.end()  # one an exception skipped past (an AWS call cut short) ends with the request
            self._tracing.processor.add(self.children)
        self.root.end()
        self._tracing.flush(flush_until)


class _Scope:
    """A child span, current while its `with` block runs; an exception marks it failed."""

    __slots__ = ("_trace", "span")

    def __init__(self, trace: RequestTraceImpl, span: ChildSpan) -> None:
        self._trace, self.span = trace, span

    def __enter__(self) -> "_Scope":
        self._trace.stack.append(self.span)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        stack = self._trace.stack
        if stack[-1] is self.span:
            stack.pop()
        if exc is not None:
            mark_failed(self.span, exc)
        self.span.end()

    def set(self, key: str, value: Value | None) -> None:
        if value is not None:
            self.span.attributes[key] = value

    def update(self, attrs: Mapping[str, Value | None]) -> None:
        self.span.set_attributes(attrs)


def mark_failed(span: ChildSpan, exc: BaseException) -> None:
    """error.type: the gateway error's code, else the exception's class; never its message."""
    code = getattr(exc, "code", None)
    span.fail(code if isinstance(code, str) and code else type(exc).__name__)
    if getattr(exc, "fallback", False):
        span.attributes["garden.outcome"] = "fallback"
    else:
        span.attributes.setdefault("garden.outcome", "error")


def _sampler(env: Mapping[str, str]) -> Any:
    """OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, read from `env` as the SDK reads them."""
    from opentelemetry.sdk.trace import sampling

    name = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    known = {"always_on": sampling.ALWAYS_ON, "always_off": sampling.ALWAYS_OFF,
             "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
             "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF)}
    if name in known:
        return known[name]
    if name in ("traceidratio", "parentbased_traceidratio"):
        try:
            rate = float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))
        except ValueError:
            rate = 1.0
        ratio = sampling.TraceIdRatioBased(rate)
        return ratio if name == "traceidratio" else sampling.ParentBased(ratio)
    from chalicelib.errors import ConfigError

    raise ConfigError(f"OTEL_TRACES_SAMPLER={name!r}: expected always_on, always_off, traceidratio or "
                      "their parentbased_ forms")


def _lambda_resource(env: Mapping[str, str]) -> dict[str, Any]:
    name = env.get("AWS_LAMBDA_FUNCTION_NAME")
    if not name:
        return {}
    return {"cloud.provider": "aws", "cloud.platform": "aws_lambda", "faas.name": name,
            "faas.version": env.get("AWS_LAMBDA_FUNCTION_VERSION", ""),
            "cloud.region": env.get("AWS_REGION", "")}
