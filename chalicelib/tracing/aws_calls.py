"""A CLIENT span for each AWS call a boto3 client makes while a request is traced (botocore's
event hooks; no aws-xray-sdk): `<Service>.<Operation>` under the innermost open span, with the
app and model of the request, the region and AWS's request id. Under X-Ray the call also carries
the trace header, so the services' own segments join the trace.

Only metadata: the hooks read operation names, status codes and response metadata, never
parameters or bodies (a Converse or InvokeEndpoint call holds the prompt).
"""
from __future__ import annotations

from typing import Any

from chalicelib import tracing

_KEY = "garden_span"


def instrument(client: Any) -> Any:
    service = client.meta.service_model.service_id
    events = client.meta.events
    region = client.meta.region_name
    hyphenated = service.hyphenize()

    def before_call(model: Any = None, context: Any = None, **_: Any) -> None:
        trace: Any = tracing.current()
        if trace is None or context is None or not getattr(trace, "recording", False):
            return
        record = trace.record
        attributes = {"rpc.system": "aws-api", "rpc.service": str(service), "rpc.method": model.name,
                      "cloud.region": region,
                      "garden.app_id": record.app_id if record is not None else None,
                      "garden.model": record.model if record is not None else None}
        context[_KEY] = (trace, trace.start(f"{service}.{model.name}", attributes, client=True))

    def request_created(request: Any = None, **_: Any) -> None:
        held = getattr(request, "context", {}).get(_KEY) if request is not None else None
        if held is not None and getattr(held[0], "_tracing", None) is not None and held[0]._tracing.xray:
            # X-Amzn-Trace-Id names the call's span as the parent; SigV4 never signs this header.
            _inject(held[0], held[1], request.headers)

    def after_call(http_response: Any = None, parsed: Any = None, context: Any = None, **_: Any) -> None:
        held = context.pop(_KEY, None) if context is not None else None
        if held is None:
            return
        span = held[1]
        metadata = (parsed or {}).get("ResponseMetadata", {}) if isinstance(parsed, dict) else {}
        status = getattr(http_response, "status_code", None)
        if metadata.get("RequestId"):
            span.set_attribute("aws.request_id", metadata["RequestId"])
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 300:
                code = (parsed or {}).get("Error", {}).get("Code") if isinstance(parsed, dict) else None
                span.fail(str(code or status))
        span.end()

    def after_call_error(exception: BaseException | None = None, context: Any = None, **_: Any) -> None:
        held = context.pop(_KEY, None) if context is not None else None
        if held is None:
            return
        held[1].fail(type(exception).__name__ if exception is not None else "error")
        held[1].end()

    events.register(f"before-call.{hyphenated}", before_call)
    events.register_first(f"request-created.{hyphenated}", request_created)
    events.register(f"after-call.{hyphenated}", after_call)
    events.register(f"after-call-error.{hyphenated}", after_call_error)
    return client


def _inject(trace: Any, span: Any, headers: Any) -> None:
    from opentelemetry.trace import NonRecordingSpan

    trace._tracing.inject(NonRecordingSpan(span.context(trace._flags, trace._state)), headers)
