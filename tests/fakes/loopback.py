"""The plumbing every fake AWS service shares: a threaded HTTP server on 127.0.0.1, a free port,
and a clean stop that also wakes handlers told to hang."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Mapping, TypeVar

Self = TypeVar("Self", bound="LoopbackServer")


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._lock = threading.Lock()  # guards the subclass's request log and script
        self.stopping = threading.Event()  # set on exit: a Hang behaviour waits on it
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True  # a hung handler must not block close()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self: Self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class AwsHandler(BaseHTTPRequestHandler):
    """Request plumbing shared by the fakes: keep-alive as AWS does, quiet logs, AWS-style replies."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def send_json(self, status: int, body: Any, content_type: str = "application/json",
                  error_type: str | None = None) -> None:
        # restJson1 services name their error in this header, which botocore reads first.
        extra = {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/"} if error_type else {}
        self.send_bytes(status, json.dumps(body).encode(), content_type, extra)

    def send_bytes(self, status: int, payload: bytes, content_type: str,
                   extra: Mapping[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            headers = {"Content-Type": content_type, "Content-Length": str(len(payload)),
                       "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000", **(extra or {})}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)
