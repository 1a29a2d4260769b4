"""The admin API over HTTP: one signed request per call, failures as typed exceptions.

Exit codes are decided in main.py from these exceptions: ApiError (the gateway answered 4xx/5xx),
Unreachable (no answer: connection refused, DNS, timeout), NoCredentials (nothing to sign with).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import botocore.exceptions
import botocore.session
import requests

from client.garden_auth import SigV4RequestsAuth

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60  # a chargeback run or a catalog import may take a while


class CliError(Exception):
    """An expected failure: one readable line on stderr, then the exit code."""

    exit_code = 1


class UsageError(CliError):
    exit_code = 2


class Unreachable(CliError):
    exit_code = 3


class NoCredentials(CliError):
    exit_code = 3


@dataclass
class ApiError(CliError):
    status: int
    message: str
    code: str | None = None
    param: str | None = None
    request_id: str | None = None

    exit_code = 1

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}"]
        if self.code:
            parts.append(self.code)
        text = ": ".join([" ".join(parts), self.message])
        if self.param:
            text += f" (param: {self.param})"
        if self.request_id and self.request_id not in self.message:  # a 500 names it already
            text += f" [request id {self.request_id}]"
        return text


def seg(value: str) -> str:
    """One path segment, percent-encoded (an id never changes the path's shape)."""
    return quote(value, safe="")


def resolve_credentials(profile: str | None) -> tuple[Any, str | None]:
    """(credentials, the profile's region) from the standard chain: env, profile/SSO, container, instance."""
    try:
        session = botocore.session.Session(profile=profile)
        credentials = session.get_credentials()
        region = session.get_config_variable("region")
    except botocore.exceptions.ProfileNotFound as exc:
        raise NoCredentials(f"no AWS credentials: {exc}") from None
    except botocore.exceptions.BotoCoreError as exc:  # SSO token expired, bad config file, ...
        raise NoCredentials(f"no AWS credentials: {exc}") from None
    if credentials is None:
        raise NoCredentials("no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                            "AWS_PROFILE or --profile (aws sso login for SSO profiles)")
    try:
        credentials = credentials.get_frozen_credentials()  # resolves SSO/assume-role now, not mid-request
    except botocore.exceptions.BotoCoreError as exc:
        raise NoCredentials(f"cannot load AWS credentials: {exc}") from None
    return credentials, region


class AdminClient:
    def __init__(self, base_url: str, region: str, credentials: Any, verbose: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth = SigV4RequestsAuth(region=region, credentials=credentials)
        self.verbose = verbose
        self.http = requests.Session()

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                body: Any = None) -> requests.Response:
        url = f"{self.base_url}/admin/v1/{path}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"content-type": "application/json"} if data is not None else {}
        if self.verbose:
            import sys

            print(f"garden-admin: {method} {url}", file=sys.stderr)
        try:
            response = self.http.request(method, url, params=params, data=data, headers=headers, auth=self.auth,
                                         timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except requests.exceptions.Timeout:
            raise Unreachable(f"no answer from the gateway at {self.base_url} within the timeout") from None
        except requests.exceptions.RequestException as exc:
            reason = type(exc).__name__ if isinstance(exc, requests.exceptions.ConnectionError) else str(exc)
            raise Unreachable(f"cannot reach the gateway at {self.base_url} ({reason}): "
                              "check --url / GARDEN_URL and that it is running") from None
        if response.status_code >= 400:
            raise _api_error(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(response.status_code, "the gateway answered something that is not JSON") from None


def _api_error(response: requests.Response) -> ApiError:
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code = error.get("code") if isinstance(error.get("code"), str) else error.get("type")
        param = error.get("param") if isinstance(error.get("param"), str) else None
        return ApiError(response.status_code, error["message"], code, param, request_id)
    if isinstance(body, dict) and isinstance(body.get("message"), str):  # API Gateway's own refusals
        return ApiError(response.status_code, body["message"], None, None, request_id)
    # Not the gateway's OpenAI-shaped error (a proxy, API Gateway itself): its status and reason.
    return ApiError(response.status_code, response.reason or "error", None, None, request_id)
