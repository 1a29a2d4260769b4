"""The gateway's botocore clients, as the composition root hands them to adapters.

`aws_client(...)` is a factory the adapter calls on first use (botocore costs ~100 ms to import):
one client per service, region and settings on the process's one botocore session (session.py),
held to the request's deadline (chalicelib/deadline.py) and traced once tracing is on.
"""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.tracing import instrument_aws


def aws_client(service: str, region: str, read_timeout: float, bookkeeping: bool = False) -> Callable[[], Any]:
    """A factory for a botocore client; adapters call it on first use: botocore costs ~100 ms to
    import. One client per service, region and settings, on the process's one botocore session
    (chalicelib/aws/session.py: no boto3, endpoint data loaded once). Every client is held to the
    request's deadline (chalicelib/deadline.py); `bookkeeping` clients (ledger, audit) may use its
    short tail. Read timeouts: a few times the service's usual latency, and small enough that a call
    started late still fits the deadline."""

    def make() -> Any:
        from chalicelib import deadline
        from chalicelib.aws import session

        quiet_botocore()

        def new() -> Any:
            client = session.new_client(service, region, connect_timeout=deadline.CONNECT_TIMEOUT_S,
                                        read_timeout=read_timeout, max_attempts=2)
            guarded = deadline.guard(client, connect_timeout=deadline.CONNECT_TIMEOUT_S, read_timeout=read_timeout,
                                     max_attempts=2, bookkeeping=bookkeeping)
            return instrument_aws(guarded)  # a span per AWS call once tracing is on (tracing/aws_calls.py)

        return session.shared_client(service, (region, read_timeout, bookkeeping), new)

    return make


def quiet_botocore() -> None:
    # botocore logs request bodies, prompts included, at DEBUG: never let a root logger's DEBUG
    # reach them (memoryless).
    import logging

    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
