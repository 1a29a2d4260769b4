"""Chalice's local request handler and threaded server, with the gateway's manners."""
from __future__ import annotations

import json
import sys
from http import HTTPStatus
from typing import Any

from chalice.app import Response
from chalice.local import ChaliceRequestHandler, RouteMatcher, ThreadedHTTPServer

from chalicelib import web
from chalicelib.pipeline import new_request_id

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class GatewayRequestHandler(ChaliceRequestHandler):
    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any) -> None:
        self._routes = RouteMatcher(list(app_object.routes))  # before super(): it serves the request
        self._route: str | None = None
        self._responded = False
        super().__init__(request, client_address, server, app_object=app_object, config=config)

    def parse_request(self) -> bool:
        self._route, self._responded = None, False  # per request on a kept-alive connection
        return super().parse_request()

    def _generic_handle(self) -> None:
        length = self.headers.get("content-length", "0")
        if not length.isdigit():
            self.send_error(HTTPStatus.BAD_REQUEST)
            return
        try:
            self._route = self._routes.match_route(self.path).route
        except ValueError:
            self.rfile.read(int(length))  # drain it: the connection may carry another request
            self._send(web.unknown_route())
            return
        try:
            super()._generic_handle()
        except Exception as exc:  # outside the app (the app answers its own): class only, as ever
            self.close_connection = True
            response = web.fault(exc, new_request_id())
            if not self._responded:
                self._send(response)

    # Chalice binds its handler to the do_* names at class creation: bind ours the same way.
    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def _send(self, response: Response) -> None:
        answer = response.to_dict()
        self._send_http_response(answer["statusCode"], {**answer["headers"], **answer["multiValueHeaders"]},
                                 answer["body"])

    def send_response(self, code: int, message: str | None = None) -> None:
        self._responded = True
        super().send_response(code, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed HTTP: an OpenAI-shaped error that never quotes the offending request line."""
        self.close_connection = True
        self._send(web.http_error(int(code)))

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """The access line, without the query string and with path parameters masked
        (`/v1/models/{model_id}`): a path or a query can carry what a caller typed."""
        method = self.command if self.command in _METHODS else "-"
        status = code.value if isinstance(code, HTTPStatus) else code
        self.log_message('"%s %s" %s', method, self._route or "<unrouted>", status)

    def log_error(self, format: str, *args: Any) -> None:
        self.log_message("%s", "connection error")  # its arguments may quote the request


class GatewayHTTPServer(ThreadedHTTPServer):
    # The listen backlog: socketserver's default of 5 drops new connections in a burst.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An exception in a connection's thread (a client gone mid-answer, ...): one line, by class."""
        error = sys.exc_info()[1]
        print(json.dumps({"event": "fault", "where": "devserver", "error_class": type(error).__name__}),
              file=sys.stderr, flush=True)
