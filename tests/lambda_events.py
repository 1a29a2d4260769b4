"""API Gateway REST proxy events as Lambda receives them, after the IAM authorizer has run."""
from __future__ import annotations

import json
import uuid
from typing import Any


def proxy_event(
    method: str, path: str, body: Any = None, *, caller_arn: str | None, stage: str = "api",
    resource: str | None = None, path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    raw = None if body is None else (body if isinstance(body, str) else json.dumps(body))
    identity: dict[str, Any] = {"sourceIp": "10.0.0.1", "userAgent": "bench"}
    if caller_arn:
        account = caller_arn.split(":")[4]
        identity.update(userArn=caller_arn, accountId=account, caller="AROAEXAMPLE:session",
                        accessKey="ASIAEXAMPLE")
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": {"content-type": "application/json", "host": "abc123.execute-api.eu-west-1.amazonaws.com"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "identity": identity,
        },
        "body": raw,
        "isBase64Encoded": False,
    }


class LambdaContext:
    function_name = "execution-garden-dev"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 28_000
