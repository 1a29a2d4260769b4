"""Cold start: a fresh process imports app.py and serves its first request, as a new Lambda
container does, from the files the Lambda package holds (bench/common.py's BENCH_APP_DIR). Wall
time (spawn to exit) and peak RSS, median of N runs, against baselines measured in the same run:
a bare interpreter and a bare one-route Chalice app in the same layout.

    .venv/bin/python bench/cold_start.py [runs]
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import chalice

from common import ROOT, gateway_env, median

HERE = ROOT / "bench"


def run_once(argv: list[str], env: dict[str, str], base_env: dict[str, str] | None = None,
             ) -> tuple[float, float, dict]:
    """Wall time (spawn to exit), the child's peak RSS (wait4) and what it printed (JSON)."""
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env={**(os.environ if base_env is None else base_env), **env}, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=errors)
        out = proc.stdout.readline() if proc.stdout else b""
        answered_ms = (time.perf_counter() - start) * 1000
        out += proc.stdout.read() if proc.stdout else b""
        _, status, usage = os.wait4(proc.pid, 0)
        wall_ms = (time.perf_counter() - start) * 1000
        if status != 0:
            errors.seek(0)
            raise SystemExit(f"{argv} failed with status {status}:\n{errors.read().decode(errors='replace')[-3000:]}")
    detail = json.loads(out) if out.strip() else {}
    if detail:
        detail["answered_ms"] = answered_ms  # spawn to the answer: what a cold invocation waits for
    return wall_ms, usage.ru_maxrss / 1024, detail


def lambda_layout(app: str = "gateway", bytecode: bool = True, revision: str | None = None) -> Path:
    """The files a Lambda package holds: app.py, chalicelib/ and Chalice's own app.py and
    __init__.py. With `bytecode`, checked-hash .pyc beside each, as `make package` ships them
    (scripts/add_bytecode.py); without, what plain `chalice package` ships. `revision`: the gateway's
    files as that git revision has them (a before/after comparison), else the working tree's."""
    out = Path(tempfile.mkdtemp(prefix="garden-lambda-"))
    if app == "gateway" and revision:
        archive = subprocess.run(["git", "archive", revision, "app.py", "chalicelib"], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    elif app == "gateway":
        shutil.copy2(ROOT / "app.py", out / "app.py")
        shutil.copytree(ROOT / "chalicelib", out / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copy2(HERE / "baseline_app.py", out / "app.py")
    (out / "chalice").mkdir()
    for name in ("__init__.py", "app.py"):
        shutil.copy2(Path(chalice.__file__).parent / name, out / "chalice" / name)
    if bytecode:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash",
                        str(out)], check=True)
    return out


def measure(name: str, argv: list[str], runs: int, fresh_home: bool = False,
            env: dict[str, str] | None = None) -> dict:
    walls, rss, inner = [], [], []
    for _ in range(runs):
        wall, peak, detail = run_once(argv, {**(gateway_env() if fresh_home else {}), **(env or {})})
        walls.append(wall)
        rss.append(detail.get("peak_rss_mb", peak))  # the child's own peak where it reports one
        inner.append(detail)
    row = {"name": name, "wall_ms": median(walls), "rss_mb": median(rss)}
    if inner[0]:
        row["import_ms"] = median([d["import_ms"] for d in inner])
        row["first_request_ms"] = median([d["first_request_ms"] for d in inner])
    return row


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    py = sys.executable
    no_cache = {"PYTHONDONTWRITEBYTECODE": "1"}  # Lambda's /var/task is read-only
    first = [py, str(HERE / "first_request.py")]
    rows = [
        measure("python -c pass", [py, "-c", "pass"], runs),
        measure("bare Chalice app + 1 request", first, runs,
                env={**no_cache, "BENCH_APP_DIR": str(lambda_layout("baseline"))}),
        measure("gateway + 1 chat, as packaged", first, runs, fresh_home=True,
                env={**no_cache, "BENCH_APP_DIR": str(lambda_layout())}),
        measure("  same, no shipped .pyc", first, runs, fresh_home=True,
                env={**no_cache, "BENCH_APP_DIR": str(lambda_layout(bytecode=False))}),
    ]
    base = rows[1]
    print(f"cold start, median of {runs} fresh processes (2-core shared machine)")
    print(f"{'process':36} {'wall ms':>8} {'RSS MB':>7} {'import ms':>10} {'1st req ms':>10}")
    for r in rows:
        print(f"{r['name']:36} {r['wall_ms']:8.1f} {r['rss_mb']:7.1f} "
              f"{r.get('import_ms', float('nan')):10.1f} {r.get('first_request_ms', float('nan')):10.1f}")
    gw = rows[2]  # what `make package` ships
    print(f"gateway / bare Chalice: wall x{gw['wall_ms'] / base['wall_ms']:.2f}, "
          f"RSS x{gw['rss_mb'] / base['rss_mb']:.2f}")
    print(f"targets: wall <= 250 ms -> {'met' if gw['wall_ms'] <= 250 else 'MISSED'}; "
          f"RSS <= 60 MB -> {'met' if gw['rss_mb'] <= 60 else 'MISSED'}")


if __name__ == "__main__":
    main()
