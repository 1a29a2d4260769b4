"""AWS Organizations policies that keep the AWS side memoryless (infra/organizations/): an AI services
opt-out policy that no child policy can undo, and an SCP that keeps Bedrock model invocation
logging off. Checked for the shape AWS documents, since no local service evaluates them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cfn_yaml import INFRA

ORGS = INFRA / "organizations"
LOCKED = ["@@none"]
# Documented service name keys of the AI services opt-out policy type ("default" = all, future ones too).
# (A subset of the documented list: the names this file may use without a fresh look at the docs.)
OPT_OUT_SERVICES = {"default", "aiops", "aidevops", "awssupplychain", "chimesdkvoiceanalytics", "cloudwatch",
                    "codeguruprofiler", "codewhisperer", "comprehend", "connectamd", "connectoptimization",
                    "contactlens", "frauddetector", "guardduty", "lex", "polly", "rekognition", "textract",
                    "transcribe", "translate"}


def load(name: str) -> tuple[str, Any]:
    text = (ORGS / name).read_text()
    return text, json.loads(text)


def test_ai_opt_out_covers_every_ai_service_and_comprehend_for_good() -> None:
    text, policy = load("ai-opt-out-policy.json")
    assert list(policy) == ["services"]
    services = policy["services"]
    assert services["@@operators_allowed_for_child_policies"] == LOCKED  # no child adds an opt-in
    entries = {k: v for k, v in services.items() if not k.startswith("@@")}
    # "default" covers every AI service, present and future; Comprehend, which the gateway calls
    # for PII, is named too, so the intent survives an edit of the default.
    assert {"default", "comprehend"} <= set(entries) <= OPT_OUT_SERVICES
    for name, entry in entries.items():
        assert set(entry) <= {"opt_out_policy", "@@operators_allowed_for_child_policies"}, name
        assert entry["@@operators_allowed_for_child_policies"] == LOCKED, name
        assert entry["opt_out_policy"] == {"@@assign": "optOut", "@@operators_allowed_for_child_policies": LOCKED}, name
    assert len(text) < 2500  # the management policy size quota, white space included


def test_scp_keeps_bedrock_invocation_logging_off_with_no_exemption() -> None:
    text, scp = load("scp-deny-bedrock-invocation-logging.json")
    assert scp["Version"] == "2012-10-17"
    assert all(s["Effect"] == "Deny" for s in scp["Statement"])  # an SCP that only denies grants nothing
    (guard,) = [s for s in scp["Statement"] if "bedrock:PutModelInvocationLoggingConfiguration" in
                ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert guard["Resource"] == "*" and "Condition" not in guard  # no principal may turn it on
    assert len(text.encode()) < 5120  # SCP size quota, white space included


def test_deployment_guide_names_both_files() -> None:
    guide = (INFRA / "README.md").read_text()
    for path in sorted(ORGS.glob("*.json")):
        assert f"infra/organizations/{path.name}" in guide, path.name


def _files() -> list[Path]:
    return sorted(ORGS.glob("*.json"))


def test_there_are_exactly_the_two_policies() -> None:
    assert [p.name for p in _files()] == ["ai-opt-out-policy.json", "scp-deny-bedrock-invocation-logging.json"]
