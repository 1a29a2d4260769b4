"""Child process of cold_start.py: import the app in BENCH_APP_DIR, serve one proxy event, report
timings as JSON."""
from __future__ import annotations

import json
import resource
import time

t0 = time.perf_counter()
import common  # noqa: E402  (sets sys.path; stdlib only)
from lambda_events import LambdaContext, proxy_event  # noqa: E402

from app import app  # noqa: E402  (BENCH_APP_DIR's app.py: the gateway's or the bare baseline's)
t_import = time.perf_counter()
result = app(proxy_event("POST", "/v1/chat/completions", common.CHAT, caller_arn=common.DEMO_PRINCIPAL),
             LambdaContext())
t_done = time.perf_counter()
assert result["statusCode"] == 200, result
print(json.dumps({
    "import_ms": (t_import - t0) * 1000,
    "first_request_ms": (t_done - t_import) * 1000,
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
