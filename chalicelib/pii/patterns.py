"""Compiled regular expressions for the local PII detector, built once at import.

Two rules keep this fast and safe:
- Every full-text pattern starts with a plain character class or literal. `re` then skips ahead in
  C to the next possible first character (~130 MB/s); a leading lookbehind disables that and costs
  4x. Boundary checks therefore come right after the first character, as 2-3 char lookbehinds.
- Every pattern is linear: quantifiers are bounded or split by a mandatory delimiter, so no input
  makes the engine backtrack exponentially.
Patterns only find candidates; checksums, ranges and context in `local.py` decide. They run on
`chalicelib.textnorm`'s view, where Unicode digits, spaces and dashes are already ASCII and
invisible characters gone, so ASCII classes are exact.
"""
from __future__ import annotations

import re

from chalicelib.pii.checksums import IBAN_LENGTHS

# After the first digit: it is not glued to a letter/digit/_, nor glued to one via "/" ("1/2"),
# and has no "-" or "." right before it (a minus sign, "ORD-123456789", ".123456789", "v1.2").
# A comma does not glue: "4111...,6011..." is a CSV row, and amounts ("1,234,567") have 3-digit
# groups, too short for any entity here.
LB1 = r"(?<![0-9A-Za-z_][0-9])(?<![0-9A-Za-z]/[0-9])(?<![.-][0-9])"
LA = r"(?![0-9A-Za-z_]|[./-][0-9A-Za-z])"

# Digit runs: groups joined by one space or dash. ABA and every context-anchored number
# (account, CVV, PIN, bare SSN, bare phone) are classified from this single pass.
RUN = re.compile(rf"[0-9]{LB1}[0-9]*(?:[ -][0-9]+)*{LA}")
GROUP = re.compile(r"[0-9]+")

# Card candidates: 13+ digits in groups joined by any short run (1-3) of separators, mixed
# ("4111.1111/1111_1111", tabs, newlines, double spaces): anything but a letter or digit of any
# script, '"' or "@" (so a JSON string boundary never joins: tool arguments are redacted in place,
# and CJK words between numbers keep them apart), "," or ";" (a CSV row or a list of numbers is
# not one number, as before). Letters may touch the run ("card4111...", "...1111abc"): Luhn, not
# the neighbourhood, keeps precision. A lookahead first counts 13 digits with a one-class
# approximation of the separators (any non-ASCII character), so a short number costs one C-level
# probe; the exact separator class (an alternation, slower) runs only on runs.
_CARD_GAP = r"[\s!#-+\--/:<-?\[-`{-~\x80-\U0010ffff]"
CARD_SEP = r'(?:[^\w"@,;]|_)'
CARD_RUN = re.compile(rf"[0-9](?<![0-9][0-9])(?=(?:{_CARD_GAP}{{0,3}}[0-9]){{12}})[0-9]*(?:{CARD_SEP}{{1,3}}[0-9]+)*")

# SSN: AAA-GG-SSSS with any short run of spaces, dashes (en dashes are dashes in the view), dots,
# slashes or underscores between the parts.
_SSN_SEP = r"[ \t._/-]{1,3}"
# Letters may touch it on the left; `grouped.ssns` accepts that only for "ssn123-45-6789".
SSN_SHAPE = re.compile(
    rf"[0-9](?<![0-9_][0-9])(?<![0-9A-Za-z]/[0-9])(?<![.-][0-9])[0-9]{{2}}{_SSN_SEP}[0-9]{{2}}{_SSN_SEP}[0-9]{{4}}{LA}"
)

# IBAN: country + check digits, then up to 32 letters and digits, compact or grouped by short runs
# of spaces, dashes, dots, slashes or underscores (groups of any size: an invisible separator,
# removed in the view, runs two groups together); either case; letters may touch it on the left
# ("ibanDE89..."). `grouped._iban` cuts it at the country's length, on a group boundary; mod-97
# decides. The pass starts on the check digits (rare) rather than the letters (everywhere), then
# looks back for the country.
_IBAN_SEP = r"[ \t._/-]{1,2}"
_IBAN_COUNTRY = "|".join(sorted(IBAN_LENGTHS))  # checked in C: most letter pairs are no country
IBAN = re.compile(
    rf"[0-9](?<=[A-Za-z]{{2}}[0-9])(?i:(?<=(?:{_IBAN_COUNTRY})[0-9]))[0-9]"
    rf"(?:(?:{_IBAN_SEP})?[A-Za-z0-9]){{11,32}}(?![0-9A-Za-z])"
)
ALNUM_GROUP = re.compile(r"[A-Za-z0-9]+")
# BIC: bank, country, location, branch; upper case only (lower-case words would drown it).
SWIFT = re.compile(r"[A-Z](?<![0-9A-Za-z][A-Z])[A-Z]{5}[A-Z0-9]{2}(?:[A-Z0-9]{3})?(?![0-9A-Za-z])")

# Words allowed between a context keyword and its value: "CVV: 123", "PIN number is 1234",
# "account no. 12345678", "expiry date: 12/26". Bounded, so it cannot run away.
_SEP = r"[ \t:=#.\-'\"]{0,4}"
GAP = rf"{_SEP}(?:(?:is|was|number|num|no|code|date|of|on|ending|in)\b{_SEP}){{0,3}}"
# "<keyword><gap>" ending exactly where a digit run starts: searched in the 64 chars before it.
ACCOUNT_BEFORE = re.compile(rf"(?i)(?:\b(?:account|acct|acc)\b|\ba/c\b){GAP}$")
CVV_BEFORE = re.compile(rf"(?i)\b(?:cvv2?|cvc2?|csc|cid|security code|card verification (?:value|code))\b{GAP}$")
PIN_BEFORE = re.compile(rf"(?i)\b(?:pin|passcode)\b{GAP}$")
SSN_BEFORE = re.compile(rf"(?i)(?:\bssn\b|\bss#|\bsocial security(?: number| no\b\.?)?){GAP}$")
PHONE_BEFORE = re.compile(
    rf"(?i)\b(?:phone|tel|telephone|mobile|cell|fax|call|text|whatsapp)\b(?: (?:me|us) (?:at|on))?{GAP}\+?$"
)
SWIFT_BEFORE = re.compile(  # "SWIFT: X", "BIC code is X", "SWIFT/BIC X"; not "SWIFT ... X"
    r"(?i)\b(?:swift|bic)\b[^0-9A-Za-z]{0,3}(?:(?:swift|bic|code|number|no|address|is)\b[^0-9A-Za-z]{0,3}){0,3}$"
)
SWIFT_AFTER = re.compile(r"(?i)[ \t]{0,2}[(\[]?(?:swift|bic)\b")  # "X (BIC)"
VERSION_BEFORE = re.compile(r"(?i)(?:version|ver\.?|release|build|firmware|v)[ :]{0,2}$")

# Keyword-led patterns: run only inside windows that start at the keyword (see local._windows).
EXPIRY = re.compile(
    rf"(?i)\b(?:exp(?:iry|iration|ires|\.)?|valid (?:thru|through|until)|good thru)(?![a-z]){GAP}"
    r"((?:0[1-9]|1[0-2]|[1-9])\s?[/-]\s?(?:20)?[0-9]{2})(?![0-9])"
)
# A password needs an explicit "is", ":" or "=" so that "password reset link" yields nothing.
PASSWORD = re.compile(
    r"(?i)\b(?:password|passwd|pwd|passphrase|passcode)\b[\"']?\s{0,3}(?:is\b|[:=])[ \t\"':=]{0,4}"
    r"([^\s\"'`]{4,64})(?![^\s\"'`])"
)
SECRET_KEY = re.compile(
    r"(?i)secret[a-z_ ]{0,12}[\"']?\s{0,3}(?:is\b|[:=])?[ \t\"':=]{0,4}"
    r"((?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
# Searched in the lower-cased view: "akiaiosfodnn7example" is the same key to anyone who uses it.
ACCESS_KEY = re.compile(r"(?:akia|asia)(?<![a-z0-9]....)[a-z0-9]{16}(?![a-z0-9])")

# EMAIL: find "@domain" (a literal start, so fast), then walk back over the local part in Python.
EMAIL_DOMAIN = re.compile(
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b"
)
EMAIL_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")

# PHONE: one first character ("+", "(" or a digit), then a branch chosen by what it was.
_EXT = r"(?:\s?(?:x|ext\.?|extension)\s?[0-9]{1,6})?"
PHONE = re.compile(
    r"[+(0-9](?<![0-9A-Za-z_+][+(0-9])(?<![0-9A-Za-z][./-][(0-9])(?<![0-9],[(0-9])(?:"
    # +CC, optional (0) trunk, digit groups joined by one separator each: +44 20 7946 0958
    rf"(?<=\+)[1-9][0-9]{{0,2}}(?:[ ./-]?\(0\))?[ ./-]?[0-9]+(?:[ ./-][0-9]+)*{_EXT}"
    # (555) 123-4567 and trunk-0 (0113) 496 0123
    rf"|(?<=\()(?:[2-9][0-9]{{2}}\) ?[0-9]{{3}}[-. ][0-9]{{4}}{_EXT}"
    r"|0[0-9]{1,4}\)[ -]?[0-9]{2,8}(?:[ -][0-9]{2,4}){0,4})"
    # 555-123-4567, 1-800-555-0199, 001-555-123-4567 (the first digit is already consumed)
    rf"|(?<=[2-9])[0-9]{{2}}(?P<s1>[-. /])[0-9]{{3}}(?P=s1)[0-9]{{4}}{_EXT}"
    rf"|(?<=1)[ .-][2-9][0-9]{{2}}(?P<s2>[-. /])[0-9]{{3}}(?P=s2)[0-9]{{4}}{_EXT}"
    rf"|(?<=0)01[ .-][2-9][0-9]{{2}}(?P<s3>[-. /])[0-9]{{3}}(?P=s3)[0-9]{{4}}{_EXT}"
    # trunk-0 national forms: 020 7946 0958, 03 51 44 97 86
    r"|(?<=0)[0-9]{1,4}[ /-][0-9]{2,8}(?:[ /-][0-9]{2,4}){0,4}"
    rf"){LA}"
)

IPV4 = re.compile(r"[0-9](?<![0-9A-Za-z.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![0-9A-Za-z]|\.[0-9])")
# IPv6: find a ":" (literal, fast), then match the whole token from its start.
IPV6_COLON = re.compile(r":[0-9A-Fa-f]{0,4}:")
IPV6 = re.compile(r"[0-9A-Fa-f:]{2,39}(?![0-9A-Za-z:])")
IPV6_CHARS = frozenset("0123456789abcdefABCDEF:")
SPACE = re.compile(r"\s")
HAS_DIGIT = re.compile(r"[0-9]")
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # keeps offsets
