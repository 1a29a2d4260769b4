"""Telemetry port and its adapter: one structured JSON log line per request.

Lines carry the request record's metadata (ids, model, tokens, cost, verdicts, latency) and
nothing else, so CloudWatch Logs Insights can query them and no prompt can leak through them.
Each line is also in CloudWatch's Embedded Metric Format: in Lambda, CloudWatch turns it into
metrics per app and model (requests, errors, latency, tokens, cost) with no metrics API call on
the request path; elsewhere it is just a JSON line.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any, Protocol

from chalicelib.record import RequestRecord

LOGGER_NAME = "execution_garden"


class Telemetry(Protocol):
    def record(self, record: RequestRecord) -> None: ...

    def fault(self, request_id: str, error: BaseException) -> None:
        """An unexpected exception: its class and request id only (messages may quote input)."""
        ...

    def audit_fallback(self, record: RequestRecord, error: BaseException) -> None:
        """The audit sink refused a record: keep it in the log stream and count the failure."""
        ...


class LogTelemetry:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or gateway_logger()

    def record(self, record: RequestRecord) -> None:
        if self._log.isEnabledFor(logging.INFO):
            line = {"event": "request", **record.to_dict(), **emf_metrics(record)}
            self._log.info(json.dumps(line, separators=(",", ":")))

    def fault(self, request_id: str, error: BaseException) -> None:
        self._log.error(json.dumps(
            {"event": "fault", "request_id": request_id, "error_class": type(error).__name__},
            separators=(",", ":"),
        ))

    def audit_fallback(self, record: RequestRecord, error: BaseException) -> None:
        # At ERROR, so no log level hides it: this line is the record's only copy.
        line = {"event": "audit_fallback", "error_class": type(error).__name__, **record.to_dict(),
                **audit_failure_metric(record)}
        self._log.error(json.dumps(line, separators=(",", ":")))


NAMESPACE = "ExecutionGarden"
_METRICS = [{"Name": "Requests", "Unit": "Count"}, {"Name": "Errors", "Unit": "Count"},
            {"Name": "LatencyMs", "Unit": "Milliseconds"}, {"Name": "PromptTokens", "Unit": "Count"},
            {"Name": "CompletionTokens", "Unit": "Count"}, {"Name": "CostUSD", "Unit": "None"}]
_DIMENSIONS = [["AppId", "Model"], ["BusinessUnit"]]


def emf_metrics(record: RequestRecord) -> dict[str, Any]:
    """The Embedded Metric Format members for one request (values are numbers and ids only)."""
    return {
        "_aws": {"Timestamp": _epoch_ms(record.timestamp), "CloudWatchMetrics": [
            {"Namespace": NAMESPACE, "Dimensions": _DIMENSIONS, "Metrics": _METRICS}]},
        "AppId": record.app_id or "_unidentified",
        "Model": record.model or "_none",
        "BusinessUnit": record.business_unit or "_unidentified",
        "Requests": 1,
        "Errors": 1 if record.status >= 500 else 0,
        "LatencyMs": record.latency_ms,
        "PromptTokens": record.prompt_tokens,
        "CompletionTokens": record.completion_tokens,
        "CostUSD": record.cost_usd,
    }


def audit_failure_metric(record: RequestRecord) -> dict[str, Any]:
    """EMF members counting one audit write that failed (`AuditWriteFailures`, per business unit)."""
    return {
        "_aws": {"Timestamp": _epoch_ms(record.timestamp), "CloudWatchMetrics": [
            {"Namespace": NAMESPACE, "Dimensions": [["BusinessUnit"]],
             "Metrics": [{"Name": "AuditWriteFailures", "Unit": "Count"}]}]},
        "BusinessUnit": record.business_unit or "_unidentified",
        "AuditWriteFailures": 1,
    }


def _epoch_ms(iso_timestamp: str) -> int:
    return int(datetime.fromisoformat(iso_timestamp).timestamp() * 1000)


def gateway_logger() -> logging.Logger:
    log = logging.getLogger(LOGGER_NAME)
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
