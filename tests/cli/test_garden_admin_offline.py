"""garden-admin's exit codes and messages for what never reaches an admin route: bad flags and files
(2), no gateway or no credentials (3), each one readable line on stderr and never a traceback."""
from __future__ import annotations

import http.server
import socket
import threading

from cli_support import GARDEN_ADMIN, base_env, credentials_env, garden_admin


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed once the socket is


def _one_clean_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_installed_as_a_console_script_in_the_venv() -> None:
    assert GARDEN_ADMIN.exists() and GARDEN_ADMIN.stat().st_mode & 0o111
    result = garden_admin("--help", env=base_env())
    assert result.code == 0
    for command in ("apps", "usage", "business-units", "deployments", "changes", "catalog", "chargeback", "local"):
        assert command in result.stdout


def test_usage_errors_exit_2() -> None:
    env = credentials_env("AKIAX", "secret", url="http://127.0.0.1:9")
    cases = [
        ("apps",),  # no action
        ("apps", "get"),  # no id
        ("usage", "--from", "2026-13-01", "--to", "2026-10-31"),
        ("usage", "--from", "2026-10-01", "--to", "2026-10-31", "--group-by", "app,colour"),
        ("usage", "--from", "2026-10-01"),  # --to missing
        ("chargeback", "run", "--month", "2026-10-01"),
        ("business-units", "set", "retail", "--usd-per-month", "lots"),
        ("business-units", "set", "retail", "--tokens-per-month", "-1"),
        ("apps", "list", "--colour", "red"),
    ]
    for args in cases:
        result = garden_admin(*args, env=env)
        assert result.code == 2, (args, result)
        assert "Traceback" not in result.stderr and "usage: garden-admin" in result.stderr, args
        assert result.stdout == ""


def test_usage_errors_found_before_any_request_exit_2(tmp_path) -> None:
    env = credentials_env("AKIAX", "secret", url=_closed_port_url())
    bad_json = tmp_path / "app.json"
    bad_json.write_text('{"id": "x",')
    not_object = tmp_path / "list.json"
    not_object.write_text("[1, 2]")
    no_id = tmp_path / "no-id.json"
    no_id.write_text('{"business_unit": "retail"}')
    cases = {
        ("apps", "set", str(tmp_path / "missing.json")): "cannot read",
        ("apps", "set", str(bad_json)): "not valid JSON (line 1, column 12",
        ("apps", "set", str(not_object)): "expected one app object",
        ("apps", "set", str(no_id)): "needs its id",
        ("usage", "--from", "2026-10-31", "--to", "2026-10-01"): "--to is before --from",
        ("business-units", "set", "retail"): "give --usd-per-month and/or --tokens-per-month",
        ("catalog", "import", str(not_object)): "expected a catalog object",
    }
    for args, message in cases.items():
        result = garden_admin(*args, env=env)
        assert result.code == 2, (args, result)
        assert message in _one_clean_line(result.stderr), (args, result.stderr)
    # stdin, as `-`: read, refused for its content only
    result = garden_admin("apps", "set", "-", env=env, stdin="not json")
    assert result.code == 2 and "stdin: not valid JSON" in _one_clean_line(result.stderr)


def test_no_gateway_url_is_a_usage_error() -> None:
    result = garden_admin("apps", "list", env=credentials_env("AKIAX", "secret"))
    assert result.code == 2
    assert "pass --url or set GARDEN_URL" in _one_clean_line(result.stderr)


def test_no_region_is_a_usage_error() -> None:
    env = base_env(AWS_ACCESS_KEY_ID="AKIAX", AWS_SECRET_ACCESS_KEY="secret", GARDEN_URL="http://127.0.0.1:9")
    result = garden_admin("apps", "list", env=env)
    assert result.code == 2 and "--region or set AWS_REGION" in _one_clean_line(result.stderr)


def test_unreachable_gateway_exits_3() -> None:
    url = _closed_port_url()
    for args in (("apps", "list"), ("usage", "--from", "2026-10-01", "--to", "2026-10-31", "--csv"),
                 ("deployments", "disable", "local-echo")):
        result = garden_admin(*args, "--url", url, env=credentials_env("AKIAX", "secret"))
        assert result.code == 3, (args, result)
        line = _one_clean_line(result.stderr)
        assert f"cannot reach the gateway at {url}" in line
        assert result.stdout == ""


def test_no_credentials_exit_3() -> None:
    env = base_env(AWS_REGION="us-east-1", GARDEN_URL=_closed_port_url())
    result = garden_admin("apps", "list", env=env)
    assert result.code == 3 and "no AWS credentials" in _one_clean_line(result.stderr)
    # a profile that does not exist is named, not a traceback
    result = garden_admin("apps", "list", "--profile", "garden-nope", env=env)
    assert result.code == 3 and "garden-nope" in _one_clean_line(result.stderr)


def test_credentials_from_a_profile(tmp_path) -> None:
    """The standard chain: a named profile's keys are found (the request then fails only to connect)."""
    credentials = tmp_path / "credentials"
    credentials.write_text("[garden-admin]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = s\n")
    config = tmp_path / "config"
    config.write_text("[profile garden-admin]\nregion = eu-west-1\n")
    env = base_env(GARDEN_URL=_closed_port_url())
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(credentials), AWS_CONFIG_FILE=str(config))
    result = garden_admin("apps", "list", "--profile", "garden-admin", env=env)
    assert result.code == 3 and "cannot reach the gateway" in _one_clean_line(result.stderr)
    result = garden_admin("apps", "list", env={**env, "AWS_PROFILE": "garden-admin"})
    assert result.code == 3 and "cannot reach the gateway" in _one_clean_line(result.stderr)


def test_local_add_app_refuses_a_gateway_that_is_not_local(tmp_path) -> None:
    env = credentials_env("AKIAX", "secret", url="https://abc123.execute-api.eu-west-1.amazonaws.com/api",
                          GARDEN_HOME=str(tmp_path))
    result = garden_admin("local", "add-app", "--id", "markets-desk", "--business-unit", "markets",
                          "--models", "local-echo", env=env)
    assert result.code == 2 and "for the local gateway" in _one_clean_line(result.stderr)
    assert not (tmp_path / "local-credentials.json").exists()


class _ApiGatewayLike(http.server.BaseHTTPRequestHandler):
    """What a caller meets in front of the gateway: API Gateway's own refusals, a proxy's HTML page."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        status, body, kind = {
            "/api/admin/v1/apps": (403, b'{"message":"User: arn:aws:sts::1:assumed-role/x is not authorized"}',
                                   "application/json"),
            "/api/admin/v1/changes": (502, b"<html><body>Bad Gateway</body></html>", "text/html"),
        }.get(self.path.split("?")[0], (404, b"{}", "application/json"))
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.send_header("x-amzn-requestid", "abc")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_refusals_not_shaped_by_the_gateway_exit_1_readably() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ApiGatewayLike)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api"  # the base URL with its stage
        env = credentials_env("AKIAX", "secret", url=url)
        result = garden_admin("apps", "list", env=env)
        assert result.code == 1 and result.stdout == ""
        assert _one_clean_line(result.stderr) == \
            "garden-admin: HTTP 403: User: arn:aws:sts::1:assumed-role/x is not authorized"
        result = garden_admin("changes", env=env)
        assert result.code == 1 and _one_clean_line(result.stderr) == "garden-admin: HTTP 502: Bad Gateway"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
