"""Local adapter: verify SigV4 against `$GARDEN_HOME/local-credentials.json`.

The served host reaches this adapter through settings (`GARDEN_SERVED_HOST`, which the dev server
sets from the socket it bound): a signed `host` header must be one of those `host:port` values.
Unset (a hand-started `chalice local`), only loopback names are accepted, on any port.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Iterable

from chalicelib.identity.local_credentials import LocalCredentials
from chalicelib.identity.replay import ReplayCache
from chalicelib.identity.sigv4 import verify_sigv4
from chalicelib.incoming import IncomingRequest

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "[::1]"})


class LocalSigV4Identity:
    def __init__(
        self,
        credentials: LocalCredentials,
        region: str,
        served_hosts: Iterable[str] = (),
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        replay: ReplayCache | None = None,
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._served_host = host_matcher(served_hosts)
        self._now = now
        self._replay = replay if replay is not None else ReplayCache()

    def principal(self, request: IncomingRequest) -> str:
        return verify_sigv4(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=request.headers,
            body=request.body,
            region=self._region,
            lookup=self._credentials.lookup,
            now=self._now(),
            served_host=self._served_host,
            first_use=self._replay.first_use,
        )


def host_matcher(served_hosts: Iterable[str]) -> Callable[[str], bool]:
    """`host:port` values compared exactly (case-insensitive); none given: loopback names, any port."""
    allowed = frozenset(h.strip().lower() for h in served_hosts if h.strip())
    if allowed:
        return lambda host: host.strip().lower() in allowed
    return lambda host: _hostname(host.strip().lower()) in _LOOPBACK


def _hostname(host: str) -> str:
    if host.startswith("["):  # [::1]:8000
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
