"""HTTP/1.1 to the upstreams the gateway calls itself (OpenAI-compatible servers): kept-alive
connections pooled per origin, and the request deadline on every socket operation.

Why the standard library's http.client and not urllib3 (which ships with botocore) or httpx: it is
already loaded on the gateway's cold path (no import cost; urllib3 adds ~30 ms, httpx ~150 ms, see
bench/http_client.py and the README), a request costs no more than urllib3's, and it lets every
socket read be fitted to the time left: a response, headers included, can never run past the
deadline, where urllib3's read timeout bounds each read but not their sum (an upstream that trickles
bytes could hold a request for as long as it likes).

A pooled connection the server has closed (uvicorn, which serves LiteLLM, drops idle ones after 5 s)
is noticed before it is used (readable while idle means EOF); a request that still meets a closed
connection before any byte of the answer arrives is sent once more on a new one.

No proxy support (HTTP_PROXY is not read): upstreams sit in the VPC, beside the gateway.
"""
from __future__ import annotations

import http.client
import io
import select
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 1.0  # a TCP (and TLS) handshake inside the VPC takes milliseconds
MAX_IDLE_PER_ORIGIN = 16
MAX_IDLE_S = 50.0  # under an ALB's 60 s idle timeout: never reuse what it is about to drop
READ_SIZE = 64 * 1024


class TransportError(Exception):
    """The exchange failed below HTTP. `kind` says what it tells about the upstream:
    connect_timeout, unreachable (refused, DNS, TLS), read_timeout, broken (closed mid-answer,
    garbled), no_time (the deadline had passed before the step began), too_large."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int


def split_url(url: str) -> tuple[Origin, str]:
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    return Origin(parts.scheme, parts.hostname or "", port), parts.path or "/"


class Response:
    """A response whose body is read with the deadline (`read_all` or `pieces`); `close()` it when
    done: its connection goes back to the pool only when the body was read to its end."""

    def __init__(self, raw: http.client.HTTPResponse, release: Callable[[bool], None]) -> None:
        self._raw = raw
        self._release: Callable[[bool], None] | None = release
        self.status = raw.status
        self.headers = {k.lower(): v for k, v in raw.getheaders()}

    def pieces(self, limit: int) -> Iterator[bytes]:
        """The body as it arrives (chunked encoding undone); TransportError past `limit` bytes."""
        total = 0
        while True:
            piece = _io(self._raw.read1, READ_SIZE)
            if not piece:
                _io(self._raw.read)  # at the end: lets http.client mark the response complete
                return
            total += len(piece)
            if total > limit:
                raise TransportError("too_large")
            yield piece

    def read_all(self, limit: int) -> bytes:
        return b"".join(self.pieces(limit))

    def close(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release(self._raw.isclosed() and not self._raw.will_close)


class HttpPool:
    """One per container: idle connections by origin, LIFO (the warmest first)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, tls_context: Any = None) -> None:
        """`tls_context`: an ssl.SSLContext for https origins; None: the system's trust store
        (certificates and host names verified), made on first use."""
        self._monotonic = monotonic
        self._connect_timeout_s = connect_timeout_s
        self._idle: dict[Origin, list[tuple[http.client.HTTPConnection, float]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._tls: Any = tls_context

    def post(self, url: str, body: bytes, headers: Mapping[str, str], until: float) -> Response:
        """POST `body` and read the status and headers, all before `until`; TransportError else."""
        origin, path = split_url(url)
        conn, raw = self._exchange(origin, path, body, headers, until)

        def release(reusable: bool) -> None:
            if reusable:
                self._checkin(origin, conn)
            else:
                conn.close()

        return Response(raw, release)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, defaultdict(list)
        for conns in idle.values():
            for conn, _ in conns:
                conn.close()

    def idle_count(self, url: str) -> int:
        with self._lock:
            return len(self._idle.get(split_url(url)[0], ()))

    def _exchange(self, origin: Origin, path: str, body: bytes, headers: Mapping[str, str],
                  until: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn, reused = self._checkout(origin, until)
        while True:
            try:
                return conn, self._send(conn, path, body, headers, until)
            except (ConnectionError, http.client.BadStatusLine) as exc:  # RemoteDisconnected included
                conn.close()
                if not reused:
                    raise TransportError("broken") from exc
            except BaseException:
                conn.close()
                raise
            # The server closed a kept-alive connection as we reused it, before any of an answer.
            conn, reused = self._connect(origin, until), False

    def _send(self, conn: http.client.HTTPConnection, path: str, body: bytes, headers: Mapping[str, str],
              until: float) -> http.client.HTTPResponse:
        conn.response_class = _deadline_response(until, self._monotonic)  # type: ignore[assignment]
        assert conn.sock is not None
        conn.sock.settimeout(self._left(until))
        # bytes body: http.client sends headers and body in one sendall, bounded as a whole.
        _io(conn.request, "POST", path, body=body, headers=dict(headers))
        return _io(conn.getresponse)

    def _checkout(self, origin: Origin, until: float) -> tuple[http.client.HTTPConnection, bool]:
        now = self._monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(origin)
                if not idle:
                    break
                conn, since = idle.pop()
            if now - since < MAX_IDLE_S and not _dropped(conn):
                return conn, True
            conn.close()
        return self._connect(origin, until), False

    def _checkin(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle[origin]
            if len(idle) < MAX_IDLE_PER_ORIGIN:
                idle.append((conn, self._monotonic()))
                return
        conn.close()

    def _connect(self, origin: Origin, until: float) -> http.client.HTTPConnection:
        left = self._left(until)
        if origin.scheme == "https":
            # The TLS handshake runs under the same timeout after the TCP one: half each.
            timeout = min(self._connect_timeout_s, left / 2)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                origin.host, origin.port, timeout=timeout, context=self._tls_context())
        else:
            conn = http.client.HTTPConnection(origin.host, origin.port, timeout=min(self._connect_timeout_s, left))
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise TransportError("connect_timeout") from exc
        except OSError as exc:  # refused, unreachable, DNS (gaierror), TLS (SSLError)
            conn.close()
            raise TransportError("unreachable") from exc
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _tls_context(self) -> Any:
        if self._tls is None:
            import ssl  # only for https upstreams

            self._tls = ssl.create_default_context()
        return self._tls

    def _left(self, until: float) -> float:
        left = until - self._monotonic()
        if left <= 0:
            raise TransportError("no_time")
        return left


def _io(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Socket and HTTP failures after the connection was made -> TransportError."""
    try:
        return operation(*args, **kwargs)
    except TransportError:
        raise
    except TimeoutError as exc:
        raise TransportError("read_timeout") from exc
    except (ConnectionError, http.client.BadStatusLine):
        raise  # the caller decides: a reused connection may be retried
    except (OSError, http.client.HTTPException) as exc:  # IncompleteRead, LineTooLong, TLS errors
        raise TransportError("broken") from exc


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection is readable only when the server closed it (or misbehaved)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class _DeadlineReader(io.RawIOBase):
    """The socket's reader, with each read's timeout set to the time left until `until`."""

    def __init__(self, sock: socket.socket, until: float, monotonic: Callable[[], float]) -> None:
        self._sock, self._until, self._monotonic = sock, until, monotonic
        # A reference the socket counts: it stays open for this reader after the connection lets
        # go of it (a `Connection: close` answer), as http.client's own reader does.
        self._raw = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._until - self._monotonic()
        if left <= 0:
            raise TimeoutError("the deadline passed")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


def _deadline_response(until: float, monotonic: Callable[[], float]) -> Callable[..., http.client.HTTPResponse]:
    def make(sock: socket.socket, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:
        response = http.client.HTTPResponse(sock, *args, **kwargs)
        response.fp.close()  # the plain reader it made: replaced by one that honours the deadline
        response.fp = io.BufferedReader(_DeadlineReader(sock, until, monotonic))
        return response

    return make
