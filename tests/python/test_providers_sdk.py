"""Either SDK reaches any backend: the official `anthropic` SDK against `POST /v1/messages`
reaching a simulated OpenAI-compatible pool, and the official `openai` SDK reaching an
Anthropic-format backend (played by `infergate-fake-provider`, which speaks the Messages wire
protocol and checks the gateway's key). Streaming and not."""

import os
import subprocess
import tempfile
from pathlib import Path

import anthropic
import openai
import pytest
from openai import OpenAI

from conftest import ROOT, sim_pool_config, start_gateway

KEY = "sk-ant-test-gateway-key"


def fake_provider_bin() -> str:
    path = os.environ.get("INFERGATE_FAKE_PROVIDER_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
        path = os.path.join(target, "debug", "infergate-fake-provider")
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: run scripts/test (or cargo build -p infergate-provider-fakes)")
    return path


@pytest.fixture
def anthropic_backend():
    proc = subprocess.Popen([fake_provider_bin(), "anthropic", "--key", KEY], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def mixed_gateway(anthropic_backend):
    config = sim_pool_config() + f"""---
apiVersion: v1
kind: Secret
metadata: {{name: anthropic-key}}
stringData: {{apiKey: {KEY}}}
---
apiVersion: infergate.dev/v1alpha1
kind: Backend
metadata: {{name: anthropic}}
spec:
  provider: Anthropic
  baseURL: {anthropic_backend}
  credentials: {{secretRef: {{name: anthropic-key}}}}
---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {{name: claude}}
spec:
  targets: [{{backend: anthropic, model: claude-sonnet-4-5}}]
"""
    with tempfile.TemporaryDirectory() as d:
        gw = start_gateway(config, Path(d))
        try:
            yield gw
        finally:
            gw.proc.terminate()
            try:
                gw.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                gw.proc.kill()


def anthropic_client(gw):
    return anthropic.Anthropic(base_url=gw.base_url, api_key="client-key", max_retries=0, timeout=30)


def openai_client(gw):
    return OpenAI(base_url=gw.openai_base, api_key="client-key", max_retries=0, timeout=30)


def test_anthropic_sdk_reaches_an_openai_compatible_pool(mixed_gateway):
    msg = anthropic_client(mixed_gateway).messages.create(
        model="demo", max_tokens=6, system="be brief", messages=[{"role": "user", "content": "Hello"}]
    )
    assert msg.type == "message"
    assert msg.role == "assistant"
    assert msg.model == "demo"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "max_tokens"
    assert msg.usage.output_tokens == 6
    assert msg.usage.input_tokens > 0


def test_anthropic_sdk_streams_from_an_openai_compatible_pool(mixed_gateway):
    with anthropic_client(mixed_gateway).messages.stream(
        model="demo", max_tokens=7, messages=[{"role": "user", "content": "Hello"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.content[0].text == text
    assert final.usage.output_tokens == 7
    assert final.stop_reason == "max_tokens"


def test_anthropic_sdk_errors_are_typed(mixed_gateway):
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic_client(mixed_gateway).messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert "does not exist" in str(e.value)


def test_openai_sdk_reaches_an_anthropic_backend(mixed_gateway):
    r = openai_client(mixed_gateway).chat.completions.create(
        model="claude",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "Say hello"}],
    )
    assert r.model == "claude"
    assert r.choices[0].message.content == "echo: Say hello"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    # the fake counted the system prompt as a prompt-cache read
    assert r.usage.prompt_tokens_details.cached_tokens == 2


def test_openai_sdk_streams_from_an_anthropic_backend(mixed_gateway):
    stream = openai_client(mixed_gateway).chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: Say hello"
    assert chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)


def test_openai_sdk_tool_calls_through_an_anthropic_backend(mixed_gateway):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
    client = openai_client(mixed_gateway)
    r = client.chat.completions.create(model="claude", tools=tools, messages=[{"role": "user", "content": "find cats"}])
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup"
    r = client.chat.completions.create(
        model="claude",
        tools=tools,
        messages=[
            {"role": "user", "content": "find cats"},
            {"role": "assistant", "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "three cats"},
        ],
    )
    assert r.choices[0].message.content == "echo: three cats"


def test_anthropic_sdk_reaches_an_anthropic_backend_too(mixed_gateway):
    msg = anthropic_client(mixed_gateway).messages.create(
        model="claude", max_tokens=50, messages=[{"role": "user", "content": "Say hello"}]
    )
    assert msg.content[0].text == "echo: Say hello"
    assert msg.stop_reason == "end_turn"
