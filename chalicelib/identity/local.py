"""Local adapter: verify SigV4 against `$GARDEN_HOME/local-credentials.json`."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from chalicelib.identity.local_credentials import LocalCredentials
from chalicelib.identity.sigv4 import verify_sigv4
from chalicelib.incoming import IncomingRequest


class LocalSigV4Identity:
    def __init__(
        self,
        credentials: LocalCredentials,
        region: str,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._now = now

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
        )
