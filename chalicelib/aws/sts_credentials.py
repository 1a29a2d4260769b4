"""Per-app credentials for the operations account: STS AssumeRole with the app's ExternalId.

One role session per app, tagged with the app and its business unit and carrying the app id as
SourceIdentity, so CloudTrail in the operations account names the BU app behind every Bedrock call.
Sessions last an hour and are refreshed five minutes before they expire: in steady state at most one
STS call per app per hour, and never one on the request path of a warm container in between.
"""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from chalicelib.catalog import App
from chalicelib.errors import PermissionDenied, ServiceUnavailable, Signal

DURATION_S = 3600
REFRESH_MARGIN_S = 300.0
# STS's charset for RoleSessionName and SourceIdentity; \w must mean ASCII word characters.
_NOT_ALLOWED = re.compile(r"[^\w+=,.@-]", re.ASCII)


@dataclass(frozen=True, slots=True)
class TemporaryCredentials:
    access_key: str
    secret_key: str
    token: str
    expires_at: float  # epoch seconds, on the same clock as AssumedRoleCredentials' `clock`


class AssumedRoleCredentials:
    def __init__(
        self,
        sts: Any | Callable[[], Any],
        role_arn: str,
        clock: Callable[[], float] = time.time,
        refresh_margin_s: float = REFRESH_MARGIN_S,
    ) -> None:
        # A client, or a zero-arg factory so the composition root need not create it at start-up.
        self._sts = sts if hasattr(sts, "assume_role") else None
        self._sts_factory = None if self._sts is not None else sts
        self._role_arn = role_arn
        self._clock = clock
        self._margin = refresh_margin_s
        self._cache: dict[str, TemporaryCredentials] = {}
        self._lock = threading.Lock()  # guards the two dicts and the lazy client
        self._app_locks: dict[str, threading.Lock] = {}  # one STS call per app at a time

    def for_app(self, app: App) -> TemporaryCredentials:
        cached = self._fresh(app.id)
        if cached is not None:
            return cached
        with self._app_lock(app.id):
            cached = self._fresh(app.id)  # another thread may have refreshed while we waited
            if cached is not None:
                return cached
            credentials = self._assume(app)
            with self._lock:
                self._cache[app.id] = credentials
            return credentials

    def _fresh(self, app_id: str) -> TemporaryCredentials | None:
        with self._lock:
            cached = self._cache.get(app_id)
        if cached is not None and cached.expires_at - self._clock() > self._margin:
            return cached
        return None

    def _app_lock(self, app_id: str) -> threading.Lock:
        with self._lock:
            return self._app_locks.setdefault(app_id, threading.Lock())

    def _client(self) -> Any:
        with self._lock:
            if self._sts is None:
                assert self._sts_factory is not None
                self._sts = self._sts_factory()
            return self._sts

    def _assume(self, app: App) -> TemporaryCredentials:
        from botocore.exceptions import BotoCoreError, ClientError  # lazy: cold start

        try:
            response = self._client().assume_role(**assume_role_params(self._role_arn, app))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "AccessDenied":
                # STS's own text names roles and principals: keep it out of the caller's answer.
                raise PermissionDenied("the gateway may not act for this app in the operations account",
                                       code="assume_role_denied") from exc
            # STS, not the Bedrock deployment, failed: no breaker counts it (Signal.NONE).
            raise ServiceUnavailable("AWS STS is unavailable", code="sts_unavailable",
                                     signal=Signal.NONE) from exc
        except BotoCoreError as exc:
            raise ServiceUnavailable("AWS STS could not be reached", code="sts_unavailable",
                                     signal=Signal.NONE) from exc
        c = response["Credentials"]
        return TemporaryCredentials(
            access_key=c["AccessKeyId"],
            secret_key=c["SecretAccessKey"],
            token=c["SessionToken"],
            expires_at=c["Expiration"].timestamp(),
        )


def assume_role_params(role_arn: str, app: App) -> dict[str, Any]:
    params: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": _sanitise(f"garden-{app.id}")[:64],
        "SourceIdentity": _sanitise(app.id)[:64].ljust(2, "-"),  # STS wants 2-64 characters
        "Tags": [
            {"Key": "app", "Value": app.id},
            {"Key": "business_unit", "Value": app.business_unit},
        ],
        "DurationSeconds": DURATION_S,
    }
    if app.external_id is not None:
        params["ExternalId"] = app.external_id
    return params


def _sanitise(value: str) -> str:
    return _NOT_ALLOWED.sub("-", value)
