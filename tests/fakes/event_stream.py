"""AWS event-stream framing (application/vnd.amazon.eventstream), for fakes of services that answer
with one: Bedrock's ConverseStream, SageMaker's InvokeEndpointWithResponseStream."""
from __future__ import annotations

import binascii
import json
import struct
from typing import Any, Mapping

CONTENT_TYPE = "application/vnd.amazon.eventstream"


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (total len, headers len, CRC32), string headers (type 7),
    payload, message CRC32 over everything before it."""
    encoded = b"".join(
        struct.pack(">B", len(name.encode())) + name.encode() + b"\x07"
        + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def event(event_type: str, body: Mapping[str, Any]) -> bytes:
    """An event whose payload is a JSON structure (Bedrock's stream members)."""
    return frame({":message-type": "event", ":event-type": event_type,
                  ":content-type": "application/json"}, json.dumps(body).encode())


def blob_event(event_type: str, payload: bytes) -> bytes:
    """An event whose payload is the member's raw bytes (`eventpayload` blobs: SageMaker's PayloadPart)."""
    return frame({":message-type": "event", ":event-type": event_type,
                  ":content-type": "application/octet-stream"}, payload)


def exception_frame(exception_type: str, body: Mapping[str, Any]) -> bytes:
    return frame({":message-type": "exception", ":exception-type": exception_type,
                  ":content-type": "application/json"}, json.dumps(body).encode())
