"""infra/bedrock-guardrail.yaml: the platform's Bedrock guardrail, versioned, with the PII types the
gateway detects and the bank's denied topics, in the shapes Bedrock's API accepts (botocore's own
model), and the outputs `make configure` reads into the prod stage."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from cfn_yaml import INFRA, load_template

sys.path.insert(0, str(INFRA.parent / "scripts"))

from chalicelib.pii.type_names import COMPREHEND_TO_GUARDRAILS  # noqa: E402

botocore_session = pytest.importorskip("botocore.session")
TEMPLATE = load_template(INFRA / "bedrock-guardrail.yaml")
GUARDRAIL = TEMPLATE["Resources"]["Guardrail"]["Properties"]


def _shape(name: str):
    return botocore_session.get_session().get_service_model("bedrock").shape_for(name)


def test_every_pii_type_the_gateway_detects_is_anonymized_by_a_name_bedrock_knows() -> None:
    entities = GUARDRAIL["SensitiveInformationPolicyConfig"]["PiiEntitiesConfig"]
    types = [e["Type"] for e in entities]
    assert len(types) == len(set(types))
    assert set(types) == set(COMPREHEND_TO_GUARDRAILS.values())
    assert set(types) <= set(_shape("GuardrailPiiEntityType").enum)
    assert {e["Action"] for e in entities} == {"ANONYMIZE"}  # masked, as the gateway redacts
    assert {e["Action"] for e in entities} <= set(_shape("GuardrailSensitiveInformationAction").enum)


def test_denied_topics_fit_bedrocks_limits() -> None:
    topics = GUARDRAIL["TopicPolicyConfig"]["TopicsConfig"]
    members = _shape("GuardrailTopicConfig").members
    assert {t["Name"] for t in topics} >= {"investment-advice"}
    for topic in topics:
        assert topic["Type"] == "DENY"
        assert re.fullmatch(members["name"].metadata["pattern"], topic["Name"])
        assert len(topic["Name"]) <= members["name"].metadata["max"]
        assert len(topic["Definition"]) <= members["definition"].metadata["max"], topic["Name"]
        assert len(topic["Examples"]) <= members["examples"].metadata["max"]
        assert all(len(e) <= 100 for e in topic["Examples"])


def test_the_guardrail_is_versioned_encrypted_and_its_outputs_are_what_configure_reads() -> None:
    version = TEMPLATE["Resources"]["GuardrailVersion"]
    assert version["Type"] == "AWS::Bedrock::GuardrailVersion"
    assert version["Properties"]["GuardrailIdentifier"] == {"Fn::GetAtt": ["Guardrail", "GuardrailId"]}
    assert GUARDRAIL["KmsKeyArn"] == {"Fn::ImportValue": {"Fn::Sub": "${DataPlaneStackName}-PlatformKeyArn"}}
    data_plane = load_template(INFRA / "data-plane.yaml")["Outputs"]["PlatformKeyArn"]["Export"]["Name"]
    assert data_plane == {"Fn::Sub": "${AWS::StackName}-PlatformKeyArn"}
    outputs = TEMPLATE["Outputs"]
    assert outputs["GuardrailId"]["Value"] == {"Fn::GetAtt": ["Guardrail", "GuardrailId"]}
    assert outputs["GuardrailVersion"]["Value"] == {"Fn::GetAtt": ["GuardrailVersion", "Version"]}
    configure = (Path(INFRA.parent) / "scripts" / "configure.py").read_text()
    assert 'guard.get("GuardrailId"' in configure and 'guard.get("GuardrailVersion"' in configure
    assert 'f"{prefix}-guardrail"' in configure
