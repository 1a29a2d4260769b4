"""The OpenAI-compatible API through the whole pipeline, in process (chalice.test.Client).

Every request is SigV4-signed by botocore and verified by the gateway's local identity adapter;
every body is validated against OpenAI's own schemas.
"""
from __future__ import annotations

import json
import time

import pytest
from support import BLOCK_KEY_ID, OTHER_KEY_ID, QUOTA_KEY_ID, Garden
from openai_schema import validate

from chalicelib.quota import utc_day


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def sse_events(body: bytes) -> list[str]:
    text = body.decode()
    assert text.endswith("data: [DONE]\n\n")
    return [block[len("data: "):] for block in text.split("\n\n") if block]


def test_health_needs_no_auth(garden: Garden) -> None:
    response = garden.request("GET", "/health", sign=False)
    assert response.status_code == 200
    assert json.loads(response.body)["status"] == "ok"


def test_chat_completion_echoes_redacted_prompt(garden: Garden) -> None:
    response = garden.chat({
        "model": "local-echo",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "Card 4111 1111 1111 1111, mail jane.doe@example.com, S3 ok"},
        ],
        "temperature": 0.2, "top_p": 0.9, "user": "u-1", "metadata": {"ticket": "T-1"},
        "some_future_field": {"ignored": True},
    })
    assert response.status_code == 200, response.body
    body = json.loads(response.body)
    validate(body, "CreateChatCompletionResponse")
    assert body["choices"][0]["message"]["content"] == "Card [CREDIT_DEBIT_NUMBER], mail [EMAIL], S3 ok"
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert response.headers["x-garden-deployment"] == "local-echo/echo-1"
    assert response.headers["x-request-id"]


def test_text_content_parts_and_developer_role(garden: Garden) -> None:
    response = garden.chat({
        "model": "local-echo",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "part one, "}, {"type": "text", "text": "two"}]},
        ],
    })
    assert response.status_code == 200, response.body
    # Parts are read as one text, joined with nothing, as a model reads them.
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "part one, two"


def test_max_tokens_truncates_with_length(garden: Garden) -> None:
    response = garden.chat({"model": "local-echo", "messages": user("x" * 100), "max_tokens": 5})
    body = json.loads(response.body)
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["message"]["content"] == "x" * 20


def test_max_completion_tokens_is_clamped_to_model_limit(garden: Garden) -> None:
    # echo-small allows 8 output tokens: asking for 10,000 is clamped, not refused.
    response = garden.chat({"model": "echo-small", "messages": user("y" * 400), "max_completion_tokens": 10_000})
    body = json.loads(response.body)
    assert response.status_code == 200
    assert body["usage"]["completion_tokens"] == 8
    assert body["choices"][0]["finish_reason"] == "length"


def test_stop_sequence_cuts_reply(garden: Garden) -> None:
    body = json.loads(garden.chat({"model": "local-echo", "messages": user("one two END three"),
                                   "stop": ["END"]}).body)
    assert body["choices"][0]["message"]["content"] == "one two "


def test_stream_is_buffered_sse_with_usage(garden: Garden) -> None:
    response = garden.chat({"model": "local-echo", "messages": user("stream me please"),
                            "stream": True, "stream_options": {"include_usage": True}})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    events = sse_events(response.body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "stream me please"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert len({c["id"] for c in chunks}) == 1


def test_stream_without_usage_has_no_usage_chunk(garden: Garden) -> None:
    events = sse_events(garden.chat({"model": "local-echo", "messages": user("hi"), "stream": True}).body)
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_models_list_only_allowed(garden: Garden) -> None:
    response = garden.request("GET", "/v1/models")
    body = json.loads(response.body)
    validate(body, "ListModelsResponse")
    assert sorted(m["id"] for m in body["data"]) == ["echo-small", "local-echo"]


def test_model_retrieve(garden: Garden) -> None:
    response = garden.request("GET", "/v1/models/local-echo")
    assert response.status_code == 200
    validate(json.loads(response.body), "Model")


@pytest.mark.parametrize("model_id", ["echo-hidden", "no-such-model"])
def test_model_not_allowed_or_unknown_is_404(garden: Garden, model_id: str) -> None:
    for response in (garden.request("GET", f"/v1/models/{model_id}"),
                     garden.chat({"model": model_id, "messages": user("hi")})):
        assert response.status_code == 404
        body = json.loads(response.body)
        validate(body, "ErrorResponse")
        assert body["error"]["code"] == "model_not_found" and body["error"]["param"] == "model"


def test_denied_word_is_blocked_before_the_provider(garden: Garden) -> None:
    response = garden.chat({"model": "local-echo", "messages": user("Promise GUARANTEED returns now")})
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["code"] == "content_filter"


def test_pii_block_mask_and_allow_per_type(garden: Garden) -> None:
    blocked = garden.chat({"model": "local-echo", "messages": user("pay 4111-1111-1111-1111")},
                          key_id=BLOCK_KEY_ID)
    assert blocked.status_code == 400
    error = json.loads(blocked.body)["error"]
    assert error["code"] == "pii_blocked" and "CREDIT_DEBIT_NUMBER" in error["message"]
    assert "4111" not in error["message"]
    masked = garden.chat({"model": "local-echo",
                          "messages": user("IBAN GB82 WEST 1234 5698 7654 32 from a@b.co")},
                         key_id=BLOCK_KEY_ID)
    content = json.loads(masked.body)["choices"][0]["message"]["content"]
    # Input: the IBAN is masked to its last four digits and the email allowed; output: the default
    # REDACT policy then catches the email on its way back.
    assert content == "IBAN **** **** **** **** **54 32 from [EMAIL]"


def test_unknown_principal_is_403(garden: Garden) -> None:
    response = garden.chat({"model": "local-echo", "messages": user("hi")}, key_id=OTHER_KEY_ID)
    assert response.status_code == 403
    assert json.loads(response.body)["error"]["code"] == "unknown_principal"


@pytest.mark.parametrize("kwargs", [{"sign": False}, {"secret": "wrong-secret"}, {"key_id": "AKIANOSUCHKEY0000000"}])
def test_bad_signatures_are_403(garden: Garden, kwargs: dict) -> None:
    response = garden.chat({"model": "local-echo", "messages": user("hi")}, **kwargs)
    assert response.status_code == 403
    body = json.loads(response.body)
    validate(body, "ErrorResponse")
    assert body["error"]["type"] == "permission_error"


def test_small_quota_app_gets_429_and_no_reservation_leaks(garden: Garden) -> None:
    # 200 tokens a day; each call reserves its prompt estimate (17 here) + max_tokens.
    ok = garden.chat({"model": "local-echo", "messages": user("a" * 40), "max_tokens": 50}, key_id=QUOTA_KEY_ID)
    assert ok.status_code == 200, ok.body
    # 27 used by the first call + 17 + 180 reserved > 200, though 197 alone would fit.
    over = garden.chat({"model": "local-echo", "messages": user("a" * 40), "max_tokens": 180},
                       key_id=QUOTA_KEY_ID)
    assert over.status_code == 429
    assert json.loads(over.body)["error"]["type"] == "rate_limit_error"
    assert int(over.headers["retry-after"]) > 0
    too_big = garden.chat({"model": "local-echo", "messages": user("a"), "max_tokens": 500}, key_id=QUOTA_KEY_ID)
    assert too_big.status_code == 429
    now = time.time()
    usage = garden.ledger.usage("small-quota-app", utc_day(now), now)
    assert usage.reserved == 0 and usage.requests == 1
