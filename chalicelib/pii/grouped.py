"""The checksum numbers whose digit groups a caller may join any way: cards, SSNs and IBANs.

Each reads `chalicelib.textnorm`'s view (digits ASCII, invisible characters gone) and lets the
checksum or the SSA ranges, not the separators, decide: "4111.1111/1111_1111", "123–45–6789" and
"de89-3704-0044-0532-0130-00" are what they look like. A number of the right shape that fails its
check is claimed as BLOCK, so no phone number or shorter card is found inside it.
"""
from __future__ import annotations

import re

from chalicelib.pii import patterns as P
from chalicelib.pii.candidates import BLOCK, Cand, add
from chalicelib.pii.checksums import IBAN_LENGTHS, iban_valid, luhn_valid, ssn_valid

# A card word just before a 13-19 digit run lets any grouping through to Luhn ("card 41 11 1111...").
_CARD_BEFORE = re.compile(r"(?i)\b(?:card|visa|mastercard|amex|maestro|discover|pan|cc|credit|debit)\b")


# A table's cell border, "2019 | 2020": whitespace on one side of a "|" at least. A bare "|" joins.
_CELL_BORDER = re.compile(r"\s+\|\s*|\|\s+")


def cards(text: str, out: list[Cand]) -> None:
    for m in P.CARD_RUN.finditer(text):
        if ":" in m.group() and _in_ipv6(text, m.start(), m.end()):
            continue  # "3230:6269:4442:7352:eb61:..." is an address, whatever its digits
        if _in_hex_token(text, m.start(), m.end()):
            continue  # "91afc4c2917059721285db72...": a hash's digits
        if "|" in m.group():  # the cells of a table row are separate numbers
            cut = m.start()
            for border in _CELL_BORDER.finditer(text, m.start(), m.end()):
                _card_run(text, cut, border.start(), out)
                cut = border.end()
            _card_run(text, cut, m.end(), out)
        else:
            _card_run(text, m.start(), m.end(), out)


def _card_run(text: str, offset: int, end: int, out: list[Cand]) -> None:
    run = text[offset:end]
    groups = [g.span() for g in P.GROUP.finditer(run)]
    sizes = [e - b for b, e in groups]
    shaped = _card_shaped(sizes)
    if shaped or (13 <= sum(sizes) <= 19 and _CARD_BEFORE.search(text, max(0, offset - 40), offset)):
        digits = "".join(run[b:e] for b, e in groups)
        if digits[0] in "123456" and luhn_valid(digits):
            add(out, offset, end, "CREDIT_DEBIT_NUMBER", 1.0)
            return
        if shaped:  # a mistyped card is still not a phone number or a shorter card
            out.append((offset, end, BLOCK, 0.0, 3, -1))
            return
    _card_windows(run, offset, groups, sizes, out)


def _in_hex_token(text: str, b: int, e: int) -> bool:
    """A run with hex letters glued on both sides, inside one token of hex digits and dashes of 16+
    characters touching no other letter: a hash or a UUID. "card4111...", "4111...abc" are not."""
    if not (b and e < len(text) and text[b - 1] in _HEX and text[e] in _HEX):
        return False
    while b and text[b - 1] in _HEX_OR_DASH:
        b -= 1
    while e < len(text) and text[e] in _HEX_OR_DASH:
        e += 1
    return e - b >= 16 and not (b and text[b - 1].isalnum()) and not (e < len(text) and text[e].isalnum())


_HEX = frozenset("0123456789abcdefABCDEF")
_HEX_OR_DASH = _HEX | {"-"}


def _in_ipv6(text: str, b: int, e: int) -> bool:
    """Whether a colon of text[b:e] belongs to an IPv6 address with a hex letter or a "::" (all
    digits and colons, "41:11:11:11:11:11:11:11" is a card spelled out, and Luhn decides)."""
    at = text.find(":", b, e)
    while at != -1:
        start, end = at, at + 1
        while start > 0 and text[start - 1] in P.IPV6_CHARS:
            start -= 1
        while end < len(text) and text[end] in P.IPV6_CHARS:
            end += 1
        token = text[start:end]
        if ipv6_shaped(token) and ("::" in token or any(c in "abcdefABCDEF" for c in token)):
            return True
        at = text.find(":", end, e)
    return False


def ipv6_shaped(s: str) -> bool:
    """Eight groups of 1-4 hex digits, or fewer around one "::" with at least one digit."""
    if ":::" in s or s.count("::") > 1:
        return False
    if "::" in s:
        head, tail = s.split("::")
        parts = (head.split(":") if head else []) + (tail.split(":") if tail else [])
        ok = len(parts) <= 7 and any(c.isdigit() for c in s)
    else:
        parts = s.split(":")
        ok = len(parts) == 8
    return ok and all(1 <= len(p) <= 4 for p in parts)


def _card_windows(run: str, offset: int, groups: list[tuple[int, int]], sizes: list[int], out: list[Cand]) -> None:
    """A card-shaped window of a longer run, where the groups beside it cannot belong to it."""
    i = 0
    while i < len(groups):
        for size in range(min(5, len(groups) - i), 0, -1):
            j = i + size
            left_ok = i == 0 or sizes[i - 1] < 3 or sizes[i - 1] >= 13
            right_ok = j == len(groups) or sizes[j] < 3 or sizes[j] >= 13
            if left_ok and right_ok and _card_shaped(sizes[i:j]):
                digits = "".join(run[b:e] for b, e in groups[i:j])
                if digits[0] in "123456" and luhn_valid(digits):
                    add(out, offset + groups[i][0], offset + groups[j - 1][1], "CREDIT_DEBIT_NUMBER", 1.0)
                    i = j - 1
                    break
        i += 1


def _card_shaped(sizes: list[int]) -> bool:
    """13-19 digits, compact or in groups of 3-8 with the first of 4+: 4-4-4-4, 4-6-5, 4-4-4-4-3,
    and two groups run together by an invisible separator (8-4-4); or spelled out one, two or three
    digits at a time ("4 1 1 1 ...", "41 11 11 ..."), the last group shorter at most. Mixed short
    groups are timestamps, dates and phone numbers ("2024-01-15 10:30:45"): only a card word
    vouches for them."""
    if not 13 <= sum(sizes) <= 19:
        return False
    if len(sizes) == 1 or (sizes[0] >= 4 and all(3 <= s <= 8 for s in sizes)):
        return True
    step = sizes[0]
    return step <= 3 and all(s == step for s in sizes[:-1]) and sizes[-1] <= step


def ssns(text: str, out: list[Cand]) -> None:
    for m in P.SSN_SHAPE.finditer(text):
        if m.start() and text[m.start() - 1].isalpha() and text[max(0, m.start() - 3) : m.start()].lower() != "ssn":
            continue  # "INV123-45-6789" is an id; "ssn123-45-6789" is an SSN
        area, group, serial = P.GROUP.findall(m.group())
        if ssn_valid(area, group, serial):
            add(out, m.start(), m.end(), "SSN", 0.95)
        else:  # 000-12-3456 is not an SSN, nor a phone number
            out.append((m.start(), m.end(), BLOCK, 0.0, 3, -1))


def ibans(text: str, out: list[Cand]) -> None:
    # A match runs on over the words after an IBAN ("... 2444. pay NL16 KWGL ..."): the next search
    # starts where the IBAN was cut, or one character on, so the next IBAN is not swallowed.
    m = P.IBAN.search(text)
    while m:
        begin = m.start() - 2  # the pattern starts on the check digits; the country is before them
        glued = begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] == "_")
        end = _iban(text[begin : m.end()], begin, out, claim=not glued)
        m = P.IBAN.search(text, end or m.start() + 1)


def _iban(s: str, offset: int, out: list[Cand], claim: bool) -> int:
    """Find the IBAN at the start of `s`; return where it ends in the text, 0 if none. A mistyped
    one is claimed (BLOCK, so no card hides inside) only when `claim` and it is grouped like an
    IBAN: inside another token ("...GPAE34 pay IT14") two letters and two digits are a coincidence.
    Valid or not, it must be grouped like an IBAN."""
    want = IBAN_LENGTHS.get(s[:2].upper())
    if want is None:
        return 0
    groups: list[str] = []  # up to where the groups add up to the country's length, or within 2
    end = count = groups_end = 0
    for g in P.ALNUM_GROUP.finditer(s):
        count += g.end() - g.start()
        if count > want + 2:
            break
        if count >= want - 2:
            groups_end = len(groups) + 1
            end = g.end()
        groups.append(g.group())
        if count == want:
            break
    if not end:
        return 0
    groups = groups[:groups_end]
    exact = sum(map(len, groups)) == want
    compact = "".join(groups).upper()
    if 2 * sum(c.isdigit() for c in compact[4:]) < len(compact) - 4:
        return 0  # mostly letters after the check digits: words ("de12 this is a test"), not a BBAN
    if not _grouped_like_an_iban(groups):
        return 0  # "...-ba02-472c252d4a5f took": a UUID's tail and a word, whatever mod-97 says
    if exact and iban_valid(compact):
        add(out, offset, offset + end, "INTERNATIONAL_BANK_ACCOUNT_NUMBER", 1.0)
        return offset + end
    if claim:
        out.append((offset, offset + end, BLOCK, 0.0, 4, -1))
        return offset + end
    return 0


def _grouped_like_an_iban(groups: list[str]) -> bool:
    """Compact, or groups of four (two run together by an invisible separator: eight), the last
    shorter; only the bank code ("GB82 WEST ...") may be letters alone."""
    return len(groups) == 1 or (
        all(len(g) % 4 == 0 for g in groups[:-1]) and not any(g.isalpha() for i, g in enumerate(groups) if i != 1)
    )
