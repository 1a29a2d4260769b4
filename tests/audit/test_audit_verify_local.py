"""`garden-admin audit verify` on the local trail: files written by the real JSON lines sink through
the gateway (chat requests signed with SigV4), then tampered with as an intruder would, checked by
the CLI as a subprocess. Every case names the record by its request id and exits 1."""
from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import stat
import uuid
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from audit_support import (CANARY, DAY, NEXT_DAY, T0, T1, Clock, chained_garden, chat, day_file, finding, records,
                           verify, write_records)

from chalicelib.audit_schema import AUDIT_RECORD_SCHEMA, CHECKPOINT_SCHEMA
from chalicelib.record import RequestRecord
from chalicelib.telemetry import LogTelemetry


def six_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int = 1) -> tuple[Path, list[str]]:
    with chained_garden(tmp_path, monkeypatch, every=every) as g:
        ids = [chat(g, f"question {i}") for i in range(6)]
    return g.home, ids


def test_a_clean_day_verifies_and_each_record_links_to_the_one_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, ids = six_records(tmp_path, monkeypatch)
    recs = records(day_file(home))
    assert [r["request_id"] for r in recs] == ids and [r["seq"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert len({r["chain_id"] for r in recs}) == 1 and recs[0]["chain_id"].startswith(f"{DAY}.")
    assert recs[0]["prev_hash"] == "0" * 64 and recs[0]["prev_request_id"] is None
    assert [r["prev_request_id"] for r in recs[1:]] == ids[:-1]
    result = verify(home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"audit trail {DAY}: OK: 6 records in 1 chains"), result.stdout


def test_a_tampered_record_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, ids = six_records(tmp_path, monkeypatch)
    recs = records(day_file(home))
    recs[2]["completion_tokens"] += 1000  # someone inflates a bill
    write_records(day_file(home), recs)
    line = finding(verify(home), "altered", ids[2])
    assert "seq 3" in line and ids[3] in line  # the record whose link it broke


def test_a_record_with_an_extra_field_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, ids = six_records(tmp_path, monkeypatch)
    recs = records(day_file(home))
    recs[1]["note"] = "added later"
    write_records(day_file(home), recs)
    result = verify(home)
    finding(result, "invalid", ids[1])
    finding(result, "altered", ids[1])


def test_a_deleted_record_is_named_by_the_next_ones_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, ids = six_records(tmp_path, monkeypatch)
    recs = records(day_file(home))
    write_records(day_file(home), recs[:2] + recs[3:])
    line = finding(verify(home), "missing", ids[2])
    assert "seq 3" in line and ids[1] in line and ids[3] in line


def test_two_swapped_records_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, ids = six_records(tmp_path, monkeypatch)
    recs = records(day_file(home))
    recs[2], recs[3] = recs[3], recs[2]
    write_records(day_file(home), recs)
    line = finding(verify(home), "reordered", ids[3])
    assert ids[2] in line


def test_a_last_record_cut_mid_line_is_caught_by_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, ids = six_records(tmp_path, monkeypatch, every=1)  # a checkpoint after every record
    path = day_file(home)
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last + (len(data) - last) // 2])  # half of the last line, no newline
    result = verify(home)
    assert "unreadable" in result.stdout and f"follows {ids[4]}" in result.stdout, result.stdout
    line = finding(result, "tail missing", ids[5])
    assert ids[4] in line  # the last record found


def test_a_cut_line_of_a_chain_still_open_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, ids = six_records(tmp_path, monkeypatch, every=100)  # only the first record is checkpointed
    assert verify(home).stdout.endswith("5 records after the last checkpoint\n")
    path = day_file(home)
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    result = verify(home)
    assert result.returncode == 1 and "unreadable" in result.stdout and f"follows {ids[4]}" in result.stdout


def test_a_closed_chains_dropped_tail_is_caught_by_its_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(T0)
    with chained_garden(tmp_path, monkeypatch, every=100, clock=clock) as g:
        ids = [chat(g, f"question {i}") for i in range(6)]
        clock.now = T1
        next_day = chat(g)  # the first record of the next day closes this container's chain of DAY
    assert verify(g.home).returncode == 0 and verify(g.home, NEXT_DAY).returncode == 0
    recs = records(day_file(g.home))
    write_records(day_file(g.home), recs[:4])  # the last two records of DAY are gone
    line = finding(verify(g.home), "tail missing", ids[5])
    assert ids[3] in line
    assert verify(g.home, NEXT_DAY).returncode == 0, next_day


def test_records_after_a_closed_chains_head_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(T0)
    with chained_garden(tmp_path, monkeypatch, every=100, clock=clock) as g:
        ids = [chat(g) for _ in range(3)]
        clock.now = T1
        chat(g)
    recs = records(day_file(g.home))
    forged = {**recs[-1], "request_id": str(uuid.uuid4()), "seq": 4, "prev_request_id": ids[2]}
    from chalicelib.audit_chain import record_hash

    forged["prev_hash"] = record_hash(recs[-1])  # a well-linked record appended after the close
    write_records(day_file(g.home), recs + [forged])
    finding(verify(g.home), "after close", forged["request_id"])


def test_a_record_kept_only_in_the_log_is_reconciled_from_the_fallback_lines(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    logger = logging.getLogger(f"test-audit-chain-{uuid.uuid4().hex}")
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    with chained_garden(tmp_path, monkeypatch, every=1, telemetry=LogTelemetry(logger)) as g:
        first = chat(g)
        (g.home / "audit" / "_unidentified").write_text("in the way")  # records with no app cannot be filed
        unsigned = g.chat({"model": "local-echo", "messages": [{"role": "user", "content": CANARY}]}, sign=False)
        assert unsigned.status_code == 403
        last = chat(g)
    lost = unsigned.headers["x-request-id"]
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    fallback = [line for line in logged if line["event"] == "audit_fallback"]
    assert [line["request_id"] for line in fallback] == [lost] and fallback[0]["seq"] == 2
    line = finding(verify(g.home), "missing", lost)
    assert first in line and last in line
    exported = tmp_path / "log-events.txt"  # as exported: a timestamp, a tab, the message
    exported.write_text("".join(f"2026-11-20T10:00:00.000Z\t{json.dumps(x)}\n" for x in logged))
    result = verify(g.home, DAY, "--fallback", str(exported))
    assert result.returncode == 0, result.stdout
    assert "3 records in 1 chains (1 from fallback log lines)" in result.stdout
    events = tmp_path / "filter-log-events.json"  # `aws logs filter-log-events` output
    events.write_text(json.dumps({"events": [{"timestamp": 0, "message": json.dumps(x)} for x in logged]}))
    assert verify(g.home, DAY, "--fallback", str(events)).returncode == 0
    assert CANARY not in stream.getvalue()


def test_a_forged_checkpoint_does_not_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, ids = six_records(tmp_path, monkeypatch, every=1)
    write_records(day_file(home), records(day_file(home))[:4])
    with sqlite3.connect(home / "garden.sqlite3") as db:  # the intruder also rewinds the head ...
        (last,) = db.execute("SELECT last FROM audit_chains").fetchone()
        head = json.loads(last)
        recs = records(day_file(home))
        from chalicelib.audit_chain import record_hash

        head.update(seq=4, request_id=ids[3], hash=record_hash(recs[3]))  # ... without the key
        db.execute("UPDATE audit_chains SET last = ?", (json.dumps(head),))
    result = verify(home)
    assert "signature is invalid" in finding(result, "signature", ids[3])


def test_identical_bodies_correlate_and_no_text_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with chained_garden(tmp_path, monkeypatch, every=1) as g:
        for text in (CANARY, CANARY, f"{CANARY} other"):
            chat(g, text)
    recs = records(day_file(g.home))
    assert recs[0]["body_hmac"] == recs[1]["body_hmac"] != recs[2]["body_hmac"]
    everything = [day_file(g.home).read_bytes(), (g.home / "garden.sqlite3").read_bytes()]
    everything += [p.read_bytes() for p in (g.home / "keys").iterdir()]
    with sqlite3.connect(g.home / "garden.sqlite3") as db:
        checkpoints = [json.loads(c) for row in db.execute("SELECT first, last FROM audit_chains") for c in row]
    everything.append(json.dumps(checkpoints).encode())
    for blob in everything:
        assert CANARY.encode() not in blob
    for checkpoint in checkpoints:
        jsonschema.validate(checkpoint, CHECKPOINT_SCHEMA)
    for key in (g.home / "keys").iterdir():  # the local secrets: the owner's only
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600 and len(key.read_bytes()) == 32


def test_the_schema_names_every_record_field_and_forbids_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A field added to RequestRecord must be added to the audit schema (and thought about) too.
    assert {f.name for f in fields(RequestRecord)} <= set(AUDIT_RECORD_SCHEMA["properties"])
    assert AUDIT_RECORD_SCHEMA["additionalProperties"] is False
    home, _ = six_records(tmp_path, monkeypatch)
    validator = jsonschema.Draft7Validator(AUDIT_RECORD_SCHEMA)
    recs: list[dict[str, Any]] = records(day_file(home))
    for rec in recs:
        validator.validate(rec)
    assert not validator.is_valid({**recs[0], "prompt": "text"})
