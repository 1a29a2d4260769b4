"""client/garden_auth.py end to end: real HTTP on 127.0.0.1, verified by the gateway's verify_sigv4.

A tiny ThreadingHTTPServer captures each raw request, verifies it exactly as the local identity
adapter does (decoded query dict, lower-case headers, raw body) and answers minimal OpenAI JSON.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
import requests
from botocore.credentials import Credentials

from chalicelib.errors import PermissionDenied
from chalicelib.identity.local import host_matcher
from chalicelib.identity.local_credentials import LocalCredential
from chalicelib.identity.replay import ReplayCache
from chalicelib.identity.sigv4 import verify_sigv4
from client.garden_auth import SigV4HttpxAuth, SigV4RequestsAuth, openai_client

KEY_ID = "AKIACLIENTTESTKEY001"
SECRET = "client/test/secret/0123456789abcdefghijkl"
PRINCIPAL = "arn:aws:iam::111122223333:role/test-app-role"
CREDS = Credentials(KEY_ID, SECRET)
WRONG = Credentials(KEY_ID, "not-the-secret-0123456789abcdefghijklmno")
CHAT = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "local-echo",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "local-echo",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
MODELS = {"object": "list", "data": [{"id": "local-echo", "object": "model", "created": 1, "owned_by": "garden"}]}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    outcome: str  # the principal, or the PermissionDenied code


@dataclass
class Gateway:
    base_url: str
    seen: list[Seen] = field(default_factory=list)
    replay: ReplayCache = field(default_factory=ReplayCache)


def _handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            parts = urlsplit(self.path)  # raw, still percent-encoded: as chalice local passes it on
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                outcome = verify_sigv4(
                    method=self.command, path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True) or None,
                    headers=headers, body=body, region="us-east-1",
                    lookup={KEY_ID: LocalCredential(SECRET, PRINCIPAL)}.get, now=datetime.now(timezone.utc),
                    served_host=host_matcher([]), first_use=gateway.replay.first_use,
                )
                status, answer = 200, (MODELS if parts.path.endswith("/models") else CHAT)
            except PermissionDenied as exc:
                outcome = exc.code or ""
                status, answer = 403, {"error": {"message": exc.message, "type": exc.type, "code": exc.code}}
            gateway.seen.append(Seen(self.command, self.path, headers, body, outcome))
            content_type, payload = "application/json", json.dumps(answer).encode()
            if status == 200 and body and json.loads(body).get("stream"):
                content_type, payload = "text/event-stream", f"data: {json.dumps(CHUNK)}\n\ndata: [DONE]\n\n".encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(Gateway("")))
    gw = Gateway(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(gw)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield gw
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_credential_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_openai_sdk_list_and_chat_are_verified(gateway: Gateway) -> None:
    client = openai_client(f"{gateway.base_url}/v1", region="us-east-1", credentials=CREDS, max_retries=0)
    assert [m.id for m in client.models.list()] == ["local-echo"]
    reply = client.chat.completions.create(model="local-echo", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content == "hi"
    assert [s.outcome for s in gateway.seen] == [PRINCIPAL, PRINCIPAL]
    post = gateway.seen[1]
    assert post.method == "POST" and json.loads(post.body)["messages"][0]["content"] == "hello"
    assert post.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=" + KEY_ID)
    assert "Bearer" not in post.headers["authorization"]
    signed = post.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "content-type", "x-garden-nonce"} <= set(signed)
    assert not any(name.startswith("x-stainless") for name in signed)


def test_openai_sdk_with_an_explicit_legacy_httpx_client(gateway: Gateway) -> None:
    http_client = httpx.Client(auth=SigV4HttpxAuth(region="us-east-1", credentials=CREDS))
    client = openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="sigv4", http_client=http_client, max_retries=0)
    client.chat.completions.create(model="local-echo", messages=[{"role": "user", "content": "hello"}])
    assert [s.outcome for s in gateway.seen] == [PRINCIPAL]


def test_openai_sdk_with_wrong_secret_is_refused(gateway: Gateway) -> None:
    client = openai_client(f"{gateway.base_url}/v1", credentials=WRONG, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="local-echo", messages=[{"role": "user", "content": "hello"}])
    assert [s.outcome for s in gateway.seen] == ["invalid_signature"]


def test_requests_post_and_query_are_verified(gateway: Gateway) -> None:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=CREDS)
    r = requests.post(f"{gateway.base_url}/v1/chat/completions", auth=auth, timeout=10,
                      json={"model": "local-echo", "messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code == 200, r.text
    r = requests.get(f"{gateway.base_url}/v1/models", auth=auth, timeout=10,
                     params={"q": "a b+c/é*", "after": "x", "tag": ["b", "a"], "empty": ""})
    assert r.status_code == 200, r.text
    r = requests.get(f"{gateway.base_url}/v1/models/anthropic.claude-3-haiku-20240307-v1:0", auth=auth, timeout=10)
    assert r.status_code == 200, r.text
    assert [s.outcome for s in gateway.seen] == [PRINCIPAL] * 3


def test_requests_with_wrong_secret_is_refused(gateway: Gateway) -> None:
    r = requests.post(f"{gateway.base_url}/v1/chat/completions", json={"model": "m"}, timeout=10,
                      auth=SigV4RequestsAuth(region="us-east-1", credentials=WRONG))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "invalid_signature"
    assert "not-the-secret" not in r.text


def test_wrong_region_is_refused(gateway: Gateway) -> None:
    r = requests.get(f"{gateway.base_url}/v1/models", timeout=10,
                     auth=SigV4RequestsAuth(region="eu-west-1", credentials=CREDS))
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_credential_scope"


def test_default_credential_chain_from_environment(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
                        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = openai_client(f"{gateway.base_url}/v1", max_retries=0)
    client.models.list()
    assert [s.outcome for s in gateway.seen] == [PRINCIPAL]


def test_streaming_chat_is_signed(gateway: Gateway) -> None:
    client = openai_client(f"{gateway.base_url}/v1", credentials=CREDS, max_retries=0)
    stream = client.chat.completions.create(model="local-echo", stream=True,
                                            messages=[{"role": "user", "content": "hello"}])
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "hi"
    assert [s.outcome for s in gateway.seen] == [PRINCIPAL]
    assert json.loads(gateway.seen[0].body)["stream"] is True


def test_identical_requests_in_the_same_second_are_not_replays(gateway: Gateway) -> None:
    # SigV4 dates have a one-second resolution; the signed nonce keeps each signature unique.
    auth = SigV4RequestsAuth(region="us-east-1", credentials=CREDS)
    for _ in range(5):
        assert requests.get(f"{gateway.base_url}/v1/models", auth=auth, timeout=10).status_code == 200
    assert [s.outcome for s in gateway.seen] == [PRINCIPAL] * 5
    assert len({s.headers["x-garden-nonce"] for s in gateway.seen}) == 5
    assert len({s.headers["authorization"] for s in gateway.seen}) == 5
