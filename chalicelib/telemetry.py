"""Telemetry port and its local adapter: one structured JSON log line per request.

Lines carry the request record's metadata (ids, model, tokens, cost, verdicts, latency) and
nothing else, so CloudWatch Logs Insights can query them and no prompt can leak through them.
"""
from __future__ import annotations

import json
import logging
from typing import Protocol

from chalicelib.record import RequestRecord

LOGGER_NAME = "execution_garden"


class Telemetry(Protocol):
    def record(self, record: RequestRecord) -> None: ...

    def fault(self, request_id: str, error: BaseException) -> None:
        """An unexpected exception: its class and request id only (messages may quote input)."""
        ...


class LogTelemetry:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or _default_logger()

    def record(self, record: RequestRecord) -> None:
        if self._log.isEnabledFor(logging.INFO):
            self._log.info(json.dumps({"event": "request", **record.to_dict()}, separators=(",", ":")))

    def fault(self, request_id: str, error: BaseException) -> None:
        self._log.error(json.dumps(
            {"event": "fault", "request_id": request_id, "error_class": type(error).__name__},
            separators=(",", ":"),
        ))


def _default_logger() -> logging.Logger:
    log = logging.getLogger(LOGGER_NAME)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
