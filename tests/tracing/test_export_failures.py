"""A collector that is down, hangs or refuses never fails a request nor holds every one: each export
waits at most a second, and after a failure the exporter rests (drops spans) instead of waiting
again; the failure is logged once, by kind, with no payload."""
from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import requests
from botocore.credentials import Credentials
from local_server import serve
from support import KEY_ID, SECRET

from client.garden_auth import SigV4RequestsAuth


class HungCollector:
    """Accepts connections and reads what is sent, never answers; counts the POSTs it saw."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self.posts = 0
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                continue
            self._held.append(conn)
            conn.settimeout(5)
            try:
                if conn.recv(65536).startswith(b"POST "):
                    self.posts += 1
            except OSError:
                pass

    def __enter__(self) -> "HungCollector":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._server.close()


def chat(base_url: str) -> requests.Response:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(KEY_ID, SECRET))
    body = {"model": "local-echo", "messages": [{"role": "user", "content": "hello"}]}
    return requests.post(f"{base_url}/v1/chat/completions", data=json.dumps(body).encode(), auth=auth, timeout=20,
                         headers={"content-type": "application/json"})


def export_failures(output: Path) -> list[dict]:
    lines = [json.loads(line) for line in output.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "trace_export_failed"]


def test_a_hung_collector_is_waited_for_once_then_rested(tmp_path: Path) -> None:
    with HungCollector() as collector:
        with serve(tmp_path, {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}) as server:
            statuses = [chat(server.base_url).status_code for _ in range(4)]
        assert statuses == [200] * 4
        assert collector.posts == 1  # the first export timed out; the next three were not tried
    failures = export_failures(server.output)
    assert [f["problem"] for f in failures] == ["timeout"]


def test_a_collector_that_is_not_there_fails_no_request(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with serve(tmp_path, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{port}/v1/traces"}) as server:
        assert [chat(server.base_url).status_code for _ in range(3)] == [200] * 3
    assert [f["problem"] for f in export_failures(server.output)] == ["unreachable"]
