"""Tracing port: one trace per governed request, spans named by what ran, metadata only.

The pipeline never sees OpenTelemetry. It calls the helpers below (`span`, `client_span`, `inject`),
which act on the trace the frame (pipeline/governed.py) bound for the current request, and do
nothing when none is bound: with tracing off (the default) a request pays one context-variable read
per stage, and nothing of OpenTelemetry is imported. `from_settings` picks the adapter: the no-op
one, or the OpenTelemetry SDK adapter (otel.py) when OTEL_EXPORTER_OTLP_* or GARDEN_TRACING say so.

Memoryless: a span carries ids, numbers, categories and names only. No helper here takes text, and
the adapter never records exception messages or events; the GenAI conventions' opt-in content
attributes (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT) are not implemented on purpose.
"""
from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any, Mapping, MutableMapping, Protocol

from chalicelib.incoming import IncomingRequest
from chalicelib.record import RequestRecord

Value = str | bool | int | float | list[str]


if TYPE_CHECKING:  # the port's shapes, for type checkers; at run time no typing machinery on cold start
    class Span(Protocol):
        def set(self, key: str, value: Value | None) -> None: ...

        def update(self, attributes: Mapping[str, Value | None]) -> None: ...


    class SpanScope(Protocol):
        """A context manager: enter gives the span; an exception leaving it marks the span failed
        (`error.type`: the gateway error's code, else the exception's class) and goes on."""

        def __enter__(self) -> Span: ...

        def __exit__(self, *exc: Any) -> bool | None: ...


    class RequestTrace(Protocol):
        record: RequestRecord | None  # the request's record, set by the frame once made

        def span(self, name: str, attributes: Mapping[str, Value | None] | None = None,
                 client: bool = False) -> SpanScope: ...

        def inject(self, headers: MutableMapping[str, str]) -> None:
            """Add the current span's trace context (traceparent, and X-Amzn-Trace-Id under X-Ray)."""
            ...

        def finish(self, record: RequestRecord, flush_until: float) -> None:
            """End the request's span with the record's metadata and export, before `flush_until`
            (monotonic)."""
            ...


    class Tracing(Protocol):
        def begin(self, request: IncomingRequest, route: str) -> RequestTrace | None: ...
else:
    Span = SpanScope = RequestTrace = Tracing = object


class _NoSpan:
    """The span and scope of a request that is not traced: stateless, shared."""

    def set(self, key: str, value: Value | None) -> None:
        pass

    def update(self, attributes: Mapping[str, Value | None]) -> None:
        pass

    def __enter__(self) -> "_NoSpan":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


NO_SPAN = _NoSpan()


class NoTracing:
    """The default adapter: nothing traced, nothing imported, nothing exported."""

    def begin(self, request: IncomingRequest, route: str) -> RequestTrace | None:
        return None


NO_TRACING = NoTracing()
_current: contextvars.ContextVar[RequestTrace | None] = contextvars.ContextVar("garden_trace", default=None)


def bind(trace: RequestTrace | None) -> contextvars.Token[RequestTrace | None]:
    return _current.set(trace)


def unbind(token: contextvars.Token[RequestTrace | None]) -> None:
    _current.reset(token)


def span(name: str, attributes: Mapping[str, Value | None] | None = None) -> SpanScope:
    """A child span of the current one (INTERNAL), e.g. `garden.identity`."""
    trace = _current.get()
    return NO_SPAN if trace is None else trace.span(name, attributes)


def client_span(name: str, attributes: Mapping[str, Value | None] | None = None) -> SpanScope:
    """A CLIENT span: a call the gateway makes to a model provider."""
    trace = _current.get()
    return NO_SPAN if trace is None else trace.span(name, attributes, client=True)


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """The upstream request's headers with the trace context added (none when not traced)."""
    trace = _current.get()
    if trace is not None:
        trace.inject(headers)
    return headers


def inject_sagemaker(kwargs: dict[str, Any]) -> dict[str, Any]:
    """InvokeEndpoint's kwargs with the W3C traceparent in CustomAttributes (the container reads it
    as the X-Amzn-SageMaker-Custom-Attributes header), after any attributes already there."""
    trace = _current.get()
    if trace is None:
        return kwargs
    headers: dict[str, str] = {}
    trace.inject(headers)
    parent = headers.get("traceparent")
    if parent:
        existing = kwargs.get("CustomAttributes")
        kwargs["CustomAttributes"] = f"{existing};traceparent={parent}" if existing else f"traceparent={parent}"
    return kwargs


def current() -> RequestTrace | None:
    return _current.get()


def instrument_aws(client: Any) -> Any:
    """Hooks on a boto3 client for a span per call (aws_calls.py). Registered on every client the
    gateway makes, whether tracing is on or not (clients are shared per process, made once): with no
    trace bound, each hook is one context-variable read, and nothing of OpenTelemetry is imported."""
    from chalicelib.tracing.aws_calls import instrument

    return instrument(client)


MODES = ("auto", "off", "otlp", "xray")


def from_settings(mode: str, env: Mapping[str, str]) -> Tracing:
    """The adapter for GARDEN_TRACING=`mode` (settings.py checked it) and the OTEL_* variables."""
    chosen = resolve_mode(mode, env)
    if chosen == "off":
        return NO_TRACING
    from chalicelib.tracing.otel import OtelTracing  # only now: the SDK costs imports and memory

    return OtelTracing.from_env(env, xray=chosen == "xray")


def resolve_mode(mode: str, env: Mapping[str, str]) -> str:
    """off | otlp | xray. `auto`: xray where Lambda's active tracing sampled the invocation
    (`_X_AMZN_TRACE_ID` says Sampled=1), otlp where an OTLP endpoint is set, else off. The SDK's
    own switches (OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER=none) turn it off whatever the mode."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off"
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return "off"
    if mode != "auto":
        return mode
    if "Sampled=1" in env.get("_X_AMZN_TRACE_ID", ""):
        return "xray"
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return "off"
