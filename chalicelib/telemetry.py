"""Telemetry port and its adapter: one structured JSON log line per request.

Lines carry the request record's metadata (ids, model, tokens, cost, verdicts, latency) and
nothing else, so CloudWatch Logs Insights can query them and no prompt can leak through them.
Each line is also in CloudWatch's Embedded Metric Format: in Lambda, CloudWatch turns it into
metrics (traffic, latency, tokens, cost, errors by code, provider throttles, fallbacks, breaker
opens, quota rejections, PII entities by type, guardrail interventions, deadline hits, a business
unit's budget pace; README "Metrics") with no metrics API call on the request path; elsewhere it is
just a JSON line.
"""
from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any, Protocol

from chalicelib import controls
from chalicelib.record import RequestRecord

LOGGER_NAME = "execution_garden"
_SAFE_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")  # a metric name part


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
_COUNT, _MS, _NONE = "Count", "Milliseconds", "None"
_UNIDENTIFIED, _NO_MODEL = "_unidentified", "_none"
# Metric names are a contract with infra/observability.yaml's dashboard, alarms and queries (and the
# README's "Metrics" table). Dimension sets are few on purpose: CloudWatch bills every distinct
# (metric, dimensions) series, so per-app and per-model series exist only where a chart or an alarm
# needs them; the service-wide series (no dimensions) are what the alarms read.
_CORE = {"Dimensions": [["AppId", "Model"], ["BusinessUnit"]],
         "Metrics": [{"Name": "Requests", "Unit": _COUNT}, {"Name": "Errors", "Unit": _COUNT},
                     {"Name": "LatencyMs", "Unit": _MS}, {"Name": "PromptTokens", "Unit": _COUNT},
                     {"Name": "CompletionTokens", "Unit": _COUNT}, {"Name": "CostUSD", "Unit": _NONE}]}
_BY_MODEL = {"Dimensions": [["Model"]], "Metrics": [{"Name": "LatencyMs", "Unit": _MS}]}  # p50/p95/p99
_SERVICE_COUNTS = ("Requests", "Errors", "ClientErrors", "DeadlineHits", "QuotaRejections", "ProviderThrottles",
                   "Fallbacks", "BreakerOpens", "GuardrailInterventions", "PiiEntities", "ControlsFailedOpen")
_SERVICE = {"Dimensions": [[]], "Metrics": [{"Name": n, "Unit": _COUNT} for n in _SERVICE_COUNTS]}
_ROUTING = {"Dimensions": [["Model"]], "Metrics": [{"Name": n, "Unit": _COUNT}
                                                    for n in ("ProviderThrottles", "Fallbacks", "BreakerOpens")]}
_PER_APP = ("QuotaRejections", "GuardrailInterventions", "PiiEntities")
PII_METRIC_PREFIX = "PiiEntities_"  # one metric per entity type: a line has one value per dimension


def emf_metrics(record: RequestRecord) -> dict[str, Any]:
    """The Embedded Metric Format members for one request (values are numbers and ids only).

    Every request: the core per (app, model) and per business unit, latency per model, and the
    service-wide counts (zeros included, so alarms never see missing data). Only when they happened:
    errors per (StatusCode, ErrorCode), routing trouble per model, quota rejections, guardrail
    interventions and PII entities per app, PII entities per type, the BU's budget pace."""
    status = record.status
    pii = _pii_by_type(record.pii)
    members: dict[str, Any] = {
        "AppId": record.app_id or _UNIDENTIFIED,
        "Model": record.model or _NO_MODEL,
        "BusinessUnit": record.business_unit or _UNIDENTIFIED,
        "Requests": 1,
        "Errors": 1 if status >= 500 else 0,
        "ClientErrors": 1 if 400 <= status < 500 else 0,
        "DeadlineHits": 1 if status == 504 else 0,
        "QuotaRejections": 1 if record.controls.get(controls.QUOTA) == controls.REJECTED else 0,
        "ProviderThrottles": record.upstream_throttles,
        "Fallbacks": record.fallbacks,
        "BreakerOpens": record.breaker_opens,
        "GuardrailInterventions": controls.interventions(record),
        "PiiEntities": sum(pii.values()),
        "ControlsFailedOpen": controls.fail_opens(record),
        "LatencyMs": record.latency_ms,
        "PromptTokens": record.prompt_tokens,
        "CompletionTokens": record.completion_tokens,
        "CostUSD": record.cost_usd,
    }
    directives: list[dict[str, Any]] = [_CORE, _BY_MODEL, _SERVICE]
    if status >= 400:
        members["StatusCode"], members["ErrorCode"] = str(status), record.error_code or "unknown"
        name = "Errors" if status >= 500 else "ClientErrors"
        directives.append({"Dimensions": [["StatusCode", "ErrorCode"]], "Metrics": [{"Name": name, "Unit": _COUNT}]})
    if record.upstream_throttles or record.fallbacks or record.breaker_opens:
        directives.append(_ROUTING)
    per_app = [n for n in _PER_APP if members[n]]
    if per_app:
        directives.append({"Dimensions": [["AppId"]], "Metrics": [{"Name": n, "Unit": _COUNT} for n in per_app]})
    if pii:
        for entity_type, n in pii.items():
            members[PII_METRIC_PREFIX + entity_type] = n
        directives.append({"Dimensions": [[]], "Metrics": [{"Name": PII_METRIC_PREFIX + t, "Unit": _COUNT}
                                                          for t in pii]})
    if record.budget_pace is not None and record.business_unit:
        members["BudgetPace"] = record.budget_pace
        directives.append({"Dimensions": [["BusinessUnit"]], "Metrics": [{"Name": "BudgetPace", "Unit": _NONE}]})
    return {"_aws": {"Timestamp": _epoch_ms(record.timestamp),
                     "CloudWatchMetrics": [{"Namespace": NAMESPACE, **d} for d in directives]},
            **members}


def audit_failure_metric(record: RequestRecord) -> dict[str, Any]:
    """EMF members counting one audit write that failed (`AuditWriteFailures`, per business unit and
    service-wide, which the alarm reads)."""
    return {
        "_aws": {"Timestamp": _epoch_ms(record.timestamp), "CloudWatchMetrics": [
            {"Namespace": NAMESPACE, "Dimensions": [["BusinessUnit"], []],
             "Metrics": [{"Name": "AuditWriteFailures", "Unit": "Count"}]}]},
        "BusinessUnit": record.business_unit or _UNIDENTIFIED,
        "AuditWriteFailures": 1,
    }


def _pii_by_type(pii: dict[str, int]) -> dict[str, int]:
    """Entities found per type, in and out, whatever the policy did with them ("<TYPE>:<ACTION>" keys;
    a detector that failed open found nothing). Types come from the detectors' fixed vocabularies."""
    out: dict[str, int] = {}
    for key, n in pii.items():
        entity_type = key.rsplit(":", 1)[0]
        if entity_type != "DETECTOR_UNAVAILABLE" and _SAFE_NAME.fullmatch(entity_type):
            out[entity_type] = out.get(entity_type, 0) + n
    return out


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
