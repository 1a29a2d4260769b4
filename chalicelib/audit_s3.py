"""AWS adapter of the audit port: one S3 object per request, encrypted with its business unit's key.

Key: `audit/<business_unit or _unidentified>/<yyyy>/<mm>/<dd>/<request_id>.json` (UTC day of the
record), body: the record's JSON (metadata only, see record.py). Each BU key's policy admits only
objects under `audit/<that BU>/` (S3 sends the object ARN as encryption context; Bucket Keys are
off), so a record must go under the prefix of the key that encrypts it. The app id is added to that
encryption context (`{"garden:app_id": "<app or _none>"}`); S3 keeps it with the object and hands
it to KMS on every read, so CloudTrail's KMS events name the app whose record was written or read.
Retention is the bucket's Object Lock default, never set per object; S3 then requires a checksum
header on PutObject.
"""
from __future__ import annotations

import base64
import json
import re
from typing import Any, Callable, Mapping

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.errors import ServiceUnavailable
from chalicelib.lazy import OnFirstUse
from chalicelib.record import RequestRecord

UNIDENTIFIED = "_unidentified"
# One path segment, as bu-key.yaml's prefix binding expects: a "/" or ".." would put the object
# outside its BU's prefix (denied by the key policy) or mislead whoever lists the trail.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def app_context(app_id: str | None) -> str:
    """The SSE-KMS encryption context S3 adds to its own (`aws:s3:arn`): base64 of its JSON."""
    return base64.b64encode(json.dumps({"garden:app_id": app_id or "_none"}).encode("utf-8")).decode("ascii")


class S3AuditSink:
    def __init__(
        self,
        client_factory: Callable[[], Any],
        bucket: str,
        keys: Mapping[str, str],
        default_key: str,
    ) -> None:
        """`keys`: business unit -> KMS key ARN (GARDEN_BU_KEYS); `default_key` encrypts the records
        of unknown or absent BUs (the `_unidentified` key). Give key ARNs, not aliases: the
        audit bucket's policy refuses a PutObject whose key id is not `arn:...:key/*`."""
        self._client = OnFirstUse(client_factory)
        self._bucket = bucket
        self._keys = dict(keys)
        self._default_key = default_key

    def write(self, record: RequestRecord) -> None:
        bu = record.business_unit if record.business_unit and _SEGMENT.fullmatch(record.business_unit) \
            else UNIDENTIFIED
        key_id = self._keys.get(bu, self._default_key)
        if bu not in self._keys:
            # A BU without its own key is filed under the default key's prefix, so the default
            # key's prefix-bound policy admits it; the body still names the BU.
            bu = UNIDENTIFIED
        yyyy, mm, dd = record.timestamp[:10].split("-")
        if not _SEGMENT.fullmatch(record.request_id):  # ids are ours (uuid4, API Gateway's): a bug
            raise ValueError("request id is not a safe object name")
        body = json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True).encode("utf-8")
        try:
            self._client().put_object(
                Bucket=self._bucket,
                Key=f"audit/{bu}/{yyyy}/{mm}/{dd}/{record.request_id}.json",
                Body=body,
                ContentType="application/json",
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=key_id,
                SSEKMSEncryptionContext=app_context(record.app_id),
                ChecksumAlgorithm="SHA256",  # Object Lock buckets refuse puts without a checksum
            )
        except (ClientError, BotoCoreError):
            raise ServiceUnavailable("audit sink unavailable", code="audit_unavailable") from None
