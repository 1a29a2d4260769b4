"""Spans to X-Ray through the daemon Lambda runs when active tracing is on: OTLP protobuf in UDP
datagrams to AWS_XRAY_DAEMON_ADDRESS, as AWS's own OpenTelemetry distribution does in Lambda
(a datagram is `{"format":"json","version":1}` + newline + `T1S` + the base64 of an
ExportTraceServiceRequest; at most 10 spans a datagram, which keeps it under UDP's 64 KB).

Why this is the default under X-Ray: a datagram to the local daemon is handed over in microseconds
and never waits, so the invocation returns with its spans gone and no answer waited for; no
Collector extension (a layer, its own cold start and memory) is needed. With an OTLP endpoint set
(the ADOT layer's Collector, or any collector), that endpoint is used instead (otel.py).
"""
from __future__ import annotations

import base64
import json
import logging
import socket
from typing import Any, Iterable, Mapping

from chalicelib.telemetry import LOGGER_NAME
from chalicelib.tracing.otlp import encode_request

PREFIX = b'{"format":"json","version":1}\nT1S'
SPANS_PER_DATAGRAM = 10


def daemon_address(env: Mapping[str, str]) -> tuple[str, int]:
    """AWS_XRAY_DAEMON_ADDRESS: `host:port`, or `udp:host:port tcp:host:port`; default 127.0.0.1:2000."""
    raw = env.get("AWS_XRAY_DAEMON_ADDRESS", "").strip() or "127.0.0.1:2000"
    for part in raw.split():
        if part.startswith("udp:") or (":" in part and not part.startswith("tcp:")):
            host, _, port = part.removeprefix("udp:").rpartition(":")
            return host or "127.0.0.1", int(port)
    return "127.0.0.1", 2000


class XrayDaemonExporter:
    """Never raises and never waits: a datagram the daemon does not take is lost, as UDP is."""

    def __init__(self, address: tuple[str, int], resource: Mapping[str, Any], scope: tuple[str, str]) -> None:
        self.address = address
        self._resource = dict(resource)
        self._scope = scope
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._failures = 0

    def export(self, spans: Iterable[Any], until: float, monotonic: Any) -> bool:
        spans = list(spans)
        ok = True
        for i in range(0, len(spans), SPANS_PER_DATAGRAM):
            body = encode_request(spans[i:i + SPANS_PER_DATAGRAM], self._resource, self._scope)
            try:
                self._sock.sendto(PREFIX + base64.b64encode(body), self.address)
            except OSError as exc:
                ok = False
                self._failures += 1
                if self._failures == 1 or self._failures % 100 == 0:
                    logging.getLogger(LOGGER_NAME).warning(json.dumps(
                        {"event": "trace_export_failed", "problem": type(exc).__name__,
                         "failures": self._failures}, separators=(",", ":")))
        return ok
