"""Adapters of the usage aggregates port (chalicelib/usage.py): SQLite locally, DynamoDB in AWS,
and the recorder the request frame (pipeline/governed.py) calls once per request.

What is recorded: every chat and embeddings request whose caller is a known app, once, at its end:
outcome `ok` (200), `rejected` (429) or `error` (anything else); prompt and completion tokens and
cost as settled (the request record's); the catalog model that served, or `_unknown` when the
request failed before a model was resolved; and its policy activity as named counts
(usage.event_counts: the error code of a 429 or other failure, PII entity types, guardrail
interventions; fixed vocabularies, never text). Callers with no app (unsigned, unknown principal: 403
before any app is known) are not recorded: they belong to no app or business unit to charge, and
the audit trail and the request log keep them.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from chalicelib.record import RequestRecord
from chalicelib.usage import UsageEvent, UsageStore, cost_units, event_counts

ROUTES = frozenset({"chat.completions", "embeddings"})  # not /v1/models, not /admin
UNKNOWN_MODEL = "_unknown"
UNIDENTIFIED = "_unidentified"


def usage_event(record: RequestRecord) -> UsageEvent | None:
    """The aggregates' view of a finished request, or None when it is not counted."""
    if record.route not in ROUTES or not record.app_id:
        return None
    outcome = "ok" if record.status == 200 else "rejected" if record.status == 429 else "error"
    return UsageEvent(
        app_id=record.app_id, business_unit=record.business_unit or UNIDENTIFIED,
        model=record.model or UNKNOWN_MODEL, day=record.timestamp[:10], outcome=outcome,
        prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
        cached_tokens=record.cached_tokens,  # as the provider reported it
        cost_units=cost_units(record.cost_usd),
        counts=event_counts(outcome, record.error_code, record.pii, record.guardrail),
    )


class UsageRecorder:
    """Records a finished request into the aggregates and never raises: the answer to a paid model
    call is not turned into an error by its bookkeeping. A failed write is NOT retried (an ADD that
    timed out may have landed: a retry could count it twice); the event goes to the log stream
    instead (`{"event": "usage_fallback", ...}`, ids and numbers only, enough to replay it) and
    counts in the `UsageRecordFailures` metric, as audit_fallback does for the audit trail."""

    def __init__(self, store: UsageStore, logger: logging.Logger | None = None) -> None:
        self._store = store
        self._logger = logger

    def record(self, record: RequestRecord) -> None:
        try:
            event = usage_event(record)
            if event is not None:
                self._store.record(event)
        except Exception as exc:  # noqa: BLE001 - any store failure, ours or AWS's
            self._fallback(record, exc)

    def _fallback(self, record: RequestRecord, error: BaseException) -> None:
        try:
            event = usage_event(record)
            fields: dict[str, Any] = {} if event is None else {
                name: getattr(event, name) for name in UsageEvent.__slots__}  # type: ignore[attr-defined]
            line = {"event": "usage_fallback", "error_class": type(error).__name__,
                    "request_id": record.request_id, **fields, **_failure_metric(record)}
            log = self._logger
            if log is None:
                from chalicelib.telemetry import gateway_logger

                log = gateway_logger()
            log.error(json.dumps(line, separators=(",", ":")))
        except Exception:  # noqa: BLE001 - the log itself failing must not fail the answer either
            pass


def _failure_metric(record: RequestRecord) -> dict[str, Any]:
    from chalicelib.telemetry import NAMESPACE, _epoch_ms

    return {
        "_aws": {"Timestamp": _epoch_ms(record.timestamp), "CloudWatchMetrics": [
            {"Namespace": NAMESPACE, "Dimensions": [["BusinessUnit"]],
             "Metrics": [{"Name": "UsageRecordFailures", "Unit": "Count"}]}]},
        "BusinessUnit": record.business_unit or UNIDENTIFIED,
        "UsageRecordFailures": 1,
    }
