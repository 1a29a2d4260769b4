"""The prod stage ships consistent: each function's policy is its infra template rendered with the
example outputs, its settings build a valid gateway configuration, and `chalice package` (as `make
package` runs it) names the functions and roles exactly as the operations role's trust policy does."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra"))

from cfn_yaml import load_template  # noqa: E402
from render_policy import RENDERED, read_env_file, render  # noqa: E402

from chalicelib.settings import Settings  # noqa: E402

EXAMPLE = read_env_file(ROOT / "infra" / "examples" / "prod-example.env")
API_ROLE, SWEEP_ROLE = "execution-garden-prod-api_handler", "execution-garden-prod-sweep_reservations"
LIFECYCLE_ROLE = "execution-garden-prod-check_model_lifecycle"
CHARGEBACK_ROLE = "execution-garden-prod-monthly_chargeback"


@pytest.mark.parametrize(("template", "rendered"), sorted(RENDERED.items()))
def test_prod_policies_are_the_rendered_templates(template: str, rendered: str) -> None:
    expected = render(EXAMPLE, ROOT / "infra" / template)
    assert (ROOT / ".chalice" / rendered).read_text() == expected
    assert "${" not in expected


def test_prod_stage_settings_are_valid_and_all_aws() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    prod = config["stages"]["prod"]
    settings = Settings.from_env(prod["environment_variables"])
    assert (settings.identity, settings.store, settings.audit, settings.pii, settings.guardrail) == \
        ("iam", "dynamodb", "s3", "comprehend", "bedrock")
    assert prod["autogen_policy"] is False and prod["iam_policy_file"] == "policy-prod.json"
    assert prod["api_gateway_endpoint_type"] == "PRIVATE" and prod["lambda_architecture"] == "arm64"
    assert prod["lambda_timeout"] < 29 and prod["subnet_ids"] and prod["security_group_ids"]
    sweep = prod["lambda_functions"]["sweep_reservations"]
    assert sweep == {"autogen_policy": False, "iam_policy_file": "policy-sweep-prod.json",
                     "reserved_concurrency": 1}
    lifecycle = prod["lambda_functions"]["check_model_lifecycle"]
    assert lifecycle == {"autogen_policy": False, "iam_policy_file": "policy-lifecycle-prod.json",
                         "reserved_concurrency": 1}
    chargeback = prod["lambda_functions"]["monthly_chargeback"]
    assert chargeback == {"autogen_policy": False, "iam_policy_file": "policy-chargeback-prod.json",
                          "reserved_concurrency": 1, "lambda_timeout": 300}
    assert settings.chargeback_bucket and "_unidentified" in settings.bu_keys  # the summary's key


def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def test_sweep_may_touch_the_ledger_table_and_nothing_else() -> None:
    sweep = json.loads((ROOT / ".chalice" / "policy-sweep-prod.json").read_text())
    api = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    data = [s for s in sweep["Statement"] if any(a.startswith("dynamodb:") for a in _actions({"Statement": [s]}))]
    assert [s["Resource"] for s in data] == [EXAMPLE["LEDGER_TABLE_ARN"]]
    assert {a.split(":")[0] for a in _actions(sweep)} == {"logs", "xray", "ec2", "dynamodb", "kms"}
    assert {a for a in _actions(sweep) if a.startswith("dynamodb:")} == \
        {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}  # what sweep() calls
    for statement in sweep["Statement"]:
        if statement["Resource"] != "*":
            assert all("sweep_reservations" in r or r in (EXAMPLE["LEDGER_TABLE_ARN"], EXAMPLE["PLATFORM_KEY_ARN"])
                       for r in ([statement["Resource"]] if isinstance(statement["Resource"], str)
                                 else statement["Resource"]))
    assert {"sts:AssumeRole", "s3:PutObject", "comprehend:DetectPiiEntities"} <= _actions(api)


def test_the_chargeback_may_read_usage_and_budgets_and_write_chargeback_objects_only() -> None:
    policy = json.loads((ROOT / ".chalice" / "policy-chargeback-prod.json").read_text())
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert {a.split(":")[0] for a in _actions(policy)} == {"logs", "xray", "ec2", "dynamodb", "kms", "s3"}
    reads = statements["ReadUsageAggregatesAndRegistryOnly"]
    assert (set(reads["Action"]), reads["Resource"]) == ({"dynamodb:Query", "dynamodb:GetItem"},
                                                         EXAMPLE["LEDGER_TABLE_ARN"])
    assert reads["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["USAGE#*", "REGISTRY"]}}
    assert {a for a in _actions(policy) if a.startswith("s3:")} == {"s3:PutObject"}
    assert statements["WriteChargebackObjectsOnly"]["Resource"] == f"{EXAMPLE['CHARGEBACK_BUCKET_ARN']}/chargeback/*"
    bu_keys = statements["BusinessUnitKeysEncryptThroughS3Only"]["Condition"]
    assert bu_keys["StringEquals"] == {"kms:ViaService": f"s3.{EXAMPLE['REGION']}.amazonaws.com"}
    assert bu_keys["ForAnyValue:StringLike"] == {"kms:ResourceAliases": "alias/garden/bu/*"}
    assert {a for a in _actions(policy) if a.startswith("kms:")} == \
        {"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"}
    assert all(s["Resource"] != "*" for s in policy["Statement"] if s["Sid"] not in (
        "XRayHasNoResourceLevelPermissions", "VpcLambdaNetworkInterfacesHaveNoResourceLevelPermissions"))


def test_the_lifecycle_check_may_list_bedrock_models_and_nothing_else() -> None:
    lifecycle = json.loads((ROOT / ".chalice" / "policy-lifecycle-prod.json").read_text())
    api = json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    assert {a.split(":")[0] for a in _actions(lifecycle)} == {"logs", "xray", "ec2", "bedrock"}
    assert {a for a in _actions(lifecycle) if a.startswith("bedrock:")} == {"bedrock:ListFoundationModels"}
    logs = [s for s in lifecycle["Statement"] if s["Sid"] == "OwnLogGroupOnly"][0]["Resource"]
    assert all(f"/aws/lambda/{LIFECYCLE_ROLE}" in r for r in logs)  # its own group: its findings are logs
    assert "bedrock:ListFoundationModels" not in _actions(api)  # only the scheduled check lists models


def test_the_makefile_packages_with_the_names_the_trust_policy_knows() -> None:
    package = (ROOT / "Makefile").read_text().split("\npackage:", 1)[1].split("\n\n", 1)[0]
    assert "--merge-template .chalice/merge-prod.json" in package
    trust = load_template(ROOT / "infra" / "operations-bedrock-role.yaml")
    assert trust["Parameters"]["GatewayFunctionRoleName"]["Default"] == API_ROLE


def test_chalice_package_names_roles_and_functions_and_attaches_each_policy(tmp_path: Path) -> None:
    out = tmp_path / "package"
    chalice = Path(sys.executable).parent / "chalice"
    subprocess.run([str(chalice), "package", "--stage", "prod", "--merge-template", ".chalice/merge-prod.json",
                    str(out)], cwd=ROOT, check=True, capture_output=True, timeout=240)
    resources = json.loads((out / "sam.json").read_text())["Resources"]
    roles = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    assert {p["RoleName"] for p in roles.values()} == {API_ROLE, SWEEP_ROLE, LIFECYCLE_ROLE, CHARGEBACK_ROLE}
    functions = {r["Properties"]["Handler"]: r["Properties"] for r in resources.values()
                 if r["Type"] == "AWS::Serverless::Function"}
    assert functions["app.app"]["FunctionName"] == "execution-garden-prod"
    # Per stage: the API function's reserved concurrency, the API stage's throttling (merge template).
    prod = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["prod"]
    assert functions["app.app"]["ReservedConcurrentExecutions"] == prod["reserved_concurrency"] == 600
    assert resources["RestAPI"]["Properties"]["MethodSettings"] == [
        {"ResourcePath": "/*", "HttpMethod": "*", "ThrottlingRateLimit": 500, "ThrottlingBurstLimit": 1000}]
    assert functions["app.sweep_reservations"]["FunctionName"] == SWEEP_ROLE
    assert functions["app.sweep_reservations"]["ReservedConcurrentExecutions"] == 1
    assert functions["app.check_model_lifecycle"]["FunctionName"] == LIFECYCLE_ROLE
    assert functions["app.check_model_lifecycle"]["ReservedConcurrentExecutions"] == 1
    assert functions["app.monthly_chargeback"]["FunctionName"] == CHARGEBACK_ROLE
    assert functions["app.monthly_chargeback"]["ReservedConcurrentExecutions"] == 1
    assert functions["app.monthly_chargeback"]["Timeout"] == 300
    policies = {p["RoleName"]: p["Policies"][0]["PolicyDocument"] for p in roles.values()}
    assert policies[API_ROLE] == json.loads((ROOT / ".chalice" / "policy-prod.json").read_text())
    assert policies[SWEEP_ROLE] == json.loads((ROOT / ".chalice" / "policy-sweep-prod.json").read_text())
    assert policies[LIFECYCLE_ROLE] == json.loads((ROOT / ".chalice" / "policy-lifecycle-prod.json").read_text())
    assert policies[CHARGEBACK_ROLE] == json.loads((ROOT / ".chalice" / "policy-chargeback-prod.json").read_text())


def test_the_dev_stage_is_public_throttled_and_capped(tmp_path: Path) -> None:
    """The dev stage's endpoint is EDGE, i.e. reachable from the internet (infra/README.md,
    Deploying, says so): it is throttled and capped lower than prod."""
    out = tmp_path / "dev"
    chalice = Path(sys.executable).parent / "chalice"
    subprocess.run([str(chalice), "package", "--stage", "dev", "--merge-template", ".chalice/merge-dev.json",
                    str(out)], cwd=ROOT, check=True, capture_output=True, timeout=240)
    resources = json.loads((out / "sam.json").read_text())["Resources"]
    api = resources["RestAPI"]["Properties"]
    assert api.get("EndpointConfiguration", "EDGE") == "EDGE"  # public
    assert api["MethodSettings"] == [{"ResourcePath": "/*", "HttpMethod": "*",
                                      "ThrottlingRateLimit": 20, "ThrottlingBurstLimit": 40}]
    assert resources["APIHandler"]["Properties"]["ReservedConcurrentExecutions"] == 20
