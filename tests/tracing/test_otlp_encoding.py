"""The hand-written OTLP encoder (chalicelib/tracing/otlp.py) against the reference protobuf classes
(opentelemetry-proto): every value type the gateway writes, SDK spans and the adapter's own child
spans, links, status, and what it never writes (events, status messages, trace state)."""
from __future__ import annotations

import time

from otlp_receiver import decode

from chalicelib.tracing.otlp import encode_request
from chalicelib.tracing.spans import CLIENT, ChildSpan


def test_values_spans_and_links_decode_as_written() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

    provider = TracerProvider()
    caller = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True,
                         trace_flags=TraceFlags(1), trace_state=TraceState([("vendor", "secret-state")]))
    from opentelemetry.trace import NonRecordingSpan, set_span_in_context

    root = provider.get_tracer("t").start_span("POST /v1/chat/completions", kind=SpanKind.SERVER,
                                               context=set_span_in_context(NonRecordingSpan(caller)),
                                               links=[Link(caller)])
    values = {"s": "ünïcode ✓", "empty": "", "t": True, "f": False, "i": 7, "big": 2**62, "neg": -3,
              "x": 0.25, "list": ["a", "b"], "ints": [1, 300]}
    root.set_attributes(values)
    root.add_event("never exported", {"text": "CANARY-event"})
    root.set_status(Status(StatusCode.ERROR, "CANARY-status-message"))
    root.end()
    ctx = root.get_span_context()
    child = ChildSpan(ctx.trace_id, 0x1122334455667788, ctx.span_id, "chat echo-1", CLIENT,
                      {"gen_ai.request.model": "echo-1", "skipped": None})
    child.fail("upstream_throttled")
    time.sleep(0.001)
    child.end()

    body = encode_request([root, child], {"service.name": "svc"}, ("scope", "1.0"))
    assert b"CANARY" not in body and b"secret-state" not in body
    spans = {s.name: s for s in decode(body)}
    r, c = spans["POST /v1/chat/completions"], spans["chat echo-1"]
    assert r.attributes == values and r.kind == "SERVER" and r.resource == {"service.name": "svc"}
    assert (r.trace_id, r.parent_span_id) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert r.links == [("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")]
    assert (r.status_code, r.status_message, r.events) == (2, "", 0)
    assert (c.kind, c.span_id, c.parent_span_id, c.trace_id) == ("CLIENT", "1122334455667788", r.span_id, r.trace_id)
    assert c.attributes == {"gen_ai.request.model": "echo-1", "error.type": "upstream_throttled"}
    assert c.status_code == 2 and 0 < c.start_ns < c.end_ns
