"""Create the data-plane stack and one business-unit key stack in moto's CloudFormation.

moto runs as a server on 127.0.0.1 and the real boto3 clients talk to it through endpoint_url
with fake credentials. moto 5.2's CloudFormation models the table, buckets, default encryption,
KMS keys, aliases, exports and Fn::ImportValue, but it drops some properties on the floor
(S3 versioning, Object Lock, public access block, bucket policies; DynamoDB TTL and PITR). For
those the test checks moto's answer when moto has one, and otherwise the template itself, and
says which it did.
"""
from __future__ import annotations

import pytest

from cfn_yaml import INFRA, load_template

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (requirements-dev.txt)")

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse:UserWarning")  # moto: no BucketPolicy in CFN

REGION = "eu-west-1"
DATA_PLANE = "garden-data-plane"
BU = "retail"


@pytest.fixture(scope="module")
def aws(monkeypatch_module):
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch_module.setenv(var, value)
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch_module.delenv(var, raising=False)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    assert host == "127.0.0.1"

    def client(service):
        return boto3.client(service, region_name=REGION, endpoint_url=endpoint)

    try:
        yield client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def _outputs(cfn, stack):
    (desc,) = cfn.describe_stacks(StackName=stack)["Stacks"]
    assert desc["StackStatus"] == "CREATE_COMPLETE", desc.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}


@pytest.fixture(scope="module")
def stacks(aws):
    cfn = aws("cloudformation")
    cfn.create_stack(
        StackName=DATA_PLANE,
        TemplateBody=(INFRA / "data-plane.yaml").read_text(),
        Parameters=[{"ParameterKey": "AuditRetentionDays", "ParameterValue": "1"}],
    )
    cfn.create_stack(
        StackName=f"garden-bu-key-{BU}",
        TemplateBody=(INFRA / "bu-key.yaml").read_text(),
        Parameters=[{"ParameterKey": "BusinessUnit", "ParameterValue": BU},
                    {"ParameterKey": "DataPlaneStackName", "ParameterValue": DATA_PLANE}],
    )
    return {"data": _outputs(cfn, DATA_PLANE), "bu": _outputs(cfn, f"garden-bu-key-{BU}")}


@pytest.fixture(scope="module")
def template():
    return load_template(INFRA / "data-plane.yaml")


def test_outputs_feed_the_gateway_config(stacks):
    data = stacks["data"]
    assert data["LedgerTableName"] == "garden-ledger"
    assert data["AuditBucketName"].startswith("garden-audit-") and data["AuditBucketName"].endswith(REGION)
    assert data["PlatformKeyArn"].startswith(f"arn:aws:kms:{REGION}:")
    assert "GatewayLambdaSecurityGroupId" not in data  # only made when VpcId is given
    assert stacks["bu"]["BusinessUnit"] == BU
    assert stacks["bu"]["BusinessUnitKeyArn"].startswith(f"arn:aws:kms:{REGION}:")


def test_ledger_table(aws, stacks, template):
    ddb = aws("dynamodb")
    table = ddb.describe_table(TableName=stacks["data"]["LedgerTableName"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {"pk": "S", "sk": "S"}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionProtectionEnabled"] is True
    assert table["TableArn"] == stacks["data"]["LedgerTableArn"]

    ttl = ddb.describe_time_to_live(TableName="garden-ledger")["TimeToLiveDescription"]
    if ttl["TimeToLiveStatus"] != "DISABLED":  # moto 5.2 ignores TimeToLiveSpecification in CFN
        assert ttl["AttributeName"] == "expires_at"
    pitr = ddb.describe_continuous_backups(TableName="garden-ledger")["ContinuousBackupsDescription"]
    if pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] != "DISABLED":  # idem
        assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    props = template["Resources"]["LedgerTable"]["Properties"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": ["PlatformKey", "Arn"]}


def test_audit_bucket(aws, stacks, template):
    s3 = aws("s3")
    bucket = stacks["data"]["AuditBucketName"]
    assert bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": stacks["data"]["PlatformKeyArn"]}
    assert rule["BucketKeyEnabled"] is False  # the object ARN must reach the BU key policy

    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning is not None:  # moto 5.2 ignores VersioningConfiguration in CFN
        assert versioning == "Enabled"

    props = template["Resources"]["AuditBucket"]["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    assert props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {
        "Mode": "COMPLIANCE", "Days": {"Ref": "AuditRetentionDays"}}
    assert all(props["PublicAccessBlockConfiguration"].values())
    for name in ("AuditBucket", "AccessLogBucket", "LedgerTable", "PlatformKey"):
        assert template["Resources"][name]["DeletionPolicy"] == "Retain", name


def test_audit_bucket_policy_denies_plaintext_and_non_tls(template):
    statements = {s["Sid"]: s for s in
                  template["Resources"]["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]}
    assert all(s["Effect"] == "Deny" for s in statements.values())
    assert statements["DenyNonTlsAccess"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statements["DenyPutWithoutSseKms"]["Condition"] == {
        "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"}}
    assert "s3:x-amz-server-side-encryption-aws-kms-key-id" in \
        statements["DenyPutWithoutExplicitKeyOfThisAccount"]["Condition"]["StringNotLike"]


def test_kms_keys_and_aliases(aws, stacks):
    kms = aws("kms")
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
    platform_id = stacks["data"]["PlatformKeyArn"].rsplit("/", 1)[1]
    bu_id = stacks["bu"]["BusinessUnitKeyArn"].rsplit("/", 1)[1]
    assert aliases["alias/garden/platform"] == platform_id
    assert aliases[f"alias/garden/bu/{BU}"] == bu_id
    for key_id in (platform_id, bu_id):
        assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True


def test_bu_key_is_bound_to_its_audit_prefix():
    key = load_template(INFRA / "bu-key.yaml")["Resources"]["BusinessUnitKey"]
    assert key["DeletionPolicy"] == "Retain"
    statements = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if "Sid" in s]
    (deny,) = [s for s in statements if s["Sid"] == "DenyUseOutsideThisBusinessUnitsAuditPrefix"]
    pattern = deny["Condition"]["StringNotLike"]["kms:EncryptionContext:aws:s3:arn"]["Fn::Sub"][0]
    assert pattern.endswith("/audit/${BusinessUnit}/*")
