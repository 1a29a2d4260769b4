"""Shared by the benchmarks: paths, the gateway's environment, percentiles, a baseline app."""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BENCH_APP_DIR points at a copy of the app laid out as in the Lambda package (see cold_start.py).
APP_DIR = Path(os.environ.get("BENCH_APP_DIR", ROOT))
for p in (ROOT / "tests", APP_DIR):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

DEMO_PRINCIPAL = "arn:aws:sts::000000000000:assumed-role/garden-demo/bench-session"
CHAT = {"model": "local-echo", "messages": [
    {"role": "system", "content": "You are a helpful banking assistant."},
    {"role": "user", "content": "Summarise the fees on account 12345678 for jane.doe@example.com, "
                                "card 4111 1111 1111 1111, in two sentences."}]}


def gateway_env(home: str | None = None) -> dict[str, str]:
    """AWS mode as Lambda runs it (IAM identity from the event) with the embedded local adapters."""
    return {"GARDEN_IDENTITY": "iam", "GARDEN_HOME": home or tempfile.mkdtemp(prefix="garden-bench-")}


def quiet_request_log() -> Path:
    """Send the gateway's request log lines to a file for the benchmark's duration: they are part of
    the measured cost (in Lambda they go to a pipe), but thousands of them would bury the results."""
    import logging

    path = Path(tempfile.mkdtemp(prefix="garden-bench-log-")) / "requests.log"
    log = logging.getLogger("execution_garden")  # chalicelib.telemetry.LOGGER_NAME; it adds no handler of its own
    log.handlers[:] = [logging.FileHandler(path)]
    log.setLevel(logging.INFO)
    log.propagate = False
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)
