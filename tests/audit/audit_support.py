"""Helpers for the audit trail tests: a gateway whose records fall on a fixed UTC day, the day's
JSON lines file as the local sink wrote it, and `garden-admin audit verify` run as a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from support import ROOT, Garden, running_garden

DAY, NEXT_DAY = "2026-11-20", "2026-11-21"
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc).timestamp()
T1 = datetime(2026, 11, 21, 0, 0, 5, tzinfo=timezone.utc).timestamp()
CANARY = "CANARY-audit-chain-5d1e"


class Clock:
    """The frame's clock (record timestamps): a fixed day, a millisecond further on each read."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


@contextmanager
def chained_garden(root: Path, monkeypatch: pytest.MonkeyPatch, every: int = 100,
                   clock: Clock | None = None, **overrides: Any) -> Iterator[Garden]:
    monkeypatch.setenv("GARDEN_AUDIT_CHECKPOINT_EVERY", str(every))
    with running_garden(root, clock=clock or Clock(T0), **overrides) as g:
        yield g


def chat(g: Garden, text: str = "hello there") -> str:
    response = g.chat({"model": "local-echo", "messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.body
    return response.headers["x-request-id"]


def day_file(home: Path, day: str = DAY, bu: str = "retail-banking") -> Path:
    yyyy, mm, dd = day.split("-")
    return home / "audit" / bu / yyyy / mm / f"{dd}.jsonl"


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_records(path: Path, recs: list[dict[str, Any]]) -> None:
    """As the local sink writes them: sorted keys, compact, one line each."""
    path.write_text("".join(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n" for r in recs))


def verify(home: Path, day: str = DAY, *extra: str) -> subprocess.CompletedProcess[str]:
    """`garden-admin audit verify` on the local trail, as a subprocess."""
    return subprocess.run([sys.executable, "-m", "admin_cli", "audit", "verify", "--date", day, "--home", str(home),
                           *extra], cwd=ROOT, capture_output=True, text=True, timeout=120)


def finding(result: subprocess.CompletedProcess[str], problem: str, request_id: str) -> str:
    """The summary line naming `request_id` for `problem`; fails the test when there is none."""
    assert result.returncode == 1, result.stdout + result.stderr
    for line in result.stdout.splitlines():
        if line.strip().startswith(f"{problem}: record {request_id}"):
            return line
    raise AssertionError(f"no '{problem}' finding naming {request_id}:\n{result.stdout}")
