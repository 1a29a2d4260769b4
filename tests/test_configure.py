"""`make configure ENV=...` fills the prod stage from the data-plane stacks' outputs (moto's
CloudFormation, the repo's own templates) or from an env file, and `make package`'s check refuses a
prod stage that still holds a placeholder, the demo account or the example's fictitious values."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.settings import DEFAULT_CATALOG, Settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGURE, CHECK = ROOT / "scripts" / "configure.py", ROOT / "scripts" / "check_deploy.py"
EXAMPLE = ROOT / "infra" / "examples" / "prod-example.env"
REGION = "eu-west-1"
OPS_ROLE = "arn:aws:iam::210987654321:role/garden-operations-bedrock"
NETWORK = {"OPS_ROLE_ARN": OPS_ROLE, "VPC_ENDPOINT_ID": "vpce-0fedcba9876543210",
           "SUBNET_IDS": "subnet-0c0c0c0c0c0c0c0c1,subnet-0c0c0c0c0c0c0c0c2"}
# What moto cannot create (no AWS::Bedrock::Guardrail): a stack with infra/bedrock-guardrail.yaml's outputs.
GUARDRAIL_OUTPUTS = """
Resources:
  Handle: {Type: AWS::CloudFormation::WaitConditionHandle}
Outputs:
  GuardrailId: {Value: gr0moto0001}
  GuardrailArn: {Value: !Sub "arn:aws:bedrock:${AWS::Region}:${AWS::AccountId}:guardrail/gr0moto0001"}
  GuardrailVersion: {Value: "3"}
"""


def _project(tmp_path: Path) -> Path:
    """A copy of what configure writes and check_deploy reads, so the checkout is never touched."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / ".chalice", project / ".chalice", ignore=shutil.ignore_patterns("deployments", "venv"))
    return project


def _run(script: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GARDEN_"))}
    base.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                 "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                 "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    base.update(env or {})
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=120,
                          env=base, cwd=ROOT)


def _outputs(cfn: Any, name: str) -> dict[str, str]:
    (stack,) = cfn.describe_stacks(StackName=name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.fixture(scope="module")
def stacks(moto_url: str) -> dict[str, Any]:
    """A data plane (with the gateway's security group), two BU keys and a guardrail, in moto."""
    prefix = f"cfg{uuid.uuid4().hex[:8]}"

    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=moto_url, aws_access_key_id="testing",
                            aws_secret_access_key="testing", aws_session_token="testing")

    cfn = client("cloudformation")
    vpc = client("ec2").create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    data = f"{prefix}-data-plane"
    cfn.create_stack(StackName=data, TemplateBody=(ROOT / "infra" / "data-plane.yaml").read_text(), Parameters=[
        {"ParameterKey": "AuditRetentionDays", "ParameterValue": "1"},
        {"ParameterKey": "LedgerTableName", "ParameterValue": f"{prefix}-ledger"},
        {"ParameterKey": "AuditBucketPrefix", "ParameterValue": f"{prefix}-audit"},
        {"ParameterKey": "VpcId", "ParameterValue": vpc}])
    for bu in ("retail", "_unidentified"):
        cfn.create_stack(StackName=f"{prefix}-bu-key-{bu.replace('_', '-')}",
                         TemplateBody=(ROOT / "infra" / "bu-key.yaml").read_text(),
                         Parameters=[{"ParameterKey": "BusinessUnit", "ParameterValue": bu},
                                     {"ParameterKey": "DataPlaneStackName", "ParameterValue": data}])
    cfn.create_stack(StackName=f"{prefix}-guardrail", TemplateBody=GUARDRAIL_OUTPUTS)
    return {"prefix": prefix, "url": moto_url, "data": _outputs(cfn, data),
            "bu": {bu: _outputs(cfn, f"{prefix}-bu-key-{bu.replace('_', '-')}") for bu in ("retail", "_unidentified")},
            "guardrail": _outputs(cfn, f"{prefix}-guardrail")}


def _configure_from_stacks(stacks: dict[str, Any], project: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return _run(CONFIGURE, stacks["prefix"], "--chalice-dir", str(project / ".chalice"),
                env={"AWS_ENDPOINT_URL": stacks["url"], **NETWORK, **extra})


def test_configure_from_stack_outputs_writes_the_prod_stage(tmp_path: Path, stacks: dict[str, Any]) -> None:
    project = _project(tmp_path)
    done = _configure_from_stacks(stacks, project)
    assert done.returncode == 0, done.stderr
    config = json.loads((project / ".chalice" / "config.json").read_text())
    prod, data = config["stages"]["prod"], stacks["data"]
    env = prod["environment_variables"]
    assert env["GARDEN_LEDGER_TABLE"] == data["LedgerTableName"] == f"{stacks['prefix']}-ledger"
    assert env["GARDEN_AUDIT_BUCKET"] == data["AuditBucketName"]
    assert env["GARDEN_CHARGEBACK_BUCKET"] == data["ChargebackBucketName"]
    assert json.loads(env["GARDEN_BU_KEYS"]) == {bu: out["BusinessUnitKeyArn"] for bu, out in stacks["bu"].items()}
    assert (env["GARDEN_BEDROCK_GUARDRAIL_ID"], env["GARDEN_BEDROCK_GUARDRAIL_VERSION"]) == ("gr0moto0001", "3")
    assert env["GARDEN_OPS_ROLE_ARN"] == OPS_ROLE and env["GARDEN_BEDROCK_REGION"] == REGION
    assert prod["security_group_ids"] == [data["GatewayLambdaSecurityGroupId"]]
    assert prod["subnet_ids"] == NETWORK["SUBNET_IDS"].split(",")
    assert prod["api_gateway_endpoint_vpce"] == NETWORK["VPC_ENDPOINT_ID"]
    assert prod["reserved_concurrency"] == 600  # the API function's default
    assert config["stages"]["dev"] == json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
    settings = Settings.from_env(env)  # the gateway accepts what was written
    assert settings.bedrock_guardrail_id == "gr0moto0001" and settings.audit_bucket == data["AuditBucketName"]

    policy = (project / ".chalice" / "policy-prod.json").read_text()
    account = data["LedgerTableArn"].split(":")[4]
    for value in (data["LedgerTableArn"], data["AuditBucketArn"], data["PlatformKeyArn"], OPS_ROLE,
                  f"arn:aws:bedrock:{REGION}:{account}:guardrail/gr0moto0001"):
        assert value in policy
    assert "${" not in policy and "SsmOnly" not in policy  # no phase 2 values: no phase 2 statement
    for output, variable in (("AuditSigningKeyArn", "GARDEN_AUDIT_SIGNING_KEY"),
                             ("AuditBodySecretArn", "GARDEN_AUDIT_BODY_SECRET")):
        if output in data:  # the audit trail's anchors, where the data plane makes them
            assert env[variable] == data[output] and data[output] in policy
    throttle = json.loads((project / ".chalice" / "merge-prod.json").read_text())["Resources"]["RestAPI"]
    assert throttle["Properties"]["MethodSettings"] == [{"ResourcePath": "/*", "HttpMethod": "*",
                                                         "ThrottlingRateLimit": 500, "ThrottlingBurstLimit": 1000}]


def test_a_stage_configured_from_real_outputs_passes_the_package_check_once_its_catalog_is_shipped(
        tmp_path: Path, stacks: dict[str, Any]) -> None:
    project = _project(tmp_path)
    assert _configure_from_stacks(stacks, project).returncode == 0
    refused = _run(CHECK, "--project-dir", str(project))
    assert refused.returncode == 1 and "GARDEN_CATALOG" in refused.stderr  # no catalog: every /v1 would 503
    assert "fictitious" not in refused.stderr and "placeholder" not in refused.stderr.split("problem")[0]

    (project / "vendor").mkdir()
    platform = json.loads(DEFAULT_CATALOG.read_text())
    platform["apps"][0]["id"] = "platform-app"  # any catalog but the demo one
    (project / "vendor" / "catalog.json").write_text(json.dumps(platform))
    # CATALOG_FILE is resolved against the project that holds .chalice/ (vendor/ beside it).
    done = _configure_from_stacks(stacks, project, CATALOG_FILE="vendor/catalog.json", RESERVED_CONCURRENCY="250",
                                  THROTTLE_RATE_LIMIT="120", THROTTLE_BURST_LIMIT="240")
    assert done.returncode == 0, done.stderr
    prod = json.loads((project / ".chalice" / "config.json").read_text())["stages"]["prod"]
    assert prod["environment_variables"]["GARDEN_CATALOG"] == "/var/task/catalog.json"
    assert prod["reserved_concurrency"] == 250
    passed = _run(CHECK, "--project-dir", str(project))
    assert passed.returncode == 0, passed.stderr

    shutil.copy(DEFAULT_CATALOG, project / "vendor" / "catalog.json")  # the demo catalog, shipped by mistake
    demo = _run(CHECK, "--project-dir", str(project))
    assert demo.returncode == 1 and "demo catalog" in demo.stderr


@pytest.mark.parametrize("leftover", ["${GUARDRAIL_ID}", "000000000000", "111122223333", "subnet-0aaaaaaaaaaaaaaa1"])
def test_the_package_check_refuses_any_placeholder_left(tmp_path: Path, stacks: dict[str, Any], leftover: str) -> None:
    project = _project(tmp_path)
    (project / "vendor").mkdir()
    platform = json.loads(DEFAULT_CATALOG.read_text())
    platform["apps"][0]["id"] = "platform-app"
    (project / "vendor" / "catalog.json").write_text(json.dumps(platform))
    assert _configure_from_stacks(stacks, project, CATALOG_FILE="vendor/catalog.json").returncode == 0
    config_path = project / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    if leftover.startswith("subnet-"):
        config["stages"]["prod"]["subnet_ids"].append(leftover)
    else:
        config["stages"]["prod"]["environment_variables"]["GARDEN_OPS_ROLE_ARN"] = \
            f"arn:aws:iam::{leftover}:role/garden-operations-bedrock"
    config_path.write_text(json.dumps(config))
    refused = _run(CHECK, "--project-dir", str(project))
    assert refused.returncode == 1 and leftover in refused.stderr
    # CI's flag does not let it through either: the example mode admits the example, exactly.
    example = _run(CHECK, "--project-dir", str(project), "--example", str(EXAMPLE))
    assert example.returncode == 1 and "differs" in example.stderr


def test_the_shipped_prod_stage_is_the_example_and_only_ci_packages_it(tmp_path: Path) -> None:
    project = _project(tmp_path)
    done = _run(CONFIGURE, str(EXAMPLE), "--chalice-dir", str(project / ".chalice"))
    assert done.returncode == 0, done.stderr
    for name in ("config.json", "merge-prod.json", "policy-prod.json", "policy-sweep-prod.json",
                 "policy-lifecycle-prod.json", "policy-chargeback-prod.json"):
        assert (project / ".chalice" / name).read_text() == (ROOT / ".chalice" / name).read_text(), name
    real = _run(CHECK)  # what `make package` runs for a real deployment, on the checkout
    assert real.returncode == 1
    for fictitious in ("111122223333", "444455556666", "vpce-0123456789abcdef0", "abcd1234efgh", "GARDEN_CATALOG"):
        assert fictitious in real.stderr
    ci = _run(CHECK, "--example", str(EXAMPLE))  # `make package EXAMPLE=1`
    assert ci.returncode == 0, ci.stderr


def test_configure_names_what_is_missing_and_writes_nothing(tmp_path: Path, stacks: dict[str, Any]) -> None:
    project = _project(tmp_path)
    before = {p.name: p.read_text() for p in (project / ".chalice").glob("*.json")}
    missing = _run(CONFIGURE, stacks["prefix"], "--chalice-dir", str(project / ".chalice"),
                   env={"AWS_ENDPOINT_URL": stacks["url"], "SUBNET_IDS": NETWORK["SUBNET_IDS"]})
    assert missing.returncode == 1 and "OPS_ROLE_ARN" in missing.stderr and "VPC_ENDPOINT_ID" in missing.stderr
    absent = _run(CONFIGURE, "nosuchprefix", "--chalice-dir", str(project / ".chalice"),
                  env={"AWS_ENDPOINT_URL": stacks["url"], **NETWORK})
    assert absent.returncode == 1 and "nosuchprefix-data-plane" in absent.stderr
    demo = _run(CONFIGURE, str(EXAMPLE), "--chalice-dir", str(project / ".chalice"),
                env={"CATALOG_FILE": str(DEFAULT_CATALOG.relative_to(ROOT))})
    assert demo.returncode == 1 and "CATALOG_FILE" in demo.stderr
    assert {p.name: p.read_text() for p in (project / ".chalice").glob("*.json")} == before


def test_make_configure_and_package_wire_the_scripts() -> None:
    dry = subprocess.run(["make", "-n", "configure", "ENV=garden"], capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert "scripts/configure.py garden" in dry.stdout, dry.stdout + dry.stderr
    real = subprocess.run(["make", "-n", "package"], capture_output=True, text=True, cwd=ROOT, timeout=60).stdout
    ci = subprocess.run(["make", "-n", "package", "EXAMPLE=1"], capture_output=True, text=True, cwd=ROOT,
                        timeout=60).stdout
    assert "scripts/check_deploy.py" in real and "--example" not in real
    assert f"scripts/check_deploy.py --example {EXAMPLE.relative_to(ROOT)}" in ci
    for commands in (real, ci):  # the check runs before chalice packages anything
        assert commands.index("check_deploy.py") < commands.index("chalice package")


def test_a_hand_edit_that_leaves_the_policy_behind_is_refused(tmp_path: Path, stacks: dict[str, Any]) -> None:
    project = _project(tmp_path)
    (project / "vendor").mkdir()
    platform = json.loads(DEFAULT_CATALOG.read_text())
    platform["apps"][0]["id"] = "platform-app"
    (project / "vendor" / "catalog.json").write_text(json.dumps(platform))
    assert _configure_from_stacks(stacks, project, CATALOG_FILE="vendor/catalog.json").returncode == 0
    assert _run(CHECK, "--project-dir", str(project)).returncode == 0
    config_path = project / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    config["stages"]["prod"]["environment_variables"]["GARDEN_LEDGER_TABLE"] = "garden-ledger-edited"
    config_path.write_text(json.dumps(config))
    refused = _run(CHECK, "--project-dir", str(project))
    assert refused.returncode == 1
    assert "GARDEN_LEDGER_TABLE='garden-ledger-edited' is not the resource policy-prod.json grants" in refused.stderr
