"""`make audit-verify` on the trail of the gateway as `make run` serves it (tests/local_server.py):
chat requests and admin changes signed with SigV4 over HTTP land in one trail; the make target, run
as a subprocess, checks it, and catches a whole chain gone (registered in the ledger, no record)."""
from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import requests
from audit_support import CANARY
from botocore.credentials import Credentials
from local_server import serve
from support import KEY_ID, ROOT, SECRET

from chalicelib.identity.local_credentials import ensure_demo_credentials
from chalicelib.settings import LOCAL_ADMIN_PRINCIPAL
from client.garden_auth import SigV4RequestsAuth


def make_verify(home: Path, day: str | None) -> subprocess.CompletedProcess[str]:
    variables = [f"GARDEN_HOME={home}"] + ([f"DATE={day}"] if day else [])
    return subprocess.run(["make", "--no-print-directory", "audit-verify", *variables], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_make_audit_verify_checks_requests_and_admin_changes_and_a_missing_chain(tmp_path: Path) -> None:
    with serve(tmp_path) as server:
        admin_id, admin_secret, _ = ensure_demo_credentials(server.home / "local-credentials.json",
                                                            LOCAL_ADMIN_PRINCIPAL)

        def call(method: str, path: str, who: Credentials, body: object) -> requests.Response:
            return requests.request(method, f"{server.base_url}{path}", json=body, timeout=30,
                                    auth=SigV4RequestsAuth(region="us-east-1", credentials=who))

        app, admin = Credentials(KEY_ID, SECRET), Credentials(admin_id, admin_secret)
        for i in range(3):
            answer = call("POST", "/v1/chat/completions", app,
                          {"model": "local-echo", "messages": [{"role": "user", "content": f"{CANARY} {i}"}]})
            assert answer.status_code == 200, answer.text
        change = call("PUT", "/admin/v1/business-units/retail-banking", admin,
                      {"usd_per_month": 750, "note_for_canary": CANARY})
        change = change if change.status_code == 200 else call(
            "PUT", "/admin/v1/business-units/retail-banking", admin, {"usd_per_month": 750})
        assert change.status_code == 200, change.text
        change_id = change.headers["x-request-id"]
    home = server.home
    trail = [json.loads(line) for p in sorted((home / "audit").rglob("*.jsonl")) for line in p.read_text().splitlines()]
    day = trail[0]["timestamp"][:10]
    admin_records = [r for r in trail if r["route"].startswith("admin.")]
    assert change_id in {r["request_id"] for r in admin_records}  # admin changes are records of the same trail
    assert all(r["chain_id"] and r["body_hmac"] for r in trail)
    assert len({r["chain_id"] for r in trail}) == 2  # the request path's chain and the admin room's

    result = make_verify(home, day)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"audit trail {day}: OK: {len(trail)} records in 2 chains" in result.stdout
    if datetime.now(timezone.utc).strftime("%Y-%m-%d") == day:  # the default day is today, UTC
        assert f"audit trail {day}: OK" in make_verify(home, None).stdout
    for path in [*(home / "audit").rglob("*"), home / "garden.sqlite3"]:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path

    # The admin room's chain vanishes whole: its file is gone, the ledger still registers it.
    admin_file = home / "audit" / "_unidentified" / day.replace("-", "/")
    admin_file.with_suffix(".jsonl").unlink()
    result = make_verify(home, day)
    assert result.returncode != 0
    assert f"chain missing: record {admin_records[-1]['request_id']}" in result.stdout, result.stdout


def test_concurrent_requests_keep_the_chain_in_order(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with serve(tmp_path) as server:
        app = Credentials(KEY_ID, SECRET)

        def one(i: int) -> int:
            return requests.post(f"{server.base_url}/v1/chat/completions", timeout=30,
                                 json={"model": "local-echo", "messages": [{"role": "user", "content": f"q{i}"}]},
                                 auth=SigV4RequestsAuth(region="us-east-1", credentials=app)).status_code

        with ThreadPoolExecutor(max_workers=6) as pool:
            assert set(pool.map(one, range(30))) == {200}
    (path,) = (server.home / "audit").rglob("*.jsonl")
    trail = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["seq"] for r in trail] == list(range(1, 31))  # the file's order is the chain's
    result = make_verify(server.home, trail[0]["timestamp"][:10])
    assert result.returncode == 0 and "OK: 30 records in 1 chains" in result.stdout, result.stdout
