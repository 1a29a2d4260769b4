"""The console server's door. It holds the admin's credentials, so a page of any other origin, a
DNS-rebound name or another local user must not reach it:

- a random token (printed once, in the URL the admin opens) is exchanged for a cookie
  (`HttpOnly; SameSite=Strict; Path=/`) on the first visit, and every request needs that cookie;
- `Host` must be the console's own (127.0.0.1:<port> or localhost:<port>): a DNS-rebound name that
  resolves to 127.0.0.1 carries its own host name;
- `Origin`, when present, must be the console's own; `Sec-Fetch-Site: cross-site` is refused, and
  `same-site` (another port of this host) may not read /api/;
- only GET and HEAD: changes stay with the CLI and the admin API.

Pure decisions, no I/O: server.py renders them.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit

READ_METHODS = ("GET", "HEAD")
TOKEN_PARAM = "token"

# default-src 'self' with no inline script or style; nothing may frame the console.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Decision:
    status: int  # 0: let the request in
    reason: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


ALLOW = Decision(0)


class Door:
    def __init__(self, token: str, port: int) -> None:
        self.token = token
        self.port = port
        self.cookie_name = f"garden_console_{port}"  # one per console: two consoles never share a cookie
        self.hosts = frozenset({f"127.0.0.1:{port}", f"localhost:{port}"})
        self.origins = frozenset(f"http://{host}" for host in self.hosts)

    def check(self, method: str, target: str, headers: Mapping[str, str]) -> Decision:
        """`headers` with lower-case names (one value each)."""
        host = headers.get("host")
        if host not in self.hosts:
            return Decision(403, "this console answers only at 127.0.0.1 or localhost on its own port")
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return Decision(403, "cross-origin requests are refused")
        fetch_site = headers.get("sec-fetch-site")
        if fetch_site == "cross-site":
            return Decision(403, "cross-site requests are refused")
        if fetch_site == "same-site" and urlsplit(target).path.startswith("/api/"):
            # Another port of this host is the same site (its cookies too): its pages may link here,
            # but not fetch the figures, even where the browser sends no Origin (a no-cors GET).
            return Decision(403, "only the console's own pages read its API")
        if method not in READ_METHODS:
            return Decision(405, "the console is read-only: changes go through garden-admin",
                            {"Allow": ", ".join(READ_METHODS)})
        split = urlsplit(target)
        query = parse_qsl(split.query, keep_blank_values=True)
        offered = [value for name, value in query if name == TOKEN_PARAM]
        if offered:
            if len(offered) != 1 or not self._is_token(offered[0]):
                return Decision(403, "wrong token: open the URL garden-admin console printed")
            # The token leaves the address bar (and the history) at once; the cookie carries it on.
            rest = urlencode([(name, value) for name, value in query if name != TOKEN_PARAM])
            location = (split.path or "/") + (f"?{rest}" if rest else "")
            return Decision(303, "", {"Location": location, "Set-Cookie": self.cookie()})
        if not self._is_token(self._cookie(headers.get("cookie", ""))):
            return Decision(401, "no console session: open the URL garden-admin console printed")
        return ALLOW

    def cookie(self) -> str:
        return f"{self.cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"

    def _cookie(self, header: str) -> str:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie_name:
                return value
        return ""

    def _is_token(self, value: str) -> bool:
        return hmac.compare_digest(value.encode("utf-8", "replace"), self.token.encode("utf-8"))
