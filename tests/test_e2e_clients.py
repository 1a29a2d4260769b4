"""Real clients against a real local server (the one `make run` serves): the official openai SDK and
requests, SigV4-signed by botocore through the documented client module (client/garden_auth.py)."""
from __future__ import annotations

import openai
import pytest
import requests
from botocore.credentials import Credentials
from local_server import Server
from openai_schema import validate
from support import KEY_ID, SECRET

from client.garden_auth import SigV4RequestsAuth, openai_client

CREDS = Credentials(KEY_ID, SECRET)
PROMPT = "Wire 4111 1111 1111 1111 to jane.doe@example.com please"
REDACTED = "Wire [CREDIT_DEBIT_NUMBER] to [EMAIL] please"


@pytest.fixture
def sdk(server: Server) -> openai.OpenAI:
    return openai_client(f"{server.base_url}/v1", region="us-east-1", credentials=CREDS, max_retries=0)


def test_openai_sdk_chat(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(
        model="local-echo", messages=[{"role": "user", "content": PROMPT}], max_tokens=100
    )
    validate(completion.model_dump(mode="json", exclude_unset=True), "CreateChatCompletionResponse")
    assert completion.choices[0].message.content == REDACTED
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_openai_sdk_stream(sdk: openai.OpenAI) -> None:
    stream = sdk.chat.completions.create(
        model="local-echo", messages=[{"role": "user", "content": PROMPT}], stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REDACTED
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_openai_sdk_models(sdk: openai.OpenAI) -> None:
    assert sorted(m.id for m in sdk.models.list()) == ["echo-small", "local-echo"]
    assert sdk.models.retrieve("local-echo").id == "local-echo"


def test_openai_sdk_errors_map_to_sdk_exceptions(server: Server, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        sdk.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model="local-echo", messages=[{"role": "user", "content": "x"}], n=3)
    assert bad.value.param == "n"
    wrong = openai_client(f"{server.base_url}/v1", credentials=Credentials(KEY_ID, "not-the-secret"),
                          max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        wrong.models.list()


def test_requests_with_sigv4(server: Server) -> None:
    auth = SigV4RequestsAuth(region="us-east-1", credentials=CREDS)
    response = requests.post(
        f"{server.base_url}/v1/chat/completions", auth=auth, timeout=10,
        json={"model": "local-echo", "messages": [{"role": "user", "content": PROMPT}]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == REDACTED
    assert response.headers["x-request-id"]
    unsigned = requests.get(f"{server.base_url}/v1/models", timeout=10)
    assert unsigned.status_code == 403
    validate(unsigned.json(), "ErrorResponse")
