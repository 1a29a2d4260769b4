"""The OTLP exporter's transport: one kept-alive HTTP/1.1 connection to the collector, one POST per
flush written with a single send, the answer's status read and its (small) body drained.

Why not http.client (providers/upstream_http.py): a flush happens on every request, so its CPU
counts: measured on loopback, http.client's request and response objects cost ~0.16 ms per POST,
this ~0.015 ms. The whole exchange is held to the flush's deadline (socket timeouts fitted to the
time left); any failure closes the connection and is the caller's to count (never raised further).
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

MAX_ANSWER_BYTES = 64 * 1024  # an ExportTraceServiceResponse is a few bytes; a partial-success one, a few hundred


class ExportError(Exception):
    """The POST failed below HTTP or the answer was garbled; `kind` names how (no payload in it)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Collector:
    def __init__(self, url: str, headers: Mapping[str, str], monotonic: Any = time.monotonic) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host_header = self._host if parts.port is None else f"{self._host}:{self._port}"
        lines = [f"POST {self._path} HTTP/1.1", f"Host: {host_header}"] + [f"{k}: {v}" for k, v in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._monotonic = monotonic
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # one exchange at a time on the one connection

    def post(self, body: bytes, until: float) -> int:
        """POST `body`; the answer's status. ExportError on any failure (the connection is closed)."""
        with self._lock:
            for attempt in (1, 2):
                reused = self._sock is not None
                try:
                    return self._exchange(body, until)
                except ExportError:
                    self._close()
                    # A kept-alive connection the collector closed while idle: once more, on a new one.
                    if attempt == 2 or not reused or self._monotonic() >= until:
                        raise
        raise ExportError("unreachable")  # the loop returns or raises

    def close(self) -> None:
        with self._lock:
            self._close()

    def _exchange(self, body: bytes, until: float) -> int:
        sock = self._connected(until)
        try:
            sock.settimeout(self._left(until))
            sock.sendall(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
            return self._answer(sock, until)
        except OSError as exc:
            raise ExportError("timeout" if isinstance(exc, TimeoutError) else "broken") from None

    def _connected(self, until: float) -> socket.socket:
        if self._sock is not None:
            return self._sock
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._left(until))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                import ssl

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
        except OSError:
            raise ExportError("unreachable") from None
        self._sock = sock
        return sock

    def _answer(self, sock: socket.socket, until: float) -> int:
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv(sock, until)
            if len(data) > MAX_ANSWER_BYTES:
                raise ExportError("garbled")
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise ExportError("garbled") from None
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if fields.get("transfer-encoding", "").lower() == "chunked":
            while not rest.endswith(b"0\r\n\r\n"):
                rest += self._recv(sock, until)
                if len(rest) > MAX_ANSWER_BYTES:
                    raise ExportError("garbled")
        else:
            length = int(fields.get("content-length", "0") or 0)
            if length > MAX_ANSWER_BYTES:
                raise ExportError("garbled")
            while len(rest) < length:
                rest += self._recv(sock, until)
        keep = fields.get("connection", "").lower()
        if keep == "close" or (lines[0].startswith("HTTP/1.0") and keep != "keep-alive"):
            self._close()
        return status

    def _recv(self, sock: socket.socket, until: float) -> bytes:
        sock.settimeout(self._left(until))
        piece = sock.recv(MAX_ANSWER_BYTES)
        if not piece:
            raise ExportError("broken")
        return piece

    def _left(self, until: float) -> float:
        left = until - self._monotonic()
        if left <= 0:
            raise ExportError("no_time")
        return left

    def _close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
