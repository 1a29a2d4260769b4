"""A PII detector or guardrail that cannot answer: fail closed (503) by default; fail open only
where the app's config says so, and then it is counted in the request's record."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Sequence

from support import TEST_CATALOG, running_garden

from chalicelib.catalog import GuardrailPolicy, parse_catalog
from chalicelib.errors import ServiceUnavailable
from chalicelib.guardrails import MASKED, GuardrailVerdict

CHAT = {"model": "local-echo", "messages": [{"role": "user", "content": "hello jane@example.com"}]}


class DownDetector:
    def detect(self, text: str, language: str = "en") -> list:
        raise ServiceUnavailable("PII detector unavailable", code="pii_unavailable")


class DownGuardrail:
    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        raise ServiceUnavailable("guardrail unavailable", code="guardrail_unavailable")


class MaskingGuardrail:
    """Rewrites every text it is shown, as Bedrock's ANONYMIZED action does."""

    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        return GuardrailVerdict(MASKED, ("PII:NAME",), tuple(f"<{source} masked>" for _ in texts))


def catalog(fail_open: bool) -> Any:
    raw = copy.deepcopy(TEST_CATALOG)
    if fail_open:
        raw["apps"][0]["pii"]["on_unavailable"] = "fail_open"
        raw["apps"][0]["guardrail"]["on_unavailable"] = "fail_open"
    return parse_catalog(raw)


def audit_lines(home: Path) -> list[dict]:
    return [json.loads(line) for p in (home / "audit").rglob("*.jsonl") for line in p.read_text().splitlines()]


def test_detector_down_fails_closed(tmp_path: Path) -> None:
    with running_garden(tmp_path, pii=DownDetector(), catalog=catalog(False)) as g:
        response = g.chat(CHAT)
        assert response.status_code == 503
        assert json.loads(response.body)["error"]["code"] == "pii_unavailable"
        usage = g.ledger.usage("test-app", audit_lines(g.home)[0]["timestamp"][:10], 0)
        assert usage.reserved == 0 and usage.requests == 0


def test_guardrail_down_fails_closed(tmp_path: Path) -> None:
    with running_garden(tmp_path, guardrail=DownGuardrail(), catalog=catalog(False)) as g:
        response = g.chat(CHAT)
        assert response.status_code == 503
        assert json.loads(response.body)["error"]["code"] == "guardrail_unavailable"


class OutputDownGuardrail:
    """Passes the input, then cannot answer on the output: the model has been called by then."""

    def check(self, texts: Sequence[str], source: str, policy: GuardrailPolicy) -> GuardrailVerdict:
        if source == "OUTPUT":
            raise ServiceUnavailable("guardrail unavailable", code="guardrail_unavailable")
        return GuardrailVerdict("NONE")


def test_a_paid_call_is_settled_even_when_its_answer_then_fails(tmp_path: Path) -> None:
    with running_garden(tmp_path, guardrail=OutputDownGuardrail(), catalog=catalog(False)) as g:
        response = g.chat(CHAT)
        assert response.status_code == 503
        record = audit_lines(g.home)[0]
        usage = g.ledger.usage("test-app", record["timestamp"][:10], 0)
        # The model answered: its tokens are booked, and the record says so, though the caller got 503.
        assert usage.reserved == 0 and usage.requests == 1 and usage.tokens > 0
        assert record["prompt_tokens"] + record["completion_tokens"] == usage.tokens


def test_fail_open_passes_and_is_counted(tmp_path: Path) -> None:
    with running_garden(tmp_path, pii=DownDetector(), guardrail=DownGuardrail(), catalog=catalog(True)) as g:
        response = g.chat(CHAT)
        assert response.status_code == 200
        assert json.loads(response.body)["choices"][0]["message"]["content"] == "hello jane@example.com"
        record = audit_lines(g.home)[0]
        assert record["pii"]["DETECTOR_UNAVAILABLE:FAIL_OPEN"] == 2  # input and output
        assert record["guardrail"] == ["INPUT:UNAVAILABLE:FAIL_OPEN", "OUTPUT:UNAVAILABLE:FAIL_OPEN"]


def test_masking_guardrail_rewrites_input_and_output(tmp_path: Path) -> None:
    with running_garden(tmp_path, guardrail=MaskingGuardrail()) as g:
        response = g.chat({"model": "local-echo", "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]})
        body = json.loads(response.body)
        assert body["choices"][0]["message"]["content"] == "<OUTPUT masked>"
        assert audit_lines(g.home)[0]["guardrail"] == ["INPUT:MASKED:PII:NAME", "OUTPUT:MASKED:PII:NAME"]
