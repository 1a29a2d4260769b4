"""The tamper-evident audit trail: each record links to the one before it; signed checkpoints anchor it.

A container writes one chain per UTC day (`<yyyy-mm-dd>.<container id>.<n>`). Each record gets its
chain id, its sequence number (1, 2, ...), the SHA-256 of the previous record of its chain
(`prev_hash`; 64 zeros for the first) and that record's request id, and `body_hmac`, the
HMAC-SHA256 of the request body under the data plane's secret (audit_trail.py). A record's hash is
the SHA-256 of its canonical JSON (sorted keys, compact), every field included: change any field of
record k and record k+1's `prev_hash` no longer matches.

Links alone cannot show that the newest records were cut off, nor that a whole chain vanished. So
the container writes a checkpoint (chain id, last seq, that record's hash and request id), signed
(KMS Sign in AWS, HMAC under a local key file locally), at its first record and then every
`every_n` records or `every_s` seconds, and registers it in the ledger (store/audit_chains.py): the
chain's first checkpoint is kept, its last replaced. Lambda containers die without warning, so a
chain's records after its last checkpoint (at most `every_n`, or `every_s` worth) are checked by
their links only; everything up to the last checkpoint must be there. A chain is closed (a last
checkpoint marked `closed`) when the container moves on to the next day.

Writes are not batched: in Lambda an invocation serves one request, so there is one record to
write, and an S3 object per record (Object Lock, the BU's key) admits no multi-record put; what is
batched is the checkpoint: one Sign and one ledger write per `every_n` records. A record is written
before `write` returns, so the invocation never ends with one pending. A record whose write fails
goes to the log stream with its chain position (audit.FallbackAuditSink), where verify finds it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Protocol

from chalicelib.audit import AuditSink
from chalicelib.record import RequestRecord

GENESIS = "0" * 64  # the prev_hash of a chain's first record
SIGNED_FIELDS = ("at", "chain_id", "closed", "hash", "request_id", "seq")


def canonical(value: Mapping[str, Any]) -> bytes:
    """The bytes a record or checkpoint is hashed over: sorted keys, compact, ASCII (as the sinks write)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def checkpoint_digest(checkpoint: Mapping[str, Any]) -> bytes:
    """The SHA-256 a checkpoint's signature covers: its fields but the signature's own."""
    return hashlib.sha256(canonical({k: checkpoint[k] for k in SIGNED_FIELDS})).digest()


def body_hmac(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class Signer(Protocol):
    def sign(self, digest: bytes) -> tuple[str, str, bytes]:
        """(alg, key id, signature) over a SHA-256 digest."""
        ...


class ChainRegistry(Protocol):
    def checkpoint(self, day: str, checkpoint: Mapping[str, Any]) -> None:
        """Register a chain's checkpoint: its first kept, its last replaced (never by an older one)."""
        ...


def sign_checkpoint(signer: Signer, fields: Mapping[str, Any]) -> dict[str, Any]:
    alg, key, signature = signer.sign(checkpoint_digest(fields))
    return {**{k: fields[k] for k in SIGNED_FIELDS}, "alg": alg, "key": key,
            "sig": base64.b64encode(signature).decode("ascii")}


@dataclass
class _Chain:
    chain_id: str
    day: str
    seq: int = 0
    last_hash: str = GENESIS
    last_request_id: str | None = None
    checkpointed_seq: int = 0
    checkpointed_at: float = 0.0
    closed: bool = False


class ChainedAudit:
    """The audit port as the frames use it (`write(record, body)`): puts each record in its chain,
    writes it through `sink` (a FallbackAuditSink: never raises) and checkpoints the chain."""

    def __init__(
        self,
        sink: AuditSink,
        *,
        registry: Callable[[], ChainRegistry],
        signer: Callable[[], Signer],
        body_key: Callable[[], bytes],
        on_error: Callable[[str, BaseException], None],
        every_n: int = 100,
        every_s: float = 60.0,
        container_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`registry`, `signer`, `body_key`: factories called on first use (OnFirstUse), so a
        container that serves nothing makes no client and reads no secret. `on_error(request_id,
        error)` hears of a body key or checkpoint that failed (telemetry.fault): the record is still
        written, and a failed checkpoint is tried again with the next record."""
        self._sink = sink
        self._registry = registry
        self._signer = signer
        self._body_key = body_key
        self._on_error = on_error
        self._every_n = every_n
        self._every_s = every_s
        self._container = container_id or uuid.uuid4().hex[:16]
        self._clock = clock
        self._lock = threading.Lock()
        self._chains: dict[str, _Chain] = {}  # day -> this container's open chain of that day
        self._opened = 0

    def write(self, record: RequestRecord, body: bytes = b"") -> None:
        try:
            record.body_hmac = body_hmac(self._body_key(), body)
        except Exception as exc:  # noqa: BLE001 - the secret's store is down: the record still goes
            record.body_hmac = None
            self._on_error(record.request_id, exc)
        day = record.timestamp[:10]
        # One lock from position to write: a chain's records reach a file in sequence order.
        with self._lock:
            chain = self._chain_for(day, record.request_id)
            record.chain_id = chain.chain_id
            record.seq = chain.seq + 1
            record.prev_hash = chain.last_hash
            record.prev_request_id = chain.last_request_id
            self._sink.write(record)
            chain.seq, chain.last_hash = record.seq, record_hash(record.to_dict())
            chain.last_request_id = record.request_id
            now = self._clock()
            if (chain.checkpointed_seq == 0 or chain.seq - chain.checkpointed_seq >= self._every_n
                    or now - chain.checkpointed_at >= self._every_s):
                self._checkpoint(chain, record.request_id, closed=False)

    def close(self) -> None:
        """Close every open chain (a last checkpoint marked closed): e.g. when a process stops."""
        with self._lock:
            for day in list(self._chains):
                self._close(self._chains.pop(day), "")

    def _chain_for(self, day: str, request_id: str) -> _Chain:
        for old in [d for d in self._chains if d < day]:  # a new day: yesterday's chain is done
            self._close(self._chains.pop(old), request_id)
        chain = self._chains.get(day)
        if chain is None:
            # A record of a day already closed here (it started before midnight, ended after the
            # next day's first) opens a chain of its own: a closed chain takes no more records.
            self._opened += 1
            chain = self._chains[day] = _Chain(f"{day}.{self._container}.{self._opened}", day)
        return chain

    def _close(self, chain: _Chain, request_id: str) -> None:
        if chain.seq:
            self._checkpoint(chain, request_id, closed=True)

    def _checkpoint(self, chain: _Chain, request_id: str, *, closed: bool) -> None:
        now = self._clock()
        fields = {"chain_id": chain.chain_id, "seq": chain.seq, "hash": chain.last_hash,
                  "request_id": chain.last_request_id, "closed": closed,
                  "at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds")}
        try:
            self._registry().checkpoint(chain.day, sign_checkpoint(self._signer(), fields))
        except Exception as exc:  # noqa: BLE001 - tried again with the next record
            self._on_error(request_id, exc)
            return
        chain.checkpointed_seq, chain.checkpointed_at, chain.closed = chain.seq, now, closed
