"""A loopback Amazon Comprehend that answers DetectPiiEntities with offsets computed on the text it
was sent (moto answers canned offsets), so tests drive the REAL boto3 client through endpoint_url.

botocore 1.44 speaks smithy-rpc-v2-cbor to Comprehend (its model lists that protocol first):
`POST /service/Comprehend_20171127/operation/DetectPiiEntities`, CBOR bodies. The fake also answers
JSON 1.1 (`POST /`, `X-Amz-Target: Comprehend_20171127.DetectPiiEntities`) for older clients.

    with FakeComprehend([Throttle(), Detect()]) as fake:   # one behaviour per call; the last repeats
        boto3.client("comprehend", endpoint_url=fake.endpoint_url, region_name="us-east-1")

Entities: EMAIL, CREDIT_DEBIT_NUMBER (16 digits, optional space/dash groups), PHONE (US). Offsets
are code points, EndOffset exclusive, as Comprehend's. Texts over 100,000 UTF-8 bytes get
TextSizeLimitExceededException. Requests are recorded as sizes only (no text kept).
"""
from __future__ import annotations

import json
import re
import struct
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence, Union

MAX_BYTES = 100_000
TARGET = "Comprehend_20171127.DetectPiiEntities"
CBOR_PATH = "/service/Comprehend_20171127/operation/DetectPiiEntities"
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


class FakeComprehend:
    def __init__(self, script: Behaviour | Sequence[Behaviour] = Detect()) -> None:
        self.script = [script] if isinstance(script, (Detect, Canned, Fail, Hang)) else list(script)
        self.requests: list[dict[str, Any]] = []  # {"bytes", "chars", "language", "protocol"}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeComprehend":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def next_behaviour(self, text: str, language: str, protocol: str) -> Behaviour:
        with self._lock:
            n = len(self.requests)
            self.requests.append({"bytes": len(text.encode("utf-8")), "chars": len(text),
                                  "language": language, "protocol": protocol})
            return self.script[min(n, len(self.script) - 1)]


def _handler(fake: FakeComprehend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == CBOR_PATH:
                self.cbor = True
                body = cbor_decode(raw)
            elif self.path == "/" and self.headers.get("X-Amz-Target") == TARGET:
                self.cbor = False
                body = json.loads(raw or b"{}")
            else:
                self.cbor = self.headers.get("smithy-protocol") == "rpc-v2-cbor"
                return self._error(404, "UnknownOperationException", "unknown operation")
            text, language = str(body.get("Text", "")), str(body.get("LanguageCode", ""))
            behaviour = fake.next_behaviour(text, language, "cbor" if self.cbor else "json")
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
            self._send(200, {"Entities": entities})

        def _error(self, status: int, code: str, message: str) -> None:
            # rpc-v2-cbor names errors by shape id; JSON 1.1 by bare name. botocore reads both.
            name = f"com.amazonaws.comprehend#{code}" if self.cbor else code
            self._send(status, {"__type": name, "message": message})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            if self.cbor:
                payload, headers = cbor_encode(body), {"Content-Type": "application/cbor",
                                                       "smithy-protocol": "rpc-v2-cbor"}
            else:
                payload, headers = json.dumps(body).encode(), {"Content-Type": "application/x-amz-json-1.1"}
            try:
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(payload)),
                                    "x-amzn-RequestId": "00000000-0000-0000-0000-000000000000"}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

    return Handler


# A minimal CBOR (RFC 8949) codec: what botocore sends and reads for this operation, no more.
def cbor_encode(value: Any) -> bytes:
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _head(3, len(data)) + data
    if isinstance(value, (list, tuple)):
        return _head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor_encode(k) + cbor_encode(v) for k, v in value.items())
    raise TypeError(type(value).__name__)


def _head(major: int, n: int) -> bytes:
    for limit, extra, fmt in ((24, None, ""), (1 << 8, 24, ">B"), (1 << 16, 25, ">H"), (1 << 32, 26, ">I")):
        if n < limit:
            return bytes([major << 5 | n]) if extra is None else bytes([major << 5 | extra]) + struct.pack(fmt, n)
    return bytes([major << 5 | 27]) + struct.pack(">Q", n)


def cbor_decode(data: bytes) -> Any:
    value, _ = _item(data, 0)
    return value


def _item(data: bytes, i: int) -> tuple[Any, int]:
    major, info, i = data[i] >> 5, data[i] & 0x1F, i + 1
    if major == 7:
        simple = {20: False, 21: True, 22: None, 23: None}
        if info in simple:
            return simple[info], i
        size, fmt = {25: (2, ">e"), 26: (4, ">f"), 27: (8, ">d")}[info]
        return struct.unpack(fmt, data[i:i + size])[0], i + size
    if info == 31:  # indefinite length: items until the break byte 0xff
        items: list[Any] = []
        while data[i] != 0xFF:
            item, i = _item(data, i)
            items.append(item)
        i += 1
        if major in (2, 3):
            return (b"" if major == 2 else "").join(items), i
        return (items if major == 4 else dict(zip(items[::2], items[1::2]))), i
    if info < 24:
        n = info
    else:
        size = 1 << (info - 24)
        n, i = int.from_bytes(data[i:i + size], "big"), i + size
    if major == 0:
        return n, i
    if major == 1:
        return -1 - n, i
    if major in (2, 3):
        raw = data[i:i + n]
        return (raw if major == 2 else raw.decode("utf-8")), i + n
    if major == 6:  # a tag: keep the tagged value
        return _item(data, i)
    out: list[Any] = []
    for _ in range(n * (2 if major == 5 else 1)):
        item, i = _item(data, i)
        out.append(item)
    return (out if major == 4 else dict(zip(out[::2], out[1::2]))), i
