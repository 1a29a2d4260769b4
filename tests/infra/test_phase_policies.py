"""Phases 2 and 3 in the IAM policies: each statement exists only where its phase is configured.

The API function's policy (infra/policy-prod.json, infra/render_policy.py) reads the LiteLLM tier's
key from SSM only when API_KEY_PARAMETERS is set, on exactly those parameters and their key; a
deployment without the tier renders no statement for it (no wildcard, no empty ARN). The daily
lifecycle check has a policy of its own (tests/infra/test_prod_stage.py). SageMaker
endpoints are invoked with the operations role's per-app session, as Bedrock is
(chalicelib/aws/runtime_clients.py), so their permission lives in operations-bedrock-role.yaml,
again only when endpoints are listed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from cfn_yaml import INFRA, load_template, resolve

sys.path.insert(0, str(INFRA))

from render_policy import RenderError, read_env_file, render  # noqa: E402

EXAMPLE = read_env_file(INFRA / "examples" / "prod-example.env")
PHASE_2 = ("LITELLM_URL", "API_KEY_PARAMETERS", "API_KEY_KMS_KEY_ARN")
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/33333333-3333-3333-3333-333333333333"
PARAMETER_ARN = "arn:aws:ssm:eu-west-1:111122223333:parameter/garden/litellm/gateway-key"


def _policy(**changes: str | None) -> dict[str, Any]:
    values = {k: v for k, v in {**EXAMPLE, **changes}.items() if v is not None}
    return json.loads(render(values))


def _by_sid(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def _resources(statement: dict[str, Any]) -> list[str]:
    r = statement["Resource"]
    return [r] if isinstance(r, str) else r


def test_the_example_reads_exactly_the_litellm_key_and_decrypts_it_through_ssm_only() -> None:
    statements = _by_sid(_policy())
    assert statements["ApiKeyParametersOnly"]["Action"] == "ssm:GetParameter"
    assert _resources(statements["ApiKeyParametersOnly"]) == [PARAMETER_ARN]
    decrypt = statements["ApiKeyParametersDecryptThroughSsmOnly"]
    assert decrypt["Action"] == "kms:Decrypt" and _resources(decrypt) == [KEY_ARN]
    assert decrypt["Condition"] == {"StringEquals": {
        "kms:ViaService": "ssm.eu-west-1.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": [PARAMETER_ARN]}}


def test_without_the_litellm_tier_the_policy_has_no_statement_for_it() -> None:
    without = _policy(**dict.fromkeys(PHASE_2))
    text = json.dumps(without)
    assert "ssm:" not in text and "parameter/" not in text and "${" not in text
    assert set(_by_sid(_policy())) - set(_by_sid(without)) == \
        {"ApiKeyParametersOnly", "ApiKeyParametersDecryptThroughSsmOnly"}
    assert set(_by_sid(without)) == {  # phase 1 (and the on-demand chargeback the admin API runs)
        "OwnLogGroupOnly", "XRayHasNoResourceLevelPermissions", "VpcLambdaNetworkInterfacesHaveNoResourceLevelPermissions",
        "LedgerTableOnly", "PlatformKeyThroughDynamoDbOnly", "AuditObjectsUnderAuditPrefixOnly",
        "ChargebackObjectsOnDemandOnly",
        "BusinessUnitKeysThroughS3Only", "ComprehendPiiHasNoResourceLevelPermissions", "ConfiguredGuardrailsOnly",
        "OperationsBedrockRoleOnly"}


def test_several_parameters_each_get_their_arn_with_or_without_a_leading_slash() -> None:
    statements = _by_sid(_policy(API_KEY_PARAMETERS="/garden/litellm/gateway-key, vllm-key"))
    expected = [PARAMETER_ARN, "arn:aws:ssm:eu-west-1:111122223333:parameter/vllm-key"]
    assert _resources(statements["ApiKeyParametersOnly"]) == expected
    condition = statements["ApiKeyParametersDecryptThroughSsmOnly"]["Condition"]["StringEquals"]
    assert condition["kms:EncryptionContext:PARAMETER_ARN"] == expected


@pytest.mark.parametrize(("changes", "names"), [
    ({"API_KEY_KMS_KEY_ARN": None}, "API_KEY_KMS_KEY_ARN"),  # a parameter whose key is not named
    ({"API_KEY_PARAMETERS": None}, "API_KEY_KMS_KEY_ARN"),  # a key for no parameter
    ({"API_KEY_PARAMETERS": "/garden/litellm/*"}, "API_KEY_PARAMETERS"),  # never a wildcard
    ({"API_KEY_KMS_KEY_ARN": "arn:aws:kms:eu-west-1:111122223333:key/*"}, "API_KEY_KMS_KEY_ARN"),
    ({"GUARDRAIL_ID": None}, "GUARDRAIL_ID"),  # phase 1 stays required, as before
])
def test_a_half_configured_or_wildcard_value_is_refused(changes: dict[str, str | None], names: str) -> None:
    with pytest.raises(RenderError, match=names):
        _policy(**changes)


def test_the_cli_refuses_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import render_policy

    env = tmp_path / "half.env"
    env.write_text("\n".join(f"{k}={v}" for k, v in EXAMPLE.items() if k != "API_KEY_KMS_KEY_ARN"))
    monkeypatch.setattr(render_policy, "CHALICE", tmp_path)
    for name in list(EXAMPLE):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit, match="API_KEY_KMS_KEY_ARN"):
        render_policy.main(["--write", str(env)])
    assert not list(tmp_path.glob("policy-*.json"))


# -- phase 3: the operations role --------------------------------------------------------------

def _operations_permissions(**overrides: Any) -> list[dict[str, Any]]:
    template = load_template(INFRA / "operations-bedrock-role.yaml")
    params: dict[str, Any] = {name: spec.get("Default", "") for name, spec in template["Parameters"].items()}
    params.update({"GatewayAccountId": "111122223333", "AWS::Partition": "aws",
                   "ModelArns": "arn:aws:bedrock:eu-west-1::foundation-model/m"}, **overrides)
    for name, spec in template["Parameters"].items():
        if spec["Type"] == "CommaDelimitedList" and isinstance(params[name], str):
            params[name] = params[name].split(",") if params[name] else [""]
    conditions = {name: "".join(params[ref]) != "" for name, ref in [
        ("HasLiteLLMTaskRole", "LiteLLMTaskRoleArn"), ("HasGuardrails", "GuardrailArns"),
        ("HasRevokedApps", "RevokedApps"), ("HasSageMakerEndpoints", "SageMakerEndpointArns")]}
    assert set(conditions) == set(template["Conditions"])
    role = template["Resources"]["OperationsBedrockRole"]["Properties"]
    return resolve(role["Policies"][0]["PolicyDocument"], params, conditions)["Statement"]


def test_without_endpoints_the_operations_role_may_not_touch_sagemaker() -> None:
    statements = _operations_permissions()
    assert not [s for s in statements if "sagemaker" in json.dumps(s)]


def test_listed_endpoints_and_components_are_all_the_role_may_invoke() -> None:
    arns = ["arn:aws:sagemaker:eu-west-1:444455556666:endpoint/garden-fin-llm-v1",
            "arn:aws:sagemaker:eu-west-1:444455556666:inference-component/fin-llm-ic"]
    statements = _operations_permissions(SageMakerEndpointArns=",".join(arns))
    (sagemaker,) = [s for s in statements if "sagemaker" in json.dumps(s)]
    assert sagemaker["Action"] == ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointWithResponseStream"]
    assert sagemaker["Resource"] == arns
    # embeddings need nothing new: InvokeModel on the listed model ARNs covers Titan and Cohere Embed
    bedrock = [s for s in statements if s.get("Sid") == "ConverseAndInvokeOnConfiguredModelsOnly"]
    assert "bedrock:InvokeModel" in bedrock[0]["Action"]


def test_endpoints_never_keep_requests_or_responses() -> None:
    resources = load_template(INFRA / "sagemaker-endpoint.yaml")["Resources"]
    config = resources["EndpointConfig"]["Properties"]
    assert "DataCaptureConfig" not in config  # data capture would store every payload in S3
    assert "AsyncInferenceConfig" not in config  # async inference writes outputs to S3
    assert resources["Model"]["Properties"]["EnableNetworkIsolation"] is True
