"""A loopback Bedrock control plane answering `ListFoundationModels` (restJson1, `GET
/foundation-models`) as Bedrock does, so tests drive the REAL boto3 `bedrock` client through
`endpoint_url` or `AWS_ENDPOINT_URL_BEDROCK` (moto does not emulate this operation).

    with FakeBedrockControl({"eu-west-1": [summary("anthropic.claude-v2:1", "LEGACY")]}) as fake:
        boto3.client("bedrock", region_name="eu-west-1", endpoint_url=fake.endpoint_url)

One endpoint serves every region: the answer is chosen by the region of the request's SigV4
credential scope, as each regional endpoint would answer for itself. A region may instead be
scripted to fail (`Fail`). Requests are recorded as (method, path, query, region, service).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Mapping, Sequence, Union
from urllib.parse import urlsplit

from fakes.loopback import AwsHandler, LoopbackServer

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Fail:
    code: str = "AccessDeniedException"
    status: int = 403
    message: str = "not authorized to perform bedrock:ListFoundationModels"


Answer = Union[Sequence[Mapping[str, Any]], Fail]


def summary(model_id: str, status: str = "ACTIVE", region: str = "us-east-1") -> dict[str, Any]:
    """A FoundationModelSummary as Bedrock lists it (the fields botocore's model defines)."""
    provider = model_id.split(".", 1)[0]
    return {
        "modelArn": f"arn:aws:bedrock:{region}::foundation-model/{model_id}",
        "modelId": model_id,
        "modelName": model_id.split(".", 1)[-1],
        "providerName": provider.capitalize(),
        "inputModalities": ["TEXT"],
        "outputModalities": ["TEXT"],
        "responseStreamingSupported": True,
        "customizationsSupported": [],
        "inferenceTypesSupported": ["ON_DEMAND", "INFERENCE_PROFILE"],
        "modelLifecycle": {"status": status},
    }


class FakeBedrockControl(LoopbackServer):
    def __init__(self, regions: Mapping[str, Answer]) -> None:
        self.regions = dict(regions)  # region -> model summaries, or Fail; unknown regions list nothing
        self.requests: list[dict[str, str]] = []
        super().__init__(_handler(self))

    def answer(self, method: str, path: str, query: str, authorization: str) -> Answer:
        scope = _SCOPE.search(authorization)
        region, service = scope.groups() if scope else ("", "")
        with self._lock:
            self.requests.append({"method": method, "path": path, "query": query, "region": region,
                                  "service": service})
        return self.regions.get(region, [])


def _handler(fake: FakeBedrockControl) -> type[BaseHTTPRequestHandler]:
    class Handler(AwsHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            answer = fake.answer("GET", url.path, url.query, self.headers.get("Authorization", ""))
            if url.path != "/foundation-models":
                return self.send_json(404, {"message": "unknown operation"}, error_type="UnknownOperationException")
            if isinstance(answer, Fail):
                return self.send_json(answer.status, {"message": answer.message}, error_type=answer.code)
            self.send_json(200, {"modelSummaries": list(answer)})

    return Handler
