"""`garden-admin audit verify`: check a day of the audit trail, locally or in S3 (chalicelib/audit_verify.py).

    garden-admin audit verify --date 2026-11-29                  # $GARDEN_HOME/audit (make audit-verify)
    garden-admin audit verify --date 2026-11-29 --bucket NAME    # S3, the ledger table, KMS Verify
    ... --fallback exported-log-events.json                      # audit_fallback lines to reconcile

Local: the JSON lines under `<home>/audit/<bu>/<yyyy>/<mm>/<dd>.jsonl`, the chains registered in
`<home>/garden.sqlite3`, checkpoints checked with `<home>/keys/audit-checkpoint.key`.
S3: the objects under `audit/<bu>/<yyyy>/<mm>/<dd>/`, the chains in the ledger table (--table,
$GARDEN_LEDGER_TABLE, garden-ledger), checkpoints checked with KMS Verify (a local HMAC key with
--checkpoint-key); boto3's standard credential chain. The caller needs s3:ListBucket and
s3:GetObject on the bucket, kms:Decrypt on the business units' keys, dynamodb:Query on the table
and kms:Verify on the signing key.
Exit 0: every link and head holds; 1: a break (each chain's first one named by request id);
2: usage error; 3: no AWS credentials or an AWS error.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from admin_cli.api import NoCredentials, Unreachable, UsageError


def verify(args: argparse.Namespace, ctx: Any) -> int:
    from chalicelib.audit_verify import verify_day

    day = args.date
    fallback = [line for name in (args.fallback or []) for line in fallback_lines(Path(name))]
    bucket = args.bucket or None
    if bucket:
        stored, registered, check = _s3_sources(args, day, bucket)
        where = f"s3://{bucket}/audit/*/{day.replace('-', '/')}/"
    else:
        home = _home(args)
        if not (home / "audit").is_dir() and not (home / "garden.sqlite3").is_file():
            raise UsageError(f"no audit trail under {home} (no audit/ folder, no garden.sqlite3): "
                             "pass --home or set GARDEN_HOME")
        stored, registered, check = _local_sources(home, day, args.checkpoint_key)
        where = f"{home / 'audit'}/*/{day.replace('-', '/')}.jsonl"
    report = verify_day(day, stored, registered, check, fallback)
    print(f"garden-admin: verified {where}" + (f" with {len(fallback)} fallback lines" if fallback else ""),
          file=sys.stderr)
    for line in report.summary():
        print(line)
    return 0 if report.ok else 1


# local -------------------------------------------------------------------------------------------

def _home(args: argparse.Namespace) -> Path:
    return Path(args.home or os.environ.get("GARDEN_HOME") or ".garden").expanduser()


def _local_sources(home: Path, day: str, key_file: str | None) -> tuple[list[Any], list[Any], Callable[..., Any]]:
    from chalicelib.audit_trail import CHECKPOINT_KEY_FILE, KEYS_DIR
    from chalicelib.store.audit_chains import SqliteChainRegistry

    stored = list(local_records(home / "audit", day))
    registered = SqliteChainRegistry(home / "garden.sqlite3").chains(day) if (home / "garden.sqlite3").is_file() else []
    path = Path(key_file) if key_file else home / KEYS_DIR / CHECKPOINT_KEY_FILE
    key = path.read_bytes() if path.is_file() else None
    return stored, registered, signature_check(key, None)


def local_records(root: Path, day: str) -> Iterator[Any]:
    """Every BU's file of the day, line by line in file order; a line that is not JSON (or the last
    one, cut before its newline) comes as unreadable."""
    from chalicelib.audit_verify import Stored

    yyyy, mm, dd = day.split("-")
    for path in sorted(root.glob(f"*/{yyyy}/{mm}/{dd}.jsonl")):
        data = path.read_bytes()
        lines = data.split(b"\n")
        complete = lines[:-1]  # the piece after the last newline is a cut line, or empty
        for number, raw in enumerate(complete + ([lines[-1]] if lines[-1] else []), start=1):
            where = f"{path.relative_to(root)}:{number}"
            text = raw.decode("utf-8", "replace")
            if not text.strip():
                continue
            record = _json_object(text) if number <= len(complete) else None
            yield Stored(where, record, text)


# S3 ----------------------------------------------------------------------------------------------

def _s3_sources(args: argparse.Namespace, day: str, bucket: str) -> tuple[list[Any], list[Any], Callable[..., Any]]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    from chalicelib.store.audit_chains import DynamoDbChainRegistry

    region = (getattr(args, "region", None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    session = boto3.Session(profile_name=getattr(args, "profile", None), region_name=region)
    if session.region_name is None:
        raise UsageError("no region: pass --region or set AWS_REGION (the data plane's region)")
    table = args.table or os.environ.get("GARDEN_LEDGER_TABLE") or "garden-ledger"
    # Checkpoints HMAC'd under a local key (a gateway on the AWS audit sink without
    # GARDEN_AUDIT_SIGNING_KEY, e.g. a test run) are checked with that key when it is at hand.
    home = _home(args)
    key_file = Path(args.checkpoint_key) if args.checkpoint_key else home / "keys" / "audit-checkpoint.key"
    key = key_file.read_bytes() if key_file.is_file() else None
    try:
        s3, kms = session.client("s3"), session.client("kms")
        stored = list(s3_records(s3, bucket, day))
        try:
            registered = DynamoDbChainRegistry(lambda: session.client("dynamodb"), table).chains(day)
        except ClientError as exc:
            local = home / "garden.sqlite3"
            if args.table or exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException" \
                    or not local.is_file():
                raise
            # No ledger table: the gateway kept its ledger locally (GARDEN_STORE=sqlite).
            from chalicelib.store.audit_chains import SqliteChainRegistry

            print(f"garden-admin: no table {table}: chains from {local}", file=sys.stderr)
            registered = SqliteChainRegistry(local).chains(day)
    except NoCredentialsError:
        raise NoCredentials("no AWS credentials (boto3's standard chain: environment, profile, SSO, role)") from None
    except (ClientError, BotoCoreError) as exc:
        raise Unreachable(f"AWS refused or failed: {exc}") from None
    return stored, registered, signature_check(key, kms, args.signing_key or os.environ.get("GARDEN_AUDIT_SIGNING_KEY"))


def s3_records(s3: Any, bucket: str, day: str, workers: int = 10) -> Iterator[Any]:
    """Every BU prefix's objects of the day (S3 keeps no order between them: verify sorts by seq),
    read `workers` at a time (botocore's default pool): a busy day is many small objects, one GET each."""
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.audit_verify import Stored

    yyyy, mm, dd = day.split("-")
    prefixes: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="audit/", Delimiter="/"):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    keys = [obj["Key"] for prefix in sorted(prefixes)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}{yyyy}/{mm}/{dd}/")
            for obj in page.get("Contents", [])]

    def read(key: str) -> Any:
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", "replace")
        name = key.rsplit("/", 1)[-1]
        return Stored(key, _json_object(text), text, ordered=False,
                      key_request_id=name[:-5] if name.endswith(".json") else name)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # botocore clients are thread-safe
        yield from pool.map(read, keys)


# shared ------------------------------------------------------------------------------------------

def signature_check(local_key: bytes | None, kms: Any, expected_key: str | None = None) -> Callable[..., Any]:
    """A checkpoint's signature: HMAC under the local key, or KMS Verify (its key must be
    `expected_key` when one is given: a checkpoint signed by some other key proves nothing)."""
    from chalicelib.audit_chain import checkpoint_digest
    from chalicelib.audit_trail import local_key_id

    def check(checkpoint: Mapping[str, Any]) -> bool | None:
        digest, signature = checkpoint_digest(checkpoint), base64.b64decode(checkpoint["sig"])
        if checkpoint["alg"] == "HMAC_SHA_256":
            if local_key is None or local_key_id(local_key) != checkpoint["key"]:
                return None
            return hmac.compare_digest(hmac.new(local_key, digest, hashlib.sha256).digest(), signature)
        if kms is None or (expected_key and checkpoint["key"] != expected_key):
            return None
        try:
            return bool(kms.verify(KeyId=checkpoint["key"], Message=digest, MessageType="DIGEST",
                                   Signature=signature, SigningAlgorithm="ECDSA_SHA_256")["SignatureValid"])
        except kms.exceptions.KMSInvalidSignatureException:
            return False
        except Exception:  # noqa: BLE001 - no such key, access denied: not checkable, said as such
            return None

    return check


def fallback_lines(path: Path) -> Iterator[dict[str, Any]]:
    """`audit_fallback` lines from a file: raw log lines (any prefix before the JSON, as exported
    log events have), or the JSON of `aws logs filter-log-events` (its events' messages)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--fallback {path}: {exc.strerror}") from None
    whole = _json_object(text)
    messages = ([e.get("message", "") for e in whole.get("events", []) if isinstance(e, dict)]
                if whole is not None else text.splitlines())
    for message in messages:
        start = message.find("{")
        line = _json_object(message[start:]) if start >= 0 else None
        if line is not None and line.get("event") == "audit_fallback":
            yield line


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def add_parser(commands: argparse._SubParsersAction, common: argparse.ArgumentParser,
               date_type: Callable[[str], str]) -> None:
    group = commands.add_parser("audit", help="the audit trail", description="the audit trail")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub = actions.add_parser(
        "verify", parents=[common], help="check every link and head of a day's audit trail (exit 1 on a break)",
        description="Check every record's link and every chain's signed head of a UTC day; name the first "
                    "broken, missing or reordered record of each chain by its request id. Local "
                    "($GARDEN_HOME/audit) unless --bucket names the S3 audit bucket.")
    sub.set_defaults(handler=verify)
    sub.add_argument("--date", metavar="YYYY-MM-DD", type=date_type, required=True, help="the UTC day")
    sub.add_argument("--bucket", metavar="NAME", help="the S3 audit bucket (default: the local trail)")
    sub.add_argument("--home", metavar="PATH", help="the local state folder (default: $GARDEN_HOME or .garden); "
                     "S3: its checkpoint key and SQLite ledger, when the gateway used them")
    sub.add_argument("--table", metavar="NAME", help="S3: the ledger table (default: $GARDEN_LEDGER_TABLE "
                     "or garden-ledger)")
    sub.add_argument("--signing-key", metavar="ARN", help="S3: the KMS key checkpoints must be signed with "
                     "(default: $GARDEN_AUDIT_SIGNING_KEY; unset: the key each checkpoint names)")
    sub.add_argument("--checkpoint-key", metavar="FILE", help="a local HMAC checkpoint key file "
                     "(default: <home>/keys/audit-checkpoint.key, if there)")
    sub.add_argument("--fallback", metavar="FILE", action="append",
                     help="audit_fallback log lines to reconcile (exported log events); repeatable")
