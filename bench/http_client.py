"""Which HTTP client the `openai` provider uses: import cost on top of the gateway's cold path, and
the cost of a first (new connection) and a steady (kept-alive) request, against baselines measured
in the same run.

- import: a fresh interpreter imports app.py (what a Lambda container loads), then the client;
  the time of the client's import alone, median of N processes (http.client imports ssl itself). Baseline: importing a module that is
  already loaded (the measurement's floor).
- requests: POST of a 500-byte JSON body to a loopback HTTP/1.1 server answering 300 bytes of JSON;
  first = a new client and a new connection, median of N; steady = one kept-alive connection,
  median and p90 of M. Baseline: the same bytes over a raw socket.

    .venv/bin/python bench/http_client.py [processes] [requests]
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from common import ROOT, median, percentile

IMPORTS = {
    "baseline (json, already loaded)": "json",
    "http.client": "http.client",
    "the openai provider (http.client, its modules)": "chalicelib.providers.openai.provider",
    "urllib3": "urllib3",
    "httpx": "httpx",
}
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 420}], "max_tokens": 64}).encode()
ANSWER = json.dumps({"id": "c", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "y" * 120}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}}).encode()
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}


def import_ms(module: str, runs: int) -> float:
    code = ("import sys, time; sys.path.insert(0, %r); import app; t = time.perf_counter(); import %s; "
            "print(time.perf_counter() - t)") % (str(ROOT), module)
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                             capture_output=True, text=True, check=True).stdout
        times.append(float(out) * 1000)
    return median(times)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args: Any) -> None:
        pass


def raw_socket(url: str) -> Callable[[], Callable[[], bytes]]:
    host, port = url.split("//")[1].split("/")[0].split(":")
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Authorization: Bearer sk-bench\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY

    def client() -> Callable[[], bytes]:
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def post() -> bytes:
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, rest = data.partition(b"\r\n\r\n")
            while len(rest) < len(ANSWER):
                rest += sock.recv(65536)
            return rest

        return post

    return client


def gateway_pool(url: str) -> Callable[[], Callable[[], bytes]]:
    from chalicelib.providers.upstream_http import HttpPool

    def client() -> Callable[[], bytes]:
        pool = HttpPool()

        def post() -> bytes:
            response = pool.post(url, BODY, HEADERS, time.monotonic() + 10)
            try:
                return response.read_all(1 << 20)
            finally:
                response.close()

        return post

    return client


def plain_http_client(url: str) -> Callable[[], Callable[[], bytes]]:
    import http.client

    host, port = url.split("//")[1].split("/")[0].split(":")

    def client() -> Callable[[], bytes]:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)

        def post() -> bytes:
            conn.request("POST", "/v1/chat/completions", body=BODY, headers=HEADERS)
            return conn.getresponse().read()

        return post

    return client


def urllib3_pool(url: str) -> Callable[[], Callable[[], bytes]]:
    import urllib3

    def client() -> Callable[[], bytes]:
        pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=1.0, read=10.0))

        def post() -> bytes:
            return pool.request("POST", url, body=BODY, headers=HEADERS).data

        return post

    return client


def httpx_client(url: str) -> Callable[[], Callable[[], bytes]]:
    import httpx

    def client() -> Callable[[], bytes]:
        session = httpx.Client(timeout=10.0, trust_env=False)

        def post() -> bytes:
            return session.post(url, content=BODY, headers=HEADERS).content

        return post

    return client


def measure(make: Callable[[], Callable[[], bytes]], firsts: int, steady: int) -> tuple[float, float, float]:
    first: list[float] = []
    for _ in range(firsts):
        post = make()
        start = time.perf_counter()
        assert post() == ANSWER
        first.append(time.perf_counter() - start)
    post = make()
    for _ in range(20):
        post()
    times = []
    for _ in range(steady):
        start = time.perf_counter()
        post()
        times.append(time.perf_counter() - start)
    return median(first) * 1e6, median(times) * 1e6, percentile(times, 90) * 1e6


def main() -> None:
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    requests = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    print(f"import on top of app.py (median of {processes} fresh processes)")
    for label, module in IMPORTS.items():
        try:
            print(f"  {label:48s} {import_ms(module, processes):7.1f} ms")
        except subprocess.CalledProcessError:
            print(f"  {label:48s}  not installed")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
    clients = {"baseline: raw socket": raw_socket, "gateway: http.client + deadline reader (HttpPool)": gateway_pool,
               "http.client, plain": plain_http_client, "urllib3 PoolManager": urllib3_pool, "httpx Client": httpx_client}
    print(f"\nPOST to a loopback server, µs (first: median of {processes} new connections; "
          f"steady: median and p90 of {requests} kept-alive)")
    print(f"  {'client':52s} {'first':>8s} {'steady':>8s} {'p90':>8s}")
    for label, factory in clients.items():
        try:
            first, steady, p90 = measure(factory(url), processes, requests)
        except ImportError:
            print(f"  {label:52s}  not installed")
            continue
        print(f"  {label:52s} {first:8.0f} {steady:8.0f} {p90:8.0f}")
    server.shutdown()


if __name__ == "__main__":
    main()
