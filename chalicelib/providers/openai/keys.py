"""Where an `openai` deployment's API key comes from: an SSM Parameter Store SecureString
(`api_key_parameter`), an environment variable (`api_key_env`, for local use), or nowhere (no
Authorization header).

A parameter is read once per container (GetParameter, WithDecryption) and cached; when the upstream
answers 401 the provider asks for a refresh, which reads it again at most once per
REFRESH_INTERVAL_S per parameter (a rotated key is picked up at once; a key the upstream refuses
for good does not turn every request into an SSM call). Key values never reach a log or an error.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping

from chalicelib.catalog import Deployment
from chalicelib.errors import GatewayError, ServiceUnavailable, Signal
from chalicelib.lazy import OnFirstUse
from chalicelib.providers.openai.translate import UpstreamMisconfigured

REFRESH_INTERVAL_S = 30.0
# SSM answers that mean the configuration (the parameter, its KMS key, the role's policy) is wrong.
_MISCONFIGURED = {"ParameterNotFound", "ParameterVersionNotFound", "AccessDeniedException", "InvalidKeyId",
                  "KMSAccessDeniedException", "KMSDisabledException", "KMSNotFoundException"}


class ApiKeys:
    def __init__(self, ssm: Callable[[], Any] | None, env: Mapping[str, str],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """`ssm`: a factory for a (deadline-guarded) boto3 SSM client, called on first use."""
        self._ssm = OnFirstUse(ssm) if ssm is not None else None
        self._env = env
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: dict[str, str] = {}
        self._refreshed_at: dict[str, float] = {}

    def get(self, deployment: Deployment) -> str | None:
        if deployment.api_key_env:
            value = self._env.get(deployment.api_key_env)
            if not value:
                raise UpstreamMisconfigured("the upstream's API key variable is not set",
                                            code="api_key_unavailable")
            return value
        name = deployment.api_key_parameter
        if not name:
            return None
        with self._lock:
            cached = self._cached.get(name)
        return cached if cached is not None else self._read(name)

    def refresh(self, deployment: Deployment, rejected: str | None) -> str | None:
        """A key other than `rejected` to try once more, or None when there is none to try."""
        name = deployment.api_key_parameter
        if not name:
            return None  # an environment variable does not change while the container runs
        with self._lock:
            cached = self._cached.get(name)
            if cached is not None and cached != rejected:
                return cached  # another request has refreshed it already
            last = self._refreshed_at.get(name)
            if last is not None and self._monotonic() - last < REFRESH_INTERVAL_S:
                return None
            self._refreshed_at[name] = self._monotonic()
        value = self._read(name)
        return value if value != rejected else None

    def _read(self, name: str) -> str:
        if self._ssm is None:
            raise UpstreamMisconfigured("no SSM client to read the upstream's API key", code="api_key_unavailable")
        try:
            answer = self._ssm().get_parameter(Name=name, WithDecryption=True)
            value = answer["Parameter"]["Value"]
        except GatewayError:
            raise  # the request deadline (deadline.guard) left no time for the call
        except Exception as exc:
            raise _translate(exc) from exc
        with self._lock:
            self._cached[name] = value
        return value


def _translate(exc: Exception) -> GatewayError:
    from botocore import exceptions as bce  # loaded already: the SSM client is boto3's

    if isinstance(exc, bce.ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISCONFIGURED:
            return UpstreamMisconfigured("the upstream's API key parameter cannot be read", code="api_key_unavailable")
    elif isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError, bce.ParamValidationError)):
        return UpstreamMisconfigured("the upstream's API key parameter cannot be read", code="api_key_unavailable")
    elif not isinstance(exc, bce.BotoCoreError):
        raise exc  # a bug of ours
    # Throttled, unavailable, unreachable: SSM's state, not the deployment's. Another deployment of
    # the route may need no key, so the router may try it.
    return ServiceUnavailable("the upstream's API key could not be read now", code="api_key_unavailable",
                              signal=Signal.NONE)
