"""The console server's door, with plain `requests` against `garden-admin console` as started by the
admin: the token for a cookie, the cookie on every request, its own Host and Origin only, read-only,
bound to 127.0.0.1 only, security headers; and its JSON API answering what the admin API answers."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from console_support import GARDEN_ADMIN, Console, ConsoleGarden, running_console

from support import ROOT


def cookie_of(console: Console) -> dict[str, str]:
    response = requests.get(console.url, allow_redirects=False, timeout=10)
    assert response.status_code in (302, 303), response.status_code
    name, _, rest = response.headers["set-cookie"].partition("=")
    return {name: rest.split(";")[0]}


def get(console: Console, path: str, cookies: dict[str, str] | None = None, **headers: str) -> requests.Response:
    return requests.get(f"{console.base}{path}", cookies=cookies, headers=headers, allow_redirects=False, timeout=30)


def test_the_printed_line_and_the_token_for_a_cookie(console: Console) -> None:
    assert console.url == f"http://127.0.0.1:{console.port}/?token={console.token}"
    assert len(console.token) >= 32
    response = requests.get(console.url, allow_redirects=False, timeout=10)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/"  # the token leaves the address bar
    cookie = response.headers["set-cookie"]
    parts = [p.strip() for p in cookie.split(";")]
    assert parts[0] == f"garden_console_{console.port}={console.token}"
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= set(parts)
    # A page's other parameters survive the exchange.
    deep = get(console, f"/app.html?id=test-app&token={console.token}")
    assert deep.headers["location"] == "/app.html?id=test-app"


def test_no_token_no_cookie_is_refused(console: Console) -> None:
    for path in ("/", "/index.html", "/api/apps", "/api/usage", "/js/common.js", "/no-such-page"):
        assert get(console, path).status_code == 401, path
    assert get(console, "/?token=not-the-token").status_code == 403
    assert get(console, f"/?token={console.token}x").status_code == 403
    assert get(console, "/api/apps", {f"garden_console_{console.port}": "forged"}).status_code == 401
    assert get(console, "/api/apps", {"garden_console": console.token}).status_code == 401  # another console's name


def test_with_the_cookie_pages_and_api_answer(console: Console) -> None:
    cookies = cookie_of(console)
    page = get(console, "/", cookies)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "All times UTC" in page.text
    for path in ("/app.html", "/changes.html", "/chargeback.html", "/console.css", "/js/overview.js",
                 "/vendor/chart.umd.min.js"):
        assert get(console, path, cookies).status_code == 200, path
    assert get(console, "/api/apps", cookies).json()["object"] == "list"
    assert get(console, "/api/no-such-route", cookies).status_code == 404
    for sneaky in ("/../admin_cli/main.py", "/%2e%2e/run.py", "/static/index.html", "/js/../../server.py",
                   "/server.py", "/door.py"):
        assert get(console, sneaky, cookies).status_code == 404, sneaky


def test_wrong_host_is_refused_dns_rebinding(console: Console) -> None:
    cookies = cookie_of(console)
    assert get(console, "/api/apps", cookies, Host=f"localhost:{console.port}").status_code == 200
    for host in (f"evil.example:{console.port}", "evil.example", f"127.0.0.1:{console.port + 1}", "127.0.0.1",
                 f"127.0.0.1.nip.io:{console.port}", f"LOCALHOST:{console.port}x"):
        assert get(console, "/api/apps", cookies, Host=host).status_code == 403, host
        assert get(console, f"/?token={console.token}", Host=host).status_code == 403, host


def test_foreign_origin_is_refused(console: Console) -> None:
    cookies = cookie_of(console)
    own = f"http://127.0.0.1:{console.port}"
    assert get(console, "/api/apps", cookies, Origin=own).status_code == 200
    assert get(console, "/api/apps", cookies, Origin=f"http://localhost:{console.port}").status_code == 200
    for origin in ("http://evil.example", "null", f"https://127.0.0.1:{console.port}", "http://127.0.0.1:1"):
        assert get(console, "/api/apps", cookies, Origin=origin).status_code == 403, origin
    assert get(console, "/api/apps", cookies, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert get(console, "/", cookies, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # Another port of this host is the same site: a link to a page is fine, reading the API is not.
    assert get(console, "/api/apps", cookies, **{"Sec-Fetch-Site": "same-site"}).status_code == 403
    assert get(console, "/", cookies, **{"Sec-Fetch-Site": "same-site"}).status_code == 200
    for own in ("same-origin", "none"):
        assert get(console, "/api/apps", cookies, **{"Sec-Fetch-Site": own}).status_code == 200


def test_read_only_every_other_method_is_405(console: Console) -> None:
    cookies = cookie_of(console)
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        for jar in (cookies, None):
            response = requests.request(method, f"{console.base}/api/apps", cookies=jar, data=b'{"id": "x"}',
                                        timeout=10, allow_redirects=False)
            assert response.status_code == 405, (method, jar)
            assert response.headers["allow"] == "GET, HEAD"
    assert requests.head(f"{console.base}/", cookies=cookies, timeout=10).status_code == 200


def test_any_other_method_and_a_malformed_request_are_refused_with_the_headers(console: Console) -> None:
    cookies = cookie_of(console)
    response = requests.request("PROPFIND", f"{console.base}/", cookies=cookies, timeout=10)
    assert response.status_code == 405 and response.headers["x-frame-options"] == "DENY"
    with socket.create_connection(("127.0.0.1", console.port), timeout=10) as raw:
        raw.sendall(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = raw.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.1 414") and "X-Frame-Options: DENY" in head and "aaaa" not in head


def test_security_headers_on_every_answer(console: Console) -> None:
    cookies = cookie_of(console)
    for response in (get(console, "/", cookies), get(console, "/api/apps", cookies), get(console, "/"),
                     get(console, "/", cookies, Host="evil.example")):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
    # No inline script anywhere: every page's scripts are files of the console's own.
    for page in ("/", "/app.html", "/changes.html", "/chargeback.html"):
        html = get(console, page, cookies).text
        assert "<script>" not in html and "onclick" not in html and "style=" not in html


def test_bound_to_127_0_0_1_only(console: Console) -> None:
    with pytest.raises(OSError):  # another loopback address of this machine: nothing listens there
        socket.create_connection(("127.0.0.2", console.port), timeout=5).close()
    listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    ours = [f[1] for f in listening if f[3] == "0A" and int(f[1].split(":")[1], 16) == console.port]
    assert ours == [f"0100007F:{console.port:04X}"]  # 127.0.0.1, LISTEN
    six = Path("/proc/net/tcp6")
    if six.exists():
        assert not [line for line in six.read_text().splitlines()[1:]
                    if int(line.split()[1].split(":")[1], 16) == console.port and line.split()[3] == "0A"]


def test_the_api_answers_what_the_admin_api_answers(console: Console, garden: ConsoleGarden) -> None:
    cookies = cookie_of(console)
    for path, params in (("usage", {"group_by": "business_unit,app"}), ("usage", {"group_by": "day"}),
                         ("business-units", {}), ("apps", {}), ("apps/markets-desk", {}), ("changes", {"limit": "5"}),
                         ("apps/markets-desk/quotas", {}), ("activity", {"group_by": "app,day", "kind": "pii,rejected"}),
                         ("chargeback", {})):
        query = "&".join(f"{k}={v}" for k, v in params.items())
        mine = get(console, f"/api/{path}?{query}", cookies)
        assert mine.status_code == 200, (path, mine.text)
        assert mine.json() == garden.admin_get(path, **params).json(), path
    month = garden.admin_get("chargeback").json()["data"][0]["month"]
    summary = get(console, f"/api/chargeback/{month}", cookies).json()
    assert {k: v for k, v in summary.items() if k != "generated_at"} == {
        k: v for k, v in garden.admin_get(f"chargeback/{month}").json().items() if k != "generated_at"}
    csv_answer = get(console, f"/api/chargeback/{month}/markets.csv", cookies)
    assert csv_answer.status_code == 200 and csv_answer.headers["content-type"].startswith("text/csv")
    assert csv_answer.headers["content-disposition"] == f'attachment; filename="chargeback-{month}-markets.csv"'
    assert csv_answer.content == garden.admin_get(f"chargeback/{month}/markets").content
        # A refusal keeps the admin API's status and message; unknown parameters never reach it.
    refused = get(console, "/api/usage?from=2026-13-01", cookies)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "from"
    assert get(console, "/api/apps/no-such-app", cookies).status_code == 404
    assert get(console, "/api/usage?format=csv&evil=1", cookies).headers["content-type"].startswith("application/json")


def test_the_token_reaches_no_log_and_the_cli_contract(console: Console, garden: ConsoleGarden) -> None:
    get(console, f"/?token={console.token}")
    get(console, "/?token=wrong-token-value")
    get(console, "/api/apps/markets-desk", cookie_of(console))
    deadline = time.monotonic() + 10  # the log is read by a thread of the test's own
    while "GET /api/apps/{id} 200" not in "".join(console.stderr) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "GET /api/apps/{id} 200" in "".join(console.stderr)  # a route's shape: its ids masked
    assert console.token not in "".join(console.stderr)
    assert "wrong-token-value" not in "".join(console.stderr)
    help_text = subprocess.run([str(GARDEN_ADMIN), "console", "--help"], capture_output=True, text=True,
                               timeout=30, cwd=ROOT).stdout
    for flag in ("--url", "--port", "--no-browser"):
        assert flag in help_text


def test_port_flag_and_url_flag(garden: ConsoleGarden) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = garden.admin_env()
    url = env.pop("GARDEN_URL")
    with running_console(garden, "--url", url, "--port", str(port), env=env) as running:
        assert running.port == port
        assert get(running, "/api/apps", cookie_of(running)).status_code == 200


def test_a_gateway_that_does_not_answer_is_a_502_the_page_can_show(garden: ConsoleGarden) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens here once this socket is closed
    env = {**garden.admin_env(), "GARDEN_URL": f"http://127.0.0.1:{closed}"}
    with running_console(garden, env=env) as running:
        answer = get(running, "/api/apps", cookie_of(running))
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "gateway_unreachable"
        assert "cannot reach the gateway" in answer.json()["error"]["message"]


def test_no_credentials_exit_3_and_no_url_exit_2(garden: ConsoleGarden) -> None:
    env = {k: v for k, v in garden.admin_env().items() if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")}
    done = subprocess.run([str(GARDEN_ADMIN), "console", "--no-browser"], env=env, capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    assert done.returncode == 3 and "Console:" not in done.stdout, done
    env = {k: v for k, v in garden.admin_env().items() if k != "GARDEN_URL"}
    done = subprocess.run([str(GARDEN_ADMIN), "console", "--no-browser"], env=env, capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    assert done.returncode == 2 and "GARDEN_URL" in done.stderr, done
