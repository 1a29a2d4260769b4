"""Identity port: who is calling? Returns the caller's IAM principal ARN or raises a 403.

Two adapters: `IamContextIdentity` (AWS: API Gateway's IAM authorizer has checked SigV4) and
`LocalSigV4Identity` (`chalice local` checks nothing, so the gateway verifies SigV4 itself).
"""
from __future__ import annotations

from typing import Protocol

from chalicelib.incoming import IncomingRequest


class Identity(Protocol):
    def principal(self, request: IncomingRequest) -> str: ...
