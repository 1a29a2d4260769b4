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
