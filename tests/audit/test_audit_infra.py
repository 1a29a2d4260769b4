"""The trail's anchors in the data plane: an asymmetric KMS key the gateway may only Sign with, a
generated body HMAC secret under the platform key (no secret in git), their outputs, and the API
function's policy statements rendered exactly when their ARNs are configured."""
from __future__ import annotations

import json
import sys

from support import ROOT

sys.path.insert(0, str(ROOT / "infra"))
sys.path.insert(0, str(ROOT / "tests" / "infra"))

from cfn_yaml import load_template  # noqa: E402
from render_policy import read_env_file, render  # noqa: E402

EXAMPLE = ROOT / "infra" / "examples" / "prod-example.env"
SIGNING = "arn:aws:kms:eu-west-1:111122223333:key/33333333-3333-3333-3333-333333333333"
SECRET = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:garden-audit-body-AbCdEf"


def test_the_data_plane_creates_a_signing_key_and_a_generated_secret() -> None:
    template = load_template(ROOT / "infra" / "data-plane.yaml")
    resources, outputs = template["Resources"], template["Outputs"]
    key = resources["AuditSigningKey"]
    assert key["Properties"]["KeySpec"] == "ECC_NIST_P256" and key["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    assert key["DeletionPolicy"] == "Retain"
    secret = resources["AuditBodySecret"]["Properties"]
    assert secret["KmsKeyId"] == {"Fn::GetAtt": ["PlatformKey", "Arn"]}
    assert "GenerateSecretString" in secret and "SecretString" not in secret  # generated, never written down
    assert outputs["AuditSigningKeyArn"]["Value"] == {"Fn::GetAtt": ["AuditSigningKey", "Arn"]}
    assert outputs["AuditBodySecretArn"]["Value"] == {"Ref": "AuditBodySecret"}


def test_the_policy_grants_sign_and_the_secret_only_when_configured() -> None:
    values = read_env_file(EXAMPLE)
    without = {s["Sid"] for s in json.loads(render(values))["Statement"]}
    assert not {"AuditCheckpointSigningKeyOnly", "AuditBodySecretOnly"} & without
    policy = json.loads(render({**values, "AUDIT_SIGNING_KEY_ARN": SIGNING, "AUDIT_BODY_SECRET_ARN": SECRET}))
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["AuditCheckpointSigningKeyOnly"]["Action"] == "kms:Sign"
    assert statements["AuditCheckpointSigningKeyOnly"]["Resource"] == SIGNING
    assert statements["AuditBodySecretOnly"] == {"Sid": "AuditBodySecretOnly", "Effect": "Allow",
                                                 "Action": "secretsmanager:GetSecretValue", "Resource": SECRET}
    decrypt = statements["AuditBodySecretDecryptThroughSecretsManagerOnly"]
    assert decrypt["Condition"]["StringEquals"] == {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com",
                                                     "kms:EncryptionContext:SecretARN": SECRET}
    assert all("kms:Verify" not in json.dumps(s["Action"]) for s in policy["Statement"])  # checking is the auditor's


def test_the_rendered_policy_in_the_repo_is_unchanged_by_the_optional_statements() -> None:
    rendered = (ROOT / ".chalice" / "policy-prod.json").read_text()
    assert rendered == render(read_env_file(EXAMPLE)) and "AuditCheckpointSigningKeyOnly" not in rendered
