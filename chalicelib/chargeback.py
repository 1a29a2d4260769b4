"""Monthly chargeback per business unit, from the usage aggregates (chalicelib/usage.py).

`run_chargeback("2026-10", settings)` reads the month's aggregates (UTC days, the 1st to the last
inclusive) and writes, through a sink:
- `<bu>.csv` per business unit: `app,model,requests,prompt_tokens,completion_tokens,tokens,cost_usd`,
  one row per app and model that used tokens or money in the month, sorted by app then model.
  `requests` are the answered (200) requests; tokens and cost are everything settled, whatever the
  outcome (a call that was paid for is charged even when its answer failed afterwards).
- `summary.json`: per business unit its totals, errors, rejected, budget (or null) and file.

Rounding: none. Costs are whole 1e-8 USD units, written as exact decimals with 8 places
(`0.00037500`), so a BU's rows add up to its total exactly and the total equals what the /v1
answers reported (`x-garden-cost-usd`) summed. The summary adds `cost_usd_cents`: the BU total
rounded once, half up, to the cent, for invoicing (never round the rows, then add).

Sinks: S3 (`GARDEN_CHARGEBACK_BUCKET`): `chargeback/<yyyy-mm>/<bu>.csv`, SSE-KMS under that business
unit's key (`GARDEN_BU_KEYS`) with the encryption context `{"garden:business_unit": "<bu>"}`, and
`chargeback/<yyyy-mm>/summary.json` under the platform's `_unidentified` key (the summary names every
BU: it is the platform team's file). A business unit without a key of its own gets no file (never
another BU's key): the summary lists it with `"file": null` and the run's `missing_keys`. Locally:
`$GARDEN_HOME/chargeback/<yyyy-mm>/`. Re-running a month rewrites its files with the same figures.

Memoryless: ids, numbers and dates only; no request content exists in the aggregates to leak.
"""
from __future__ import annotations

import base64
import calendar
import csv
import io
import json
import os
import re
import tempfile
import time
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from chalicelib.errors import ConfigError, ServiceUnavailable
from chalicelib.settings import Settings
from chalicelib.usage import COST_UNIT, UsageStore, UsageTotals

CSV_COLUMNS = ("app", "model", "requests", "prompt_tokens", "completion_tokens", "tokens", "cost_usd")
PLATFORM = "_unidentified"  # the platform's key (GARDEN_BU_KEYS) encrypts the summary
ENCRYPTION_CONTEXT_KEY = "garden:business_unit"
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}")  # a file name; never "/" or ".."


class ChargebackSink(Protocol):
    def put(self, month: str, name: str, business_unit: str, body: bytes, content_type: str) -> str:
        """Write one file of the month; returns where it went (an S3 key or a path)."""
        ...

    def can_write(self, business_unit: str) -> bool:
        """False when this business unit's file cannot be written as the rules say (no BU key)."""
        ...


def month_range(month: str) -> tuple[str, str]:
    """("YYYY-MM-01", "YYYY-MM-<last>") of a "YYYY-MM", in UTC days; ValueError names the rule."""
    match = _MONTH.fullmatch(month or "")
    if not match:
        raise ValueError("month must be YYYY-MM")
    year, mon = int(match.group(1)), int(match.group(2))
    return f"{month}-01", f"{month}-{calendar.monthrange(year, mon)[1]:02d}"


def previous_month(now: float) -> str:
    """The UTC month before the one `now` (epoch seconds) falls in: what the 1st's run writes."""
    today = datetime.fromtimestamp(now, timezone.utc)
    year, mon = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    return f"{year:04d}-{mon:02d}"


def run_chargeback(
    month: str,
    settings: Settings,
    *,
    usage: UsageStore | None = None,
    sink: ChargebackSink | None = None,
    budgets: Mapping[str, Mapping[str, Any]] | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """Compute and write `month`'s chargeback; returns the summary (as written to summary.json) with
    `summary_file` (where it went). `usage`, `sink` and `budgets` (business unit -> {"usd_per_month",
    "tokens_per_month"}, as the registry's snapshot or the catalog's `business_units`) default to
    what `settings` configures. ValueError: `month` is not YYYY-MM."""
    from_day, to_day = month_range(month)
    usage = usage if usage is not None else usage_store(settings)
    sink = sink if sink is not None else chargeback_sink(settings)
    budgets = budgets if budgets is not None else _catalog_budgets(settings)
    by_bu: dict[str, dict[tuple[str, str], list[int]]] = {}
    outcomes: dict[str, list[int]] = {}
    for t in usage.totals(from_day, to_day):
        row = by_bu.setdefault(t.business_unit, {}).setdefault((t.app_id, t.model), [0, 0, 0, 0])
        _add(row, t)
        counts = outcomes.setdefault(t.business_unit, [0, 0])
        counts[0] += t.errors
        counts[1] += t.rejected
    units: list[dict[str, Any]] = []
    missing: list[str] = []
    for bu in sorted(set(by_bu) | set(budgets)):
        rows = {k: v for k, v in by_bu.get(bu, {}).items() if any(v)}
        total = [sum(r[i] for r in rows.values()) for i in range(4)]
        file: str | None = None
        if _SEGMENT.fullmatch(bu) and sink.can_write(bu):
            file = sink.put(month, f"{bu}.csv", bu, _csv(rows), "text/csv")
        else:
            missing.append(bu)
        budget = budgets.get(bu)
        units.append({
            "business_unit": bu, **_metrics(total), "errors": outcomes.get(bu, [0, 0])[0],
            "rejected": outcomes.get(bu, [0, 0])[1],
            "budget": None if budget is None else {"usd_per_month": budget.get("usd_per_month"),
                                                   "tokens_per_month": budget.get("tokens_per_month")},
            "file": file,
        })
    grand = [sum(r[i] for rows in by_bu.values() for r in rows.values()) for i in range(4)]
    summary: dict[str, Any] = {
        "object": "chargeback.summary", "month": month, "from": from_day, "to": to_day, "currency": "USD",
        "generated_at": datetime.fromtimestamp(clock(), timezone.utc).isoformat(timespec="seconds"),
        "business_units": units, "total": _metrics(grand), "missing_keys": missing,
    }
    body = (json.dumps(summary, indent=2, sort_keys=False) + "\n").encode("utf-8")
    return {**summary, "summary_file": sink.put(month, "summary.json", PLATFORM, body, "application/json")}


def scheduled_chargeback(event_time: str | None, settings: Settings, registry: Any,
                         clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """The monthly task (app.py, 02:00 UTC on the 1st): the month before the schedule's own time
    (`event_time`, the CloudWatch event's ISO `time`, so a late retry still writes the month it was
    meant for), with the business units' budgets as the registry holds them now. Logs one line."""
    when = clock() if not event_time else datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp()
    result = run_chargeback(previous_month(when), settings, budgets=current_budgets(registry, settings), clock=clock)
    from chalicelib.telemetry import gateway_logger

    log = gateway_logger()
    line = {"event": "chargeback", "month": result["month"], "business_units": len(result["business_units"]),
            "cost_usd": result["total"]["cost_usd"], "missing_keys": result["missing_keys"]}
    (log.error if result["missing_keys"] else log.info)(json.dumps(line, separators=(",", ":")))
    return result


def current_budgets(registry: Any, settings: Settings) -> Mapping[str, Mapping[str, Any]]:
    """Business-unit budgets as the gateway enforces them now: the registry's snapshot (read only:
    GetItem/Query on the REGISTRY keys in prod), or the catalog file's while the registry was never
    seeded (a fresh local folder)."""
    snapshot = registry.snapshot()
    if snapshot is None:
        return _catalog_budgets(settings)
    return {bu: {"usd_per_month": b.get("usd_per_month"), "tokens_per_month": b.get("tokens_per_month")}
            for bu, b in snapshot.business_units.items()}


def _add(row: list[int], t: UsageTotals) -> None:
    row[0] += t.requests
    row[1] += t.prompt_tokens
    row[2] += t.completion_tokens
    row[3] += t.cost_units


def _usd(units: int) -> str:
    return format(Decimal(units) * COST_UNIT, ".8f")


def _metrics(total: list[int]) -> dict[str, Any]:
    requests, prompt, completion, units = total
    return {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
            "tokens": prompt + completion, "cost_usd": _usd(units),
            "cost_usd_cents": format((Decimal(units) * COST_UNIT).quantize(Decimal("0.01"), ROUND_HALF_UP), "f")}


def _csv(rows: Mapping[tuple[str, str], list[int]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for (app, model), (requests, prompt, completion, units) in sorted(rows.items()):
        writer.writerow((app, model, requests, prompt, completion, prompt + completion, _usd(units)))
    return out.getvalue().encode("utf-8")


class LocalChargebackSink:
    """Files under `<root>/<yyyy-mm>/` (root: `$GARDEN_HOME/chargeback`), each replaced whole."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def can_write(self, business_unit: str) -> bool:
        return True

    def put(self, month: str, name: str, business_unit: str, body: bytes, content_type: str) -> str:
        folder = self._root / month
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        os.replace(tmp, folder / name)  # a reader sees the old file or the new one, never half
        return str(folder / name)


class S3ChargebackSink:
    """`chargeback/<yyyy-mm>/<name>` in the bucket, SSE-KMS under the business unit's key with an
    encryption context naming it (bu-key.yaml's policy checks both the object and the context).
    Errors propagate: a scheduled run that cannot write fails loudly and is retried by Lambda."""

    def __init__(self, client_factory: Callable[[], Any], bucket: str, keys: Mapping[str, str]) -> None:
        from chalicelib.lazy import OnFirstUse

        self._client = OnFirstUse(client_factory)
        self._bucket = bucket
        self._keys = dict(keys)

    def can_write(self, business_unit: str) -> bool:
        return business_unit in self._keys

    def put(self, month: str, name: str, business_unit: str, body: bytes, content_type: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        context = json.dumps({ENCRYPTION_CONTEXT_KEY: business_unit}, separators=(",", ":"))
        key = f"chargeback/{month}/{name}"
        try:
            self._client().put_object(
                Bucket=self._bucket, Key=key, Body=body, ContentType=content_type,
                ServerSideEncryption="aws:kms", SSEKMSKeyId=self._keys[business_unit],
                SSEKMSEncryptionContext=base64.b64encode(context.encode("utf-8")).decode("ascii"),
                ChecksumAlgorithm="SHA256",  # in case the bucket has Object Lock, as the audit bucket does
            )
        except (ClientError, BotoCoreError) as exc:  # AWS's message names the bucket and key: not passed on
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            raise ServiceUnavailable(f"chargeback bucket refused a write ({code or type(exc).__name__})",
                                     code="chargeback_unavailable") from None
        return key


def chargeback_sink(settings: Settings, client_factory: Callable[[], Any] | None = None) -> ChargebackSink:
    if not settings.chargeback_bucket:
        return LocalChargebackSink(settings.home / "chargeback")
    if PLATFORM not in settings.bu_keys:
        raise ConfigError('GARDEN_CHARGEBACK_BUCKET needs GARDEN_BU_KEYS["_unidentified"] (the summary\'s key)')
    if client_factory is None:
        client_factory = _client("s3", settings.aws_region)
    return S3ChargebackSink(client_factory, settings.chargeback_bucket, settings.bu_keys)


def usage_store(settings: Settings) -> UsageStore:
    if settings.store == "dynamodb":
        from chalicelib.usage_store.dynamodb import DynamoDbUsageStore

        return DynamoDbUsageStore(_client("dynamodb", settings.aws_region), settings.ledger_table)
    from chalicelib.usage_store.sqlite import SqliteUsageStore

    return SqliteUsageStore(settings.home / "garden.sqlite3")


def _client(service: str, region: str) -> Callable[[], Any]:
    """A botocore client made on first use (the process's one session, chalicelib/aws/session.py: the
    API function's on-demand runs import no boto3), for a run outside any request (no request
    deadline): standard retries, and timeouts that suit a batch of a few dozen calls."""

    def make() -> Any:
        from chalicelib.aws import session

        return session.new_client(service, region, connect_timeout=3, read_timeout=10, max_attempts=4)

    return make


def _catalog_budgets(settings: Settings) -> Mapping[str, Mapping[str, Any]]:
    from chalicelib.catalog import load_catalog

    return {bu: {"usd_per_month": b.usd_per_month, "tokens_per_month": b.tokens_per_month}
            for bu, b in load_catalog(settings.catalog_path).business_units.items()}
