"""A value built once, on first use, safely across threads.

Adapters take zero-argument factories for their boto3 clients: nothing connects or imports boto3
at start-up (cold start), and the first request that needs a client builds it exactly once.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class OnFirstUse(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
        return self._value
