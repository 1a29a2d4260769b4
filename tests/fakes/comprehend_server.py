"""A loopback Amazon Comprehend that answers DetectPiiEntities with offsets computed on the text it
was sent (moto answers canned offsets), so tests drive the REAL boto3 client through endpoint_url.

Protocol: JSON 1.1, `POST /` with `X-Amz-Target: Comprehend_20171127.DetectPiiEntities`. botocore
1.44's model also lists smithy-rpc-v2-cbor, but botocore resolves json first; if a later botocore
switched, this fake would answer 404 and the tests would say so.

    with FakeComprehend([Throttle(), Detect()]) as fake:   # one behaviour per call; the last repeats
        boto3.client("comprehend", endpoint_url=fake.endpoint_url, region_name="us-east-1")

Entities: EMAIL, CREDIT_DEBIT_NUMBER (16 digits, optional space/dash groups), PHONE (US). Offsets
are code points, EndOffset exclusive, as Comprehend's. Texts over 100,000 UTF-8 bytes get
TextSizeLimitExceededException. Requests are recorded as sizes and character classes only (no
text kept): enough to show whether a caller sent a normalised view (ASCII digits, no invisible
format characters) without keeping what it said.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Sequence, Union

from fakes.loopback import AwsHandler, LoopbackServer

MAX_BYTES = 100_000
TARGET = "Comprehend_20171127.DetectPiiEntities"
JSON_1_1 = "application/x-amz-json-1.1"
PATTERNS = (
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    ("CREDIT_DEBIT_NUMBER", re.compile(r"(?<!\d)\d{4}(?:[ -]?\d{4}){3}(?!\d)")),
    ("PHONE", re.compile(r"(?<!\d)(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}(?!\d)")),
)


@dataclass(frozen=True)
class Detect:
    """Find entities with the regexes above."""


@dataclass(frozen=True)
class Canned:
    entities: Sequence[dict[str, Any]]  # answered as given, whatever the text


@dataclass(frozen=True)
class Fail:
    code: str = "InternalServerException"
    status: int = 500
    message: str = "failed on: SECRET-PII-TEXT"  # a service message may quote input: must not leak


def Throttle() -> Fail:
    return Fail("ThrottlingException", 400, "Rate exceeded")


@dataclass(frozen=True)
class Hang:
    seconds: float


Behaviour = Union[Detect, Canned, Fail, Hang]


def find_entities(text: str) -> list[dict[str, Any]]:
    return [{"Score": 0.99, "Type": kind, "BeginOffset": m.start(), "EndOffset": m.end()}
            for kind, pattern in PATTERNS for m in pattern.finditer(text)]


class FakeComprehend(LoopbackServer):
    def __init__(self, script: Behaviour | Sequence[Behaviour] = Detect()) -> None:
        self.script = [script] if isinstance(script, (Detect, Canned, Fail, Hang)) else list(script)
        self.requests: list[dict[str, Any]] = []  # {"bytes", "chars", "language", ...}
        super().__init__(_handler(self))

    def next_behaviour(self, text: str, language: str) -> Behaviour:
        with self._lock:
            n = len(self.requests)
            self.requests.append({"bytes": len(text.encode("utf-8")), "chars": len(text),
                                  "language": language,
                                  "format_chars": sum(unicodedata.category(c) == "Cf" for c in text),
                                  "non_ascii_digits": sum(c.isdigit() and not c.isascii() for c in text)})
            return self.script[min(n, len(self.script) - 1)]


def _handler(fake: FakeComprehend) -> type[BaseHTTPRequestHandler]:
    class Handler(AwsHandler):
        def do_POST(self) -> None:
            raw = self.read_body()
            if self.path != "/" or self.headers.get("X-Amz-Target") != TARGET:
                return self._error(404, "UnknownOperationException", "unknown operation")
            body = json.loads(raw or b"{}")
            text, language = str(body.get("Text", "")), str(body.get("LanguageCode", ""))
            behaviour = fake.next_behaviour(text, language)
            if isinstance(behaviour, Hang):
                if fake.stopping.wait(behaviour.seconds):
                    return
                behaviour = Detect()
            if isinstance(behaviour, Fail):
                return self._error(behaviour.status, behaviour.code, behaviour.message)
            if len(text.encode("utf-8")) > MAX_BYTES:
                return self._error(400, "TextSizeLimitExceededException",
                                   "Input text size exceeds limit. Max length of request text allowed "
                                   f"is {MAX_BYTES} bytes")
            if language not in ("en", "es"):
                return self._error(400, "UnsupportedLanguageException", "unsupported language")
            entities = list(behaviour.entities) if isinstance(behaviour, Canned) else find_entities(text)
            self.send_json(200, {"Entities": entities}, JSON_1_1)

        def _error(self, status: int, code: str, message: str) -> None:
            self.send_json(status, {"__type": code, "message": message}, JSON_1_1)

    return Handler
