"""Child process of cold_start.py and prod_cold_start.py: import the app in BENCH_APP_DIR, serve one
proxy event, report timings as JSON. BENCH_MODEL names the model asked (default local-echo);
BENCH_PROFILE=<file> writes a cProfile of the whole run (imports included) there."""
from __future__ import annotations

import os

if os.environ.get("BENCH_PROFILE"):
    import cProfile

    _profile: cProfile.Profile | None = cProfile.Profile()
    _profile.enable()
else:
    _profile = None

import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402



def peak_rss_mb() -> float:
    """This process image's own peak RSS (VmHWM, reset by exec): ru_maxrss also counts the parent's
    pages a (v)forked child held before its exec, which a parent running moto inflates."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


gc_seconds = [0.0]
_gc_started = [0.0]


def _time_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        gc_seconds[0] += time.perf_counter() - _gc_started[0]


gc.callbacks.append(_time_gc)  # collection time until the answer (a callback costs microseconds)
t0 = time.perf_counter()
import common  # noqa: E402  (sets sys.path; stdlib only)
from lambda_events import LambdaContext, proxy_event  # noqa: E402

from app import app  # noqa: E402  (BENCH_APP_DIR's app.py: the gateway's or the bare baseline's)
t_import = time.perf_counter()
body = {**common.CHAT, "model": os.environ.get("BENCH_MODEL", common.CHAT["model"])}
result = app(proxy_event("POST", "/v1/chat/completions", body, caller_arn=common.DEMO_PRINCIPAL), LambdaContext())
t_done = time.perf_counter()
cpu_s = time.process_time()  # the process's CPU from its start to the answer: robust to a busy machine
if _profile is not None:
    _profile.disable()
    _profile.dump_stats(os.environ["BENCH_PROFILE"])
assert result["statusCode"] == 200, result
print(json.dumps({
    "import_ms": (t_import - t0) * 1000,
    "first_request_ms": (t_done - t_import) * 1000,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_rss_mb": peak_rss_mb(),
    "gc_ms": gc_seconds[0] * 1000,
    "cpu_ms": cpu_s * 1000,
    "loaded": sorted({m for m in ("boto3", "s3transfer", "multiprocessing", "opentelemetry") if m in sys.modules}),
}), flush=True)  # flushed: the parent times the answer, not the interpreter's exit
