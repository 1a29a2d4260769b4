"""Environment -> typed settings, read in exactly one place.

Stage values live in `.chalice/config.json` (`environment_variables`); with none set, every port
falls back to its embedded local adapter, so `chalice local` and the tests run with no AWS account.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from chalicelib.errors import ConfigError
from chalicelib.identity.principals import canonical_principal

VERSION = "0.1.0"
DEFAULT_CATALOG = Path(__file__).parent / "defaults" / "catalog.json"

# The local platform team's role: an admin where identity is local and GARDEN_ADMIN_PRINCIPALS is unset
# (`make run` creates its key pair; only keys in local-credentials.json can sign as it).
LOCAL_ADMIN_PRINCIPAL = "arn:aws:iam::000000000000:role/garden-platform-admin"
_ARN = re.compile(r"arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+")
_CHOICES = {
    "GARDEN_IDENTITY": ("local", "iam"),
    "GARDEN_STORE": ("sqlite", "dynamodb"),
    "GARDEN_PII": ("local", "comprehend"),
    "GARDEN_GUARDRAIL": ("local", "bedrock"),
    "GARDEN_AUDIT": ("file", "s3"),
    "GARDEN_TRACING": ("auto", "off", "otlp", "xray"),
}


@dataclass(frozen=True)
class Settings:
    stage: str
    # Which adapter serves each port; each is chosen independently.
    identity: str
    store: str
    pii: str
    guardrail: str
    audit: str
    home: Path  # local state: SQLite store, audit files, local credentials
    catalog_path: Path
    signing_region: str  # the region SigV4 credential scopes must name (local identity)
    max_body_bytes: int
    request_timeout_s: float
    bedrock_region: str  # where Bedrock is called when a deployment names no region
    ops_role_arn: str | None  # the operations account's Bedrock role; None: the caller's own credentials
    bedrock_max_attempts: int  # botocore attempts per deployment, first call included
    breaker_threshold: int  # consecutive failures that open a deployment's circuit
    breaker_cooldown_s: float  # how long it stays open before one probe
    aws_region: str  # the gateway's own region: Comprehend, Bedrock Guardrails, DynamoDB, S3
    ledger_table: str  # GARDEN_STORE=dynamodb
    audit_bucket: str | None  # GARDEN_AUDIT=s3
    bu_keys: Mapping[str, str]  # GARDEN_AUDIT=s3: business unit -> KMS key ARN, "_unidentified" included
    # Monthly chargeback (chargeback.py): this bucket, each BU's file under its BU key; unset: files
    # under $GARDEN_HOME/chargeback/.
    chargeback_bucket: str | None = None
    # Local identity: the `host:port` values a signed host header may name (GARDEN_SERVED_HOST,
    # comma-separated; the dev server sets it from the socket it bound). Empty: loopback, any port.
    served_hosts: tuple[str, ...] = ()
    # Admin API (/admin/v1): canonical principal ARNs of admins (GARDEN_ADMIN_PRINCIPALS) and of
    # read-only auditors (GARDEN_ADMIN_READERS), comma-separated; assumed-role ARNs name their role.
    admin_principals: frozenset[str] = frozenset()
    admin_readers: frozenset[str] = frozenset()
    # Traces (chalicelib/tracing/): auto | off | otlp | xray (GARDEN_TRACING). auto: an OTLP endpoint in
    # OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, or an invocation X-Ray sampled, turns them on.
    tracing: str = "auto"
    # How often a container checks the registry's version (catalog_source.py): at most 20 s, so a change
    # is enforced everywhere within 60 s of its answer; tests and local runs may ask for less.
    registry_refresh_s: float = 20.0
    # The platform's Bedrock guardrail (infra/bedrock-guardrail.yaml, written by `make configure`):
    # judges the apps whose catalog entry names no `bedrock_guardrail_id`, at this published version.
    bedrock_guardrail_id: str | None = None
    bedrock_guardrail_version: str = "DRAFT"

    @property
    def local_credentials_path(self) -> Path:
        return self.home / "local-credentials.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        for name, allowed in _CHOICES.items():
            value = env.get(name, allowed[0])
            if value not in allowed:
                raise ConfigError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
        home = Path(env.get("GARDEN_HOME") or ".garden").expanduser()  # set but empty: not the working dir
        settings = cls(
            stage=env.get("GARDEN_STAGE", "local"),
            identity=env.get("GARDEN_IDENTITY", "local"),
            store=env.get("GARDEN_STORE", "sqlite"),
            pii=env.get("GARDEN_PII", "local"),
            guardrail=env.get("GARDEN_GUARDRAIL", "local"),
            audit=env.get("GARDEN_AUDIT", "file"),
            home=home,
            catalog_path=Path(env.get("GARDEN_CATALOG", str(DEFAULT_CATALOG))),
            signing_region=env.get("GARDEN_SIGNING_REGION", env.get("AWS_REGION", "us-east-1")),
            max_body_bytes=_positive_int(env, "GARDEN_MAX_BODY_BYTES", 1_048_576),
            # At most 26 s: the deadline plus bookkeeping's 2.5 s tail (deadline.py) stays under
            # API Gateway's 29 s integration timeout, with room for the Lambda's own start.
            request_timeout_s=float(_positive_int(env, "GARDEN_REQUEST_TIMEOUT_S", 25, maximum=26)),
            bedrock_region=env.get("GARDEN_BEDROCK_REGION", env.get("AWS_REGION", "us-east-1")),
            ops_role_arn=env.get("GARDEN_OPS_ROLE_ARN") or None,
            bedrock_max_attempts=_positive_int(env, "GARDEN_BEDROCK_MAX_ATTEMPTS", 2),
            breaker_threshold=_positive_int(env, "GARDEN_BREAKER_THRESHOLD", 5),
            breaker_cooldown_s=float(_positive_int(env, "GARDEN_BREAKER_COOLDOWN_S", 30)),
            aws_region=env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
            ledger_table=env.get("GARDEN_LEDGER_TABLE", "garden-ledger"),
            audit_bucket=env.get("GARDEN_AUDIT_BUCKET") or None,
            bu_keys=_bu_keys(env.get("GARDEN_BU_KEYS", "{}")),
            chargeback_bucket=env.get("GARDEN_CHARGEBACK_BUCKET") or None,
            served_hosts=tuple(h.strip() for h in env.get("GARDEN_SERVED_HOST", "").split(",") if h.strip()),
            admin_principals=_principals(env, "GARDEN_ADMIN_PRINCIPALS", LOCAL_ADMIN_PRINCIPAL
                                         if env.get("GARDEN_IDENTITY", "local") == "local" else ""),
            admin_readers=_principals(env, "GARDEN_ADMIN_READERS", ""),
            tracing=env.get("GARDEN_TRACING", "auto"),
            registry_refresh_s=float(_positive_int(env, "GARDEN_REGISTRY_REFRESH_S", 20, maximum=20)),
            bedrock_guardrail_id=env.get("GARDEN_BEDROCK_GUARDRAIL_ID") or None,
            bedrock_guardrail_version=env.get("GARDEN_BEDROCK_GUARDRAIL_VERSION") or "DRAFT",
        )
        if settings.bedrock_guardrail_id and not re.fullmatch(r"[a-z0-9]{1,12}|arn:aws\S+", settings.bedrock_guardrail_id):
            raise ConfigError("GARDEN_BEDROCK_GUARDRAIL_ID: a guardrail id or ARN (infra/bedrock-guardrail.yaml)")
        if not re.fullmatch(r"DRAFT|[1-9][0-9]{0,7}", settings.bedrock_guardrail_version):
            raise ConfigError("GARDEN_BEDROCK_GUARDRAIL_VERSION: DRAFT or a version number")
        if settings.audit == "s3":
            if not settings.audit_bucket:
                raise ConfigError("GARDEN_AUDIT=s3 needs GARDEN_AUDIT_BUCKET")
            if "_unidentified" not in settings.bu_keys:
                raise ConfigError('GARDEN_BU_KEYS needs a key for "_unidentified" (requests with no app)')
        return settings


def _principals(env: Mapping[str, str], name: str, default: str) -> frozenset[str]:
    arns = [a.strip() for a in env.get(name, default).split(",") if a.strip()]
    for i, arn in enumerate(arns):
        if not _ARN.fullmatch(arn):
            raise ConfigError(f"{name}: entry {i + 1} is not an IAM principal ARN (arn:aws:iam::<account>:role/<name>)")
    return frozenset(canonical_principal(a) for a in arns)


def _bu_keys(raw: str) -> Mapping[str, str]:
    try:
        keys = json.loads(raw)
    except ValueError:
        raise ConfigError("GARDEN_BU_KEYS: expected a JSON object of business unit -> KMS key ARN") from None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise ConfigError("GARDEN_BU_KEYS: expected a JSON object of business unit -> KMS key ARN")
    return keys


def _positive_int(env: Mapping[str, str], name: str, default: int, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a positive integer") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r}: expected a positive integer")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={raw!r}: at most {maximum}")
    return value
