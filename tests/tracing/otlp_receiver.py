"""A loopback OTLP/HTTP trace receiver (http/protobuf) for tests: a tiny http.server that keeps every
export's raw bytes and decodes them with opentelemetry-proto (a test dependency only)."""
from __future__ import annotations

import gzip
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass
class ExportedSpan:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    events: int
    links: list[tuple[str, str]]
    resource: dict[str, Any] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0


def _value(any_value: Any) -> Any:
    which = any_value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, which) if which else None


def decode(body: bytes) -> list[ExportedSpan]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    message = ExportTraceServiceRequest()
    message.ParseFromString(body)
    spans = []
    for resource_spans in message.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(ExportedSpan(
                    name=s.name, kind=KINDS[s.kind], trace_id=s.trace_id.hex(), span_id=s.span_id.hex(),
                    parent_span_id=s.parent_span_id.hex(),
                    attributes={kv.key: _value(kv.value) for kv in s.attributes},
                    status_code=s.status.code, status_message=s.status.message, events=len(s.events),
                    links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links], resource=resource,
                    start_ns=s.start_time_unix_nano, end_ns=s.end_time_unix_nano))
    return spans


class OtlpReceiver:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []  # as received on the wire (compressed when sent so)
        self.decoded: list[bytes] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                body = gzip.decompress(raw) if self.headers.get("content-encoding") == "gzip" else raw
                with receiver._lock:
                    receiver.bodies.append(raw)
                    receiver.decoded.append(body)
                    receiver.paths.append(self.path)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def spans(self) -> list[ExportedSpan]:
        with self._lock:
            bodies = list(self.decoded)
        return [span for body in bodies for span in decode(body)]

    def raw(self) -> bytes:
        with self._lock:
            return b"".join(self.bodies) + b"".join(self.decoded)

    def wait_for(self, done: Callable[[list[ExportedSpan]], bool], timeout_s: float = 10.0) -> list[ExportedSpan]:
        """The spans once `done(spans)` holds (exports are flushed before each answer: normally at once)."""
        end = time.monotonic() + timeout_s
        while True:
            spans = self.spans()
            if done(spans) or time.monotonic() > end:
                return spans
            time.sleep(0.05)


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver._thread.start()
    try:
        yield receiver
    finally:
        receiver._server.shutdown()
        receiver._server.server_close()


def by_request(spans: list[ExportedSpan]) -> dict[str, list[ExportedSpan]]:
    """The spans of each trace, by trace id."""
    traces: dict[str, list[ExportedSpan]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    return traces


def tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    """A served gateway's environment that exports its traces to `receiver`, with the GenAI
    conventions' opt-in for prompt and completion content asked for (the gateway never honours it)."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
