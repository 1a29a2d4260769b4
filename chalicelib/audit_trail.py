"""The audit trail's keys and its assembly: which secret the body HMAC uses, what signs checkpoints,
where chains are registered. Chosen from the environment by `build_audit_trail`.

Body HMAC secret (correlates identical request bodies without storing them):
- AWS: `GARDEN_AUDIT_BODY_SECRET`, a Secrets Manager secret (ARN) that the data-plane stack creates
  with a generated value, encrypted by the platform KMS key: no secret in git or in the template.
  Read once per container (GetSecretValue, on its first record).
- Locally (unset): `$GARDEN_HOME/keys/audit-body.key`, 32 random bytes, created 0600.
Checkpoint signature:
- AWS: `GARDEN_AUDIT_SIGNING_KEY`, an asymmetric KMS key (ECC_NIST_P256, SIGN_VERIFY): KMS `Sign`
  over the checkpoint's SHA-256 (ECDSA_SHA_256, MessageType DIGEST). The private key never leaves
  KMS; an auditor verifies with KMS `Verify` (or the public key) and can sign nothing.
- Locally (unset): HMAC-SHA256 under `$GARDEN_HOME/keys/audit-checkpoint.key` (0600).
Both unset on a Lambda means per-container keys under /tmp: the prod stage must set both
(README "Audit trail"). Checkpoints every `GARDEN_AUDIT_CHECKPOINT_EVERY` records (100 with KMS,
1 with the local key) or `GARDEN_AUDIT_CHECKPOINT_S` seconds (60); chains are registered where the
ledger lives (GARDEN_STORE).
"""
from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from chalicelib.audit import AuditSink
from chalicelib.audit_chain import ChainedAudit
from chalicelib.lazy import OnFirstUse

KEYS_DIR = "keys"
BODY_KEY_FILE = "audit-body.key"
CHECKPOINT_KEY_FILE = "audit-checkpoint.key"


def local_key(path: Path, create: bool = True) -> bytes:
    """The key in `path`; created (32 random bytes, mode 0600, in a 0700 folder) if absent."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as out:
        out.write(os.urandom(32))
    return path.read_bytes()


def local_key_id(key: bytes) -> str:
    return "local:" + hashlib.sha256(key).hexdigest()[:16]


class HmacSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, digest: bytes) -> tuple[str, str, bytes]:
        return "HMAC_SHA_256", local_key_id(self._key), hmac.new(self._key, digest, hashlib.sha256).digest()


class KmsSigner:
    def __init__(self, client_factory: Callable[[], Any], key_id: str) -> None:
        self._client = OnFirstUse(client_factory)
        self._key_id = key_id

    def sign(self, digest: bytes) -> tuple[str, str, bytes]:
        answer = self._client().sign(KeyId=self._key_id, Message=digest, MessageType="DIGEST",
                                     SigningAlgorithm="ECDSA_SHA_256")
        return "ECDSA_SHA_256", answer["KeyId"], answer["Signature"]


def secret_key(client_factory: Callable[[], Any], secret_id: str) -> Callable[[], bytes]:
    """The body HMAC secret from Secrets Manager, read once (a failed read is tried again)."""
    return OnFirstUse(lambda: client_factory().get_secret_value(SecretId=secret_id)["SecretString"].encode("utf-8"))


def build_audit_trail(settings: Any, sink: AuditSink, telemetry: Any, aws_client: Callable[..., Callable[[], Any]],
                      env: Mapping[str, str] | None = None) -> ChainedAudit:
    """`sink`: the FallbackAuditSink the records go through; `aws_client(service, region,
    read_timeout=, bookkeeping=)`: the composition root's client factory maker (chalicelib/aws/clients.py: aws_client)."""
    env = os.environ if env is None else env
    keys = settings.home / KEYS_DIR
    signing_key = env.get("GARDEN_AUDIT_SIGNING_KEY")
    body_secret = env.get("GARDEN_AUDIT_BODY_SECRET")
    signer: Callable[[], Any]
    if signing_key:
        kms = KmsSigner(aws_client("kms", settings.aws_region, read_timeout=2, bookkeeping=True), signing_key)
        signer = lambda: kms  # noqa: E731
    else:
        signer = OnFirstUse(lambda: HmacSigner(local_key(keys / CHECKPOINT_KEY_FILE)))
    if body_secret:
        body_key = secret_key(aws_client("secretsmanager", settings.aws_region, read_timeout=2, bookkeeping=True),
                              body_secret)
    else:
        body_key = OnFirstUse(lambda: local_key(keys / BODY_KEY_FILE))
    return ChainedAudit(sink, registry=OnFirstUse(lambda: chain_registry(settings, aws_client)), signer=signer,
                        body_key=body_key, on_error=telemetry.fault,
                        # KMS: a Sign round trip per checkpoint, so one per 100 records; locally an
                        # HMAC and a SQLite write (~70 us): every record, so the head covers them all.
                        every_n=_positive(env, "GARDEN_AUDIT_CHECKPOINT_EVERY", 100 if signing_key else 1),
                        every_s=float(_positive(env, "GARDEN_AUDIT_CHECKPOINT_S", 60)))


def chain_registry(settings: Any, aws_client: Callable[..., Callable[[], Any]] | None = None) -> Any:
    if settings.store == "dynamodb":
        from chalicelib.store.audit_chains import DynamoDbChainRegistry

        if aws_client is None:
            raise ValueError("a DynamoDB chain registry needs a client factory")
        return DynamoDbChainRegistry(aws_client("dynamodb", settings.aws_region, read_timeout=2, bookkeeping=True),
                                     settings.ledger_table)
    from chalicelib.store.audit_chains import SqliteChainRegistry

    return SqliteChainRegistry(settings.home / "garden.sqlite3")


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    from chalicelib.errors import ConfigError

    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"{name}={raw!r}: expected a positive whole number")
    return int(raw)
