"""Audit port, its local adapter, and the fallback every sink is wrapped in.

The local adapter writes one JSON line per request under `$GARDEN_HOME/audit/`, split per business
unit and UTC day, as the S3 adapter's keys are (`audit/<business_unit>/<yyyy>/<mm>/<dd>/`), so each
BU's trail can be kept and keyed apart.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Protocol

from chalicelib.record import RequestRecord


class AuditSink(Protocol):
    def write(self, record: RequestRecord) -> None: ...


class AuditTrail(Protocol):
    """What the frames write to (audit_chain.ChainedAudit): the record, put in its chain, with the
    request body it HMACs (the body itself is never kept)."""

    def write(self, record: RequestRecord, body: bytes = b"") -> None: ...


class AuditFallback(Protocol):
    def audit_fallback(self, record: RequestRecord, error: BaseException) -> None:
        """Keep a record its sink refused (a log line) and count the failure (a metric)."""
        ...


class FallbackAuditSink:
    """Every sink, as the composition root builds it: a failed write is tried once more, then the
    record goes to the log stream (`{"event": "audit_fallback", ...}`, metadata only, as the record
    is) and counts in the `AuditWriteFailures` metric. It never raises: the answer to a paid model
    call is not turned into an error by its audit trail, and no record is lost in silence."""

    def __init__(self, sink: AuditSink, fallback: AuditFallback) -> None:
        self._sink = sink
        self._fallback = fallback

    def write(self, record: RequestRecord) -> None:
        error: BaseException | None = None
        for _ in range(2):
            try:
                self._sink.write(record)
                return
            except Exception as exc:  # noqa: BLE001 - any sink failure, ours or AWS's
                error = exc
        assert error is not None
        self._fallback.audit_fallback(record, error)


class JsonLinesAuditSink:
    _MAX_OPEN = 32  # one file per BU and day: a handful are open at once

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}  # path -> fd opened O_APPEND: open once, not per line

    def write(self, record: RequestRecord) -> None:
        bu = record.business_unit or "_unidentified"
        yyyy, mm, dd = record.timestamp[:10].split("-")
        path = f"{self._root}/{bu}/{yyyy}/{mm}/{dd}.jsonl"
        line = json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock:
            # One O_APPEND write per record: lines from concurrent writers never interleave.
            os.write(self._fd(path), line.encode("utf-8"))

    def _fd(self, path: str) -> int:
        fd = self._open.get(path)
        if fd is None:
            if len(self._open) >= self._MAX_OPEN:
                for old in self._open.values():
                    os.close(old)
                self._open.clear()
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = self._open[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return fd
