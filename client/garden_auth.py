"""SigV4-sign calls to Execution Garden: copy this file into your app.

The gateway authenticates callers with AWS IAM (SigV4, service `execute-api`), never with API keys.
This module signs each request with botocore, using your app's normal AWS credentials (the
standard chain: env vars, ~/.aws, SSO, container/instance role) unless you pass `credentials`.
Needs `botocore` plus whichever HTTP client you use (`httpx`/`openai`, or `requests`).

OpenAI SDK::

    from client.garden_auth import openai_client

    client = openai_client("https://<api-id>.execute-api.eu-west-1.amazonaws.com/api/v1", region="eu-west-1")
    reply = client.chat.completions.create(model="claude-haiku", messages=[{"role": "user", "content": "Hi"}])
    print(reply.choices[0].message.content)

    stream = client.chat.completions.create(model="claude-haiku", stream=True,
                                            messages=[{"role": "user", "content": "Hi"}])
    for chunk in stream:
        print(chunk.choices[0].delta.content or "", end="")

requests::

    import requests
    from client.garden_auth import SigV4RequestsAuth

    auth = SigV4RequestsAuth(region="eu-west-1")
    r = requests.post(f"{base_url}/chat/completions", auth=auth, timeout=30,
                      json={"model": "claude-haiku", "messages": [{"role": "user", "content": "Hi"}]})

Locally (`make run`) use base URL `http://127.0.0.1:8000/v1`, region `us-east-1` and the demo key
`make run` prints (export AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).

Only a stable set of headers is signed (host, content-type, x-amz-*, and a random x-garden-nonce
so that no two requests share a signature: the local gateway refuses a replayed one): proxies and
SDKs may add or rewrite others (user-agent, x-stainless-*, accept-encoding) without breaking the
signature. The body is always signed. The query string is rewritten into SigV4's canonical encoding before signing,
so that the gateway, which sees it decoded, re-encodes it to the same bytes.
"""
from __future__ import annotations

import importlib
import secrets
from typing import TYPE_CHECKING, Any, Generator, Mapping
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

if TYPE_CHECKING:
    import httpx
    import openai
    from botocore.credentials import Credentials

# Optional: install only what your HTTP client needs. openai>=3 uses httpx2, older openai uses httpx;
# both share the Auth API, so one auth class serves either.
_HTTPX_MODULES: list[Any] = []
for _name in ("httpx", "httpx2"):
    try:
        _HTTPX_MODULES.append(importlib.import_module(_name))
    except ImportError:  # pragma: no cover
        pass
_HttpxAuthBases: tuple[type, ...] = tuple(module.Auth for module in _HTTPX_MODULES) or (object,)
try:
    import requests.auth

    _RequestsAuthBase: type = requests.auth.AuthBase
except ImportError:  # pragma: no cover
    requests = None  # type: ignore[assignment]
    _RequestsAuthBase = object

SERVICE = "execute-api"
_SIGNED = ("host", "content-type")  # plus every x-amz-* header present, and the nonce
# SigV4 has no nonce: identical requests signed in the same second would share a signature.
NONCE = "x-garden-nonce"
_SET_BY_SIGNER = ("authorization", "x-amz-date", "x-amz-security-token", NONCE)


class _Signer:
    def __init__(self, region: str, credentials: Credentials | None, service: str) -> None:
        if credentials is None:
            import botocore.session

            credentials = botocore.session.get_session().get_credentials()
            if credentials is None:
                raise RuntimeError("no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                                   "AWS_SECRET_ACCESS_KEY, or pass credentials=")
        self.credentials = credentials
        self.region = region
        self.service = service

    def sign(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        """Headers to set on the request (Authorization, X-Amz-Date, maybe X-Amz-Security-Token)."""
        to_sign = {
            name: value for name, value in ((n.lower(), v) for n, v in headers.items())
            if (name in _SIGNED or name.startswith("x-amz-")) and name not in _SET_BY_SIGNER
        }
        to_sign[NONCE] = secrets.token_hex(16)
        request = AWSRequest(method=method, url=url, data=body, headers=to_sign)
        # Frozen per request: refreshable credentials (SSO, roles) rotate between calls, never mid-signature.
        freeze = getattr(self.credentials, "get_frozen_credentials", None)
        frozen = freeze() if freeze else self.credentials
        SigV4Auth(frozen, self.service, self.region).add_auth(request)
        return {name: value for name, value in request.headers.items() if name.lower() in _SET_BY_SIGNER}


def canonical_url(url: str) -> str:
    """The URL with its query in SigV4 canonical encoding (RFC 3986 unreserved kept, sorted)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~"))
                   for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query="&".join(f"{k}={v}" for k, v in pairs)))


def _drop(headers: Any, names: tuple[str, ...]) -> None:
    for name in names:  # also removes the openai SDK's `Authorization: Bearer <api_key>`
        headers.pop(name, None)


class SigV4HttpxAuth(*_HttpxAuthBases):  # type: ignore[misc]
    """httpx/httpx2 auth: `httpx.Client(auth=SigV4HttpxAuth(region="eu-west-1"))`. Signs every retry anew."""

    requires_request_body = True  # httpx reads the body first, so it can be hashed

    def __init__(self, region: str = "us-east-1", credentials: Credentials | None = None,
                 service: str = SERVICE) -> None:
        if not _HTTPX_MODULES:
            raise ImportError("SigV4HttpxAuth needs httpx or httpx2: pip install httpx")
        self._signer = _Signer(region, credentials, service)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        url = canonical_url(str(request.url))
        if url != str(request.url):
            request.url = type(request.url)(url)  # httpx.URL or httpx2.URL
        _drop(request.headers, _SET_BY_SIGNER)
        request.headers.update(self._signer.sign(request.method, url, request.headers, request.content))
        yield request


class SigV4RequestsAuth(_RequestsAuthBase):  # type: ignore[misc, valid-type]
    """requests auth: `requests.post(url, json=..., auth=SigV4RequestsAuth(region="eu-west-1"))`."""

    def __init__(self, region: str = "us-east-1", credentials: Credentials | None = None,
                 service: str = SERVICE) -> None:
        if requests is None:
            raise ImportError("SigV4RequestsAuth needs requests: pip install requests")
        self._signer = _Signer(region, credentials, service)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body
        if body is None:
            body = b""
        elif isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):  # generator or file: SigV4 hashes the whole body up front
            raise ValueError("SigV4RequestsAuth needs the body as bytes or str, not a stream")
        request.url = canonical_url(request.url or "")
        _drop(request.headers, _SET_BY_SIGNER)
        request.headers.update(self._signer.sign(request.method or "GET", request.url, request.headers, body))
        return request


def _sdk_httpx() -> Any:
    """The HTTP library the installed openai SDK is built on: httpx2 (openai>=3) or httpx."""
    base = importlib.import_module("openai._base_client")
    return getattr(base, "httpx2", None) or getattr(base, "httpx", None) or _HTTPX_MODULES[-1]


def openai_client(base_url: str, region: str = "us-east-1", credentials: Credentials | None = None,
                  **kwargs: Any) -> openai.OpenAI:
    """An `openai.OpenAI` whose every request is SigV4-signed; `kwargs` go to `openai.OpenAI`.

    `api_key` is a placeholder: the SDK insists on one, and its Bearer header is replaced.
    """
    import openai

    if not _HTTPX_MODULES:
        raise ImportError("openai_client needs httpx2 (openai>=3) or httpx (older openai)")
    timeout = kwargs.pop("timeout", 60.0)
    http_client = kwargs.pop("http_client", None) or _sdk_httpx().Client(timeout=timeout)
    http_client.auth = SigV4HttpxAuth(region=region, credentials=credentials)
    return openai.OpenAI(base_url=base_url, api_key="sigv4", http_client=http_client, timeout=timeout, **kwargs)
