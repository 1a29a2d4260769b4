"""The operations role's trust policy, rendered from operations-bedrock-role.yaml as CloudFormation
would, then judged by a small evaluator of the IAM rules it relies on (string and ARN equality with
policy variables, ForAllValues, Null, explicit Deny) against the AssumeRole requests the gateway
sends (chalicelib.aws.sts_credentials.assume_role_params) and forged ones.

The point: one statement serves every app, yet no session can name one app in one place (tag,
source identity, session name, ExternalId) and another app elsewhere, and only the API function's
role, named exactly, may ask. Sizes are measured as IAM counts them (no whitespace) against the
trust policy quota (2,048 characters by default, 8,192 at most).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from cfn_yaml import INFRA, load_template, resolve
from fakes.provider_calls import make_app

from chalicelib.aws.sts_credentials import assume_role_params

GATEWAY = "111122223333"
API_ROLE = f"arn:aws:iam::{GATEWAY}:role/execution-garden-prod-api_handler"
SWEEP_ROLE = f"arn:aws:iam::{GATEWAY}:role/execution-garden-prod-sweep_reservations"
LITELLM_ROLE = f"arn:aws:iam::{GATEWAY}:role/garden-litellm-TaskRole-ABC123"
OPS_ROLE = "arn:aws:iam::444455556666:role/garden-operations-bedrock"
LITELLM_EXTERNAL_ID = "9f2c" * 12
DEFAULT_TRUST_QUOTA = 2048


def trust_policy(**overrides: Any) -> dict[str, Any]:
    template = load_template(INFRA / "operations-bedrock-role.yaml")
    params: dict[str, Any] = {name: spec.get("Default", "") for name, spec in template["Parameters"].items()}
    params.update({"GatewayAccountId": GATEWAY, "AWS::Partition": "aws",
                   "ModelArns": ["arn:aws:bedrock:eu-west-1::foundation-model/m"]}, **overrides)
    for name, spec in template["Parameters"].items():
        if spec["Type"] == "CommaDelimitedList" and isinstance(params[name], str):
            params[name] = params[name].split(",") if params[name] else [""]
    conditions = {
        "HasLiteLLMTaskRole": params["LiteLLMTaskRoleArn"] != "",
        "HasGuardrails": "".join(params["GuardrailArns"]) != "",
        "HasRevokedApps": "".join(params["RevokedApps"]) != "",
    }
    role = template["Resources"]["OperationsBedrockRole"]["Properties"]
    return resolve(role["AssumeRolePolicyDocument"], params, conditions)


# -- a small evaluator of the IAM rules the policy uses ------------------------------------------

@dataclass
class AssumeRole:
    """One sts:AssumeRole call as IAM sees it: its caller and its request context."""
    principal_arn: str
    external_id: str | None = None
    session_name: str = "s"
    source_identity: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, principal_arn: str, params: dict[str, Any]) -> AssumeRole:
        return cls(principal_arn, params.get("ExternalId"), params["RoleSessionName"],
                   params.get("SourceIdentity"), {t["Key"]: t["Value"] for t in params.get("Tags", [])})

    def context(self) -> dict[str, Any]:
        ctx: dict[str, Any] = {"aws:PrincipalArn": self.principal_arn,
                               "aws:PrincipalAccount": self.principal_arn.split(":")[4],
                               "sts:RoleSessionName": self.session_name}
        if self.external_id is not None:
            ctx["sts:ExternalId"] = self.external_id
        if self.source_identity is not None:
            ctx["sts:SourceIdentity"] = self.source_identity
        if self.tags:
            ctx["aws:TagKeys"] = list(self.tags)
            ctx.update({f"aws:RequestTag/{k}": v for k, v in self.tags.items()})
        return ctx

    def actions(self) -> list[str]:
        """What STS authorises for this call: tagging and source identity are actions of their own."""
        return ["sts:AssumeRole"] + ["sts:TagSession"] * bool(self.tags) + \
            ["sts:SetSourceIdentity"] * (self.source_identity is not None)


def _values(policy_value: Any, ctx: dict[str, Any]) -> list[str | None]:
    """Policy values with ${variables} replaced; None where a variable has no value (never matches)."""
    out: list[str | None] = []
    for value in policy_value if isinstance(policy_value, list) else [policy_value]:
        names = re.findall(r"\$\{([^}]+)\}", value)
        out.append(None if any(not isinstance(ctx.get(n), str) for n in names)
                   else re.sub(r"\$\{([^}]+)\}", lambda m: ctx[m.group(1)], value))
    return out


def _holds(operator: str, key: str, policy_value: Any, ctx: dict[str, Any]) -> bool:
    if operator == "Null":
        return (key not in ctx) == (policy_value == "true")
    if operator == "ForAllValues:StringEquals":
        return all(v in _values(policy_value, ctx) for v in ctx.get(key, []))
    if operator in ("StringEquals", "ArnEquals"):  # exact values only: the template uses no wildcard
        return isinstance(ctx.get(key), str) and ctx[key] in _values(policy_value, ctx)
    raise AssertionError(f"the evaluator does not know {operator}: extend it before using it")


def _applies(statement: dict[str, Any], action: str, ctx: dict[str, Any]) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    account = statement["Principal"]["AWS"].split(":")[4]
    return action in actions and ctx["aws:PrincipalAccount"] == account and all(
        _holds(op, key, value, ctx)
        for op, block in statement.get("Condition", {}).items() for key, value in block.items())


def allowed(policy: dict[str, Any], call: AssumeRole) -> bool:
    ctx = call.context()
    for action in call.actions():
        applying = [s for s in policy["Statement"] if _applies(s, action, ctx)]
        if not any(s["Effect"] == "Allow" for s in applying) or any(s["Effect"] == "Deny" for s in applying):
            return False
    return True


# -- the gateway's own requests -----------------------------------------------------------------

def gateway_call(app_id: str, bu: str = "retail-banking", external_id: str | None = None) -> AssumeRole:
    app = make_app(app_id, bu, external_id=f"execution-garden:{app_id}" if external_id is None else external_id)
    return AssumeRole.from_params(API_ROLE, assume_role_params(OPS_ROLE, app))


def test_one_statement_serves_every_app() -> None:
    policy = trust_policy()
    for app_id in ("retail-chat", "cards-bot", "x" * 57, "a.b_c-9"):
        assert allowed(policy, gateway_call(app_id)), app_id
    assert len([s for s in policy["Statement"] if s["Effect"] == "Allow"]) == 1


@pytest.mark.parametrize("forgery", [
    "source identity of another app", "session name of another app", "external id of another app",
    "app tag of another app", "no external id", "external id with another prefix",
    "an extra tag", "no business unit tag", "no app tag", "no source identity",
])
def test_a_session_cannot_name_two_apps(forgery: str) -> None:
    call = gateway_call("retail-chat")
    if forgery == "source identity of another app":
        call.source_identity = "cards-bot"
    elif forgery == "session name of another app":
        call.session_name = "garden-cards-bot"
    elif forgery == "external id of another app":
        call.external_id = "execution-garden:cards-bot"
    elif forgery == "app tag of another app":
        call.tags["app"] = "cards-bot"
    elif forgery == "no external id":
        call.external_id = None
    elif forgery == "external id with another prefix":
        call.external_id = "other-gateway:retail-chat"
    elif forgery == "an extra tag":
        call.tags["cost-centre"] = "cards"  # tags beyond the gateway's could pose as attribution
    elif forgery == "no business unit tag":
        del call.tags["business_unit"]
    elif forgery == "no app tag":
        del call.tags["app"]
    elif forgery == "no source identity":
        call.source_identity = None
    assert not allowed(trust_policy(), call)


def test_an_app_id_sts_cannot_carry_verbatim_fails_closed() -> None:
    # STS's charset has no ':' and wants 2+ characters; the gateway's sanitised source identity then
    # differs from the `app` tag, so "a:b" can never pass for "a-b" (and "a" never for "a-").
    policy = trust_policy()
    assert not allowed(policy, gateway_call("a:b"))
    assert not allowed(policy, gateway_call("a"))
    assert not allowed(policy, gateway_call("y" * 58))  # "garden-" + 58 > 64: the session name is cut


def test_a_catalog_external_id_off_the_convention_is_refused() -> None:
    assert not allowed(trust_policy(), gateway_call("retail-chat", external_id="ext-0123456789"))


@pytest.mark.parametrize("principal", [
    SWEEP_ROLE, API_ROLE + "2", f"arn:aws:iam::{GATEWAY}:role/execution-garden-prod",
    "arn:aws:iam::999988887777:role/execution-garden-prod-api_handler",
])
def test_only_the_api_function_role_by_its_exact_arn(principal: str) -> None:
    call = gateway_call("retail-chat")
    call.principal_arn = principal
    assert not allowed(trust_policy(), call)


def test_role_name_parameter_admits_no_wildcard() -> None:
    spec = load_template(INFRA / "operations-bedrock-role.yaml")["Parameters"]["GatewayFunctionRoleName"]
    assert re.fullmatch(spec["AllowedPattern"], "execution-garden-prod-api_handler")
    assert not re.fullmatch(spec["AllowedPattern"], "execution-garden-prod*")


def test_revoked_apps_are_cut_off_in_the_operations_account() -> None:
    policy = trust_policy(RevokedApps="cards-bot,old-app")
    assert not allowed(policy, gateway_call("cards-bot"))
    assert allowed(policy, gateway_call("retail-chat"))


def test_litellm_sessions_can_never_be_taken_for_an_app() -> None:
    policy = trust_policy(LiteLLMTaskRoleArn=LITELLM_ROLE, LiteLLMExternalId=LITELLM_EXTERNAL_ID)
    assert allowed(policy, AssumeRole(LITELLM_ROLE, LITELLM_EXTERNAL_ID, "litellm"))
    assert not allowed(policy, AssumeRole(LITELLM_ROLE, LITELLM_EXTERNAL_ID, "garden-retail-chat",
                                          source_identity="retail-chat"))
    assert not allowed(policy, AssumeRole(LITELLM_ROLE, LITELLM_EXTERNAL_ID, "garden-retail-chat",
                                          tags={"app": "retail-chat", "business_unit": "retail-banking"}))
    assert not allowed(policy, AssumeRole(LITELLM_ROLE, "execution-garden:retail-chat", "x"))
    assert not allowed(policy, AssumeRole(API_ROLE, LITELLM_EXTERNAL_ID, "x"))  # its id is its own


def test_the_policy_fits_the_default_trust_policy_quota() -> None:
    """IAM counts a policy's characters without white space; the default quota is 2,048."""
    sizes = {
        "as shipped": trust_policy(),
        "phase 2 + 10 revoked apps": trust_policy(
            LiteLLMTaskRoleArn=LITELLM_ROLE, LiteLLMExternalId="x" * 48,
            RevokedApps=",".join(f"revoked-app-{i:02d}-{'z' * 40}" for i in range(10))),
    }
    lengths = {name: len(json.dumps(p, separators=(",", ":"))) for name, p in sizes.items()}
    print(f"trust policy characters: {lengths}")  # the figures infra/README.md quotes
    assert lengths["as shipped"] < 1000
    assert max(lengths.values()) < DEFAULT_TRUST_QUOTA
