"""The console's HTTP server: 127.0.0.1 only, stdlib ThreadingHTTPServer, its door (door.py) in front
of every request, then its static pages (static/) or its JSON API (gateway.py)."""
from __future__ import annotations

import secrets
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from admin_cli.api import AdminClient
from admin_cli.console.door import SECURITY_HEADERS, Door
from admin_cli.console.gateway import Answer, ConsoleApi, route_name, safe_filename

HOST = "127.0.0.1"  # never another interface: the server holds the admin's credentials
STATIC = Path(__file__).resolve().parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
         ".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


def static_files(root: Path = STATIC) -> dict[str, Path]:
    """URL path -> file, listed once at start: only these are served (no path is ever joined)."""
    files = {"/" + p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
             if p.is_file() and p.suffix in TYPES}
    files["/"] = root / "index.html"
    return files


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, client: Callable[[], AdminClient], token: str | None = None) -> None:
        super().__init__((HOST, port), Handler)
        self.door = Door(token or secrets.token_urlsafe(32), self.server_address[1])
        self.api = ConsoleApi(client)
        self.files = static_files()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.door.port}/?token={self.door.token}"


class Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    server_version = "garden-console"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _refuse_other(self) -> None:  # the door answers 405 (or 403 first, for a foreign Host/Origin)
        self._serve(body=True)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse_other

    def __getattr__(self, name: str) -> object:
        """Any other method (PROPFIND, ...) is refused like POST: 405, not http.server's 501."""
        if name.startswith("do_"):
            return self._refuse_other
        raise AttributeError(name)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, headers too long) with the console's
        headers, and without echoing the request."""
        self.close_connection = True
        text = HTTPStatus(code).phrase.encode("utf-8")
        self._send(code, text, "text/plain; charset=utf-8", {}, body=getattr(self, "command", None) != "HEAD")

    def _serve(self, body: bool) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        decision = self.server.door.check(self.command, self.path, headers)
        if decision.status:
            self._drain()
            text = decision.reason.encode("utf-8")
            return self._send(decision.status, text, "text/plain; charset=utf-8", decision.headers, body)
        split = urlsplit(self.path)
        if split.path.startswith("/api/"):
            answer = self.server.api.answer(split.path, parse_qs(split.query, keep_blank_values=True))
            if answer is None:
                return self._send(404, b'{"error": {"status": 404, "message": "no such console route"}}',
                                  "application/json", {}, body)
            return self._answer(answer, body)
        file = self.server.files.get(split.path)
        if file is None:
            return self._send(404, b"not found", "text/plain; charset=utf-8", {}, body)
        self._send(200, file.read_bytes(), TYPES[file.suffix], {}, body)

    def _answer(self, answer: Answer, body: bool) -> None:
        extra = {}
        if answer.filename:
            extra["Content-Disposition"] = f'attachment; filename="{safe_filename(answer.filename)}"'
        content_type = answer.content_type
        if content_type in ("application/json", "text/csv"):
            content_type += "; charset=utf-8"
        self._send(answer.status, answer.body, content_type, extra, body)

    def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | object,
              body: bool) -> None:
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, **dict(extra)}.items():  # type: ignore[call-overload]
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _drain(self) -> None:
        """Read a refused request's body (bounded), so the connection stays in step."""
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = 0
        if 0 < length <= 1 << 20:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per request on stderr: a file's path or a route's shape with its ids masked; never the
        query (the token rides in one) nor an id or path the server does not know."""
        path = urlsplit(self.path).path if isinstance(getattr(self, "path", None), str) else ""
        shown = path if path in self.server.files else route_name(path) or "(unknown path)"
        print(f"garden-admin console: {self.command} {shown} {code}", file=sys.stderr, flush=True)

    def log_message(self, format: str, *args: object) -> None:  # http.server's errors quote the request line
        print("garden-admin console: a request could not be read", file=sys.stderr, flush=True)


def thread_clients(make: Callable[[], AdminClient]) -> Callable[[], AdminClient]:
    """One admin API client per server thread, made on first use."""
    local = threading.local()

    def get() -> AdminClient:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = make()
        return client

    return get
