"""Local PII detector: regular expressions find candidates, checksums and context words decide.

The offline stand-in for Amazon Comprehend DetectPiiEntities, with Comprehend's type names so the
two are interchangeable behind `PiiDetector`. Tuned for banking text: precision first on numbers,
because every false card or IBAN is a mangled prompt.

Every rule reads `chalicelib.textnorm`'s view of the text (NFKC, invisible characters removed,
Unicode digits, spaces and dashes as ASCII, look-alike letters as Latin) and reports offsets into
the original text: a card written in full-width digits, with a zero-width space and an en dash
inside, is a card, and redaction replaces exactly what the caller wrote.

Rules worth knowing (the tests pin each one):
- CREDIT_DEBIT_NUMBER (`grouped.py`): 13-19 digits, IIN starting 1-6, Luhn; compact or groups of
  3-8 digits, the first 4+, joined by any short run (1-3) of separators, mixed: spaces, tabs,
  newlines, dashes, dots, slashes, underscores... (not a letter, digit, "@" or '"'); any grouping
  right after a card word ("card", "visa", ...). Letters may touch the number ("card4111...").
  A run of digit groups that is not card-shaped as a whole ("12 4111 1111 1111 1111") is searched
  for a card-shaped window, but only where the groups beside the window could not belong to it
  (fewer than 3 digits, or 13+: a number of its own, as in a CSV row).
- INTERNATIONAL_BANK_ACCOUNT_NUMBER: either case, compact or grouped by 4 (spaces, dashes, dots,
  slashes, underscores); country length + mod-97.
- BANK_ROUTING: 9 bare digits, Fed prefix + 3-7-1 checksum, not part of a longer digit run or id,
  not an amount ("$", "USD", "EUR" beside it). Score 1.0 after "routing"/"ABA"/"RTN", else 0.7.
- SSN: AAA-GG-SSSS with SSA ranges, the parts joined by short runs of spaces, dashes, dots,
  slashes or underscores; 9 bare digits only right after "SSN"/"social security".
- SWIFT_CODE: upper-case 8/11 characters with a real ISO country, not a listed word, and either
  introduced by "SWIFT"/"BIC" ("SWIFT/BIC code: X", "X (BIC)") or carrying a digit in the
  location/branch. Upper-case words ("HOSPITAL" = HOSP+IT+AL) carry no digit, so they need the
  keyword right before them; a keyword elsewhere in the sentence vouches for nothing.
- AWS_ACCESS_KEY: AKIA/ASIA + 16, either case; a key not all upper case needs a digit
  ("asiapacificregions" is a word).
- PHONE: the "+CC", US and trunk-0 national forms, groups joined by a space, dot, dash or slash.
- IP_ADDRESS: a dotted quad with octets <= 255 and no leading zeros is an address, unless a word
  like "version"/"build"/"v" comes right before it ("version 1.2.3.4" is not PII). IPv6: 8 groups,
  or one "::" with at least one digit.
- CVV, EXPIRY, BANK_ACCOUNT_NUMBER, PIN, PASSWORD, AWS_SECRET_KEY: only the value right after a
  context word ("CVV:", "exp", "account no.", "PIN", "password is", "aws_secret_access_key =").
- A number that has the shape of a card, IBAN or SSN but fails its checksum or ranges is claimed
  and reported as nothing, so no digits inside it turn into a phone, routing number or card.
- Overlaps: higher tier wins (email > card/IBAN/access key > routing/SSN/context-anchored/+CC
  phone > SWIFT/IP > national phone), then the longer span, then a context-anchored type over a
  bare checksum hit of the same span ("SSN 123456789" is an SSN even when it passes the ABA
  checksum, which 1 in 10 random 9-digit strings do).
"""
from __future__ import annotations

import re
from typing import Callable

from chalicelib.pii import PiiEntity, grouped, to_original
from chalicelib.pii import patterns as P
from chalicelib.pii.candidates import EMITTED_TYPES, Cand, add, resolve
from chalicelib.pii.checksums import ISO_COUNTRIES, aba_valid, ssn_valid
from chalicelib.pii.type_names import COMPREHEND_TO_GUARDRAILS
from chalicelib.textnorm import normalize

__all__ = ["COMPREHEND_TO_GUARDRAILS", "EMITTED_TYPES", "LocalPiiDetector"]

# Upper-case words shaped like a BIC with a real country in positions 5-6: never a code.
_SWIFT_STOPWORDS = frozenset(
    "BUSINESS ACCOUNTS ADDRESSES CUSTOMER TRANSFERS SETTINGS PROCESSING STATEMENT CHECKING "
    "TRACKING PRESENTS DOCUMENTS MESSAGES ORDERING CHARGING INSTANCE".split()
)
_PASSWORD_STOPWORDS = frozenset(
    "the a an not required incorrect wrong invalid expired too same correct set reset changed "
    "missing empty weak strong case-sensitive sensitive still now being very your my their "
    "for and or with stored hidden protected".split()
)
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_AMOUNT_BEFORE = re.compile(r"[$€£¥][ ]?$")
_AMOUNT_AFTER = re.compile(r"(?i)[ ]?(?:usd|eur|gbp|chf|jpy|dollars|euros|[$€£¥])")
_ZIP4 = re.compile(r"[0-9]{5}-[0-9]{4}")  # US ZIP+4, not a trunk-0 phone number
# A call, not a secret: "os.getcwd()", "password.encode(", "getattr(other,".
_CODE_VALUE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+\(|[A-Za-z_]\w*\(.*[),]$")
_ROUTING_BEFORE = re.compile(r"(?i)\b(?:routing|aba|rtn|transit)\b")
_PHONE_WORDS = ("phone", "tel", "mobile", "cell", "fax", "call", "text", "whatsapp")


class LocalPiiDetector:
    """Pattern + checksum PII detector; stateless and thread-safe (patterns compile at import)."""

    def detect(self, text: str, language: str = "en") -> list[PiiEntity]:
        """Entities sorted by begin, non-overlapping, with offsets into `text`. `language` is
        accepted for the port; the patterns are language-neutral and the context words English."""
        if not text:
            return []
        view = normalize(text)
        return to_original(view, resolve(_candidates(view.text)))


def _candidates(text: str) -> list[Cand]:
    """Every candidate in the view, with view offsets; `_resolve` picks the survivors."""
    found: list[Cand] = []
    lower = text.translate(P.ASCII_LOWER)  # same length as text, so offsets carry over
    if P.HAS_DIGIT.search(text):
        _runs(text, lower, found)
        grouped.cards(text, found)
        grouped.ssns(text, found)
        grouped.ibans(text, found)
        _swifts(text, found)
        _phones(text, found)
        _ipv4(text, found)
        if ":" in text:
            _ipv6(text, found)
        _keyword(P.EXPIRY, text, lower, ("exp", "valid", "good thru"), 60, found, "CREDIT_DEBIT_EXPIRY")
    else:
        _swifts(text, found)  # a BIC without a digit can still follow "SWIFT:"
    if "@" in text:
        _emails(text, found)
    if "akia" in lower or "asia" in lower:
        _access_keys(text, lower, found)
    if "secret" in lower:
        _keyword(P.SECRET_KEY, text, lower, ("secret",), 110, found, "AWS_SECRET_KEY", _looks_like_secret)
    if "pass" in lower or "pwd" in lower:
        _passwords(text, lower, found)
    return found


def _runs(text: str, lower: str, out: list[Cand]) -> None:
    """One pass over bare digit runs: routing numbers by checksum, the rest by context words."""
    for m in P.RUN.finditer(text):
        run = m.group()
        n = len(run)
        if n < 3:
            continue
        b, e = m.span()
        if n >= 13 or not run.isdigit():  # grouped numbers and cards: `grouped`
            continue
        before = max(0, b - 64)
        near = lower[before:b]  # context words must start in the 64 chars before the run
        if n == 9:
            if aba_valid(run) and not _is_amount(text, b, e):
                ctx = _ROUTING_BEFORE.search(text, max(0, b - 30), b)
                add(out, b, e, "BANK_ROUTING", 1.0 if ctx else 0.7)
            if ("ssn" in near or "social security" in near or "ss#" in near) and ssn_valid(run[:3], run[3:5], run[5:]) and P.SSN_BEFORE.search(text, before, b):
                add(out, b, e, "SSN", 0.9)
        if 6 <= n <= 17 and ("acc" in near or "a/c" in near) and P.ACCOUNT_BEFORE.search(text, before, b):
            add(out, b, e, "BANK_ACCOUNT_NUMBER", 0.85)
        if n <= 4 and ("cv" in near or "csc" in near or "cid" in near or "security" in near or "verif" in near) and P.CVV_BEFORE.search(text, before, b):
            add(out, b, e, "CREDIT_DEBIT_CVV", 0.9)
        if 4 <= n <= 8 and ("pin" in near or "passcode" in near) and P.PIN_BEFORE.search(text, before, b):
            add(out, b, e, "PIN", 0.9)
        if 7 <= n <= 15 and any(w in near for w in _PHONE_WORDS) and P.PHONE_BEFORE.search(text, before, b):
            start = b - 1 if text[b - 1 : b] == "+" else b
            add(out, start, e, "PHONE", 0.7)


def _is_amount(text: str, b: int, e: int) -> bool:
    return bool(_AMOUNT_BEFORE.search(text, max(0, b - 2), b) or _AMOUNT_AFTER.match(text, e, e + 9))


def _swifts(text: str, out: list[Cand]) -> None:
    for m in P.SWIFT.finditer(text):
        _swift(text, m, out)


def _swift(text: str, m: re.Match[str], out: list[Cand]) -> None:
    code = m.group()
    if code[4:6] not in ISO_COUNTRIES or code in _SWIFT_STOPWORDS:
        return
    s, e = m.span()
    context = P.SWIFT_BEFORE.search(text, max(0, s - 40), s) or P.SWIFT_AFTER.match(text, e, e + 9)
    # Without a keyword, ask for a digit in the location or an all-digit branch ("CHASUS33",
    # "DEUTDEFF500"); identifiers like "BINUNICODE8" have neither.
    if context or any(c.isdigit() for c in code[6:8]) or code[8:].isdigit():
        add(out, s, e, "SWIFT_CODE", 0.9 if context else 0.75)


def _access_keys(text: str, lower: str, out: list[Cand]) -> None:
    for m in P.ACCESS_KEY.finditer(lower):
        key = text[m.start() : m.end()]
        # Real keys are upper case; a lower- or mixed-case one must at least carry a digit.
        if key.isupper() or any(c.isdigit() for c in key):
            out.append((m.start(), m.end(), "AWS_ACCESS_KEY", 0.95, 4, 0))


def _phones(text: str, out: list[Cand]) -> None:
    for m in P.PHONE.finditer(text):
        s = m.group()
        if _ZIP4.fullmatch(s) or (" " in s and _in_number_list(text, m.start(), m.end())):
            continue
        main = re.split(r"\s?(?:x|ext)", s, maxsplit=1)[0]
        n = sum(c.isdigit() for c in main)
        if s[0] == "+":
            if 8 <= n <= 15:  # E.164 allows 15 digits; a "+CC" form is strong evidence
                add(out, m.start(), m.end(), "PHONE", 0.85, tier=3)
        elif 9 <= n <= 13:
            add(out, m.start(), m.end(), "PHONE", 0.8)


def _in_number_list(text: str, b: int, e: int) -> bool:
    """'96 192 384 768 1536': a space-separated form inside a longer list of numbers."""
    return (b >= 2 and text[b - 1] == " " and text[b - 2].isdigit()) or (
        e + 1 < len(text) and text[e] == " " and text[e + 1].isdigit()
    )


def _ipv4(text: str, out: list[Cand]) -> None:
    for m in P.IPV4.finditer(text):
        octets = m.group().split(".")
        if any(int(o) > 255 or (len(o) > 1 and o[0] == "0") for o in octets):
            continue
        if P.VERSION_BEFORE.search(text, max(0, m.start() - 12), m.start()):
            continue
        add(out, m.start(), m.end(), "IP_ADDRESS", 0.9)


def _ipv6(text: str, out: list[Cand]) -> None:
    pos = 0
    for hint in P.IPV6_COLON.finditer(text):
        if hint.start() < pos:
            continue
        pos = hint.end()
        b = hint.start()
        while b > 0 and hint.start() - b < 40 and text[b - 1] in P.IPV6_CHARS:  # back to token start
            b -= 1
        if b > 0 and (text[b - 1] in P.IPV6_CHARS or text[b - 1].isalnum() or text[b - 1] == "_"):
            continue  # longer than any address, or glued to a word
        m = P.IPV6.match(text, b)
        if not m:
            continue
        pos = m.end()
        if grouped.ipv6_shaped(m.group()):
            add(out, m.start(), m.end(), "IP_ADDRESS", 0.9)


def _windows(lower: str, words: tuple[str, ...], span: int) -> list[tuple[int, int]]:
    """Merged [keyword, keyword + span) windows, each ended at whitespace: a pattern searched with
    an endpos sees a false end of text there, which must not fall inside a token."""
    starts = sorted(i for w in words for i in _find_all(lower, w))
    out: list[tuple[int, int]] = []
    for i in starts:
        end = i + span
        if out and i <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((i, end))
    n = len(lower)
    for k, (b, e) in enumerate(out):
        ws = P.SPACE.search(lower, e) if e < n else None
        out[k] = (b, ws.start() if ws else n)
    return out


def _find_all(haystack: str, needle: str) -> list[int]:
    hits, i = [], haystack.find(needle)
    while i != -1:
        hits.append(i)
        i = haystack.find(needle, i + 1)
    return hits


def _keyword(
    pattern: re.Pattern[str],
    text: str,
    lower: str,
    words: tuple[str, ...],
    span: int,
    out: list[Cand],
    kind: str,
    accept: Callable[[str], bool] | None = None,
) -> None:
    for b, e in _windows(lower, words, span):
        for m in pattern.finditer(text, b, e):
            if accept is None or accept(m.group(1)):
                add(out, m.start(1), m.end(1), kind, 0.9)


def _looks_like_secret(value: str) -> bool:
    # Real keys are random base64: upper, lower and a digit or "/+". A 40-letter word is not one.
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() or c in "/+" for c in value)
    )


def _passwords(text: str, lower: str, out: list[Cand]) -> None:
    for wb, we in _windows(lower, ("pass", "pwd"), 100):
        for m in P.PASSWORD.finditer(text, wb, we):
            begin, end = m.start(1), m.end(1)
            while end > begin and (
                text[end - 1] in ".,;:"
                or (text[end - 1] in _CLOSERS and text.rfind(_CLOSERS[text[end - 1]], max(0, m.start() - 3), begin) != -1)
            ):  # sentence punctuation, or a bracket opened before the keyword: "(password: abc)"
                end -= 1
            value = text[begin:end]
            if len(value) >= 4 and value.lower() not in _PASSWORD_STOPWORDS and not _CODE_VALUE.match(value):
                add(out, begin, end, "PASSWORD", 0.8)


def _emails(text: str, out: list[Cand]) -> None:
    allowed = P.EMAIL_LOCAL_CHARS
    for m in P.EMAIL_DOMAIN.finditer(text):
        at = begin = m.start()
        while begin > 0 and at - begin < 64 and text[begin - 1] in allowed:
            begin -= 1
        while begin < at and text[begin] in ".'":  # "see:.john@x" - trim leading dots and quotes
            begin += 1
        if begin < at:
            add(out, begin, m.end(), "EMAIL", 0.95)
