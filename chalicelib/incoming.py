"""The HTTP request as the pipeline sees it: no Chalice types past this point."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    method: str
    path: str  # as the caller sent it, without the API Gateway stage prefix
    query: Mapping[str, list[str]] | None
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    caller_arn: str | None  # identity.userArn, set by API Gateway's IAM authorizer in AWS
    request_id: str
