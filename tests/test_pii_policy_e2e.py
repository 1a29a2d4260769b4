"""Each PII action on each entity type, end to end through `local-echo`: the echo model replies
with exactly what it received, so the reply shows what the policy let reach the provider."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from support import TEST_CATALOG, running_garden

from chalicelib.catalog import parse_catalog
from chalicelib.pii.local import EMITTED_TYPES

SAMPLES = {  # type -> (sentence, the entity in it)
    "CREDIT_DEBIT_NUMBER": ("pay with 4111 1111 1111 1111 today", "4111 1111 1111 1111"),
    "CREDIT_DEBIT_CVV": ("the cvv is 737 ok", "737"),
    "CREDIT_DEBIT_EXPIRY": ("card expiry 09/28 ok", "09/28"),
    "INTERNATIONAL_BANK_ACCOUNT_NUMBER": ("iban DE89 3704 0044 0532 0130 00 ok", "DE89 3704 0044 0532 0130 00"),
    "BANK_ROUTING": ("routing number 021000021 ok", "021000021"),
    "BANK_ACCOUNT_NUMBER": ("account number 123456789012 ok", "123456789012"),
    "SWIFT_CODE": ("SWIFT code DEUTDEFF ok", "DEUTDEFF"),
    "SSN": ("ssn 123-45-6789 ok", "123-45-6789"),
    "EMAIL": ("mail jane.doe@example.com ok", "jane.doe@example.com"),
    "PHONE": ("call +44 20 7946 0958 ok", "+44 20 7946 0958"),
    "IP_ADDRESS": ("from 192.168.10.20 ok", "192.168.10.20"),
    "AWS_ACCESS_KEY": ("key AKIAIOSFODNN7EXAMPLE ok", "AKIAIOSFODNN7EXAMPLE"),
    "AWS_SECRET_KEY": ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY ok",
                       "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "PIN": ("my pin: 4821 ok", "4821"),
    "PASSWORD": ("password: Hunter2-Secret! ok", "Hunter2-Secret!"),
}


def test_every_emitted_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(EMITTED_TYPES)


def policy_catalog(input_policy: dict[str, str], output_policy: dict[str, str]):
    raw = copy.deepcopy(TEST_CATALOG)
    raw["apps"][0]["pii"] = {"input": input_policy, "output": output_policy}
    return parse_catalog(raw)


def reply(g, sentence: str):
    return g.chat({"model": "local-echo", "messages": [{"role": "user", "content": sentence}]})


@pytest.mark.parametrize("action", ["ALLOW", "MASK", "REDACT", "BLOCK"])
@pytest.mark.parametrize("entity_type", sorted(SAMPLES))
def test_input_action_per_type(tmp_path: Path, entity_type: str, action: str) -> None:
    sentence, value = SAMPLES[entity_type]
    catalog = policy_catalog({"default": "ALLOW", entity_type: action}, {"default": "ALLOW"})
    with running_garden(tmp_path, catalog=catalog) as g:
        response = reply(g, sentence)
    if action == "BLOCK":
        assert response.status_code == 400
        error = json.loads(response.body)["error"]
        assert error["code"] == "pii_blocked" and entity_type in error["message"]
        assert value not in error["message"]
        return
    received = json.loads(response.body)["choices"][0]["message"]["content"]
    if action == "ALLOW":
        assert received == sentence
    elif action == "REDACT":
        assert received == sentence.replace(value, f"[{entity_type}]")
    else:  # MASK: same shape, at most the last four digits readable (PCI DSS 3.4.1)
        masked = received[sentence.index(value): sentence.index(value) + len(value)]
        assert received == sentence.replace(value, masked) and masked != value
        readable = re.sub(r"[^0-9]", "", masked)
        digits = re.sub(r"[^0-9]", "", value)
        assert len(readable) <= 4 and digits.endswith(readable)


@pytest.mark.parametrize("entity_type", sorted(SAMPLES))
def test_output_policy_applies_to_what_comes_back(tmp_path: Path, entity_type: str) -> None:
    sentence, value = SAMPLES[entity_type]
    catalog = policy_catalog({"default": "ALLOW"}, {"default": "ALLOW", entity_type: "REDACT"})
    with running_garden(tmp_path, catalog=catalog) as g:
        response = reply(g, sentence)
    assert json.loads(response.body)["choices"][0]["message"]["content"] == \
        sentence.replace(value, f"[{entity_type}]")


def test_output_block_withholds_the_reply(tmp_path: Path) -> None:
    catalog = policy_catalog({"default": "ALLOW"}, {"default": "ALLOW", "SSN": "BLOCK"})
    with running_garden(tmp_path, catalog=catalog) as g:
        body = json.loads(reply(g, SAMPLES["SSN"][0]).body)
    assert body["choices"][0]["finish_reason"] == "content_filter"
    assert body["choices"][0]["message"]["content"] == ""


def test_allow_list_terms_are_never_pii(tmp_path: Path) -> None:
    raw = copy.deepcopy(TEST_CATALOG)
    raw["apps"][0]["pii"] = {"input": {"default": "REDACT"}, "allow_terms": ["DEUTDEFF"]}
    with running_garden(tmp_path, catalog=parse_catalog(raw)) as g:
        received = json.loads(reply(g, "SWIFT code DEUTDEFF ok").body)["choices"][0]["message"]["content"]
    assert received == "SWIFT code DEUTDEFF ok"
