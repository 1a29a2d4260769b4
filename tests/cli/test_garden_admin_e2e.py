"""garden-admin end to end: the installed console script, in a subprocess with fake AWS credentials in
its environment, against the gateway as `make run` serves it (devserver/, local SigV4 identity,
SQLite store). Every command of the contract, its exit code, its output on stdout (indented JSON for
reads, one line for writes, CSV for `usage --csv`) and its readable errors on stderr."""
from __future__ import annotations

import copy
import csv
import io
import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests
from botocore.credentials import Credentials
from cli_support import (ADMIN_ARN, ADMIN_KEY_ID, ADMIN_SECRET, READER_ARN, READER_KEY_ID, READER_SECRET, Result,
                         add_local_credentials, credentials_env, garden_admin)
from local_server import Server, serve
from support import KEY_ID, SECRET, TEST_CATALOG

from client.garden_auth import SigV4RequestsAuth

CSV_FIGURES = ["requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "errors", "rejected"]


ECHO_SMALL = "echo-small-primary"  # a named deployment, as a bank's catalog names them


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("cli")
    catalog = copy.deepcopy(TEST_CATALOG)
    catalog["models"]["echo-small"]["deployments"][0]["name"] = ECHO_SMALL
    (root / "cli-catalog.json").write_text(json.dumps(catalog))
    env = {"GARDEN_ADMIN_PRINCIPALS": ADMIN_ARN, "GARDEN_ADMIN_READERS": READER_ARN,
           "GARDEN_CATALOG": str(root / "cli-catalog.json"),
           "GARDEN_REGISTRY_REFRESH_S": "1"}  # a change seen within a second (the default bound is 60 s)
    with serve(root, env) as server:
        add_local_credentials(server.home, {ADMIN_KEY_ID: (ADMIN_SECRET, ADMIN_ARN),
                                            READER_KEY_ID: (READER_SECRET, READER_ARN)})
        yield server


def admin(gateway: Server, *args: str, stdin: str | None = None, **extra: str) -> Result:
    return garden_admin(*args, env=credentials_env(ADMIN_KEY_ID, ADMIN_SECRET, url=gateway.base_url, **extra),
                        stdin=stdin)


def ok(result: Result) -> Result:
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    return result


def refused(result: Result, status: int, *needles: str) -> str:
    """An API refusal: exit 1, nothing on stdout, one readable line with the status (and code, param)."""
    assert result.code == 1, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"garden-admin: HTTP {status}"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def one_line(result: Result) -> str:
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return lines[0]


def chat(gateway: Server, key_id: str, secret: str, model: str, text: str) -> requests.Response:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(key_id, secret))
    return requests.post(f"{gateway.base_url}/v1/chat/completions", auth=auth, timeout=30,
                         json={"model": model, "messages": [{"role": "user", "content": text}]})


# The contract: a change is enforced by every container within 60 s of the admin API's answer.
ENFORCED_WITHIN_S = 60


def eventually(call: Callable[[], requests.Response], status: int) -> requests.Response:
    """`call` until it answers `status`, for at most the enforcement bound (and a little slack)."""
    deadline = time.monotonic() + ENFORCED_WITHIN_S + 5
    while True:
        response = call()
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def cli_app(app_id: str = "cli-app", **changes: Any) -> dict[str, Any]:
    return {
        "id": app_id,
        "business_unit": "markets",
        "principal_arns": [f"arn:aws:iam::111122223333:role/{app_id}-role"],
        "allowed_models": ["local-echo"],
        "external_id": f"execution-garden:{app_id}",
        "geography": "eu",
        "quotas": {"tokens_per_day": 50_000, "requests_per_minute": 60},
        **changes,
    }


def test_apps_set_get_list_delete(gateway: Server, tmp_path: Path) -> None:
    app = cli_app()
    path = tmp_path / "cli-app.json"
    path.write_text(json.dumps(app))
    assert one_line(ok(admin(gateway, "apps", "set", str(path)))) == "app cli-app stored"
    got = ok(admin(gateway, "apps", "get", "cli-app"))
    assert got.stdout.startswith("{\n  ")  # indented JSON
    assert {k: v for k, v in got.json().items() if k in app} == app
    assert "cli-app" in [a["id"] for a in ok(admin(gateway, "apps", "list")).json()["data"]]

    # from stdin, read back at once
    changed = cli_app(quotas={"tokens_per_day": 60_000})
    ok(admin(gateway, "apps", "set", "-", stdin=json.dumps(changed)))
    assert ok(admin(gateway, "apps", "get", "cli-app")).json()["quotas"] == {"tokens_per_day": 60_000}

    assert "app cli-app deleted" in one_line(ok(admin(gateway, "apps", "delete", "cli-app")))


def test_api_refusals_exit_1_with_status_code_and_param(gateway: Server, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cli_app("cli-bad", quotas={"tokens_per_day": -5})))
    refused(admin(gateway, "apps", "set", str(bad)), 400, "(param: quotas.tokens_per_day)")
    # the test catalog's test-app already holds this principal
    taken = tmp_path / "taken.json"
    taken.write_text(json.dumps(cli_app("cli-taken", principal_arns=["arn:aws:iam::111122223333:role/test-app-role"])))
    refused(admin(gateway, "apps", "set", str(taken)), 409, "principal_in_use", "(param: principal_arns)")
    refused(admin(gateway, "apps", "get", "no-such-app"), 404)
    refused(admin(gateway, "deployments", "disable", "no-such-deployment"), 404)
    refused(admin(gateway, "business-units", "set", "bad bu!", "--usd-per-month", "10"), 400)


def test_only_admins_write_and_readers_read(gateway: Server) -> None:
    app_env = credentials_env(KEY_ID, SECRET, url=gateway.base_url)  # an app's principal: not an admin
    refused(garden_admin("apps", "list", env=app_env), 403)
    wrong = credentials_env(ADMIN_KEY_ID, "not-the-secret", url=gateway.base_url)
    refused(garden_admin("apps", "list", env=wrong), 403)
    reader = credentials_env(READER_KEY_ID, READER_SECRET, url=gateway.base_url)
    assert "test-app" in [a["id"] for a in ok(garden_admin("apps", "list", env=reader)).json()["data"]]
    refused(garden_admin("business-units", "set", "markets", "--usd-per-month", "1", env=reader), 403)


def test_usage_csv_sums_what_the_v1_responses_reported(gateway: Server) -> None:
    today = datetime.now(timezone.utc).date()
    window = ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))]
    texts = ["hello", "a somewhat longer message " * 7, "x" * 301, "card 4111 1111 1111 1111", "bye"]
    prompt = completion = 0
    cost = Decimal(0)
    for text in texts:
        response = chat(gateway, KEY_ID, SECRET, "local-echo", text)
        assert response.status_code == 200, response.text
        prompt += response.json()["usage"]["prompt_tokens"]
        completion += response.json()["usage"]["completion_tokens"]
        cost += Decimal(response.headers["x-garden-cost-usd"])
    assert cost > 0  # the test catalog prices local-echo

    result = ok(admin(gateway, "usage", *window, "--group-by", "app,model", "--csv"))
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert reader.fieldnames == ["app_id", "model", *CSV_FIGURES]
    rows = [r for r in reader if (r["app_id"], r["model"]) == ("test-app", "local-echo")]
    assert len(rows) == 1
    row = rows[0]
    assert int(row["requests"]) == len(texts)
    assert (int(row["prompt_tokens"]), int(row["completion_tokens"])) == (prompt, completion)
    assert Decimal(row["cost_usd"]) == cost  # exactly, not only to the cent

    as_json = ok(admin(gateway, "usage", *window, "--group-by", "app,model")).json()
    assert as_json["object"] == "list"
    (same,) = [r for r in as_json["data"] if (r["app_id"], r["model"]) == ("test-app", "local-echo")]
    assert {k: str(v) for k, v in same.items()} == {k: str(Decimal(v)) if k == "cost_usd" else v
                                                    for k, v in row.items()}

    by_day = ok(admin(gateway, "usage", *window, "--group-by", "business_unit,day", "--csv")).stdout
    assert by_day.splitlines()[0] == ",".join(["business_unit", "day", *CSV_FIGURES])


def test_business_units_set_and_list(gateway: Server) -> None:
    line = one_line(ok(admin(gateway, "business-units", "set", "markets", "--usd-per-month", "2500.5",
                             "--tokens-per-month", "90000000")))
    assert line == "business unit markets stored: usd_per_month 2500.5, tokens_per_month 90000000"
    units = {u["id"]: u for u in ok(admin(gateway, "business-units", "list")).json()["data"]}
    assert units["markets"]["usd_per_month"] == 2500.5
    assert units["markets"]["tokens_per_month"] == 90_000_000


def test_deployments_disable_enable_and_the_change_log(gateway: Server) -> None:
    listed = ok(admin(gateway, "deployments", "list")).json()["data"]
    (name,) = [d["name"] for d in listed if any(r["model"] == "echo-small" for r in d["routes"])]
    assert name == ECHO_SMALL
    assert "disabled" in one_line(ok(admin(gateway, "deployments", "disable", name)))
    state = {d["name"]: d["enabled"] for d in ok(admin(gateway, "deployments", "list")).json()["data"]}
    assert state[name] is False
    assert "enabled" in one_line(ok(admin(gateway, "deployments", "enable", name)))
    state = {d["name"]: d["enabled"] for d in ok(admin(gateway, "deployments", "list")).json()["data"]}
    assert state[name] is True

    changes = ok(admin(gateway, "changes", "--limit", "2")).json()
    assert changes["object"] == "list" and len(changes["data"]) == 2
    newest, before = changes["data"]
    assert set(newest) == {"at", "principal", "action", "target", "before", "after"}
    assert newest["principal"] == ADMIN_ARN
    assert name in json.dumps(newest["target"]) and name in json.dumps(before["target"])
    assert newest["at"] >= before["at"]


def test_local_add_app_then_v1_with_the_printed_credentials(gateway: Server) -> None:
    args = ("local", "add-app", "--id", "markets-desk", "--business-unit", "markets",
            "--models", "local-echo,echo-small", "--tokens-per-day", "100000", "--requests-per-minute", "600")
    result = ok(admin(gateway, *args, GARDEN_HOME=str(gateway.home)))
    exports = dict(line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines()
                   if line.startswith("export "))
    assert exports["AWS_REGION"] == "us-east-1"
    assert "registered" in result.stderr and "markets-desk" in result.stderr

    app = ok(admin(gateway, "apps", "get", "markets-desk")).json()
    assert app["business_unit"] == "markets"
    assert app["external_id"] == "execution-garden:markets-desk"
    assert app["allowed_models"] == ["local-echo", "echo-small"]
    assert app["quotas"] == {"tokens_per_day": 100_000, "requests_per_minute": 600}
    assert "geography" not in app  # local-echo has no region: an "eu" app could not call it

    def as_the_new_app() -> requests.Response:
        return chat(gateway, exports["AWS_ACCESS_KEY_ID"], exports["AWS_SECRET_ACCESS_KEY"], "local-echo", "hi")

    response = eventually(as_the_new_app, 200)
    assert response.status_code == 200, response.text

    # again: the app is set again, the key pair kept
    again = ok(admin(gateway, *args, GARDEN_HOME=str(gateway.home)))
    assert f"export AWS_ACCESS_KEY_ID={exports['AWS_ACCESS_KEY_ID']}" in again.stdout
    credentials = json.loads((gateway.home / "local-credentials.json").read_text())
    assert [k for k, v in credentials.items() if v["principal_arn"].endswith("/garden-markets-desk")] == \
        [exports["AWS_ACCESS_KEY_ID"]]

    # deleted: its callers are refused, without a restart
    ok(admin(gateway, "apps", "delete", "markets-desk"))
    response = eventually(as_the_new_app, 403)
    assert response.status_code == 403 and response.json()["error"]["code"] == "app_disabled", response.text


def test_local_add_app_refused_by_the_gateway_writes_no_key(gateway: Server) -> None:
    result = admin(gateway, "local", "add-app", "--id", "bad-models", "--business-unit", "markets",
                   "--models", "no-such-model", GARDEN_HOME=str(gateway.home))
    refused(result, 400, "(param: allowed_models)")
    credentials = json.loads((gateway.home / "local-credentials.json").read_text())
    assert not any(v["principal_arn"].endswith("/garden-bad-models") for v in credentials.values())


def test_chargeback_run(gateway: Server) -> None:
    month = (datetime.now(timezone.utc).date().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    result = ok(admin(gateway, "chargeback", "run", "--month", month))
    assert one_line(result).startswith(f"chargeback {month} written")
    assert "running the chargeback" in result.stderr
    assert (gateway.home / "chargeback").is_dir()


def test_catalog_import(gateway: Server, tmp_path: Path) -> None:
    catalog = json.loads(Path(gateway.home.parent / "cli-catalog.json").read_text())
    catalog["apps"].append(cli_app("cli-imported"))
    catalog["business_units"] = {"wealth": {"usd_per_month": 100}}
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    result = ok(admin(gateway, "catalog", "import", str(path)))
    assert one_line(result) == f"catalog {path} imported: {len(catalog['apps'])} apps, 1 business units"
    assert ok(admin(gateway, "apps", "get", "cli-imported")).json()["business_unit"] == "markets"
    units = {u["id"]: u for u in ok(admin(gateway, "business-units", "list")).json()["data"]}
    assert units["wealth"]["usd_per_month"] == 100
    actions = [c["action"] for c in ok(admin(gateway, "changes", "--limit", "20")).json()["data"]]
    assert any("import" in a for a in actions)
