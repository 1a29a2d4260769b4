"""What tracing costs the gateway: its own CPU per request with tracing off against tracing on, in
the same process and run, and what a cold start imports with tracing unset.

CPU per request: the Lambda handler called in-process with API Gateway proxy events through the
whole pipeline on the local adapters (as bench/per_request.py), in blocks of requests, the modes
interleaved block by block (so load on the shared machine falls on all alike); medians over blocks
of the process's CPU (time.process_time: every thread) and the calling thread's (time.thread_time):

- bare Chalice app: the floor (Chalice's own dispatch of the same event);
- tracing off: GARDEN_TRACING and OTEL_* unset (the default);
- tracing on, export dropped: the OpenTelemetry SDK's spans, an exporter that keeps nothing;
- tracing on, OTLP/HTTP: spans exported at the end of every request, as in Lambda, to an OTLP
  receiver on loopback in another process (its CPU is not counted).

"The pipeline's own cost" is tracing off minus the bare app; the target: tracing on (OTLP) adds at
most half of it.

Imports: a fresh process (bench/first_request.py, the Lambda layout) serves one chat with tracing
unset and with it set, under -X importtime: no opentelemetry module may load when unset.

    .venv/bin/python bench/tracing_cost.py [requests per block] [rounds]
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import common
from common import ROOT, median

from lambda_events import LambdaContext, proxy_event  # noqa: E402  (common put tests/ on sys.path)

HERE = ROOT / "bench"
TARGET_RATIO = 0.5
OTEL_VARIABLES = ("GARDEN_TRACING", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER")

# An OTLP/HTTP receiver in a process of its own: answers every export with an empty
# ExportTraceServiceResponse (200, zero bytes of protobuf) and counts them (GET /count).
RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = [0, 0]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        count[0] += 1; count[1] += len(body)
        self.send_response(200); self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        out = f"{count[0]} {count[1]}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(out))); self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class DropExporter:
    """An exporter that keeps nothing: the SDK's spans without the export (the adapter's interface)."""

    def export(self, spans: Any, until: float, monotonic: Any) -> bool:
        return True


def clean_tracing_env() -> None:
    for name in OTEL_VARIABLES:
        os.environ.pop(name, None)


def pipeline_for(tracing_env: dict[str, str], exporter: Any = None) -> Any:
    """A pipeline on the local adapters (a home of its own), built with `tracing_env` in the
    environment (the composition root reads the OTEL_* variables from it), then the variables removed."""
    from chalicelib import gateway
    from chalicelib.settings import Settings

    clean_tracing_env()
    os.environ.update(common.gateway_env())
    os.environ.update(tracing_env)
    try:
        settings = Settings.from_env()
        if exporter is None:
            return gateway.build_pipeline(settings)
        from chalicelib.tracing.otel import OtelTracing

        return gateway.build_pipeline(settings, tracing=OtelTracing.from_env(dict(os.environ), exporter=exporter))
    finally:
        clean_tracing_env()


def block(app: Any, pipeline: Any, events: list[dict]) -> tuple[float, float]:
    """CPU ms per request of the process and of this thread, serving `events` with `pipeline`
    installed (None: `app` is the bare baseline)."""
    from chalicelib import gateway

    gateway.use(pipeline)
    context = LambdaContext()
    cpu0, thread0 = time.process_time(), time.thread_time()
    for event in events:
        result = app(event, context)
        assert result["statusCode"] == 200, result
    return ((time.process_time() - cpu0) * 1000 / len(events), (time.thread_time() - thread0) * 1000 / len(events))


def start_receiver() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip() if proc.stdout else ""
    return proc, f"http://127.0.0.1:{port}"


def receiver_count(url: str) -> tuple[int, int]:
    import urllib.request

    with urllib.request.urlopen(url + "/count", timeout=5) as response:
        exports, size = response.read().decode().split()
    return int(exports), int(size)


def cpu_per_request(n: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    from app import app as gateway_app
    from baseline_app import app as baseline_app

    common.quiet_request_log()
    receiver, url = start_receiver()
    try:
        modes: dict[str, tuple[Any, Any]] = {"bare Chalice app": (baseline_app, None),
                                             "tracing off": (gateway_app, pipeline_for({}))}
        try:
            modes["tracing on, export dropped"] = (gateway_app, pipeline_for({"GARDEN_TRACING": "otlp"},
                                                                             DropExporter()))
        except (ImportError, TypeError) as exc:  # no OpenTelemetry adapter in this checkout
            print(f"(no SDK-only mode: {exc})")
        modes["tracing on, OTLP/HTTP"] = (gateway_app, pipeline_for({"OTEL_EXPORTER_OTLP_ENDPOINT": url,
                                                                     "OTEL_SERVICE_NAME": "garden-bench"}))
        events = [proxy_event("POST", "/v1/chat/completions", common.CHAT, caller_arn=common.DEMO_PRINCIPAL)
                  for _ in range(n)]
        for app, pipeline in modes.values():  # warm-up: caches, SQLite pages, the exporter's connection
            block(app, pipeline, events[:100])
        before = receiver_count(url)
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
        names = list(modes)
        for i in range(rounds):
            for name in names[i % len(names):] + names[:i % len(names)]:  # rotate who goes first
                results[name].append(block(*modes[name], events))
        exports, size = receiver_count(url)
        results["_exports"] = [(exports - before[0], size - before[1])]
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    return results


def imports_when(tracing_env: dict[str, str]) -> tuple[int, float, float]:
    """A cold process serving one chat: how many opentelemetry modules it imported, the ms their
    imports took (each module's own time, summed), and its peak RSS."""
    from cold_start import lambda_layout

    env = {k: v for k, v in os.environ.items() if k not in OTEL_VARIABLES and not k.startswith("BENCH_")}
    env.update(common.gateway_env(), PYTHONDONTWRITEBYTECODE="1", BENCH_APP_DIR=str(lambda_layout()),
               **tracing_env)
    done = subprocess.run([sys.executable, "-X", "importtime", str(HERE / "first_request.py")], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=120)
    otel = [line for line in done.stderr.splitlines() if line.startswith("import time:") and "opentelemetry" in line]
    self_us = sum(int(line.split(":", 1)[1].split("|")[0]) for line in otel)  # each module's own import time
    import json

    return len(otel), self_us / 1000, json.loads(done.stdout)["peak_rss_mb"]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    results = cpu_per_request(n, rounds)
    exports, size = results.pop("_exports")[0]
    print(f"the gateway's own CPU per request: {rounds} interleaved blocks of {n} requests, medians "
          f"(local adapters, in-process; 2-core shared machine)")
    print(f"{'handler':30} {'process CPU ms':>15} {'thread CPU ms':>14}")
    cpu = {name: (median([r[0] for r in rows]), median([r[1] for r in rows])) for name, rows in results.items()}
    for name, (process, thread) in cpu.items():
        print(f"{name:30} {process:15.3f} {thread:14.3f}")
    off = cpu["tracing off"][0]
    own = off - cpu["bare Chalice app"][0]
    on = cpu["tracing on, OTLP/HTTP"][0]
    print(f"the pipeline's own cost (tracing off - bare app): {own:.3f} ms; exports received: {exports} "
          f"({size / max(exports, 1):.0f} bytes each)")
    if "tracing on, export dropped" in cpu:
        spans = cpu["tracing on, export dropped"][0] - off
        print(f"tracing adds: spans {spans:+.3f} ms ({spans / own:.0%} of the pipeline's own), "
              f"spans + OTLP export {on - off:+.3f} ms ({(on - off) / own:.0%}); "
              f"x{on / off:.2f} of tracing off")
    ratio = (on - off) / own
    print(f"target: tracing adds <= {TARGET_RATIO:.0%} of the pipeline's own cost -> "
          f"{'met' if ratio <= TARGET_RATIO else 'MISSED'} ({ratio:.0%})")
    if exports == 0:
        print("WARNING: the receiver got no export: tracing was not on (is the OpenTelemetry adapter wired?)")

    unset_modules, _, unset_rss = imports_when({})
    set_modules, set_ms, set_rss = imports_when({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                                                 "OTEL_EXPORTER_OTLP_TIMEOUT": "1"})
    print(f"cold process, one chat (-X importtime): tracing unset imports {unset_modules} opentelemetry modules "
          f"(peak RSS {unset_rss:.1f} MB); set: {set_modules} modules, {set_ms:.1f} ms of imports "
          f"(peak RSS {set_rss:.1f} MB)")
    print(f"target: no OpenTelemetry import with tracing unset -> {'met' if unset_modules == 0 else 'MISSED'}")


if __name__ == "__main__":
    main()
