"""ChainedAudit over the real local parts (JSON lines sink, SQLite chain registry, HMAC key files):
day boundaries, a record that straddles midnight, a checkpoint that fails and is tried again, and a
body secret that cannot be read. Verified with chalicelib/audit_verify.py as the CLI does."""
from __future__ import annotations

import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

from chalicelib.audit import FallbackAuditSink, JsonLinesAuditSink
from chalicelib.audit_chain import ChainedAudit
from chalicelib.audit_trail import HmacSigner, local_key
from chalicelib.audit_verify import Report, verify_day
from chalicelib.record import RequestRecord
from chalicelib.store.audit_chains import SqliteChainRegistry
from chalicelib.telemetry import LogTelemetry

BODY = b'{"model":"m","messages":[{"role":"user","content":"CANARY-unit-7c2d"}]}'


def parts(home: Path) -> tuple[ChainedAudit, LogTelemetry, io.StringIO, Any]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test-chain-unit-{uuid.uuid4().hex}")
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    telemetry = LogTelemetry(logger)
    registry = SqliteChainRegistry(home / "garden.sqlite3")
    key = local_key(home / "keys" / "audit-checkpoint.key")
    chained = ChainedAudit(FallbackAuditSink(JsonLinesAuditSink(home / "audit"), telemetry),
                           registry=lambda: registry, signer=lambda: HmacSigner(key),
                           body_key=lambda: local_key(home / "keys" / "audit-body.key"),
                           on_error=telemetry.fault, every_n=3)
    return chained, telemetry, stream, registry


def record(timestamp: str) -> RequestRecord:
    return RequestRecord(request_id=str(uuid.uuid4()), timestamp=timestamp, route="chat.completions",
                         status=200, business_unit="retail")


def check(home: Path, day: str, registry: SqliteChainRegistry) -> Report:
    from admin_cli.audit import local_records, signature_check

    key = (home / "keys" / "audit-checkpoint.key").read_bytes()
    return verify_day(day, list(local_records(home / "audit", day)), registry.chains(day), signature_check(key, None))


def test_a_new_day_closes_the_old_chain_and_a_straggler_gets_a_chain_of_its_own(tmp_path: Path) -> None:
    chained, _, _, registry = parts(tmp_path)
    for minute in range(4):
        chained.write(record(f"2026-11-20T23:5{minute}:00.000+00:00"), BODY)
    chained.write(record("2026-11-21T00:00:01.000+00:00"), BODY)
    straggler = record("2026-11-20T23:59:59.990+00:00")  # started before midnight, written after
    chained.write(straggler, BODY)
    (old, late) = sorted(registry.chains("2026-11-20"), key=lambda c: c.chain_id)
    assert old.last["closed"] is True and old.last["seq"] == 4  # closed by the next day's first record (chain .2)
    assert late.chain_id.endswith(".3") and straggler.chain_id == late.chain_id and straggler.seq == 1
    assert check(tmp_path, "2026-11-20", registry).ok
    assert check(tmp_path, "2026-11-21", registry).ok
    chained.close()
    assert all(c.last["closed"] for day in ("2026-11-20", "2026-11-21") for c in registry.chains(day))


def test_a_failed_checkpoint_is_logged_and_tried_again_with_the_next_record(tmp_path: Path) -> None:
    chained, telemetry, stream, registry = parts(tmp_path)
    (tmp_path / "keys" / "audit-checkpoint.key").unlink()
    (tmp_path / "keys" / "audit-checkpoint.key").mkdir()  # the signer's key cannot be read now
    broken = ChainedAudit(FallbackAuditSink(JsonLinesAuditSink(tmp_path / "audit"), telemetry),
                          registry=lambda: registry,
                          signer=lambda: HmacSigner(local_key(tmp_path / "keys" / "audit-checkpoint.key")),
                          body_key=lambda: b"k" * 32, on_error=telemetry.fault)
    first = record("2026-11-20T10:00:00.000+00:00")
    broken.write(first, BODY)
    faults = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(f["event"], f["request_id"]) for f in faults] == [("fault", first.request_id)]
    assert registry.chains("2026-11-20") == [] and first.seq == 1  # the record is written all the same
    report = check_without_key(tmp_path, registry)
    assert [f.problem for f in report.findings] == ["unregistered"]
    (tmp_path / "keys" / "audit-checkpoint.key").rmdir()
    broken.write(record("2026-11-20T10:00:01.000+00:00"), BODY)  # tried again: registered now
    (chain,) = registry.chains("2026-11-20")
    assert chain.first["seq"] == 2 and check(tmp_path, "2026-11-20", registry).ok


def check_without_key(home: Path, registry: SqliteChainRegistry) -> Report:
    from admin_cli.audit import local_records, signature_check

    return verify_day("2026-11-20", list(local_records(home / "audit", "2026-11-20")), registry.chains("2026-11-20"),
                      signature_check(None, None))


def test_a_body_secret_that_cannot_be_read_still_writes_the_record(tmp_path: Path) -> None:
    chained, telemetry, stream, registry = parts(tmp_path)

    def no_secret() -> bytes:
        raise ConnectionError("secrets store unreachable")

    blind = ChainedAudit(FallbackAuditSink(JsonLinesAuditSink(tmp_path / "audit"), telemetry),
                         registry=lambda: registry, signer=lambda: HmacSigner(b"s" * 32), body_key=no_secret,
                         on_error=telemetry.fault)
    rec = record("2026-11-20T10:00:00.000+00:00")
    blind.write(rec, BODY)
    (line,) = (tmp_path / "audit" / "retail" / "2026" / "11" / "20.jsonl").read_text().splitlines()
    assert json.loads(line)["body_hmac"] is None and json.loads(line)["seq"] == 1
    assert json.loads(stream.getvalue())["error_class"] == "ConnectionError"
    assert b"CANARY" not in (tmp_path / "audit" / "retail" / "2026" / "11" / "20.jsonl").read_bytes()
