"""AWS adapter: API Gateway's IAM authorizer verified the signature; read who signed."""
from __future__ import annotations

from chalicelib.errors import PermissionDenied
from chalicelib.incoming import IncomingRequest


class IamContextIdentity:
    def principal(self, request: IncomingRequest) -> str:
        if not request.caller_arn:
            # Only reachable if a route lost its IAMAuthorizer: refuse rather than guess.
            raise PermissionDenied("request carries no IAM identity", code="missing_identity")
        return request.caller_arn
