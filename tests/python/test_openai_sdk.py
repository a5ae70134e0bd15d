"""The official `openai` Python SDK against the gateway: chat (streamed and not), completions,
embeddings, models.list, and errors surfacing as the SDK's typed exceptions."""

import openai
import pytest
from openai import OpenAI


def client(gw):
    return OpenAI(base_url=gw.openai_base, api_key="unused", max_retries=0, timeout=30)


def test_chat_completion(gateway):
    r = client(gateway).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello"}], max_tokens=6
    )
    assert r.model == "demo"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.usage.completion_tokens == 6
    assert r.usage.prompt_tokens > 0


def test_chat_completion_stream(gateway):
    stream = client(gateway).chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello"}], max_tokens=7, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert all(c.model == "demo" for c in chunks)
    # the client did not ask for usage, so no usage chunk reaches it
    assert all(not c.choices == [] for c in chunks)
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_chat_completion_stream_with_usage(gateway):
    stream = client(gateway).chat.completions.create(
        model="demo",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5


def test_completions(gateway):
    r = client(gateway).completions.create(model="demo", prompt="Once upon a time", max_tokens=4)
    assert r.model == "demo"
    assert r.choices[0].text
    assert r.usage.completion_tokens == 4


def test_completions_stream(gateway):
    chunks = list(client(gateway).completions.create(model="demo", prompt="Once", max_tokens=3, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_embeddings(gateway):
    r = client(gateway).embeddings.create(model="demo", input=["hello world", "goodbye"])
    assert len(r.data) == 2
    assert len(r.data[0].embedding) == 384
    assert r.model == "demo"


def test_models_list(gateway):
    ids = [m.id for m in client(gateway).models.list()]
    assert ids == ["demo"]


def test_unknown_model_is_not_found(gateway):
    with pytest.raises(openai.NotFoundError) as e:
        client(gateway).chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    assert "demo" in e.value.message


def test_bad_request_surfaces(gateway):
    with pytest.raises(openai.BadRequestError) as e:
        client(gateway).chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "x"}], extra_body={"stream": "yes"}
        )
    assert e.value.code == "invalid_field"
