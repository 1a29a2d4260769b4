"""The openai provider against a loopback fake OpenAI upstream (tests/fakes/openai_server.py): the
real HTTP path (pool, keep-alive, chunked SSE), every error class with its fallback and signal, keys
from SSM (moto's server) or the environment, and the deadline with a stalled upstream."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Iterator

import boto3
import pytest
from fakes.openai_server import Drop, Fail, FakeOpenAI, Hang, Reply, StreamError, Trickle
from fakes.provider_calls import WEATHER, make_call

from chalicelib.catalog import Deployment
from chalicelib.chat import Message, ToolCall, Usage
from chalicelib.errors import (DeadlineExceeded, GatewayError, InvalidRequest, NotFound, PermissionDenied,
                               ServiceUnavailable, Signal, UpstreamError, UpstreamThrottled)
from chalicelib.providers import EmbeddingCall
from chalicelib.providers.openai.keys import REFRESH_INTERVAL_S, ApiKeys
from chalicelib.providers.openai.provider import OpenAIProvider
from chalicelib.providers.openai.translate import UpstreamMisconfigured
from chalicelib.providers.upstream_http import HttpPool

MODEL = "upstream-chat"


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def deployment(fake: FakeOpenAI, **fields: Any) -> Deployment:
    return Deployment(provider="openai", model_id=MODEL, name="tier", base_url=fake.base_url, **fields)


def provider(env: dict[str, str] | None = None, ssm: Any = None, monotonic: Any = time.monotonic) -> OpenAIProvider:
    return OpenAIProvider(HttpPool(), ApiKeys((lambda: ssm) if ssm is not None else None, env or {}, monotonic))


def chat(fake: FakeOpenAI, *messages: Message, deadline_s: float = 5.0, **request: Any):  # type: ignore[no-untyped-def]
    dep = request.pop("deployment", None) or deployment(fake)
    return replace(make_call(*messages, deadline_s=deadline_s, **request), deployment=dep)


def test_plain_chat_without_a_key_sends_no_authorization_and_reuses_its_connection(fake: FakeOpenAI) -> None:
    fake.script[MODEL] = Reply(cached_tokens=5)
    openai = provider()
    first = openai.complete(chat(fake, Message("user", "hello there"), max_tokens=40))
    second = openai.complete(chat(fake, Message("user", "again")))
    assert (first.content, first.finish_reason, second.content) == ("hello there", "stop", "again")
    assert first.usage.cache_read_tokens == 5 and first.usage.prompt_tokens > 5
    path, body, headers = fake.requests[0]
    assert path == "/v1/chat/completions" and body["max_tokens"] == 40 and body["model"] == MODEL
    assert "authorization" not in headers
    assert len(fake.connections) == 1  # kept alive across requests


def test_stream_split_at_odd_places_with_crlf(fake: FakeOpenAI) -> None:
    fake.script[MODEL] = Reply(text="Grüß dich, streaming 🌍 world", split=3, crlf=True, cached_tokens=2)
    completion = provider().complete(chat(fake, stream=True))
    assert completion.content == "Grüß dich, streaming 🌍 world" and completion.finish_reason == "stop"
    assert completion.usage.cache_read_tokens == 2 and completion.usage.completion_tokens > 0
    body, headers = fake.requests[0][1], fake.requests[0][2]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert headers["accept"] == "text/event-stream"


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls(fake: FakeOpenAI, stream: bool) -> None:
    fake.script[MODEL] = Reply(tool_call={"name": "get_weather", "arguments": {"city": "Oslo"}}, split=5)
    completion = provider().complete(chat(fake, tools=(WEATHER,), tool_choice="required", stream=stream))
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == (ToolCall("call_fake_1", "get_weather", '{"city": "Oslo"}'),)
    assert fake.requests[0][1]["tool_choice"] == "required"


@pytest.mark.parametrize(("behaviour", "error", "fallback", "signal"), [
    (Fail(400), InvalidRequest, False, Signal.NONE),
    (Fail(401), UpstreamMisconfigured, False, Signal.NONE),
    (Fail(403), PermissionDenied, False, Signal.NONE),
    (Fail(404), NotFound, False, Signal.NONE),
    (Fail(429), UpstreamThrottled, True, Signal.BUSY),
    (Fail(500), ServiceUnavailable, True, Signal.DOWN),
    (Fail(503), ServiceUnavailable, True, Signal.DOWN),
    (Drop(), ServiceUnavailable, True, Signal.DOWN),
    (StreamError(502), ServiceUnavailable, True, Signal.DOWN),
    (Reply(usage=False), UpstreamError, False, Signal.NONE),
])
def test_every_error_class_with_its_fallback_and_signal(fake: FakeOpenAI, behaviour: Any, error: type,
                                                        fallback: bool, signal: Signal) -> None:
    fake.script[MODEL] = behaviour
    with pytest.raises(GatewayError) as caught:
        provider().complete(chat(fake, stream=isinstance(behaviour, StreamError)))
    assert type(caught.value) is error
    assert (caught.value.fallback, caught.value.signal) == (fallback, signal)
    assert "SECRET" not in caught.value.message  # the upstream's message may quote the prompt


def test_an_unreachable_upstream_falls_back_as_down(fake: FakeOpenAI) -> None:
    closed = Deployment(provider="openai", model_id=MODEL, name="gone", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ServiceUnavailable) as caught:
        provider().complete(chat(fake, deployment=closed))
    assert caught.value.code == "upstream_unreachable" and caught.value.signal is Signal.DOWN


@pytest.mark.parametrize("behaviour", [Hang(30), Trickle(after_bytes=40, seconds=30)])
def test_a_stalled_upstream_never_holds_the_call_past_its_deadline(fake: FakeOpenAI, behaviour: Any) -> None:
    fake.script[MODEL] = behaviour
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        provider().complete(chat(fake, deadline_s=0.8, stream=True))
    assert time.monotonic() - started < 1.3
    assert caught.value.signal is Signal.BUSY and caught.value.fallback


def test_a_pooled_connection_the_server_closed_is_replaced(fake: FakeOpenAI) -> None:
    with FakeOpenAI(idle_timeout_s=0.2) as closing:
        openai = provider()
        openai.complete(chat(closing, deployment=deployment(closing)))
        time.sleep(0.5)  # the server drops the idle connection, as uvicorn does after 5 s
        assert openai.complete(chat(closing, Message("user", "still here"), deployment=deployment(closing))).content \
            == "still here"
        assert len(closing.connections) == 2


def test_api_key_env(fake: FakeOpenAI) -> None:
    fake.keys = {"sk-local"}
    dep = deployment(fake, api_key_env="TIER_KEY")
    assert provider({"TIER_KEY": "sk-local"}).complete(chat(fake, deployment=dep)).content == "hello"
    assert fake.requests[0][2]["authorization"] == "Bearer sk-local"
    with pytest.raises(UpstreamMisconfigured) as unset:
        provider({}).complete(chat(fake, deployment=dep))
    assert unset.value.code == "api_key_unavailable" and unset.value.status == 503


@pytest.fixture
def ssm(moto_url: str) -> Any:
    return boto3.client("ssm", endpoint_url=moto_url, region_name="us-east-1")


def test_ssm_key_is_read_once_refreshed_on_401_and_a_refused_key_is_a_503(fake: FakeOpenAI, ssm: Any) -> None:
    name = f"/garden/tier-key-{time.monotonic_ns()}"
    ssm.put_parameter(Name=name, Value="sk-one", Type="SecureString")
    reads: list[str] = []
    ssm.meta.events.register("before-call.ssm.GetParameter", lambda **kw: reads.append("GetParameter"))
    now = [1000.0]
    openai = provider(ssm=ssm, monotonic=lambda: now[0] + time.monotonic())
    dep = deployment(fake, api_key_parameter=name)
    fake.keys = {"sk-one"}
    for _ in range(3):
        openai.complete(chat(fake, deployment=dep))
    assert len(reads) == 1  # once per container

    ssm.put_parameter(Name=name, Value="sk-two", Type="SecureString", Overwrite=True)  # rotated
    fake.keys = {"sk-two"}
    assert openai.complete(chat(fake, deployment=dep)).content == "hello"
    assert len(reads) == 2 and fake.requests[-1][2]["authorization"] == "Bearer sk-two"

    fake.keys = {"sk-elsewhere"}  # the upstream refuses the key SSM holds
    with pytest.raises(UpstreamMisconfigured) as refused:
        openai.complete(chat(fake, deployment=dep))
    assert refused.value.status == 503 and not refused.value.fallback and refused.value.signal is Signal.NONE
    assert len(reads) == 2  # refreshed a moment ago: not again
    now[0] += REFRESH_INTERVAL_S + 1
    with pytest.raises(UpstreamMisconfigured):
        openai.complete(chat(fake, deployment=dep))
    assert len(reads) == 3  # read again, the same key: refused, no second try
    assert "sk-" not in refused.value.message


def test_a_missing_parameter_is_a_503_misconfiguration(fake: FakeOpenAI, ssm: Any) -> None:
    dep = deployment(fake, api_key_parameter="/garden/not-there")
    with pytest.raises(UpstreamMisconfigured) as caught:
        provider(ssm=ssm).complete(chat(fake, deployment=dep))
    assert caught.value.code == "api_key_unavailable"
    assert fake.requests == []


def test_embeddings_in_input_order_with_dimensions_and_usage(fake: FakeOpenAI) -> None:
    dep = deployment(fake)
    call = EmbeddingCall(make_call().app, dep, ("first", "second one", "3"), 16, time.monotonic() + 5)
    embedded = provider().embed(call)
    assert len(embedded.vectors) == 3 and all(len(v) == 16 for v in embedded.vectors)
    assert embedded.vectors[0] != embedded.vectors[1] and embedded.prompt_tokens > 0
    path, body, _ = fake.requests[0]
    assert path == "/v1/embeddings" and body["dimensions"] == 16 and body["encoding_format"] == "float"
    again = provider().embed(call)
    assert again.vectors == embedded.vectors  # the fake returns them reversed: the index orders them


def test_usage_is_exact_through_the_wire(fake: FakeOpenAI) -> None:
    fake.script[MODEL] = Reply(text="abcdefgh", cached_tokens=3)
    usage = provider().complete(chat(fake, Message("user", "x"))).usage
    assert usage == Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=3, cache_read_tokens=3)


def test_a_catalog_with_openai_deployments_imports_none_of_it_until_one_is_called(tmp_path: Any) -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    from support import ROOT, TEST_CATALOG

    raw = json.loads(json.dumps(TEST_CATALOG))
    raw["models"]["tier"] = {"max_output_tokens": 8, "price": {"input_per_1k": 0, "output_per_1k": 0},
                             "deployments": [{"provider": "openai", "model_id": "m", "base_url": "http://127.0.0.1:9/v1"}]}
    path = Path(tmp_path) / "catalog.json"
    path.write_text(json.dumps(raw))
    code = ("import sys; from chalicelib import gateway; from chalicelib.settings import Settings; "
            f"p = gateway.build_pipeline(Settings.from_env({{'GARDEN_CATALOG': {str(path)!r}, 'GARDEN_HOME': {str(tmp_path)!r}}})); "
            "print(sorted(m for m in sys.modules if m.startswith(('chalicelib.providers.openai', "
            "'chalicelib.providers.upstream_http', 'http.client', 'boto3'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
