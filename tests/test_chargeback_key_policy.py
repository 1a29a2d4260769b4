"""infra/bu-key.yaml admits a business unit's chargeback file, and only that, under its key: the key
policy as CloudFormation (moto) resolves it for a BU and for the platform's `_unidentified` key,
judged by a small evaluator of its Deny statements over the requests S3 makes to KMS for the
gateway (encryption context: the object's ARN, and garden:business_unit for chargeback files)."""
from __future__ import annotations

import fnmatch
import json
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from chalicelib.chargeback import ENCRYPTION_CONTEXT_KEY

INFRA = Path(__file__).resolve().parent.parent / "infra"
sys.path.insert(0, str(Path(__file__).resolve().parent / "infra"))
REGION = "eu-west-1"
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")  # moto: no BucketPolicy in CFN


@pytest.fixture(scope="module")
def policies(moto_url: str) -> Iterator[dict[str, Any]]:
    kw = {"endpoint_url": moto_url, "region_name": REGION, "aws_access_key_id": "testing",
          "aws_secret_access_key": "testing"}
    cfn, kms = boto3.client("cloudformation", **kw), boto3.client("kms", **kw)
    suffix = uuid.uuid4().hex[:8]
    data_plane, bucket = f"garden-data-plane-{suffix}", f"garden-chargeback-{suffix}"
    # A stand-in for data-plane.yaml's one export the key stack imports: the audit bucket's name.
    cfn.create_stack(StackName=data_plane, TemplateBody=json.dumps({
        "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {"AuditBucketName": {"Value": f"garden-audit-{suffix}",
                                        "Export": {"Name": f"{data_plane}-AuditBucketName"}}}}))
    out: dict[str, Any] = {"bucket": bucket, "audit": f"garden-audit-{suffix}"}
    for bu in ("retail", "_unidentified"):
        stack = f"garden-bu-key-{bu.strip('_')}-{suffix}"
        cfn.create_stack(StackName=stack, TemplateBody=(INFRA / "bu-key.yaml").read_text(), Parameters=[
            {"ParameterKey": "BusinessUnit", "ParameterValue": bu},
            {"ParameterKey": "DataPlaneStackName", "ParameterValue": data_plane},
            {"ParameterKey": "ChargebackBucketName", "ParameterValue": bucket}])
        (desc,) = cfn.describe_stacks(StackName=stack)["Stacks"]
        arn = {o["OutputKey"]: o["OutputValue"] for o in desc["Outputs"]}["BusinessUnitKeyArn"]
        policy = kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"]
        policy = json.loads(policy) if isinstance(policy, str) else policy  # moto 5 hands back a dict
        # moto leaves a null where AWS::NoValue removed a statement (the optional reader roles).
        out[bu] = {**policy, "Statement": [s for s in policy["Statement"] if s]}
    yield out


def _values(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    present = key in context
    if operator == "Null":
        return (not present) == (str(expected).lower() == "true")
    match = {"StringLike": lambda v: any(fnmatch.fnmatchcase(v, p) for p in _values(expected)),
             "StringEquals": lambda v: v in _values(expected)}
    if operator in match:
        return present and match[operator](context[key])
    positive = operator.replace("Not", "")
    return not _holds(positive, key, expected, context)  # StringNotLike / StringNotEquals: absent -> true


def denied(policy: dict[str, Any], action: str, context: dict[str, str]) -> list[str]:
    """Sids of the Deny statements that refuse `action` with this request context."""
    out = []
    for s in policy["Statement"]:
        if s["Effect"] != "Deny" or action not in _values(s["Action"]) and not any(
                fnmatch.fnmatchcase(action, a) for a in _values(s["Action"])):
            continue
        if all(_holds(op, key, value, context) for op, keys in s.get("Condition", {}).items()
               for key, value in keys.items()):
            out.append(s["Sid"])
    return out


def request(arn: str, bu: str | None) -> dict[str, str]:
    context = {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "kms:EncryptionContext:aws:s3:arn": arn}
    if bu is not None:
        context[f"kms:EncryptionContext:{ENCRYPTION_CONTEXT_KEY}"] = bu
    return context


def test_a_business_units_key_admits_its_audit_objects_and_its_chargeback_file_only(policies: dict[str, Any]) -> None:
    retail, cb, audit = policies["retail"], policies["bucket"], policies["audit"]
    allowed = [request(f"arn:aws:s3:::{audit}/audit/retail/2026/10/31/r1.json", None),
               request(f"arn:aws:s3:::{cb}/chargeback/2026-10/retail.csv", "retail")]
    for context in allowed:
        assert denied(retail, "kms:GenerateDataKey", context) == []
        assert denied(retail, "kms:Decrypt", context) == []
    refused = [
        request(f"arn:aws:s3:::{cb}/chargeback/2026-10/retail.csv", None),  # no context naming the BU
        request(f"arn:aws:s3:::{cb}/chargeback/2026-10/retail.csv", "markets"),  # another BU's context
        request(f"arn:aws:s3:::{cb}/chargeback/2026-10/markets.csv", "markets"),  # another BU's file
        request(f"arn:aws:s3:::{cb}/chargeback/2026-10/markets.csv", "retail"),
        request(f"arn:aws:s3:::{cb}/chargeback/2026-10/summary.json", "retail"),  # the platform's file
        request(f"arn:aws:s3:::{cb}/chargeback/2026-10/x/retail.csv", "retail"),  # not yyyy-mm/<bu>.csv
        request("arn:aws:s3:::other-bucket/chargeback/2026-10/retail.csv", "retail"),
        request(f"arn:aws:s3:::{audit}/audit/retail/2026/10/31/r1.json", "retail"),  # context off its files
        request(f"arn:aws:s3:::{audit}/audit/markets/2026/10/31/r1.json", None),
    ]
    for context in refused:
        assert denied(retail, "kms:GenerateDataKey", context), context
    not_via_s3 = {**allowed[1], "kms:ViaService": f"dynamodb.{REGION}.amazonaws.com"}
    assert denied(retail, "kms:Decrypt", not_via_s3) == ["DenyUseOtherThanThroughS3"]


def test_the_platform_key_also_admits_the_summary(policies: dict[str, Any]) -> None:
    platform, cb = policies["_unidentified"], policies["bucket"]
    assert denied(platform, "kms:GenerateDataKey",
                  request(f"arn:aws:s3:::{cb}/chargeback/2026-10/summary.json", "_unidentified")) == []
    assert denied(platform, "kms:GenerateDataKey",
                  request(f"arn:aws:s3:::{cb}/chargeback/2026-10/summary.json", "retail"))
    assert denied(policies["retail"], "kms:GenerateDataKey",
                  request(f"arn:aws:s3:::{cb}/chargeback/2026-10/summary.json", "_unidentified"))


def test_without_a_chargeback_bucket_the_context_admits_nothing() -> None:
    from cfn_yaml import load_template

    statements = load_template(INFRA / "bu-key.yaml")["Resources"]["BusinessUnitKey"]["Properties"]["KeyPolicy"][
        "Statement"]
    [chargeback] = [s for s in statements if isinstance(s, dict) and "Fn::If" in s
                    and s["Fn::If"][0] == "HasChargebackBucket" and s["Fn::If"][1].get("Effect") == "Deny"]
    otherwise = chargeback["Fn::If"][2]
    assert otherwise["Sid"] == "DenyChargebackUseWithoutAChargebackBucket" and otherwise["Effect"] == "Deny"
    assert otherwise["Condition"] == {"Null": {f"kms:EncryptionContext:{ENCRYPTION_CONTEXT_KEY}": "false"}}
