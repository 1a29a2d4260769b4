"""A loopback endpoint for any AWS service that reads each request and never answers (until the
test ends): what a stalled dependency looks like to the real boto3 client.

    with Stall() as stall:
        boto3.client("dynamodb", endpoint_url=stall.endpoint_url, ...)
"""
from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from fakes.loopback import AwsHandler, LoopbackServer


class Stall(LoopbackServer):
    def __init__(self) -> None:
        self.requests = 0
        super().__init__(_handler(self))

    def seen(self) -> None:
        with self._lock:
            self.requests += 1


def _handler(stall: Stall) -> type[BaseHTTPRequestHandler]:
    class Handler(AwsHandler):
        def do_POST(self) -> None:
            self.read_body()
            stall.seen()
            stall.stopping.wait()

        do_PUT = do_POST

    return Handler
