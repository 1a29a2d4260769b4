"""Every bad input gets an OpenAI-shaped error with the right status, and nothing is left behind."""
from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from botocore.credentials import Credentials
from local_server import serve
from openai_schema import validate
from support import KEY_ID, ROOT, SECRET, TEST_CATALOG, Garden, make_home, running_garden

from chalicelib import errors, gateway
from chalicelib.providers import ProviderCall
from chalicelib.quota import utc_day
from chalicelib.telemetry import LOGGER_NAME
from client.garden_auth import SigV4RequestsAuth

GOOD = {"model": "local-echo", "messages": [{"role": "user", "content": "hi"}]}


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    validate(body, "ErrorResponse")
    assert "Traceback" not in response.body.decode()
    return body["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": GOOD["messages"]}, "model"),
        ({"model": "local-echo"}, "messages"),
        ({"model": "local-echo", "messages": []}, "messages"),
        ({"model": "local-echo", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "local-echo", "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": "local-echo", "messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"model": "local-echo", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://x"}}]}]}, "messages[0].content[0].type"),
        ({"model": "local-echo", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
         "messages[0].content[0].text"),
        ({**GOOD, "temperature": 3}, "temperature"),
        ({**GOOD, "top_p": -1}, "top_p"),
        ({**GOOD, "max_tokens": 0}, "max_tokens"),
        ({**GOOD, "max_completion_tokens": "many"}, "max_completion_tokens"),
        ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**GOOD, "stream": "yes"}, "stream"),
        ({**GOOD, "n": 2}, "n"),
        ({**GOOD, "tools": [{"type": "function", "function": {"description": "no name"}}]},
         "tools[0].function.name"),
        ({**GOOD, "tools": [{"type": "function", "function": {"name": "has space"}}]},
         "tools[0].function.name"),
        ({**GOOD, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "always"},
         "tool_choice"),
        ({**GOOD, "tools": [{"type": "function", "function": {"name": "f"}}],
          "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice"),
        ({"model": "local-echo", "messages": [{"role": "tool", "content": "42"}]}, "messages[0].tool_call_id"),
        ({"model": "local-echo", "messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        ({"model": "local-echo", "messages": [{"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f"}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ({**GOOD, "metadata": {"k": 1}}, "metadata.k"),
    ],
)
def test_schema_violations_name_the_field(garden: Garden, body: dict, param: str) -> None:
    error = error_of(garden.chat(body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(param)


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_invalid_json_is_400(garden: Garden, raw: bytes) -> None:
    error = error_of(garden.chat(raw), 400)
    assert error["code"] == "invalid_json"


def test_body_over_cap_is_413(tmp_path: Any) -> None:
    with running_garden(tmp_path, env={"GARDEN_MAX_BODY_BYTES": "2048"}) as g:
        error = error_of(g.chat({**GOOD, "messages": [{"role": "user", "content": "z" * 4096}]}), 413)
        assert error["code"] == "request_too_large"


def test_wrong_method_and_media_type_are_openai_shaped(garden: Garden) -> None:
    error = error_of(garden.request("GET", "/v1/chat/completions"), 405)
    assert error["code"] == "method_not_allowed"
    error = error_of(garden.chat(b"hi", headers={"content-type": "text/plain"}), 415)
    assert error["code"] == "unsupported_media_type"


class RaisingProvider:
    """A provider that fails the way a broken upstream would (a fake at the port boundary)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    def complete(self, call: ProviderCall) -> Any:
        self.calls += 1
        raise self.error


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.UpstreamError("model returned garbage"), 502, "upstream_error"),
        (errors.ServiceUnavailable("no capacity"), 503, "service_unavailable"),
        (errors.DeadlineExceeded("too slow"), 504, "timeout"),
        (RuntimeError("CANARY-fault-7f3a card 4111111111111111"), 500, "internal_error"),
    ],
)
def test_upstream_faults_release_the_reservation(tmp_path: Any, error: BaseException, status: int,
                                                 code: str) -> None:
    provider = RaisingProvider(error)
    with running_garden(tmp_path, providers={"local-echo": provider}) as g:
        response = g.chat(GOOD)
        body = error_of(response, status)
        assert body["code"] == code
        assert provider.calls == 1
        if status == 500:
            # Nothing but a request id: no exception text, no class name, no stack.
            assert response.headers["x-request-id"] in body["message"]
            assert "CANARY" not in response.body.decode() and "RuntimeError" not in response.body.decode()
        now = time.time()
        usage = g.ledger.usage("test-app", utc_day(now), now)
        assert usage.reserved == 0 and usage.requests == 0 and usage.tokens == 0


# ---- faults outside the pipeline (issue 8, class 5) ---------------------------------------------

class _Captured(logging.Handler):
    """Every line the gateway or Chalice logs, formatted as a handler would write it (tracebacks too)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.text += self.format(record) + "\n"


@pytest.fixture
def logged() -> Iterator[_Captured]:
    captured = _Captured()
    loggers = [logging.getLogger(), logging.getLogger(LOGGER_NAME)]
    for log in loggers:
        log.addHandler(captured)
    yield captured
    for log in loggers:
        log.removeHandler(captured)


@pytest.fixture
def unbuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The app with no pipeline installed: the first request builds it from the environment."""
    from chalice.test import Client

    from app import app

    _, env = make_home(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    gateway.use(None)
    with Client(app, stage_name="local", project_dir=str(ROOT)) as client:
        yield client
    gateway.use(None)


def _broken_catalog(tmp_path: Path) -> Path:
    broken = copy.deepcopy(TEST_CATALOG)
    broken["apps"][0]["allowed_models"] = ["CANARY-no-such-model"]
    path = tmp_path / "broken-catalog.json"
    path.write_text(json.dumps(broken))
    return path


def test_a_catalog_that_fails_at_build_is_an_openai_500_in_process(
    unbuilt: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged: _Captured,
) -> None:
    monkeypatch.setenv("GARDEN_CATALOG", str(_broken_catalog(tmp_path)))
    response = unbuilt.http.get("/v1/models")
    error = error_of(response, 500)
    assert error["code"] == "internal_error" and response.headers["x-request-id"] in error["message"]
    assert "catalog" not in error["message"]
    # The operator is told which file and entry, in the log only, and with no traceback.
    assert "broken-catalog.json" in logged.text and "allowed_models" in logged.text
    assert "Traceback" not in logged.text


def test_a_non_gateway_exception_at_build_is_logged_by_class_only(
    unbuilt: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, logged: _Captured,
) -> None:
    not_a_folder = tmp_path / "CANARY-home-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("GARDEN_HOME", str(not_a_folder / "inside"))
    response = unbuilt.http.post("/v1/chat/completions", body=json.dumps(GOOD).encode(),
                                 headers={"content-type": "application/json"})
    error = error_of(response, 500)
    assert response.headers["x-request-id"] in error["message"]
    faults = [json.loads(line) for line in logged.text.splitlines() if '"fault"' in line]
    assert [f["error_class"] for f in faults] == ["NotADirectoryError"]
    assert faults[0]["request_id"] == response.headers["x-request-id"]
    assert "CANARY" not in logged.text and "Traceback" not in logged.text


def test_health_and_chalice_answers_carry_a_request_id(garden: Garden) -> None:
    response = garden.client.http.get("/health")
    assert response.status_code == 200 and response.headers["x-request-id"]
    assert garden.request("GET", "/v1/chat/completions").headers["x-request-id"]


def test_what_chalice_catches_itself_is_logged_by_class(logged: _Captured) -> None:
    from app import app

    try:
        raise ValueError("CANARY-quoted-input")
    except ValueError:
        app.log.error("Caught exception for path %s", "/v1/x", exc_info=True)  # as Chalice logs it
    assert json.loads(logged.text) == {"event": "fault", "where": "chalice", "error_class": "ValueError"}


@pytest.mark.parametrize("fault", ["catalog", "home"])
def test_faults_at_build_against_a_real_chalice_local(tmp_path: Path, fault: str) -> None:
    if fault == "catalog":
        env = {"GARDEN_CATALOG": str(_broken_catalog(tmp_path))}
    else:
        (tmp_path / "CANARY-file").write_text("")
        env = {"GARDEN_HOME": str(tmp_path / "CANARY-file" / "inside")}
    # Plain `chalice local`: the dev server would refuse to start with either (test_local_mode.py).
    (tmp_path / "server").mkdir()
    with serve(tmp_path / "server", env=env, chalice_cli=True) as server:
        auth = SigV4RequestsAuth(region="us-east-1", credentials=Credentials(KEY_ID, SECRET))
        response = requests.post(f"{server.base_url}/v1/chat/completions", json=GOOD, auth=auth, timeout=10)
        assert response.status_code == 500
        validate(response.json(), "ErrorResponse")
        assert response.headers["x-request-id"] in response.json()["error"]["message"]
        time.sleep(0.2)
        output = server.output.read_text()
    assert "Traceback" not in output and "InternalServerError" not in output
    if fault == "catalog":
        assert "broken-catalog.json" in output and "allowed_models" in output
    else:
        assert '"error_class":"NotADirectoryError"' in output and "CANARY" not in output
