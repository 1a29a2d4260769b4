"""A loopback Bedrock runtime that answers ApplyGuardrail (restJson1,
`POST /guardrail/{id}/version/{version}/apply`), so tests drive the REAL boto3 client.

    with FakeGuardrail({"gr-1": Rules(denied_words=("CANARY",))}) as fake:
        boto3.client("bedrock-runtime", endpoint_url=fake.endpoint_url, region_name="us-east-1")

A guardrail's script is one behaviour or a list played one per call (the last repeats); an id not in
the script answers ResourceNotFoundException (404), as Bedrock does for a wrong id or version.
`Rules` reads the content like a configured guardrail would, and answers assessments shaped as
botocore's model (with the raw `match`, as AWS does: adapters must drop it).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Mapping, Sequence, Union

from fakes.loopback import AwsHandler, LoopbackServer
from urllib.parse import unquote

ERROR_STATUS = {
    "AccessDeniedException": 403, "ResourceNotFoundException": 404, "ThrottlingException": 429,
    "InternalServerException": 500, "ServiceUnavailableException": 503, "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
}
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
ATTACK = re.compile(r"ignore (?:all )?previous instructions", re.IGNORECASE)
BLOCKED_MESSAGE = "Sorry, the model cannot answer this question."


@dataclass(frozen=True)
class Rules:
    denied_words: tuple[str, ...] = ()  # wordPolicy customWords, BLOCKED
    anonymize_emails: bool = False  # sensitiveInformationPolicy EMAIL, ANONYMIZED -> {EMAIL}
    prompt_attack: bool = False  # contentPolicy PROMPT_ATTACK on INPUT, BLOCKED
    combined_output: bool = False  # answer one output for all content blocks, joined by "\n"


@dataclass(frozen=True)
class Fail:
    code: str
    message: str = "guardrail failed while reading: SECRET-GUARDRAIL-TEXT"


@dataclass(frozen=True)
class Hang:
    seconds: float


Behaviour = Union[Rules, Fail, Hang]


class FakeGuardrail(LoopbackServer):
    def __init__(self, script: Mapping[str, Behaviour | Sequence[Behaviour]] | None = None) -> None:
        self.script = dict(script or {})
        # (id, version, source, content blocks, outputScope): no text is kept
        self.requests: list[tuple[str, str, str, int, str | None]] = []
        super().__init__(_handler(self))

    def behaviour(self, gid: str, version: str, body: Mapping[str, Any]) -> Behaviour | None:
        with self._lock:
            n = sum(1 for r in self.requests if r[0] == gid)
            self.requests.append((gid, version, str(body.get("source")), len(body.get("content", [])),
                                  body.get("outputScope")))
            planned = self.script.get(gid)
        if planned is None or isinstance(planned, (Rules, Fail, Hang)):
            return planned
        return planned[min(n, len(planned) - 1)]


def apply_rules(rules: Rules, source: str, texts: list[str]) -> dict[str, Any]:
    assessment: dict[str, Any] = {}
    words = [{"match": w, "action": "BLOCKED", "detected": True}
             for w in rules.denied_words for t in texts if re.search(rf"\b{re.escape(w)}\b", t, re.I)]
    if words:
        assessment["wordPolicy"] = {"customWords": words}
    if rules.prompt_attack and source == "INPUT" and any(ATTACK.search(t) for t in texts):
        assessment["contentPolicy"] = {"filters": [{"type": "PROMPT_ATTACK", "confidence": "HIGH",
                                                    "filterStrength": "HIGH", "action": "BLOCKED",
                                                    "detected": True}]}
    emails = [m.group() for t in texts for m in EMAIL.finditer(t)] if rules.anonymize_emails else []
    if emails:
        assessment["sensitiveInformationPolicy"] = {"piiEntities": [
            {"match": e, "type": "EMAIL", "action": "ANONYMIZED", "detected": True} for e in emails]}
    usage = {"topicPolicyUnits": 0, "contentPolicyUnits": len(texts), "wordPolicyUnits": len(texts),
             "sensitiveInformationPolicyUnits": len(texts), "sensitiveInformationPolicyFreeUnits": 0,
             "contextualGroundingPolicyUnits": 0}
    if not assessment:
        return {"action": "NONE", "outputs": [], "assessments": [{}], "usage": usage}
    if "wordPolicy" in assessment or "contentPolicy" in assessment:
        outputs = [{"text": BLOCKED_MESSAGE}]
    else:
        masked = [EMAIL.sub("{EMAIL}", t) for t in texts]
        outputs = [{"text": "\n".join(masked)}] if rules.combined_output else [{"text": m} for m in masked]
    return {"action": "GUARDRAIL_INTERVENED", "actionReason": "Guardrail blocked.",
            "outputs": outputs, "assessments": [assessment], "usage": usage}


def _handler(fake: FakeGuardrail) -> type[BaseHTTPRequestHandler]:
    class Handler(AwsHandler):
        def do_POST(self) -> None:
            raw = self.read_body()
            parts = self.path.split("/")  # /guardrail/{id}/version/{version}/apply
            if len(parts) != 6 or parts[1] != "guardrail" or parts[3] != "version" or parts[5] != "apply":
                return self.send_json(404, {"message": "unknown route"}, error_type="UnknownOperationException")
            gid, version, body = unquote(parts[2]), unquote(parts[4]), json.loads(raw or b"{}")
            behaviour = fake.behaviour(gid, version, body)
            if isinstance(behaviour, Hang):
                if fake.stopping.wait(behaviour.seconds):
                    return
                behaviour = Rules()
            if behaviour is None:
                return self.send_json(404, {"message": "The guardrail was not found."},
                                      error_type="ResourceNotFoundException")
            if isinstance(behaviour, Fail):
                return self.send_json(ERROR_STATUS.get(behaviour.code, 500), {"message": behaviour.message},
                                      error_type=behaviour.code)
            texts = [str(block.get("text", {}).get("text", "")) for block in body.get("content", [])]
            self.send_json(200, apply_rules(behaviour, str(body.get("source")), texts))

    return Handler
