"""Sign test requests the way a BU app does: with botocore's SigV4Auth (service execute-api)."""
from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def signed_headers(
    method: str, url: str, body: bytes, key_id: str, secret: str, region: str = "us-east-1",
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(key_id, secret), "execute-api", region).add_auth(request)
    return dict(request.headers.items())
