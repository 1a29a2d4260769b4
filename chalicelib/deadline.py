"""One deadline per request, seen by every AWS call made while serving it.

The pipeline binds the request's `Deadline` in a context variable for the whole request; every
boto3 client the gateway makes is `guard`ed with two botocore hooks that read it:

- `before-call`: a call whose worst case (connect + read timeout) does not fit in the time left is
  not made: DeadlineExceeded (504).
- `needs-retry`: a failure botocore would retry is retried only if the backoff plus the retry's
  worst case still fit; otherwise RetryVetoed (a 504 carrying the last outcome) ends the call.

Work (PII, guardrail, STS, the provider) must fit before `at`. Bookkeeping (the quota ledger, the
audit sink) may also use a short tail after it, so that a paid answer is still settled and audited
and a failed request still releases its reservation; nothing is started that could end after
`at + tail`. With the default 25 s deadline and a 2.5 s tail, no request outlives API Gateway's
29 s (the rest is margin for the Lambda's own start). Outside a request (the scheduled sweep, tests
of one adapter) no deadline is bound and the hooks do nothing.
"""
from __future__ import annotations

import contextvars
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from chalicelib.errors import RetryVetoed, WouldOverrun

TAIL_S = 2.5  # bookkeeping's allowance past the work deadline
# Every AWS client's connect timeout: endpoints connect in milliseconds; a connect that takes half a
# second has lost a SYN, and botocore's retry (when it fits) is quicker than waiting for the resend.
CONNECT_TIMEOUT_S = 0.5
MAX_BACKOFF_S = 20.0  # botocore standard mode's cap; its first backoff is at most 1 s


@dataclass(frozen=True, slots=True)
class Deadline:
    at: float  # monotonic time by which the request's work must be done
    tail_s: float = 0.0  # how long bookkeeping may run past `at`
    monotonic: Callable[[], float] = field(default=time.monotonic, compare=False)

    def remaining(self, bookkeeping: bool = False) -> float:
        return self.at + (self.tail_s if bookkeeping else 0.0) - self.monotonic()


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("garden_deadline", default=None)


def current() -> Deadline | None:
    return _current.get()


def bind(deadline: Deadline) -> contextvars.Token[Deadline | None]:
    return _current.set(deadline)


def unbind(token: contextvars.Token[Deadline | None]) -> None:
    _current.reset(token)


@contextmanager
def bound(deadline: Deadline) -> Iterator[Deadline]:
    token = bind(deadline)
    try:
        yield deadline
    finally:
        unbind(token)


def check(worst_case_s: float, what: str, bookkeeping: bool = False) -> None:
    """Raise WouldOverrun (a DeadlineExceeded) unless a call taking up to `worst_case_s` ends in time."""
    deadline = _current.get()
    if deadline is not None and deadline.remaining(bookkeeping) < worst_case_s:
        raise WouldOverrun(f"the request deadline left no time for the {what} call")


def guard(client: Any, *, connect_timeout: float, read_timeout: float, max_attempts: int,
          bookkeeping: bool = False) -> Any:
    """Register the deadline hooks on a boto3 client made with these timeouts and standard-mode
    `total_max_attempts`; returns the client."""
    from botocore.exceptions import ClientError
    from botocore.retries.standard import RetryContext, StandardRetryConditions

    worst = connect_timeout + read_timeout
    service = client.meta.service_model.service_id.hyphenize()
    retryable = StandardRetryConditions(max_attempts=max_attempts)

    def before_call(**_: Any) -> None:
        check(worst, service, bookkeeping)

    def needs_retry(attempts: int, operation: Any, response: Any = None,
                    caught_exception: BaseException | None = None, request_dict: Any = None,
                    **_: Any) -> None:
        deadline = _current.get()
        if deadline is None:
            return None
        http, parsed = response if response is not None else (None, None)
        context = RetryContext(attempt_number=attempts, operation_model=operation, parsed_response=parsed,
                               http_response=http, caught_exception=caught_exception,
                               request_context=(request_dict or {}).get("context", {}))
        if not retryable.is_retryable(context):
            return None  # botocore will not retry either: the outcome stands as it is
        backoff = min(2.0 ** (attempts - 1), MAX_BACKOFF_S)  # the most botocore may sleep first
        if deadline.remaining(bookkeeping) - backoff >= worst:
            return None
        last = caught_exception if caught_exception is not None else ClientError(parsed, operation.name)
        raise RetryVetoed(last)

    # First, so a veto is decided before botocore's own handler sleeps.
    client.meta.events.register_first(f"before-call.{service}", before_call)
    client.meta.events.register_first(f"needs-retry.{service}", needs_retry)
    return client
