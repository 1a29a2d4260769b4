"""Audit port and its local adapter: one JSON line per request, under `$GARDEN_HOME/audit/`.

Files are split per business unit and UTC day, as the S3 adapter's keys will be
(`audit/<business_unit>/<yyyy>/<mm>/<dd>/`), so each BU's trail can be kept and keyed apart.
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


class JsonLinesAuditSink:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        self._made: set[Path] = set()  # folders known to exist: one mkdir per folder, not per line

    def write(self, record: RequestRecord) -> None:
        bu = record.business_unit or "_unidentified"
        yyyy, mm, dd = record.timestamp[:10].split("-")
        path = self._root / bu / yyyy / mm / f"{dd}.jsonl"
        line = json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=True) + "\n"
        with self._lock:
            if path.parent not in self._made:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(path.parent)
            # One O_APPEND write per record: lines from concurrent writers never interleave.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
