"""Verify a day of the audit trail: every record's link, every chain's checkpoints (its head).

Input: the day's stored records in the order the store keeps them (a JSON lines file's order; S3
objects have none), the `audit_fallback` log lines (records the store refused, carrying their chain
position), and the chains the ledger registered with their first and last checkpoints. Findings
name the record by its request id:
- altered: a record's hash is not what the next record (or a checkpoint) holds for it;
- missing: a sequence number with no record (named by the next record's `prev_request_id`);
- reordered / duplicate: a file holds a chain's records out of sequence;
- unreadable / invalid: a line that is not JSON (cut short) or not an audit record (schema);
- tail missing: the head (last checkpoint) names a record beyond the last one found;
- chain missing: registered, no record found; unregistered: records whose chain has no checkpoint;
- after close: records past a closed chain's head; signature: a checkpoint that does not verify.
A chain still open (records after its last checkpoint) is checked by its links up to its last record.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from chalicelib.audit_chain import GENESIS, record_hash
from chalicelib.store.audit_chains import RegisteredChain

_REQUEST_ID = re.compile(r'"request_id":"([^"]{1,200})"')
_CHAIN_ID = re.compile(r'"chain_id":"([^"]{1,200})"')


@dataclass
class Stored:
    """One stored record: `record` None when its text is not JSON (e.g. cut mid-line)."""

    where: str  # file:line, or the S3 key
    record: dict[str, Any] | None
    text: str = ""
    ordered: bool = True  # False: the store keeps no order (S3)
    key_request_id: str | None = None  # S3: the request id its object key names


@dataclass(frozen=True)
class Finding:
    problem: str
    request_id: str | None
    chain_id: str | None
    seq: int | None
    detail: str

    def line(self) -> str:
        where = f" (chain {self.chain_id}" + (f", seq {self.seq})" if self.seq else ")") if self.chain_id else ""
        return f"{self.problem}: record {self.request_id or '(unknown id)'}{where}: {self.detail}"


@dataclass
class Report:
    day: str
    chains: int = 0
    records: int = 0
    from_fallback: int = 0
    heads: int = 0
    open_records: int = 0  # records after their chain's last checkpoint (checked by links only)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self, limit: int = 20) -> list[str]:
        figures = (f"{self.records} records in {self.chains} chains ({self.from_fallback} from fallback log lines), "
                   f"{self.heads} heads checked, {self.open_records} records after the last checkpoint")
        if self.ok:
            return [f"audit trail {self.day}: OK: {figures}"]
        # In chain order: each chain's first problem is the first line naming it.
        ordered = sorted(self.findings, key=lambda f: (f.chain_id or "", f.seq or 0))
        broken = len({f.chain_id for f in ordered})
        lines = [f"audit trail {self.day}: BROKEN: {len(ordered)} problems in {broken} chains; {figures}"]
        lines += [f"  {finding.line()}" for finding in ordered[:limit]]
        if len(ordered) > limit:
            lines.append(f"  ... and {len(ordered) - limit} more")
        return lines


SignatureCheck = Callable[[Mapping[str, Any]], "bool | None"]  # None: no key to check it with


def verify_day(day: str, stored: Iterable[Stored], registered: Iterable[RegisteredChain],
               check_signature: SignatureCheck, fallback: Iterable[Mapping[str, Any]] = (),
               validate_record: Callable[[Any], Any] | None = None,
               validate_checkpoint: Callable[[Any], Any] | None = None) -> Report:
    if validate_record is None or validate_checkpoint is None:
        from chalicelib.generated.audit_checkpoint_validator import validate as checkpoint_validator
        from chalicelib.generated.audit_record_validator import validate as record_validator

        validate_record = validate_record or record_validator
        validate_checkpoint = validate_checkpoint or checkpoint_validator
    report = Report(day)
    findings = report.findings
    chains: dict[str, list[dict[str, Any]]] = {}
    ordered: dict[str, bool] = {}
    last_in_file: dict[str, str] = {}
    for item in stored:
        source = item.where.rsplit(":", 1)[0]
        rec = item.record
        if rec is None:
            rid = _match(_REQUEST_ID, item.text)
            after = last_in_file.get(source)
            findings.append(Finding("unreadable", rid, _match(_CHAIN_ID, item.text), None,
                                    f"{item.where} is not a whole JSON record (cut short?)"
                                    + (f"; it follows {after}" if after else "")))
            continue
        report.records += 1
        rid = str(rec.get("request_id"))
        last_in_file[source] = rid
        if not _valid(validate_record, rec, findings, rid, item.where):
            if not isinstance(rec.get("chain_id"), str) or not isinstance(rec.get("seq"), int):
                continue
        if item.key_request_id is not None and item.key_request_id != rid:
            findings.append(Finding("misfiled", rid, rec.get("chain_id"), rec.get("seq"),
                                    f"object {item.where} holds another request's record"))
        if str(rec.get("timestamp", ""))[:10] != day or not str(rec.get("chain_id", "")).startswith(day + "."):
            findings.append(Finding("misfiled", rid, rec.get("chain_id"), rec.get("seq"),
                                    f"{item.where} is filed under {day} but its record is not of that day"))
            continue
        chains.setdefault(rec["chain_id"], []).append(rec)
        ordered[rec["chain_id"]] = item.ordered
    logged: dict[str, dict[int, dict[str, Any]]] = {}
    for line in fallback:
        rec = {k: v for k, v in line.items() if k in _RECORD_KEYS}
        if not str(rec.get("chain_id", "")).startswith(day + ".") or not isinstance(rec.get("seq"), int):
            continue
        if _valid(validate_record, rec, findings, str(rec.get("request_id")), "a fallback log line"):
            logged.setdefault(rec["chain_id"], {}).setdefault(rec["seq"], rec)
    heads = {chain.chain_id: chain for chain in registered}
    for chain_id in sorted(set(chains) | set(logged) | set(heads)):
        _verify_chain(chain_id, chains.get(chain_id, []), ordered.get(chain_id, True), logged.get(chain_id, {}),
                      heads.get(chain_id), check_signature, validate_checkpoint, report)
    return report


def _verify_chain(chain_id: str, stored: list[dict[str, Any]], in_order: bool, logged: dict[int, dict[str, Any]],
                  head: RegisteredChain | None, check_signature: SignatureCheck,
                  validate_checkpoint: Callable[[Any], Any], report: Report) -> None:
    findings = report.findings
    report.chains += 1

    def add(problem: str, rec_id: str | None, seq: int | None, detail: str) -> None:
        findings.append(Finding(problem, rec_id, chain_id, seq, detail))

    if in_order:  # a file: its records must come in sequence
        for before, rec in zip(stored, stored[1:], strict=False):
            if rec["seq"] < before["seq"]:
                add("reordered", before["request_id"], before["seq"],
                    f"stored before {rec['request_id']} (seq {rec['seq']})")
                break
    by_seq: dict[int, dict[str, Any]] = {}
    for rec in stored:
        if rec["seq"] in by_seq:
            add("duplicate", rec["request_id"], rec["seq"], f"seq {rec['seq']} is stored twice")
        else:
            by_seq[rec["seq"]] = rec
    for seq, rec in logged.items():
        if seq not in by_seq:
            by_seq[seq] = rec
            report.from_fallback += 1
            report.records += 1
        elif record_hash(by_seq[seq]) != record_hash(rec):
            add("altered", rec["request_id"], seq, "the stored record differs from its fallback log line")
    top = max(by_seq, default=0)
    seq = 1
    while seq <= top:
        rec = by_seq.get(seq)
        if rec is None:
            nxt = min(s for s in by_seq if s > seq)
            after = by_seq.get(seq - 1)
            add("missing", by_seq[nxt].get("prev_request_id"), nxt - 1,
                (f"seq {seq} not found" if nxt == seq + 1 else f"seq {seq}..{nxt - 1} not found")
                + (f" after {after['request_id']}" if after else "")
                + f", before {by_seq[nxt]['request_id']} (seq {nxt})")
            seq = nxt + 1
            continue
        before = by_seq.get(seq - 1)
        if seq == 1 and (rec.get("prev_hash") != GENESIS or rec.get("prev_request_id") is not None):
            add("altered", rec["request_id"], seq, "the chain's first record does not start the chain")
        elif before is not None and (rec.get("prev_hash") != record_hash(before)
                                     or rec.get("prev_request_id") != before["request_id"]):
            add("altered", before["request_id"], seq - 1,
                f"its hash is not the one {rec['request_id']} (seq {seq}) holds for it")
        seq += 1
    if head is None:
        if by_seq:
            first = by_seq[min(by_seq)]
            add("unregistered", first["request_id"], first["seq"],
                "the chain has no checkpoint in the ledger: its tail cannot be checked")
        return
    report.heads += 1
    if not by_seq:
        add("chain missing", head.last.get("request_id"), head.last.get("seq"),
            f"registered (head at seq {head.last.get('seq')}), no record of it found")
        return
    for name, checkpoint in (("first", head.first), ("last", head.last)):
        if not _checkpoint_ok(name, checkpoint, chain_id, check_signature, validate_checkpoint, add):
            return
    last = head.last
    if last["seq"] > top:
        add("tail missing", last["request_id"], last["seq"],
            f"the head names seq {last['seq']} ({last['request_id']}); the last record found is "
            f"{by_seq[top]['request_id']} (seq {top})")
    for checkpoint in (head.first, last):
        rec = by_seq.get(checkpoint["seq"])
        if rec is not None and (record_hash(rec) != checkpoint["hash"] or rec["request_id"] != checkpoint["request_id"]):
            add("altered", rec["request_id"], rec["seq"], "it does not match the chain's signed checkpoint")
    if last["closed"] and top > last["seq"]:
        extra = by_seq.get(last["seq"] + 1) or by_seq[top]
        add("after close", extra["request_id"], extra["seq"], "recorded after the chain was closed")
    report.open_records += max(0, top - last["seq"])


def _checkpoint_ok(name: str, checkpoint: Mapping[str, Any], chain_id: str, check_signature: SignatureCheck,
                   validate: Callable[[Any], Any], add: Callable[[str, str | None, int | None, str], None]) -> bool:
    try:
        validate(dict(checkpoint))
    except Exception as exc:  # noqa: BLE001 - the generated validator's error
        add("signature", checkpoint.get("request_id"), None, f"the {name} checkpoint is malformed ({_reason(exc)})")
        return False
    if checkpoint["chain_id"] != chain_id:
        add("signature", checkpoint["request_id"], checkpoint["seq"], f"the {name} checkpoint names another chain")
        return False
    verdict = check_signature(checkpoint)
    if verdict is None:
        add("signature", checkpoint["request_id"], checkpoint["seq"],
            f"no key to check the {name} checkpoint's signature ({checkpoint['alg']}, {checkpoint['key']})")
        return False
    if not verdict:
        add("signature", checkpoint["request_id"], checkpoint["seq"], f"the {name} checkpoint's signature is invalid")
        return False
    return True


def _valid(validate: Callable[[Any], Any], rec: Mapping[str, Any], findings: list[Finding], rid: str,
           where: str) -> bool:
    try:
        validate(dict(rec))
        return True
    except Exception as exc:  # noqa: BLE001 - the generated validator's error
        findings.append(Finding("invalid", rid, rec.get("chain_id") if isinstance(rec.get("chain_id"), str) else None,
                                rec.get("seq") if isinstance(rec.get("seq"), int) else None,
                                f"{where} is not an audit record ({_reason(exc)})"))
        return False


def _reason(exc: BaseException) -> str:
    # The validator's message names the rule and path, never a value's text beyond the schema's words.
    return str(getattr(exc, "message", type(exc).__name__))[:200]


def _match(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None


def _record_keys() -> frozenset[str]:
    from chalicelib.audit_schema import AUDIT_RECORD_SCHEMA

    return frozenset(AUDIT_RECORD_SCHEMA["properties"])


_RECORD_KEYS = _record_keys()
