"""`x-garden-controls`: which controls ran on a /v1 request and what each decided.

Every /v1 answer, success or error, streamed or not, carries one header naming all six stages in a
fixed order, so a business unit's app (and an auditor holding its audit record, which keeps the
same `controls` map) can prove which controls applied to a call:

    identity=iam; quota=reserved; pii-in=redact:2; guardrail-in=pass; pii-out=none; guardrail-out=pass

Values are stage verdicts or counts, never content (README "Controls header" has the vocabulary):
- identity: `iam` (API Gateway's IAM authorizer), `sigv4-local` (the gateway verified SigV4 itself),
  `denied` (signature, principal or app refused).
- quota: `reserved` (held on the ledger, then settled or released), `unmetered` (the store was down
  and the app fails open), `rejected` (a limit refused the request: 429), `unavailable` (the store
  was down and the app fails closed: 503).
- pii-in / pii-out: `none` (screened, nothing found) or `<action>:<count>` per action taken, joined
  by `,` in the order block, redact, mask, allow (`redact:2,mask:1`); `fail-open` (detector down, the
  app fails open: text passed unscreened); `unavailable` (detector down, failed closed: 503).
- guardrail-in / guardrail-out: `pass`, `mask`, `block`, `fail-open`, `unavailable`.
- any stage: `not-run` (on this route, but the request ended before the stage gave a verdict) or
  `n/a` (this route has no such stage: embeddings have no output, /v1/models has only identity).

Stages note their verdicts in the request record as they run (`note_*`); the frame renders the
header once, at the end (`header`).
"""
from __future__ import annotations

from collections.abc import Mapping

from chalicelib.errors import GatewayError, QuotaExceeded
from chalicelib.record import RequestRecord

HEADER = "x-garden-controls"

IDENTITY, QUOTA = "identity", "quota"
PII_IN, GUARDRAIL_IN, PII_OUT, GUARDRAIL_OUT = "pii-in", "guardrail-in", "pii-out", "guardrail-out"
STAGES = (IDENTITY, QUOTA, PII_IN, GUARDRAIL_IN, PII_OUT, GUARDRAIL_OUT)

NOT_RUN, NOT_APPLICABLE = "not-run", "n/a"
DENIED = "denied"
RESERVED, UNMETERED, REJECTED = "reserved", "unmetered", "rejected"
NONE_FOUND, PASS, MASK, BLOCK = "none", "pass", "mask", "block"
FAIL_OPEN, UNAVAILABLE = "fail-open", "unavailable"

# The stages each governed route has; the others answer `n/a`.
_ROUTE_STAGES: Mapping[str, frozenset[str]] = {
    "chat.completions": frozenset(STAGES),
    "embeddings": frozenset((IDENTITY, QUOTA, PII_IN, GUARDRAIL_IN)),
    "models.list": frozenset((IDENTITY,)),
    "models.retrieve": frozenset((IDENTITY,)),
}
_PII_ACTIONS = ("BLOCK", "REDACT", "MASK", "ALLOW")  # the header's order; policy.py's actions
_DETECTOR_FAIL_OPEN = "DETECTOR_UNAVAILABLE"  # the PII outcome key stages.py counts a fail-open under
# Identity adapters by class name: compared, never imported (a Lambda never loads the local one).
_IDENTITY_KINDS = {"IamContextIdentity": "iam", "LocalSigV4Identity": "sigv4-local"}


def identity_kind(identity: object) -> str:
    """What `identity=` says for a verified caller of this adapter."""
    return _IDENTITY_KINDS.get(type(identity).__name__, "custom")


def note(record: RequestRecord, stage: str, verdict: str) -> None:
    record.controls[stage] = verdict


def note_pii(record: RequestRecord, direction: str, counts: Mapping[str, int]) -> None:
    """`counts`: the PII outcome of one screen ("<TYPE>:<ACTION>" -> n); merged with an earlier
    screen of the same direction."""
    stage = PII_IN if direction == "input" else PII_OUT
    if any(key.startswith(_DETECTOR_FAIL_OPEN + ":") for key in counts):
        record.controls[stage] = FAIL_OPEN
        return
    totals = _parse_pii(record.controls.get(stage, ""))
    for key, n in counts.items():
        action = key.rsplit(":", 1)[-1]
        totals[action] = totals.get(action, 0) + n
    parts = [f"{a.lower()}:{totals[a]}" for a in _PII_ACTIONS if totals.get(a)]
    record.controls[stage] = ",".join(parts) or NONE_FOUND


def note_guardrail(record: RequestRecord, source: str, action: str) -> None:
    """`action`: the verdict's NONE | MASKED | BLOCKED, or FAIL_OPEN / UNAVAILABLE."""
    stage = GUARDRAIL_IN if source == "INPUT" else GUARDRAIL_OUT
    record.controls[stage] = {"NONE": PASS, "MASKED": MASK, "BLOCKED": BLOCK}.get(action, action)


def note_reservation(record: RequestRecord, unmetered: bool, budget_pace: float | None) -> None:
    record.controls[QUOTA] = UNMETERED if unmetered else RESERVED
    record.budget_pace = budget_pace


def note_error(record: RequestRecord, error: GatewayError) -> None:
    """What an error says about a control that did not note it itself: a quota refusal."""
    if isinstance(error, QuotaExceeded):
        record.controls[QUOTA] = REJECTED


def header(record: RequestRecord) -> dict[str, str]:
    """The header for a /v1 answer, every stage named, in order."""
    on_route = _ROUTE_STAGES.get(record.route, frozenset(STAGES))
    return {HEADER: "; ".join(
        f"{stage}={record.controls.get(stage, NOT_RUN) if stage in on_route else NOT_APPLICABLE}"
        for stage in STAGES)}


def not_run_header() -> dict[str, str]:
    """For a /v1 answer the pipeline never saw (an unknown route, a method Chalice refused)."""
    return {HEADER: "; ".join(f"{stage}={NOT_RUN}" for stage in STAGES)}


def interventions(record: RequestRecord) -> int:
    """Guardrail verdicts that masked or blocked (0, 1 or 2), for the metrics."""
    return sum(record.controls.get(s) in (MASK, BLOCK) for s in (GUARDRAIL_IN, GUARDRAIL_OUT))


def fail_opens(record: RequestRecord) -> int:
    """Controls that let a request through unchecked because their dependency was down."""
    return sum(v in (FAIL_OPEN, UNMETERED) for v in record.controls.values())


def _parse_pii(value: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in value.split(","):
        action, _, n = part.partition(":")
        if n.isdigit():
            out[action.upper()] = int(n)
    return out
