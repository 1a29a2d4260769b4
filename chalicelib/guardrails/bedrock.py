"""Amazon Bedrock Guardrails (ApplyGuardrail) behind the Guardrail port.

One call per check with every text as its own content block. `outputScope` is INTERVENTIONS (the
default): the masked `outputs` come back either way, and FULL only adds non-detected entries to
`assessments`, i.e. more matched text in memory for nothing. Entries are still filtered on their
action, so a FULL response would read the same.

Mapping (botocore bedrock-runtime model, GuardrailAssessment):
- action NONE -> PASS.
- GUARDRAIL_INTERVENED with any entry whose action is BLOCKED -> BLOCKED.
- otherwise ANONYMIZED entries -> MASKED, `texts` = the guardrail's outputs, one per input text.
  The API does not document whether several content blocks give one output each; when the count
  of outputs differs from the count of texts, each text is checked again on its own, so every
  masked text maps back to its input (a combined output cannot be split safely).
- intervened with no entry we understand (a new policy type) -> BLOCKED "GUARDRAIL" (fail safe).

Categories name the rule, never what matched: assessments carry the raw text in `match`, so they
are read here and dropped. customWords report "DENIED_WORD", as the local guardrail does.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator, Mapping, Sequence

from chalicelib.catalog import GuardrailPolicy
from chalicelib.errors import ServiceUnavailable
from chalicelib.guardrails import BLOCKED, MASKED, PASS, GuardrailVerdict
from chalicelib.lazy import OnFirstUse
from chalicelib.pii.type_names import COMPREHEND_TO_GUARDRAILS

log = logging.getLogger(__name__)

GUARDRAILS_TO_COMPREHEND: dict[str, str] = {g: c for c, g in COMPREHEND_TO_GUARDRAILS.items()}
OUTPUT_SCOPE = "INTERVENTIONS"
# The caller cannot fix these: the gateway's guardrail id/version or its IAM policy is wrong.
MISCONFIGURED = frozenset({"AccessDeniedException", "ResourceNotFoundException"})


class BedrockGuardrail:
    """`client_factory` returns a boto3 `bedrock-runtime` client; called once, on first use."""

    def __init__(self, client_factory: Callable[[], Any]) -> None:
        self._client = OnFirstUse(client_factory)

    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        # Empty texts are not sent (a content block needs text) and come back unchanged.
        sent = [i for i, text in enumerate(texts) if text]
        if policy.bedrock_id is None or not sent:
            return PASS
        items = list(texts)
        response = self._apply([items[i] for i in sent], source, policy)
        if response.get("action") != "GUARDRAIL_INTERVENED":
            return PASS
        blocked, masked = _categories(response.get("assessments") or [])
        if blocked:
            return GuardrailVerdict(BLOCKED, _unique(blocked + masked))
        if not masked:
            return GuardrailVerdict(BLOCKED, ("GUARDRAIL",))
        outputs = _output_texts(response)
        if len(outputs) == len(sent):
            rewritten = list(items)
            for i, output in zip(sent, outputs, strict=True):
                rewritten[i] = output
            return GuardrailVerdict(MASKED, _unique(masked), tuple(rewritten))
        return self._one_by_one(items, source, policy)

    def _one_by_one(self, texts: list[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        rewritten: list[str] = []
        categories: list[str] = []
        for text in texts:
            response = self._apply([text], source, policy) if text else {}
            if response.get("action") != "GUARDRAIL_INTERVENED":
                rewritten.append(text)
                continue
            blocked, masked = _categories(response.get("assessments") or [])
            if blocked or not masked:  # the guardrail changed its mind, or a rule we cannot read
                return GuardrailVerdict(BLOCKED, _unique(blocked + masked + categories) or ("GUARDRAIL",))
            categories += masked
            rewritten.append("".join(_output_texts(response)))
        return GuardrailVerdict(MASKED, _unique(categories), tuple(rewritten))

    def _apply(self, texts: list[str], source: str, policy: GuardrailPolicy) -> Mapping[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError  # lazy: cold start
        from urllib3.exceptions import HTTPError

        try:
            return self._client().apply_guardrail(
                guardrailIdentifier=policy.bedrock_id, guardrailVersion=policy.bedrock_version,
                source=source, content=[{"text": {"text": t}} for t in texts], outputScope=OUTPUT_SCOPE)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            log.warning("ApplyGuardrail failed: %s", code)  # the code only: messages may quote text
            if code in MISCONFIGURED:
                raise ServiceUnavailable("Guardrail misconfigured", code="guardrail_misconfigured") from None
            raise ServiceUnavailable("Guardrail unavailable", code="guardrail_unavailable") from None
        except (BotoCoreError, HTTPError) as exc:  # timeouts, connection, credentials
            log.warning("ApplyGuardrail failed: %s", type(exc).__name__)
            raise ServiceUnavailable("Guardrail unavailable", code="guardrail_unavailable") from None


def _categories(assessments: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(blocking categories, anonymizing categories) of entries that took an action."""
    blocked: list[str] = []
    masked: list[str] = []
    for assessment in assessments:
        for category, action in _entries(assessment):
            if action == "BLOCKED":
                blocked.append(category)
            elif action == "ANONYMIZED":
                masked.append(category)
    return blocked, masked


def _entries(a: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    def items(policy: str, key: str) -> list[Mapping[str, Any]]:
        # FULL scope lists non-detected entries too; `detected` is absent on older responses.
        return [e for e in (a.get(policy) or {}).get(key) or [] if e.get("detected", True) is not False]

    for f in items("contentPolicy", "filters"):
        kind = str(f.get("type", "UNKNOWN"))
        yield ("PROMPT_ATTACK" if kind == "PROMPT_ATTACK" else f"CONTENT:{kind}"), str(f.get("action"))
    for t in items("topicPolicy", "topics"):
        yield f"TOPIC:{t.get('name', 'UNKNOWN')}", str(t.get("action"))
    for w in items("wordPolicy", "customWords"):
        yield "DENIED_WORD", str(w.get("action"))
    for w in items("wordPolicy", "managedWordLists"):
        yield f"WORD:{w.get('type', 'UNKNOWN')}", str(w.get("action"))
    for p in items("sensitiveInformationPolicy", "piiEntities"):
        kind = str(p.get("type", "UNKNOWN"))
        yield f"PII:{GUARDRAILS_TO_COMPREHEND.get(kind, kind)}", str(p.get("action"))
    for r in items("sensitiveInformationPolicy", "regexes"):
        yield f"REGEX:{r.get('name', 'UNKNOWN')}", str(r.get("action"))
    for g in items("contextualGroundingPolicy", "filters"):
        yield f"GROUNDING:{g.get('type', 'UNKNOWN')}", str(g.get("action"))


def _output_texts(response: Mapping[str, Any]) -> list[str]:
    return [str(o.get("text", "")) for o in response.get("outputs") or []]


def _unique(categories: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(categories))
