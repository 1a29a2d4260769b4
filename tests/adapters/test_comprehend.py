"""ComprehendPiiDetector through the REAL boto3 client against a loopback Comprehend: offsets,
chunking under the 100 KB limit, the normalised view it is sent, languages, faults. Only 127.0.0.1 is reached."""
from __future__ import annotations

import logging
import socket
import time
from typing import Any, Iterator

import boto3
import pytest
from botocore.config import Config

from chalicelib.catalog import PiiPolicy
from chalicelib.errors import ServiceUnavailable
from chalicelib.pii import PiiEntity
from chalicelib.pii.comprehend import MAX_BYTES, ComprehendPiiDetector, chunks, comprehend_language
from chalicelib.pii.policy import apply_policy
from fakes.comprehend_server import Canned, Detect, Fail, FakeComprehend, Hang, Throttle, find_entities

CANARY = "canary.secret@example.com"


@pytest.fixture
def fake() -> Iterator[FakeComprehend]:
    with FakeComprehend() as server:
        yield server


def client(fake: FakeComprehend, read_timeout: float = 5) -> Any:
    # As the composition root builds it, pointed at the fake.
    config = Config(connect_timeout=2, read_timeout=read_timeout,
                    retries={"mode": "standard", "total_max_attempts": 2})
    return boto3.client("comprehend", region_name="us-east-1", endpoint_url=fake.endpoint_url, config=config)


def detector(fake: FakeComprehend, **kwargs: Any) -> ComprehendPiiDetector:
    timeout = kwargs.pop("read_timeout", 5)
    return ComprehendPiiDetector(lambda: client(fake, timeout), **kwargs)


def spans(text: str, entities: list[PiiEntity]) -> list[tuple[str, str]]:
    return [(e.type, text[e.begin:e.end]) for e in entities]


def test_aws_documented_example_pins_exclusive_end_offsets(fake: FakeComprehend) -> None:
    # Comprehend developer guide, "PII real-time analysis (API)": the response AWS shows for this
    # text. Its CREDIT_DEBIT_NUMBER (69, 88) is exactly the 19 characters of the card: EndOffset is
    # exclusive. (The same example's NAME and ADDRESS end one character late, 18 and 138 on a
    # 137-character text: the page's text was edited. The adapter clamps ends to the text.)
    text = ("Hello Paul Santos. The latest statement for your credit card account 1111-0000-1111-0000 "
            "was mailed to 123 Any Street, Seattle, WA 98109.")
    fake.script = [Canned([
        {"Score": 0.9999669790267944, "Type": "NAME", "BeginOffset": 6, "EndOffset": 18},
        {"Score": 0.8905550241470337, "Type": "CREDIT_DEBIT_NUMBER", "BeginOffset": 69, "EndOffset": 88},
        {"Score": 0.9999889731407166, "Type": "ADDRESS", "BeginOffset": 103, "EndOffset": 138},
    ])]
    found = detector(fake).detect(text)
    card = next(e for e in found if e.type == "CREDIT_DEBIT_NUMBER")
    assert text[card.begin:card.end] == "1111-0000-1111-0000"
    assert [text[e.begin:e.begin + 4] for e in found] == ["Paul", "1111", "123 "]
    assert max(e.end for e in found) == len(text)  # 138 clamped


def test_offsets_exact_after_non_ascii_text(fake: FakeComprehend) -> None:
    # 2-, 3- and 4-byte characters (and one outside the BMP, two UTF-16 units) before the entities:
    # offsets stay code points, i.e. Python str indices.
    text = f"Olá José — 🙂𝄞 ünïcödé: mail {CANARY} or call (555) 123-4567, card 4111 1111 1111 1111."
    found = detector(fake).detect(text)
    assert spans(text, found) == [("EMAIL", CANARY), ("PHONE", "(555) 123-4567"),
                                  ("CREDIT_DEBIT_NUMBER", "4111 1111 1111 1111")]
    assert [e.begin for e in found] == sorted(e.begin for e in found)


def test_comprehend_reads_the_normalised_view_and_redaction_hits_the_original(fake: FakeComprehend) -> None:
    # Invisible characters, a full-width "@", a dot leader, full-width digits, a no-break space and
    # an en dash: the fake's ASCII patterns find nothing in this text as written, everything in
    # the view. The offsets it answers are view offsets; the adapter maps them back.
    email = "ja\u200bne.doe\uff20exam\u0440le\u2024com"
    card = "\uff14\uff11\uff11\uff11\u00a01111\u200b1111\u20131111"
    text = f"Olá 🙂, mail {email} or card {card}\u2060 today."
    found = detector(fake).detect(text)
    assert spans(text, found) == [("EMAIL", email), ("CREDIT_DEBIT_NUMBER", card)]
    sent = fake.requests[0]
    assert sent["format_chars"] == 0 and sent["non_ascii_digits"] == 0
    assert sent["chars"] < len(text)  # the invisible characters were not sent
    policy = PiiPolicy(input={"default": "REDACT"}, output={"default": "REDACT"})
    redacted, _ = apply_policy(text, found, policy, "input")
    assert redacted == "Olá 🙂, mail [EMAIL] or card [CREDIT_DEBIT_NUMBER]\u2060 today."


def test_view_is_chunked_and_offsets_map_back_across_chunks(fake: FakeComprehend) -> None:
    # 275 KB as written, 125 KB as the view: two calls, not three, and every entity (each with
    # an invisible character inside) comes back as its exact original span, one near the cut.
    unit = "word\u200b\u200b "
    units = [unit] * 25_000
    emails = {100: "a\u200bone@example.com", 19_990: "near\u00adcut@example.com", 24_000: "l\u2060ast@example.com"}
    for at, email in emails.items():
        units[at] = f"{email} "
    text = "".join(units)
    assert len(text.encode("utf-8")) > 2 * MAX_BYTES
    found = detector(fake).detect(text)
    assert len(fake.requests) == 2 and max(r["bytes"] for r in fake.requests) <= MAX_BYTES
    assert all(r["format_chars"] == 0 for r in fake.requests)
    assert spans(text, found) == [("EMAIL", email) for email in emails.values()]


def test_min_score_filters_and_overlaps_resolve(fake: FakeComprehend) -> None:
    text = "call 555-123-4567 now"
    fake.script = [Canned([
        {"Score": 0.4, "Type": "NAME", "BeginOffset": 0, "EndOffset": 4},  # below min_score
        {"Score": 0.6, "Type": "BANK_ACCOUNT_NUMBER", "BeginOffset": 5, "EndOffset": 12},
        {"Score": 0.9, "Type": "PHONE", "BeginOffset": 5, "EndOffset": 17},
        {"Score": 0.9, "Type": "PHONE", "BeginOffset": 5, "EndOffset": 17},
    ])]
    assert spans(text, detector(fake).detect(text)) == [("PHONE", "555-123-4567")]


def test_language_fallback(fake: FakeComprehend) -> None:
    d = detector(fake)
    for language in ("es", "es-MX", "fr", "de", ""):
        d.detect(f"escribe a {CANARY}", language)
    assert [r["language"] for r in fake.requests] == ["es", "es", "en", "en", "en"]
    assert comprehend_language("EN_gb") == "en"


def test_empty_text_makes_no_call(fake: FakeComprehend) -> None:
    assert detector(fake).detect("") == []
    assert fake.requests == []


def test_client_created_once_and_lazily(fake: FakeComprehend) -> None:
    made: list[int] = []

    def factory() -> Any:
        made.append(1)
        return client(fake)

    d = ComprehendPiiDetector(factory)
    assert made == []
    d.detect("a"), d.detect("b")
    assert made == [1]


def test_250_kb_text_is_chunked_under_the_limit(fake: FakeComprehend) -> None:
    sentence = "The quick brown fox jumps over the lazy dog. "
    text = sentence * (250_000 // len(sentence))
    emails = [1_000, 99_950, 150_000, 240_000]  # one near the first cut
    for at in emails:
        text = text[:at] + f" e{at}@example.com " + text[at + 20:]
    found = detector(fake).detect(text)
    assert len(fake.requests) >= 3
    assert max(r["bytes"] for r in fake.requests) <= MAX_BYTES  # no TextSizeLimitExceededException
    assert spans(text, found) == [("EMAIL", f"e{at}@example.com") for at in emails]


def test_multibyte_text_is_chunked_by_bytes_not_characters(fake: FakeComprehend) -> None:
    text = "€" * 40_000 + " x@example.com " + "😀" * 30_000  # 70k characters, 240k bytes
    found = detector(fake).detect(text)
    assert len(fake.requests) >= 3
    assert max(r["bytes"] for r in fake.requests) <= MAX_BYTES
    assert spans(text, found) == [("EMAIL", "x@example.com")]


def test_entity_straddling_a_hard_cut_is_found_once_and_whole(fake: FakeComprehend) -> None:
    # No whitespace near the limit, so the first chunk is cut at exactly 100,000 bytes, inside the
    # email's ".com": that chunk sees "...@example.co" (a valid, shorter email), the next the whole.
    email = "straddle.person@example.com"
    prefix = "#" * (MAX_BYTES - len(email) + 1)  # the cut falls before the final "m"
    text = prefix + email + "#" * 50 + " and " + "#" * 150_000
    assert [c for _, c in chunks(text)][0].endswith("@example.co")
    found = detector(fake).detect(text)
    assert spans(text, found) == [("EMAIL", email)]
    assert found[0].begin == len(prefix)


def test_entity_in_the_overlap_is_reported_once(fake: FakeComprehend) -> None:
    text = "word " * 19_990 + "mail overlap@example.com here " + "word " * 19_000
    cuts = chunks(text)
    assert len(cuts) == 2 and "overlap@example.com" in cuts[0][1] and "overlap@example.com" in cuts[1][1]
    found = detector(fake).detect(text)
    assert spans(text, found) == [("EMAIL", "overlap@example.com")]


def test_chunks_cover_the_text_and_cut_on_whitespace() -> None:
    text = "Una frase corta. " * 20_000
    pieces = chunks(text)
    assert all(len(c.encode()) <= MAX_BYTES for _, c in pieces)
    for (start, chunk), (next_start, _) in zip(pieces, pieces[1:], strict=False):
        assert next_start < start + len(chunk)  # overlap
        assert chunk.endswith(". ")  # a sentence end
    assert pieces[-1][0] + len(pieces[-1][1]) == len(text)


@pytest.mark.parametrize("fault", [Fail(), Throttle(), Fail("InvalidRequestException", 400)])
def test_faults_raise_service_unavailable_without_text(fake: FakeComprehend, fault: Fail,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="chalicelib")
    fake.script = [fault]
    with pytest.raises(ServiceUnavailable) as caught:
        detector(fake).detect(f"mail {CANARY}")
    assert caught.value.code == "pii_unavailable"
    for rendered in (str(caught.value), repr(caught.value), repr(caught.value.__cause__)):
        assert CANARY not in rendered and "SECRET-PII-TEXT" not in rendered
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("chalicelib")]
    assert ours and not any(CANARY in m or "SECRET" in m for m in ours)


def test_throttle_then_success_is_retried_by_botocore(fake: FakeComprehend) -> None:
    fake.script = [Throttle(), Detect()]
    assert spans(CANARY, detector(fake).detect(CANARY)) == [("EMAIL", CANARY)]
    assert len(fake.requests) == 2


def test_hang_times_out_quickly(fake: FakeComprehend) -> None:
    fake.script = [Hang(30)]
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as caught:
        detector(fake, read_timeout=0.5).detect(CANARY)
    assert time.monotonic() - started < 5
    assert caught.value.code == "pii_unavailable"


def test_unreachable_endpoint() -> None:
    with socket.socket() as probe:  # a free loopback port: nothing listens there once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    d = ComprehendPiiDetector(lambda: boto3.client(
        "comprehend", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(connect_timeout=1, retries={"mode": "standard", "total_max_attempts": 1})))
    with pytest.raises(ServiceUnavailable):
        d.detect(CANARY)


def test_no_credentials(fake: FakeComprehend, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    d = ComprehendPiiDetector(lambda: boto3.session.Session().client(
        "comprehend", region_name="us-east-1", endpoint_url=fake.endpoint_url))
    with pytest.raises(ServiceUnavailable):
        d.detect(CANARY)


def test_fake_enforces_the_limit(fake: FakeComprehend) -> None:
    # The fake's own contract, seen with urllib: the limit error is JSON 1.1's shape.
    import json
    import urllib.error
    import urllib.request

    def post(text: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(fake.endpoint_url + "/", method="POST",
                                         data=json.dumps({"Text": text, "LanguageCode": "en"}).encode(),
                                         headers={"X-Amz-Target": "Comprehend_20171127.DetectPiiEntities",
                                                  "Content-Type": "application/x-amz-json-1.1"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    assert post("é" * 50_001) == (400, {"__type": "TextSizeLimitExceededException",
                                        "message": f"Input text size exceeds limit. Max length of "
                                                   f"request text allowed is {MAX_BYTES} bytes"})
    assert post(CANARY) == (200, {"Entities": find_entities(CANARY)})
