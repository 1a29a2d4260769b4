"""Local mode as `make run` serves it (devserver/), against a real server on a free loopback port:
the access log, local SigV4's checks beyond the signature, concurrency, a burst of connections,
unknown paths, and configuration problems named at start."""
from __future__ import annotations

import copy
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest
import requests
from botocore.credentials import Credentials
from local_server import Server, serve, server_command
from openai_schema import validate
from signing import signed_headers
from support import KEY_ID, ROOT, SECRET, TEST_CATALOG, make_home

from client.garden_auth import SigV4RequestsAuth, openai_client

CREDS = Credentials(KEY_ID, SECRET)


def raw_request(server: Server, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                ) -> tuple[int, dict[str, str], bytes]:
    """http.client sends the path exactly as given (no dot-segment clean-up, unlike requests)."""
    netloc = urlsplit(server.base_url).netloc
    conn = http.client.HTTPConnection(netloc, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def signed(server: Server, method: str, path: str, body: bytes = b"", *, key_id: str = KEY_ID,
           secret: str = SECRET, host: str | None = None, nonce: str = "") -> dict[str, str]:
    netloc = host or urlsplit(server.base_url).netloc
    extra = {"host": netloc, "content-type": "application/json"}
    if nonce:
        extra["x-garden-nonce"] = nonce
    return signed_headers(method, f"http://{netloc}{path}", body, key_id, secret, headers=extra)


def openai_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, body
    assert headers.get("x-request-id")
    document = json.loads(body)
    validate(document, "ErrorResponse")
    return document["error"]


# ---- the access log -----------------------------------------------------------------------------

def test_access_log_masks_path_parameters_and_drops_query_strings(server: Server) -> None:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=CREDS)
    secret_model, secret_query = "SECRETMODEL-4b1d", "SECRETQUERY-9c2e"
    requests.get(f"{server.base_url}/v1/models/{secret_model}", params={"q": secret_query}, auth=auth, timeout=10)
    requests.get(f"{server.base_url}/nowhere/{secret_model}?{secret_query}=1", timeout=10)
    time.sleep(0.2)
    output = server.output.read_text()
    assert secret_model not in output and secret_query not in output
    assert '"GET /v1/models/{model_id}" 404' in output


# ---- local SigV4 beyond the signature -----------------------------------------------------------

def test_signed_host_must_be_the_served_host(server: Server) -> None:
    path = "/v1/models"
    for host in ("abc123.execute-api.us-east-1.amazonaws.com", "127.0.0.1:1"):
        error = openai_error(*raw_request(server, "GET", path, signed(server, "GET", path, host=host, nonce=host)), 403)
        assert error["code"] == "invalid_host"
    status, _, _ = raw_request(server, "GET", path, signed(server, "GET", path, nonce="ok"))
    assert status == 200


def test_session_token_refused_unless_the_local_credentials_define_one(server: Server) -> None:
    with_token = openai_client(f"{server.base_url}/v1", credentials=Credentials(KEY_ID, SECRET, "a-token"),
                               max_retries=0)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        with_token.models.list()
    assert denied.value.code == "invalid_signature"


@pytest.mark.parametrize("path", ["/v1/models/..", "/v1/models/.", "/v1/models//"])
def test_paths_whose_segments_change_the_route_are_refused(server: Server, path: str) -> None:
    # botocore signs `/v1/models/..` as `/v1`; the router would serve it as the model `..`.
    error = openai_error(*raw_request(server, "GET", path, signed(server, "GET", path, nonce=path)), 403)
    assert error["code"] == "non_canonical_path"


def test_unknown_key_and_wrong_secret_get_the_same_403(server: Server) -> None:
    path = "/v1/models"
    unknown = openai_error(*raw_request(server, "GET", path, signed(
        server, "GET", path, key_id="AKIANOSUCHKEY0000001", nonce="1")), 403)
    wrong = openai_error(*raw_request(server, "GET", path, signed(server, "GET", path, secret="wrong", nonce="2")), 403)
    assert unknown == wrong
    assert "AKIANOSUCHKEY0000001" not in json.dumps(unknown)


def test_a_replayed_signature_is_refused(server: Server) -> None:
    body = json.dumps({"model": "local-echo", "messages": [{"role": "user", "content": "once"}]}).encode()
    headers = signed(server, "POST", "/v1/chat/completions", body, nonce="replay-test")
    status, _, _ = raw_request(server, "POST", "/v1/chat/completions", headers, body)
    assert status == 200
    error = openai_error(*raw_request(server, "POST", "/v1/chat/completions", headers, body), 403)
    assert error["code"] == "replayed_signature"


# ---- concurrency --------------------------------------------------------------------------------

def test_concurrent_clients_each_get_their_own_answer(server: Server) -> None:
    client = openai_client(f"{server.base_url}/v1", credentials=CREDS, max_retries=0)
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        reply = client.chat.completions.create(model="local-echo", messages=[{"role": "user", "content": f"caller {i}"}])
        answers[i] = reply.choices[0].message.content or ""

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: f"caller {i}" for i in range(24)}


def _burst(port: int, n: int = 64) -> list[str]:
    barrier, results = threading.Barrier(n), [""] * n

    def one(i: int) -> None:
        try:
            barrier.wait()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                results[i] = s.recv(65536).split(b"\r\n", 1)[0].decode() or "closed"
        except OSError as exc:
            results[i] = type(exc).__name__

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_a_burst_of_64_new_connections_loses_none(server: Server) -> None:
    # With socketserver's listen backlog of 5, some of these time out or are reset.
    port = urlsplit(server.base_url).port or 0
    for _ in range(3):
        results = _burst(port)
        assert [r for r in results if r != "HTTP/1.1 200 OK"] == []


# ---- unknown paths and /health ------------------------------------------------------------------

def test_unknown_path_is_an_openai_404_that_echoes_nothing(server: Server) -> None:
    headers = signed(server, "GET", "/v2/nowhere", nonce="unknown-path")
    status, response_headers, body = raw_request(server, "GET", "/v2/nowhere", headers)
    error = openai_error(status, response_headers, body, 404)
    assert error["code"] == "unknown_route"
    signature = headers["Authorization"].split("Signature=")[1]
    assert signature not in body.decode() and "Authorization" not in body.decode()
    unsigned = requests.post(f"{server.base_url}/v1/completions", json={}, timeout=10)
    assert unsigned.status_code == 404 and unsigned.headers["x-request-id"]


def test_health_carries_a_request_id(server: Server) -> None:
    response = requests.get(f"{server.base_url}/health", timeout=10)
    assert response.status_code == 200 and response.headers["x-request-id"]


def test_plain_chalice_local_still_serves(tmp_path: Path) -> None:
    with serve(tmp_path, chalice_cli=True) as plain:
        auth = SigV4RequestsAuth(region="us-east-1", credentials=CREDS)
        response = requests.get(f"{plain.base_url}/v1/models", auth=auth, timeout=10)
        assert response.status_code == 200, response.text
        assert requests.get(f"{plain.base_url}/health", timeout=10).headers["x-request-id"]


# ---- configuration problems ---------------------------------------------------------------------

def start_and_fail(root: Path, env: dict[str, str], port: int | None = None) -> str:
    _, base_env = make_home(root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    proc = subprocess.run(server_command("127.0.0.1", port or free), cwd=ROOT, capture_output=True, text=True,
                          env={**_clean_env(), **base_env, **env}, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    return output


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("GARDEN_")}


def test_malformed_catalog_is_named_at_start(tmp_path: Path) -> None:
    broken = copy.deepcopy(TEST_CATALOG)
    broken["apps"][1]["quotas"]["tokens_per_day"] = "plenty"
    catalog = tmp_path / "broken-catalog.json"
    catalog.write_text(json.dumps(broken))
    output = start_and_fail(tmp_path, {"GARDEN_CATALOG": str(catalog)})
    assert output.strip().count("\n") == 0
    assert str(catalog) in output and "apps[1].quotas.tokens_per_day" in output


def test_malformed_credentials_are_named_at_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "local-credentials.json").write_text(json.dumps(
        {"AKIAGOODKEY000000001": {"secret_access_key": "s3cr3t-value", "principal_arn": "not-an-arn"}}))
    output = start_and_fail(tmp_path, {"GARDEN_HOME": str(home)})
    assert "local-credentials.json" in output and "AKIAGOODKEY000000001: principal_arn" in output
    assert "s3cr3t-value" not in output


@pytest.mark.parametrize(("env", "named"), [
    ({"GARDEN_STORE": "postgres"}, "GARDEN_STORE='postgres'"),
    ({"GARDEN_MAX_BODY_BYTES": "lots"}, "GARDEN_MAX_BODY_BYTES='lots'"),
])
def test_a_bad_setting_is_one_line(tmp_path: Path, env: dict[str, str], named: str) -> None:
    output = start_and_fail(tmp_path, env)
    assert output.strip().count("\n") == 0 and named in output


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        output = start_and_fail(tmp_path, {}, port=port)
    assert output.strip().count("\n") == 0 and f"port {port}" in output and "in use" in output


def test_credentials_broken_while_serving_are_named_and_requests_get_a_500(tmp_path: Path) -> None:
    with serve(tmp_path) as running:
        auth = SigV4RequestsAuth(region="us-east-1", credentials=CREDS)
        assert requests.get(f"{running.base_url}/v1/models", auth=auth, timeout=10).status_code == 200
        path = running.home / "local-credentials.json"
        path.write_text(json.dumps({"AKIABROKENKEY0000001": {"principal_arn": "arn:aws:iam::111122223333:role/r"}}))
        response = requests.get(f"{running.base_url}/v1/models", auth=auth, timeout=10)
        error = openai_error(response.status_code, dict(response.headers), response.content, 500)
        assert response.headers["x-request-id"] in error["message"]
        assert "local-credentials" not in error["message"]
        time.sleep(0.2)
        output = running.output.read_text()
    assert f"{path}: AKIABROKENKEY0000001: secret_access_key" in output
    assert "Traceback" not in output


def test_make_bench_per_request_prints_results_not_request_lines() -> None:
    proc = subprocess.run([sys.executable, "bench/per_request.py", "50"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=_clean_env())
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert '"event":"request"' not in output
    assert len(output.splitlines()) < 15 and "p50" in output


@pytest.mark.parametrize("problem", ["setting", "credentials"])
def test_make_run_setup_names_a_problem_in_one_line(tmp_path: Path, problem: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**_clean_env(), "GARDEN_HOME": str(home)}
    if problem == "setting":
        env["GARDEN_REQUEST_TIMEOUT_S"] = "-3"
    else:
        (home / "local-credentials.json").write_text('{"AKIAGOODKEY000000001": []}')
    proc = subprocess.run([sys.executable, "-m", "chalicelib.devsetup"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert ("GARDEN_REQUEST_TIMEOUT_S='-3'" if problem == "setting" else "AKIAGOODKEY000000001") in proc.stderr


def test_an_empty_garden_home_is_the_default_not_the_working_directory() -> None:
    from chalicelib.settings import Settings

    assert Settings.from_env({"GARDEN_HOME": ""}).home == Path(".garden")
