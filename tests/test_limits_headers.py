"""OpenAI's rate-limit headers and the cost header, as chalicelib/ratelimit_headers.py renders them."""
from __future__ import annotations

import pytest

from chalicelib.ratelimit_headers import Window, cost_header, duration, ratelimit_headers


@pytest.mark.parametrize(("seconds", "text"), [
    (0.02, "20ms"), (0.0001, "1ms"), (1, "1s"), (59.5, "59.5s"), (360, "6m0s"), (3725, "1h2m5s"),
    (86399.25, "23h59m59.25s"), (0, "0ms"),
])
def test_duration_in_openais_form(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_for_each_kind_the_window_with_the_least_remaining() -> None:
    headers = ratelimit_headers([
        Window("tokens", 1000, 900, 30), Window("tokens", 100_000, 400, 3600), Window("requests", 60, 59, 30),
    ])
    assert headers == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "100000", "x-ratelimit-remaining-tokens": "400",
        "x-ratelimit-reset-tokens": "1h0m0s",
    }


def test_a_kind_without_a_window_has_no_trio_and_remaining_is_never_negative() -> None:
    assert ratelimit_headers([Window("tokens", 10, -5, 1)]) == {
        "x-ratelimit-limit-tokens": "10", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1s"}
    assert ratelimit_headers([]) == {}


@pytest.mark.parametrize(("cost", "text"), [
    (0.000375, "0.000375"), (1e-05, "0.00001"), (1e-08, "0.00000001"), (0.0, "0"), (12.5, "12.5"), (3.0, "3"),
])
def test_cost_is_a_plain_decimal(cost: float, text: str) -> None:
    assert cost_header(cost) == {"x-garden-cost-usd": text}
