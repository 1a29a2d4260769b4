"""The console under test: the gateway as `make run` serves it (tests/local_server.py `serve`), the
local admin's key pair written as `make run` writes it, apps of three business units with traffic,
and `garden-admin console` started as the admin would start it (the installed console script, in a
subprocess, the admin's credentials in its environment), its printed URL read from stdout."""
from __future__ import annotations

import copy
import json
import os
import queue
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import requests
from botocore.credentials import Credentials

from chalicelib.identity.local_credentials import ensure_demo_credentials
from chalicelib.settings import LOCAL_ADMIN_PRINCIPAL
from client.garden_auth import SigV4RequestsAuth
from local_server import Server, serve
from support import ACCOUNT, KEY_ID, QUOTA_KEY_ID, ROOT, SECRET, TEST_CATALOG

GARDEN_ADMIN = Path(sys.executable).parent / "garden-admin"
CONSOLE_LINE = re.compile(r"Console: http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]+)")
ARTIFACTS = ROOT / "build" / "test-artifacts" / "console"

# Strings sent inside prompts (and guardrail / PII triggers): none may reach any console answer.
CANARIES = ("CONSOLE-CANARY-7f3a9c", "canary.console@example.com", "CONSOLE-CANARY-GUARD-51be")


@dataclass
class Traffic:
    """What the test sent, to check the console's figures against the admin API's."""

    apps: dict[str, Credentials] = field(default_factory=dict)
    statuses: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class Console:
    url: str  # the printed URL, with its token
    base: str  # http://127.0.0.1:<port>
    port: int
    token: str
    process: subprocess.Popen
    stderr: list[str]


@dataclass
class ConsoleGarden:
    server: Server
    admin: Credentials
    traffic: Traffic

    def admin_get(self, path: str, **params: str) -> requests.Response:
        auth = SigV4RequestsAuth(region="us-east-1", credentials=self.admin)
        return requests.get(f"{self.server.base_url}/admin/v1/{path}", params=params or None, auth=auth, timeout=30)

    def admin_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GARDEN_"))}
        env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "AWS_EC2_METADATA_DISABLED": "true", "AWS_ACCESS_KEY_ID": self.admin.access_key,
                    "AWS_SECRET_ACCESS_KEY": self.admin.secret_key, "AWS_REGION": "us-east-1",
                    "GARDEN_URL": self.server.base_url, "BROWSER": "true"})
        return env


def console_catalog() -> dict[str, Any]:
    catalog = copy.deepcopy(TEST_CATALOG)
    catalog["business_units"] = {"retail-banking": {"usd_per_month": 500, "tokens_per_month": 50_000_000}}
    return catalog


def _app(app_id: str, bu: str, quotas: dict[str, Any]) -> dict[str, Any]:
    return {"id": app_id, "business_unit": bu, "principal_arns": [f"arn:aws:iam::{ACCOUNT}:role/{app_id}"],
            "allowed_models": ["local-echo", "echo-small"], "external_id": f"execution-garden:{app_id}",
            "pii": {"input": {"default": "REDACT"}, "output": {"default": "REDACT"}},
            "guardrail": {"denied_words": ["guaranteed returns"]}, "quotas": quotas}


def _chat(url: str, who: Credentials, model: str, text: str) -> int:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=who)
    response = requests.post(f"{url}/v1/chat/completions", auth=auth, timeout=30,
                             json={"model": model, "messages": [{"role": "user", "content": text}]})
    return response.status_code


def send_traffic(garden: ConsoleGarden) -> None:
    """Three business units, five apps, two models; answered, guardrail-blocked, PII-redacted and
    quota-refused requests, each prompt carrying a canary."""
    url = garden.server.base_url
    auth = SigV4RequestsAuth(region="us-east-1", credentials=garden.admin)
    path = garden.server.home / "local-credentials.json"
    for app_id, bu, quotas in (("markets-desk", "markets", {"tokens_per_day": 20_000, "usd_per_month": 25}),
                               ("wealth-advisor", "wealth", {"tokens_per_month": 2_000_000, "requests_per_minute": 600})):
        assert requests.put(f"{url}/admin/v1/apps/{app_id}", json=_app(app_id, bu, quotas), auth=auth,
                            timeout=30).status_code == 200
        key_id, secret, _ = ensure_demo_credentials(path, f"arn:aws:iam::{ACCOUNT}:role/{app_id}")
        garden.traffic.apps[app_id] = Credentials(key_id, secret)
    for bu, budget in (("markets", {"usd_per_month": 40}), ("wealth", {"usd_per_month": 10, "tokens_per_month": 9_000_000})):
        assert requests.put(f"{url}/admin/v1/business-units/{bu}", json=budget, auth=auth, timeout=30).status_code == 200
    garden.traffic.apps["test-app"] = Credentials(KEY_ID, SECRET)
    garden.traffic.apps["small-quota-app"] = Credentials(QUOTA_KEY_ID, SECRET)
    plan = [
        ("test-app", "local-echo", f"Summarise the branch report {CANARIES[0]} " * 40, 6),
        ("test-app", "echo-small", f"Short answer please {CANARIES[0]}", 3),
        ("test-app", "local-echo", f"Write to {CANARIES[1]} about {CANARIES[0]}", 2),
        ("markets-desk", "local-echo", f"Send the ladder to {CANARIES[1]} {CANARIES[0]}", 2),
        ("markets-desk", "local-echo", f"We promise guaranteed returns {CANARIES[2]}", 2),
        ("wealth-advisor", "local-echo", f"Plan for a client {CANARIES[0]} " * 20, 4),
        ("wealth-advisor", "echo-small", f"Email {CANARIES[1]} a summary", 2),
        ("small-quota-app", "local-echo", f"Too long for a small quota {CANARIES[0]} " * 30, 3),
    ]
    for app_id, model, text, times in plan:
        for _ in range(times):
            status = _chat(url, garden.traffic.apps[app_id], model, text)
            garden.traffic.statuses.setdefault(app_id, []).append(status)
    record_last_month(garden.server.home)
    # markets-desk until its tokens_per_day refuses it twice (about 20 requests; bounded).
    statuses = garden.traffic.statuses.setdefault("markets-desk", [])
    for _ in range(60):
        statuses.append(_chat(url, garden.traffic.apps["markets-desk"], "local-echo",
                              f"Price the bond ladder {CANARIES[0]} " * 80))
        if statuses.count(429) >= 2:
            break
    assert statuses.count(429) >= 2, statuses


def last_month() -> str:
    first = datetime.now(timezone.utc).date().replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def record_last_month(home: Path) -> None:
    """A closed month with usage, for the chargeback page: events of last month's days written through
    the gateway's own local usage store (requests cannot be sent in the past)."""
    from chalicelib.usage import UsageEvent
    from chalicelib.usage_store.sqlite import SqliteUsageStore

    store = SqliteUsageStore(home / "garden.sqlite3")
    month = last_month()
    for app_id, bu, day, cost_units in (("markets-desk", "markets", "15", 12_345_678),
                                        ("test-app", "retail-banking", "03", 250_000_000),
                                        ("test-app", "retail-banking", "28", 1)):
        store.record(UsageEvent(app_id=app_id, business_unit=bu, model="local-echo", day=f"{month}-{day}",
                                outcome="ok", prompt_tokens=1000, completion_tokens=500, cost_units=cost_units))


@contextmanager
def console_garden(root: Path) -> Iterator[ConsoleGarden]:
    catalog_path = root / "console-catalog.json"
    catalog_path.write_text(json.dumps(console_catalog()))
    with serve(root, env={"GARDEN_CATALOG": str(catalog_path), "GARDEN_REGISTRY_REFRESH_S": "1"}) as server:
        key_id, secret, _ = ensure_demo_credentials(server.home / "local-credentials.json", LOCAL_ADMIN_PRINCIPAL)
        garden = ConsoleGarden(server, Credentials(key_id, secret), Traffic())
        send_traffic(garden)
        yield garden


@contextmanager
def running_console(garden: ConsoleGarden, *args: str, env: dict[str, str] | None = None) -> Iterator[Console]:
    """`garden-admin console --no-browser` in a subprocess until its URL line is printed (30 s at most)."""
    assert GARDEN_ADMIN.exists(), f"{GARDEN_ADMIN} is missing: `make venv` installs it (pip install -e .)"
    process = subprocess.Popen([str(GARDEN_ADMIN), "console", "--no-browser", *args], env=env or garden.admin_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: queue.Queue[str] = queue.Queue()
    stderr: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    threading.Thread(target=lambda: [stderr.append(line) for line in process.stderr], daemon=True).start()  # type: ignore[union-attr]
    try:
        try:
            line = lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError(f"garden-admin console printed no URL within 30 s: {''.join(stderr)}") from None
        match = CONSOLE_LINE.fullmatch(line.rstrip("\n"))
        assert match, f"not the console line: {line!r}"
        port, token = int(match.group(1)), match.group(2)
        yield Console(line.strip().removeprefix("Console: "), f"http://127.0.0.1:{port}", port, token, process, stderr)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
