"""Verify an AWS SigV4 `Authorization` header the way API Gateway's IAM authorizer does.

Used only where no API Gateway checks signatures (`chalice local`). Pure stdlib on purpose: importing
botocore would cost cold-start time. The canonical request mirrors botocore's `SigV4Auth` for a
non-S3 service, so whatever botocore signs verifies here:

* path: `quote(path, safe='/~')` of the path *as received on the wire* (still percent-encoded),
  exactly as botocore applies it to the URL it signed: so `/m/a:b` and `/m/a%3Ab` are different
  paths, each consistent end to end. botocore removes dot segments and repeated slashes before
  signing, but the router matches the path as sent, so such paths are refused (signed = routed).
* query: Chalice hands us the *decoded* multi-value dict, not the raw string, so each key and value
  is re-encoded with `quote(safe='-_.~')` and the pairs sorted. A signer that signed a raw query in
  another encoding (`+` for space, unencoded `*`, ...) does not verify; botocore with `params`, and
  `client/garden_auth.py` (which canonicalises the URL's query before signing), do.
* headers: the names listed in SignedHeaders, values with runs of whitespace folded to one space.
  A header repeated on the wire arrives already joined (or last-wins) from the HTTP server.
* payload: always the sha256 of the body actually received; a client-sent x-amz-content-sha256
  (including UNSIGNED-PAYLOAD) must equal it.

Beyond the signature, as API Gateway does: the signed `host` must be the one served, a session
token must match one the local credentials define. Unlike API Gateway, a verified signature is
accepted once (the caller's replay cache, `replay.py`).

Every failure is a PermissionDenied (403) whose message never quotes the secret, the signature or
the body; values echoed from the request pass `_shown` first. An unknown access key and a wrong
secret get the same answer (`invalid_signature`), so keys cannot be enumerated.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Mapping, NoReturn
from urllib.parse import quote

from chalicelib.errors import PermissionDenied

if TYPE_CHECKING:
    from chalicelib.identity.local_credentials import LocalCredential

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_SHOWABLE = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
_REQUIRED_SIGNED = ("host", "x-amz-date")
_KEY_CACHE_MAX = 256
# (secret, date, region, service) -> signing key: 4 HMACs saved per request; a key is valid a day.
_key_cache: dict[tuple[str, str, str, str], bytes] = {}
_UNKNOWN_KEY_SECRET = "garden-no-such-key"  # verifies nothing: every real signature differs


def verify_sigv4(
    *,
    method: str,
    path: str,
    query: Mapping[str, list[str]] | None,
    headers: Mapping[str, str],
    body: bytes,
    region: str,
    lookup: Callable[[str], LocalCredential | None],
    now: datetime,
    served_host: Callable[[str], bool],
    first_use: Callable[[str, datetime, datetime], bool] | None = None,
    service: str = "execute-api",
    max_skew: timedelta = timedelta(minutes=5),
) -> str:
    """Returns the caller's principal ARN or raises PermissionDenied.

    `served_host(host)` says whether a signed `host` header names this server; `first_use(signature,
    now, expires)` records a verified signature and says whether it is new (None: no replay check).
    """
    headers = {name.lower(): value for name, value in headers.items()}
    auth = headers.get("authorization")
    if not auth:
        if query and ("X-Amz-Signature" in query or "X-Amz-Credential" in query):
            _deny("missing_signature", "presigned (query string) SigV4 is not supported: sign the Authorization header")
        _deny("missing_signature",
              "request is not signed: sign it with AWS SigV4 (service execute-api); see client/garden_auth.py")
    key_id, scope_date, scope_region, scope_service, signed, signature = _parse_authorization(auth)

    # Every check that needs no key comes first, so that what follows the key lookup can fail in
    # one way only: an unknown key and a wrong signature are indistinguishable (no key enumeration).
    for name in _REQUIRED_SIGNED:
        if name not in signed:
            _deny("unsigned_header", f"SignedHeaders must include {name}")
    if "x-amz-security-token" in headers and "x-amz-security-token" not in signed:
        _deny("unsigned_header", "SignedHeaders must include x-amz-security-token when it is sent")
    for name in signed:
        if name not in headers:
            _deny("invalid_signature", f"signed header {_shown(name)} is missing from the request")
    if not served_host(headers["host"]):
        _deny("invalid_host", "the signed host header does not name this server: sign for the URL you call")
    _check_routed_path(path)

    amz_date = headers["x-amz-date"]
    if not _AMZ_DATE.fullmatch(amz_date):
        _deny("invalid_signature", "x-amz-date must be YYYYMMDDTHHMMSSZ (UTC)")
    if scope_date != amz_date[:8]:
        _deny("invalid_credential_scope", "credential scope date does not match x-amz-date")
    if scope_region != region:
        _deny("invalid_credential_scope",
              f"credential scope region {_shown(scope_region)} is wrong: sign for {region}")
    if scope_service != service:
        _deny("invalid_credential_scope",
              f"credential scope service {_shown(scope_service)} is wrong: sign for {service}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # naive means UTC here, as for x-amz-date
    signed_at = _check_skew(amz_date, now, max_skew)

    payload_hash = hashlib.sha256(body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is not None and claimed != payload_hash:
        _deny("invalid_signature",
              "x-amz-content-sha256 does not match the request body (unsigned payloads are refused)")

    canonical = "\n".join((
        method.upper(),
        canonical_path(path),
        canonical_query(query),
        "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed),
        ";".join(signed),
        payload_hash,
    ))
    scope = f"{scope_date}/{region}/{service}/{TERMINATOR}"
    string_to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"

    credential = lookup(key_id)
    # An unknown key still costs the HMACs, so timing does not tell it from a wrong secret either.
    secret = credential.secret_access_key if credential is not None else _UNKNOWN_KEY_SECRET
    key = _signing_key(secret, scope_date, region, service)
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    matches = hmac.compare_digest(expected, signature)
    if credential is None or not matches or not _token_matches(credential, headers.get("x-amz-security-token")):
        _deny("invalid_signature", "signature does not match: check the access key id and secret (and session "
              "token), the region, and that the method, path, query, signed headers and body are sent as signed")
    if first_use is not None and not first_use(signature, now, signed_at + max_skew):
        _deny("replayed_signature", "this signature was already used: sign every request anew")
    return credential.principal_arn


def _token_matches(credential: LocalCredential, sent: str | None) -> bool:
    """A session token is accepted only where the local credentials define one, and must equal it;
    a credential that defines one needs it sent (as STS session credentials do)."""
    expected = credential.session_token
    if expected is None or sent is None:
        return expected is None and sent is None
    return hmac.compare_digest(expected.encode(), sent.encode())


def _check_routed_path(path: str) -> None:
    """What is signed must be what is routed: SigV4 signs the path with dot segments and empty
    segments removed, while the local router matches it as sent (`/v1/models/..` would be signed as
    `/v1` and routed to a model named `..`). Such paths are refused; one trailing slash is allowed."""
    segments = path.split("/")[1:]
    if segments and segments[-1] == "":
        segments.pop()
    if not path.startswith("/") or any(s in ("", ".", "..") for s in segments):
        _deny("non_canonical_path", "the path has empty, '.' or '..' segments: send it in its canonical form")


def canonical_path(path: str) -> str:
    """botocore's `_normalize_url_path`: RFC 3986 dot-segment removal, no empty segments, then quote."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    normalized = ("/" if path[0] == "/" else "") + "/".join(segments)
    if path[-1] == "/" and segments:
        normalized += "/"
    return quote(normalized, safe="/~")


def canonical_query(query: Mapping[str, list[str]] | None) -> str:
    """Decoded multi-value query -> botocore's `_canonical_query_string_params` form."""
    if not query:
        return ""
    pairs = sorted(
        (quote(key, safe="-_.~"), quote(value, safe="-_.~")) for key, values in query.items() for value in values
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def _parse_authorization(auth: str) -> tuple[str, str, str, str, list[str], str]:
    scheme, _, rest = auth.strip().partition(" ")
    if scheme != ALGORITHM:
        hint = " (an OpenAI-style API key is not accepted here)" if scheme.lower() == "bearer" else ""
        _deny("missing_signature", f"Authorization must use {ALGORITHM} (AWS SigV4){hint}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name in fields:
            _malformed()
        fields[name] = value.strip()
    if fields.keys() != {"Credential", "SignedHeaders", "Signature"}:
        _malformed()
    scope = fields["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        _malformed()
    if scope[4] != TERMINATOR:
        _deny("invalid_credential_scope", f"credential scope must end with /{TERMINATOR}")
    signed = fields["SignedHeaders"].split(";")
    if not all(_HEADER_NAME.fullmatch(name) for name in signed) or len(set(signed)) != len(signed):
        _malformed()
    if not _SIGNATURE.fullmatch(fields["Signature"]):
        _malformed()
    return scope[0], scope[1], scope[2], scope[3], signed, fields["Signature"]


def _check_skew(amz_date: str, now: datetime, max_skew: timedelta) -> datetime:
    try:  # by hand: strptime costs ~10 µs
        signed_at = datetime(int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]), int(amz_date[9:11]),
                             int(amz_date[11:13]), int(amz_date[13:15]), tzinfo=timezone.utc)
    except ValueError:
        _deny("invalid_signature", "x-amz-date is not a valid date")
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)  # naive means UTC here, as for x-amz-date
    if signed_at < now - max_skew:
        _deny("signature_expired", f"signature expired: signed at {amz_date}, more than {_minutes(max_skew)} ago; "
              "sign each request just before sending it and check the clock")
    if signed_at > now + max_skew:
        _deny("signature_expired", f"signature is dated {amz_date}, more than {_minutes(max_skew)} in the future; "
              "check the client's clock")
    return signed_at


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    cache_key = (secret, date, region, service)
    key = _key_cache.get(cache_key)
    if key is None:
        key = _hmac(f"AWS4{secret}".encode(), date)
        for part in (region, service, TERMINATOR):
            key = _hmac(key, part)
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()  # bounded; refilling costs 4 HMACs per distinct key, once
        _key_cache[cache_key] = key
    return key


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:g} min"


def _shown(value: str) -> str:
    """Echo a request value only if it is short and plain; anything else could be content."""
    return repr(value) if _SHOWABLE.fullmatch(value) else "<invalid>"


def _malformed() -> NoReturn:
    _deny("invalid_signature", f"malformed Authorization header: expected '{ALGORITHM} Credential=<key id>/"
          "<yyyymmdd>/<region>/<service>/aws4_request, SignedHeaders=<a;b;c>, Signature=<64 hex>'")


def _deny(code: str, message: str) -> NoReturn:
    raise PermissionDenied(message, code=code)
