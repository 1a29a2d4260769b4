"""The gateway's own cost per request: the Lambda handler called with API Gateway proxy events,
as Lambda calls it, through the whole pipeline with the local adapters (SQLite ledger, local PII,
local guardrail, local-echo, JSON-lines audit, log telemetry). Baseline in the same run: a bare
one-route Chalice app dispatching the same event.

    .venv/bin/python bench/per_request.py [requests]
"""
from __future__ import annotations

import os
import sys
import time

import common
from common import percentile

os.environ.update(common.gateway_env())
from lambda_events import LambdaContext, proxy_event  # noqa: E402


def timed(app, events: list[dict], warmup: int = 200) -> tuple[list[float], float]:
    context = LambdaContext()
    for event in events[:warmup]:
        app(event, context)
    samples = []
    cpu0 = time.process_time()
    for event in events:
        t = time.perf_counter_ns()
        result = app(event, context)
        samples.append((time.perf_counter_ns() - t) / 1e6)
        assert result["statusCode"] == 200, result
    return samples, (time.process_time() - cpu0) * 1000 / len(events)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    from app import app as gateway_app
    from baseline_app import app as baseline_app

    log_path = common.quiet_request_log()
    events = [proxy_event("POST", "/v1/chat/completions", common.CHAT, caller_arn=common.DEMO_PRINCIPAL)
              for _ in range(n)]
    rows = []
    for name, app in (("bare Chalice app", baseline_app), ("gateway pipeline", gateway_app)):
        samples, cpu_ms = timed(app, events)
        rows.append((name, percentile(samples, 50), percentile(samples, 99), cpu_ms))
    print(f"per request over {n} requests after 200 warm-up (2-core shared machine)")
    print(f"{'handler':20} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>11}")
    for name, p50, p99, cpu in rows:
        print(f"{name:20} {p50:8.3f} {p99:8.3f} {cpu:11.3f}")
    base, gw = rows[0], rows[1]
    print(f"gateway - bare Chalice: p50 +{gw[1] - base[1]:.3f} ms (x{gw[1] / base[1]:.1f})")
    print(f"targets: p50 <= 1 ms -> {'met' if gw[1] <= 1 else 'MISSED'}; "
          f"p99 <= 3 ms -> {'met' if gw[2] <= 3 else 'MISSED'}")
    print(f"(the gateway's request log lines: {log_path})")


if __name__ == "__main__":
    main()
