"""verify_sigv4 against requests signed by botocore's own SigV4Auth (what BU apps use)."""
from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from chalicelib.errors import PermissionDenied
from chalicelib.identity import sigv4
from chalicelib.identity.local import host_matcher
from chalicelib.identity.local_credentials import LocalCredential
from chalicelib.identity.replay import ReplayCache
from chalicelib.identity.sigv4 import verify_sigv4

KEY_ID = "AKIASIGV4TESTKEY0001"
SECRET = "sigv4/test/secret/0123456789abcdefghijklmn"
PRINCIPAL = "arn:aws:iam::111122223333:role/test-app-role"
KEYS = {KEY_ID: LocalCredential(SECRET, PRINCIPAL)}
SIGNED_AT = datetime(2026, 3, 14, 9, 26, 53, tzinfo=timezone.utc)
BASE = "http://127.0.0.1:8000"


def sign(method: str, url: str, body: bytes = b"", *, secret: str = SECRET, key_id: str = KEY_ID,
         region: str = "us-east-1", service: str = "execute-api", headers: dict[str, str] | None = None,
         token: str | None = None) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body,
                         headers={"host": "127.0.0.1:8000", **(headers or {})})
    with mock.patch("botocore.auth.get_current_datetime", return_value=SIGNED_AT.replace(tzinfo=None)):
        SigV4Auth(Credentials(key_id, secret, token), service, region).add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def verify(method: str, url: str, body: bytes, headers: dict[str, str], **overrides: Any) -> str:
    parts = urlsplit(url)
    args: dict[str, Any] = dict(
        method=method, path=parts.path,
        # What Chalice hands the view: the query decoded into a multi-value dict.
        query=parse_qs(parts.query, keep_blank_values=True) or None,
        headers=headers, body=body, region="us-east-1", lookup=KEYS.get, now=SIGNED_AT + timedelta(seconds=2),
        served_host=host_matcher(["127.0.0.1:8000"]),
    )
    args.update(overrides)
    return verify_sigv4(**args)


def denied(code: str, method: str, url: str, body: bytes, headers: dict[str, str], **overrides: Any) -> str:
    with pytest.raises(PermissionDenied) as info:
        verify(method, url, body, headers, **overrides)
    error = info.value
    assert error.code == code, error.message
    assert error.status == 403
    leaks = [SECRET, "wrong-secret", *re.findall(r"Signature=([0-9a-f]{64})", headers.get("authorization", ""))]
    for leaked in leaks:
        assert leaked not in str(error) and leaked not in error.message
    return error.message


UNIFORM = ("signature does not match: check the access key id and secret (and session token), the region, and "
           "that the method, path, query, signed headers and body are sent as signed")
BODY = b'{"model": "local-echo", "messages": [{"role": "user", "content": "hi"}]}'
CHAT = f"{BASE}/v1/chat/completions"


def test_good_get_and_post_pass() -> None:
    assert verify("GET", f"{BASE}/v1/models", b"", sign("GET", f"{BASE}/v1/models")) == PRINCIPAL
    headers = sign("POST", CHAT, BODY, headers={"content-type": "application/json"})
    assert verify("POST", CHAT, BODY, headers) == PRINCIPAL


def test_paths_needing_encoding_and_query_strings_pass() -> None:
    for url in (
        f"{BASE}/v1/models/anthropic.claude-3-haiku-20240307-v1:0",
        f"{BASE}/v1/models/anthropic.claude-3-haiku-20240307-v1%3A0",  # already encoded: double-encoded both sides
        f"{BASE}/v1/files/a%20b/c/d/",
        f"{BASE}/v1/models?limit=10&after=m%2Fx&tag=b&tag=a&flag=",
        f"{BASE}/v1/models?q=caf%C3%A9%20au%20lait&star=%2A",
    ):
        assert verify("GET", url, b"", sign("GET", url)) == PRINCIPAL, url


def test_mixed_case_header_names_pass() -> None:
    headers = sign("POST", CHAT, BODY, headers={"content-type": "application/json"})
    assert verify("POST", CHAT, BODY, {k.title(): v for k, v in headers.items()}) == PRINCIPAL


def test_session_token_only_where_the_local_credentials_define_one() -> None:
    with_token = {KEY_ID: LocalCredential(SECRET, PRINCIPAL, "session-token")}
    headers = sign("POST", CHAT, BODY, token="session-token")
    assert "x-amz-security-token" in headers["authorization"]
    assert verify("POST", CHAT, BODY, {k.title(): v for k, v in headers.items()}, lookup=with_token.get) == PRINCIPAL
    # A token the credentials do not define, a wrong token, a missing one: the uniform 403.
    assert denied("invalid_signature", "POST", CHAT, BODY, headers) == UNIFORM
    wrong = sign("POST", CHAT, BODY, token="other-token")
    assert denied("invalid_signature", "POST", CHAT, BODY, wrong, lookup=with_token.get) == UNIFORM
    assert denied("invalid_signature", "POST", CHAT, BODY, sign("POST", CHAT, BODY), lookup=with_token.get) == UNIFORM


def test_whitespace_in_header_values_is_folded() -> None:
    headers = sign("POST", CHAT, BODY, headers={"content-type": "application/json;   charset=utf-8 "})
    headers["content-type"] = "  application/json; charset=utf-8"
    assert verify("POST", CHAT, BODY, headers) == PRINCIPAL


def test_tampered_requests_fail() -> None:
    headers = sign("POST", CHAT, BODY, headers={"content-type": "application/json"})
    denied("invalid_signature", "POST", CHAT, BODY.replace(b"hi", b"ho"), headers)
    denied("invalid_signature", "POST", f"{BASE}/v1/completions", BODY, headers)
    denied("invalid_signature", "PUT", CHAT, BODY, headers)
    denied("invalid_signature", "POST", CHAT + "?x=1", BODY, headers)
    denied("invalid_signature", "POST", CHAT, BODY, {**headers, "content-type": "text/plain"})
    both = host_matcher(["127.0.0.1:8000", "localhost:8000"])
    denied("invalid_signature", "POST", CHAT, BODY, {**headers, "host": "localhost:8000"}, served_host=both)
    message = denied("invalid_signature", "POST", CHAT, BODY, {k: v for k, v in headers.items() if k != "content-type"})
    assert "content-type" in message


def test_wrong_secret_and_unknown_key_get_the_same_answer() -> None:
    wrong_secret = denied("invalid_signature", "GET", CHAT, b"", sign("GET", CHAT, secret="wrong-secret"))
    unknown_key = denied("invalid_signature", "GET", CHAT, b"", sign("GET", CHAT, key_id="AKIAUNKNOWNKEY000001"))
    assert wrong_secret == unknown_key == UNIFORM  # no key enumeration
    assert "AKIAUNKNOWNKEY000001" not in unknown_key
    # Whatever else is wrong, a check that could tell a known key from an unknown one comes first.
    for key_id in (KEY_ID, "AKIAUNKNOWNKEY000001"):
        tampered = sign("POST", CHAT, BODY, key_id=key_id, headers={"x-amz-content-sha256": "0" * 64})
        assert "x-amz-content-sha256" in denied("invalid_signature", "POST", CHAT, BODY, tampered)


def test_wrong_scope_fails() -> None:
    denied("invalid_credential_scope", "GET", CHAT, b"", sign("GET", CHAT, region="eu-west-1"))
    denied("invalid_credential_scope", "GET", CHAT, b"", sign("GET", CHAT, service="bedrock"))
    headers = sign("GET", CHAT)
    denied("invalid_credential_scope", "GET", CHAT, b"", headers, region="eu-central-1")
    bad_date = headers["authorization"].replace("/20260314/", "/20260313/")
    denied("invalid_credential_scope", "GET", CHAT, b"", {**headers, "authorization": bad_date})
    bad_term = headers["authorization"].replace("/aws4_request", "/aws4_other")
    denied("invalid_credential_scope", "GET", CHAT, b"", {**headers, "authorization": bad_term})


def test_clock_skew() -> None:
    headers = sign("GET", CHAT)
    assert verify("GET", CHAT, b"", headers, now=SIGNED_AT + timedelta(minutes=4, seconds=59)) == PRINCIPAL
    assert verify("GET", CHAT, b"", headers, now=SIGNED_AT - timedelta(minutes=4)) == PRINCIPAL
    assert "expired" in denied("signature_expired", "GET", CHAT, b"", headers, now=SIGNED_AT + timedelta(minutes=6))
    assert "future" in denied("signature_expired", "GET", CHAT, b"", headers, now=SIGNED_AT - timedelta(minutes=6))
    denied("signature_expired", "GET", CHAT, b"", headers, now=(SIGNED_AT + timedelta(minutes=6)).replace(tzinfo=None))


def test_required_signed_headers() -> None:
    headers = sign("GET", CHAT)
    for name in ("host", "x-amz-date"):
        auth = headers["authorization"]
        signed = auth.split("SignedHeaders=")[1].split(",")[0]
        stripped = ";".join(h for h in signed.split(";") if h != name)
        tampered = {**headers, "authorization": auth.replace(signed, stripped)}
        message = denied("unsigned_header", "GET", CHAT, b"", tampered)
        assert name in message
    # A session token sent but left out of SignedHeaders could be swapped freely.
    denied("unsigned_header", "GET", CHAT, b"", {**headers, "x-amz-security-token": "t"})


def test_missing_or_garbage_authorization() -> None:
    headers = sign("GET", CHAT)
    no_auth = {k: v for k, v in headers.items() if k != "authorization"}
    denied("missing_signature", "GET", CHAT, b"", no_auth)
    assert "API key" in denied("missing_signature", "GET", CHAT, b"", {**no_auth, "authorization": "Bearer sk-123"})
    denied("missing_signature", "GET", CHAT + "?X-Amz-Signature=abc", b"", no_auth)
    auth = headers["authorization"]
    for garbage in (
        "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 garbage", "AWS4-HMAC-SHA256 Credential=a, Signature=b",
        auth.replace("Signature=", "Signature=zz"), auth + ", Signature=" + "0" * 64,
        auth.replace(f"Credential={KEY_ID}/", "Credential="), auth.replace("SignedHeaders=", "SignedHeaders=Host;"),
    ):
        denied("invalid_signature", "GET", CHAT, b"", {**headers, "authorization": garbage})
    for date in ("2026-03-14T09:26:53Z", "20260314T256653Z"):  # wrong shape; right shape, no such hour
        denied("invalid_signature", "GET", CHAT, b"", {**headers, "x-amz-date": date})


def test_content_sha256_header() -> None:
    import hashlib

    good = hashlib.sha256(BODY).hexdigest()
    headers = sign("POST", CHAT, BODY, headers={"x-amz-content-sha256": good})
    assert verify("POST", CHAT, BODY, headers) == PRINCIPAL
    headers = sign("POST", CHAT, BODY, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    denied("invalid_signature", "POST", CHAT, BODY, headers)
    # Signed over the real hash, then a different body sent with that claim: still refused.
    headers = sign("POST", CHAT, BODY, headers={"x-amz-content-sha256": good})
    denied("invalid_signature", "POST", CHAT, b"{}", headers)


def test_lookup_errors_propagate() -> None:
    def no_file(_: str) -> LocalCredential | None:
        raise PermissionDenied("no local credentials configured: run make run", code="no_local_credentials")

    assert "make run" in denied("no_local_credentials", "GET", CHAT, b"", sign("GET", CHAT), lookup=no_file)


def test_signing_key_cache_is_bounded() -> None:
    sigv4._key_cache.clear()
    for day in range(sigv4._KEY_CACHE_MAX + 10):
        sigv4._signing_key(SECRET, f"2026{day:04d}", "us-east-1", "execute-api")
    assert len(sigv4._key_cache) <= sigv4._KEY_CACHE_MAX


def test_does_not_import_botocore() -> None:
    import subprocess

    code = "import sys; import chalicelib.identity.sigv4; print('botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.stdout.strip() == "False"


def test_signed_host_must_be_the_served_host() -> None:
    # Signed correctly, but for another server (an API Gateway, another port): refused.
    for url in ("https://abc123.execute-api.us-east-1.amazonaws.com/v1/models", "http://127.0.0.1:9000/v1/models"):
        headers = sign("GET", url, headers={"host": urlsplit(url).netloc})
        assert "host" in denied("invalid_host", "GET", url, b"", headers)
    headers = sign("GET", f"{BASE}/v1/models")
    assert verify("GET", f"{BASE}/v1/models", b"", headers) == PRINCIPAL


def test_host_matcher() -> None:
    served = host_matcher(["127.0.0.1:8765", "LOCALHOST:8765"])
    assert served("127.0.0.1:8765") and served("localhost:8765")
    assert not served("127.0.0.1:8000") and not served("127.0.0.1") and not served("evil.example:8765")
    loopback = host_matcher([])  # GARDEN_SERVED_HOST unset: loopback names, any port
    for host in ("127.0.0.1:8000", "localhost:1", "[::1]:8000", "localhost"):
        assert loopback(host), host
    for host in ("evil.example:8000", "127.0.0.2:8000", "localhost.evil.example", "[::2]:80"):
        assert not loopback(host), host


@pytest.mark.parametrize("path", [
    "/v1/models/..", "/v1/models/.", "/v1/models//", "/v1//models", "/v1/models/x/../local-echo",
    "/v1/./chat/completions", "//v1/models",
])
def test_paths_whose_dot_or_empty_segments_change_the_route_are_refused(path: str) -> None:
    # botocore signs the normalised path; the router would match the path as sent.
    url = f"{BASE}{path}"
    denied("non_canonical_path", "GET", url, b"", sign("GET", url))


def test_replayed_signature_is_refused_within_the_window() -> None:
    cache = ReplayCache()
    headers = sign("POST", CHAT, BODY)
    assert verify("POST", CHAT, BODY, headers, first_use=cache.first_use) == PRINCIPAL
    assert "already used" in denied("replayed_signature", "POST", CHAT, BODY, headers, first_use=cache.first_use)
    later = SIGNED_AT + timedelta(minutes=4)
    denied("replayed_signature", "POST", CHAT, BODY, headers, first_use=cache.first_use, now=later)
    # A request that fails verification is not recorded: the genuine one still passes once.
    other = sign("GET", CHAT)
    denied("invalid_signature", "GET", CHAT, b"x", other, first_use=cache.first_use)
    assert verify("GET", CHAT, b"", other, first_use=cache.first_use) == PRINCIPAL


def test_replay_cache_is_bounded_and_forgets_expired_signatures() -> None:
    cache = ReplayCache(capacity=8)
    now = SIGNED_AT
    for i in range(20):
        assert cache.first_use(f"sig{i}", now, now + timedelta(minutes=5))
    assert len(cache) == 8
    assert not cache.first_use("sig19", now, now + timedelta(minutes=5))
    after = now + timedelta(minutes=5, seconds=1)
    assert cache.first_use("fresh", after, after + timedelta(minutes=5))
    assert len(cache) == 1  # the expired ones were dropped
