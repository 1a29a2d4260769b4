"""OTLP/HTTP trace export in protobuf (`http/protobuf`), encoded here by hand.

Why not opentelemetry-exporter-otlp-proto-http: it brings protobuf, googleapis-common-protos,
opentelemetry-proto and requests (with urllib3, idna, charset-normalizer, certifi): 5.8 MB more in
the Lambda package (1.5 MB zipped) and their imports on the first traced request, to write one
message whose schema has been stable since OTLP 1.0. The encoder below writes the subset of
`ExportTraceServiceRequest` the gateway emits (resource, scope, spans with attributes, links and
status; never events, never a status message); tests decode it with opentelemetry-proto.

The transport (otlp_http.py) keeps one connection to the collector and fits every socket operation
to the flush's deadline, so an export can never hold a Lambda invocation past it.
"""
from __future__ import annotations

import gzip
import json
import logging
import struct
import threading
from typing import Any, Iterable, Mapping, Sequence

from chalicelib.telemetry import LOGGER_NAME
from chalicelib.tracing.spans import ChildSpan

_KIND = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5}  # opentelemetry.trace.SpanKind value -> OTLP SpanKind
_SMALL = [bytes((i,)) for i in range(128)]  # one-byte varints: most lengths, tags and counts
_CACHE_MAX = 4096  # encoded key=value pairs kept: names, models, verdicts repeat across requests
_pairs: dict[tuple[str, type, Any], bytes] = {}


def _varint(n: int) -> bytes:
    if 0 <= n < 128:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64  # int64 in two's complement, as protobuf writes it
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes, messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode("utf-8", "replace")) if text else b""


def _any_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"  # field 2, varint
    if isinstance(value, int):
        return b"\x18" + _varint(value)  # field 3, varint
    if isinstance(value, float):
        return b"\x21" + struct.pack("<d", value)  # field 4, fixed64
    if isinstance(value, (list, tuple)):
        return _field(5, b"".join(_field(1, _any_value(v)) for v in value))
    return _field(1, str(value).encode("utf-8", "replace"))


def _pair(key: str, value: Any) -> bytes:
    """One `KeyValue` message, from the cache when this pair was seen before."""
    cacheable = not isinstance(value, (list, tuple))
    if cacheable:
        hit = _pairs.get((key, type(value), value))
        if hit is not None:
            return hit
    encoded = _field(1, key.encode("utf-8", "replace")) + _field(2, _any_value(value))
    if cacheable:
        if len(_pairs) >= _CACHE_MAX:
            _pairs.clear()
        _pairs[(key, type(value), value)] = encoded
    return encoded


def _attributes(number: int, attributes: Mapping[str, Any] | None) -> bytes:
    if not attributes:
        return b""
    return b"".join(_field(number, _pair(key, value)) for key, value in attributes.items())


_SERVER = 1  # opentelemetry.trace.SpanKind.SERVER.value: only the request's span carries links


def encode_child(span: ChildSpan) -> bytes:
    """One `Span` message from a request's child span (spans.py)."""
    out = [b"\x0a\x10", span.trace_id.to_bytes(16, "big"), b"\x12\x08", span.span_id.to_bytes(8, "big"),
           b"\x22\x08", span.parent_id.to_bytes(8, "big"), _names.get(span.name) or _name(span.name),
           b"\x30", _SMALL[span.kind], b"\x39", struct.pack("<Q", span.start_time), b"\x41",
           struct.pack("<Q", span.end_time), _attributes(9, span.attributes)]
    if span.status_code:
        out.append(b"\x7a\x02\x18" + _SMALL[span.status_code])
    return b"".join(out)


_names: dict[str, bytes] = {}


def _name(name: str) -> bytes:
    encoded = _string(5, name)
    if len(_names) >= _CACHE_MAX:
        _names.clear()
    _names[name] = encoded
    return encoded


def encode_span(span: Any) -> bytes:
    """One `Span` message from an SDK ReadableSpan (a request's root) or a ChildSpan."""
    if type(span) is ChildSpan:
        return encode_child(span)
    context = span.context
    kind = span.kind.value
    out = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
    if span.parent is not None:
        out += (b"\x22\x08", span.parent.span_id.to_bytes(8, "big"))
    out += (_string(5, span.name), b"\x30", _SMALL[_KIND.get(kind, 0)],
            b"\x39", struct.pack("<Q", span.start_time or 0), b"\x41", struct.pack("<Q", span.end_time or 0),
            _attributes(9, span.attributes))
    if kind == _SERVER:
        for link in span.links or ():
            out.append(_field(13, b"\x0a\x10" + link.context.trace_id.to_bytes(16, "big") + b"\x12\x08"
                              + link.context.span_id.to_bytes(8, "big") + _attributes(4, link.attributes)))
    code = span.status.status_code.value  # UNSET 0, OK 1, ERROR 2: as OTLP numbers them
    if code:
        out.append(b"\x7a\x02\x18" + _SMALL[code])  # field 15 (Status) holding field 3 (code); no message
    return b"".join(out)


def encode_request(spans: Sequence[Any], resource: Mapping[str, Any], scope: tuple[str, str]) -> bytes:
    """An `ExportTraceServiceRequest` with one resource and one instrumentation scope."""
    body = _field(1, _string(1, scope[0]) + _string(2, scope[1])) + b"".join(
        _field(2, encode_span(s)) for s in spans)
    return _field(1, _field(1, _attributes(1, resource)) + _field(2, body))


def traces_endpoint(env: Mapping[str, str], default: str = "http://localhost:4318") -> str:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as is, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces."""
    signal = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if signal:
        return signal
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or default
    return base.rstrip("/") + "/v1/traces"


def parse_headers(raw: str) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: comma-separated key=value pairs, percent-encoded values."""
    from urllib.parse import unquote

    headers: dict[str, str] = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            headers[key.strip().lower()] = unquote(value.strip())
    return headers


MAX_WAIT_S = 1.0  # the most a request waits for its spans to be taken (a collector answers in ms)
BACKOFF_S = 30.0  # after a failed export, spans are dropped this long: a collector down costs no waits


class OtlpHttpExporter:
    """POSTs encoded spans to the traces endpoint. Never raises: a failed export is logged (by
    class, rarely) and the spans are dropped; tracing never fails a request nor slows it for long:
    each POST waits at most MAX_WAIT_S (and the request's deadline tail), and after a failure the
    exporter rests for BACKOFF_S, dropping what it is handed."""

    def __init__(self, endpoint: str, headers: Mapping[str, str], timeout_s: float, gzip_body: bool,
                 resource: Mapping[str, Any], scope: tuple[str, str]) -> None:
        from chalicelib.tracing.otlp_http import Collector

        self.endpoint = endpoint
        wire = {**headers, "content-type": "application/x-protobuf", "user-agent": "execution-garden"}
        if gzip_body:
            wire["content-encoding"] = "gzip"
        self._gzip = gzip_body
        self._timeout_s = timeout_s
        self._resource = dict(resource)
        self._scope = scope
        self._collector = Collector(endpoint, wire)
        self._failures = 0
        self._resting_until = float("-inf")
        self.dropped = 0  # spans dropped while resting
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str], resource: Mapping[str, Any], scope: tuple[str, str],
                 default_endpoint: str = "http://localhost:4318") -> "OtlpHttpExporter":
        from chalicelib.errors import ConfigError

        protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                    or "http/protobuf").strip()
        if protocol != "http/protobuf":
            raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: the gateway exports http/protobuf only")
        headers = {**parse_headers(env.get("OTEL_EXPORTER_OTLP_HEADERS", "")),
                   **parse_headers(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", ""))}
        timeout_ms = env.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or env.get("OTEL_EXPORTER_OTLP_TIMEOUT") or "10000"
        compression = (env.get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION")
                       or env.get("OTEL_EXPORTER_OTLP_COMPRESSION") or "none").strip().lower()
        try:
            timeout_s = float(timeout_ms) / 1000
        except ValueError:
            raise ConfigError(f"OTEL_EXPORTER_OTLP_TIMEOUT={timeout_ms!r}: expected milliseconds") from None
        return cls(traces_endpoint(env, default_endpoint), headers, timeout_s, compression == "gzip",
                   resource, scope)

    def export(self, spans: Iterable[Any], until: float, monotonic: Any) -> bool:
        spans = list(spans)
        if not spans:
            return True
        now = monotonic()
        if now < self._resting_until:
            self.dropped += len(spans)
            return False
        body = encode_request(spans, self._resource, self._scope)
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
        until = min(until, now + self._timeout_s, now + MAX_WAIT_S)
        try:
            status = self._collector.post(body, until)
            if status // 100 == 2:
                return True
            problem = f"status {status}"
        except Exception as exc:  # a collector down or slow never fails the request
            problem = getattr(exc, "kind", type(exc).__name__)
        self._note_failure(problem, monotonic())
        return False

    def _note_failure(self, problem: str, now: float) -> None:
        with self._lock:
            self._failures += 1
            failures = self._failures
            self._resting_until = now + BACKOFF_S
        if failures == 1 or failures % 100 == 0:  # the first, then every 100th: no log flood
            logging.getLogger(LOGGER_NAME).warning(json.dumps(
                {"event": "trace_export_failed", "problem": problem, "failures": failures}, separators=(",", ":")))
