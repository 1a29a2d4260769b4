"""Properties of the local PII detector under formatting and Unicode disguises (issue 8).

Valid entities (Luhn cards, mod-97 IBANs, ABA routing numbers, SSNs, emails) are wrapped in random
separators, Unicode digits of other scripts, look-alike letters and invisible characters: each is
still found, and its reported span is exactly the wrapped entity in the original text. The same
wrappers around checksum-invalid numbers yield no report at all.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.pii.checksums import IBAN_LENGTHS, aba_valid, iban_valid, luhn_valid
from chalicelib.pii.local import LocalPiiDetector

DETECTOR = LocalPiiDetector()
SETTINGS = settings(max_examples=200, deadline=None)

# Zero of each script; digit d is chr(zero + d) (the math digits are NFKC forms of ASCII).
DIGIT_ZEROS = [0x30, 0xFF10, 0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50, 0x1D7CE, 0x1D7EC, 0x1040]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff", "\u200e", "\u202c", "\u2066", "\ufe0f",
             "\u034f", "\u180e"]
CARD_SEPARATORS = [" ", "-", ".", "/", "_", "  ", "\t", "\n", "\r\n", " - ", " / ", ":", "\u00a0", "\u202f",
                   "\u2009", "\u3000", "\u2013", "\u2014", "\u2212", "\u2011", "\uff0d", "\u00b7", "\u2022"]
SSN_SEPARATORS = ["-", " ", ".", "/", "_", "  ", " - ", "\u2013", "\u2014", "\u2212", "\u00a0", "\u202f", "\uff0d"]
IBAN_SEPARATORS = [" ", "-", ".", "/", "_", "  ", "\t", "\u00a0", "\u202f", "\u2013", "\u2011"]
HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445",
              "i": "\u0456", "s": "\u0455", "d": "\u0501", "v": "\u03bd", "y": "\u0443", "j": "\u0458"}

before = st.sampled_from(["", "Card ", "pay with ", "x: ", "(", "refund to card ", "Please use\n", "\u00bfpago ", "\u4ed8\u6b3e "])
after = st.sampled_from(["", ".", " thanks", ", ok", ")", " on Monday", "\n", "\u3002", "!"])


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


def _scripted(draw: st.DrawFn, digits: str) -> str:
    """Each digit in a script of its own (ASCII included)."""
    return "".join(chr(draw(st.sampled_from(DIGIT_ZEROS)) + int(d)) for d in digits)


def _invisibles(draw: st.DrawFn, text: str) -> str:
    """Invisible characters at random places strictly inside `text` (so the entity's ends stay put)."""
    chars = list(text)
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(1, len(chars) - 1))
        chars.insert(at, draw(st.sampled_from(INVISIBLE)))
    return "".join(chars)


def _grouped(draw: st.DrawFn, parts: list[str], separators: list[str]) -> str:
    out = parts[0]
    for part in parts[1:]:
        out += draw(st.sampled_from(separators)) + part
    return out


def _luhn_complete(partial: str) -> str:
    return next(partial + d for d in "0123456789" if luhn_valid(partial + d))


CARD_GROUPING = {13: (4, 3, 3, 3), 14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}


@st.composite
def cards(draw: st.DrawFn, valid: bool = True) -> str:
    length = draw(st.sampled_from(sorted(CARD_GROUPING)))
    digits = _luhn_complete(draw(st.sampled_from("3456")) + draw(_digits(length - 2)))
    if not valid:  # one digit changed: Luhn catches every single-digit error
        at = draw(st.integers(0, length - 1))
        digits = digits[:at] + str((int(digits[at]) + draw(st.integers(1, 9))) % 10) + digits[at + 1:]
        assert not luhn_valid(digits)
    grouping = draw(st.sampled_from(["network", "compact", "1", "2", "3"]))
    if grouping == "network":  # 4-4-4-4, 4-6-5, ...
        sizes = CARD_GROUPING[length]
    elif grouping == "compact":
        sizes = (length,)
    else:  # spelled out one, two or three digits at a time
        step = int(grouping)
        sizes = (step,) * (length // step) + ((length % step,) if length % step else ())
    parts, i = [], 0
    for size in sizes:
        parts.append(_scripted(draw, digits[i:i + size]))
        i += size
    return _invisibles(draw, _grouped(draw, parts, CARD_SEPARATORS))


def _iban_for(country: str, bban: str) -> str:
    rearranged = (bban + country + "00").translate({ord(c): str(10 + i) for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")})
    return f"{country}{98 - int(rearranged) % 97:02d}{bban}"


@st.composite
def ibans(draw: st.DrawFn, valid: bool = True) -> str:
    country = draw(st.sampled_from(["DE", "GB", "FR", "ES", "IT", "NL", "BE", "CH", "AT", "PL"]))
    iban = _iban_for(country, draw(_digits(IBAN_LENGTHS[country] - 4)))
    if not valid:
        iban = iban[:2] + f"{(int(iban[2:4]) + draw(st.integers(1, 96))) % 97:02d}" + iban[4:]
        if iban_valid(iban):  # the rare change that lands on another valid pair: "00" and "97"
            iban = iban[:2] + f"{(int(iban[2:4]) + 1) % 100:02d}" + iban[4:]
        assert not iban_valid(iban)
    if draw(st.booleans()):
        iban = iban.lower()
    parts = [iban[i:i + 4] for i in range(0, len(iban), 4)] if draw(st.booleans()) else [iban]
    parts = [parts[0]] + [_scripted(draw, p) if p.isdigit() else p for p in parts[1:]]
    return _invisibles(draw, _grouped(draw, parts, IBAN_SEPARATORS))


@st.composite
def routing_numbers(draw: st.DrawFn, valid: bool = True) -> str:
    prefix = f"{draw(st.sampled_from([*range(1, 13), *range(21, 33), *range(61, 73)])):02d}"
    body = prefix + draw(_digits(6))
    d = [int(c) for c in body]
    check = (10 - (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5]) % 10) % 10
    digits = body + str((check + (0 if valid else draw(st.integers(1, 9)))) % 10)
    assert aba_valid(digits) == valid
    return _invisibles(draw, _scripted(draw, digits))


@st.composite
def ssns(draw: st.DrawFn, valid: bool = True) -> str:
    if valid:
        area = draw(st.integers(1, 899).filter(lambda a: a != 666))
        group, serial = draw(st.integers(1, 99)), draw(st.integers(1, 9999))
    else:
        area = draw(st.sampled_from([0, 666, *range(900, 1000)]))
        group, serial = draw(st.integers(0, 99)), draw(st.integers(0, 9999))
    parts = [_scripted(draw, f"{area:03d}"), _scripted(draw, f"{group:02d}"), _scripted(draw, f"{serial:04d}")]
    return _invisibles(draw, _grouped(draw, parts, SSN_SEPARATORS))


_LOCAL = st.from_regex(r"[a-z][a-z0-9._+]{0,10}[a-z0-9]", fullmatch=True).filter(lambda s: ".." not in s)
_LABEL = st.from_regex(r"[a-z][a-z0-9]{1,12}", fullmatch=True)


@st.composite
def emails(draw: st.DrawFn) -> str:
    domain = ".".join(draw(st.lists(_LABEL, min_size=1, max_size=3))) + "." + draw(st.sampled_from(["com", "co.uk", "de", "bank", "io"]))
    domain = "".join(HOMOGLYPHS[c] if c in HOMOGLYPHS and draw(st.booleans()) else c for c in domain)
    if draw(st.booleans()):
        domain = domain.replace(".", "\uff0e", 1)  # full-width full stop
    at = draw(st.sampled_from(["@", "\uff20", "\ufe6b"]))  # ASCII, full-width, small commercial at
    return _invisibles(draw, draw(_LOCAL) + at + domain)


def _exactly(text: str, entity: str, offset: int, kind: str) -> None:
    got = [(e.type, e.begin, e.end) for e in DETECTOR.detect(text)]
    assert got == [(kind, offset, offset + len(entity))], (text, [(t, text[b:e]) for t, b, e in got])


@SETTINGS
@given(before, cards(), after)
def test_card_in_any_wrapper_is_found_with_its_exact_span(pre: str, card: str, post: str) -> None:
    _exactly(pre + card + post, card, len(pre), "CREDIT_DEBIT_NUMBER")


@SETTINGS
@given(st.sampled_from(["card", "ref", "id:", "x"]), cards(), st.sampled_from(["", "abc", "_x", "z9"]))
def test_card_glued_to_letters_is_found(pre: str, card: str, post: str) -> None:
    _exactly(pre + card + post, card, len(pre), "CREDIT_DEBIT_NUMBER")


@SETTINGS
@given(st.sampled_from(["", "IBAN ", "pay ", "to: ", "Beneficiary account\n"]), ibans(), after)
def test_iban_in_any_wrapper_is_found_with_its_exact_span(pre: str, iban: str, post: str) -> None:
    _exactly(pre + iban + post, iban, len(pre), "INTERNATIONAL_BANK_ACCOUNT_NUMBER")


@SETTINGS
@given(st.sampled_from(["routing number ", "ABA: ", "wire via ", "RTN "]), routing_numbers(), after)
def test_routing_number_in_unicode_digits_is_found_with_its_exact_span(pre: str, aba: str, post: str) -> None:
    _exactly(pre + aba + post, aba, len(pre), "BANK_ROUTING")


@SETTINGS
@given(st.sampled_from(["SSN ", "ssn: ", "His SSN is ", "Verified ", ""]), ssns(), after)
def test_ssn_in_any_wrapper_is_found_with_its_exact_span(pre: str, ssn: str, post: str) -> None:
    _exactly(pre + ssn + post, ssn, len(pre), "SSN")


@SETTINGS
@given(st.sampled_from(["", "mail ", "Contact ", "<", "email: "]), emails(), st.sampled_from(["", " ", ">", ". ", ", ok"]))
def test_email_in_any_disguise_is_found_with_its_exact_span(pre: str, email: str, post: str) -> None:
    _exactly(pre + email + post, email, len(pre), "EMAIL")


@SETTINGS
@given(before, st.one_of(cards(valid=False), ibans(valid=False), routing_numbers(valid=False), ssns(valid=False)), after)
def test_checksum_invalid_numbers_in_the_same_wrappers_are_never_reported(pre: str, number: str, post: str) -> None:
    text = pre + number + post
    assert DETECTOR.detect(text) == [], text
