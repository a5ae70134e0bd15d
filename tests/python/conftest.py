"""Fixtures that run the real `infergate` binary (built by scripts/test) with simulated pools."""

import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def infergate_bin() -> str:
    path = os.environ.get("INFERGATE_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
        path = os.path.join(target, "debug", "infergate")
    if not os.path.exists(path):
        pytest.fail(f"infergate binary not found at {path}: run scripts/test (or cargo build -p infergate)")
    return path


def free_port_block(n: int) -> int:
    """A base port with n consecutive free ports after it."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65000:
            continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no block of free ports")


class Gateway:
    def __init__(self, proc, base_url, admin_url, workdir):
        self.proc = proc
        self.base_url = base_url
        self.admin_url = admin_url
        self.workdir = workdir

    @property
    def openai_base(self):
        return self.base_url + "/v1"


def start_gateway(config_yaml: str, workdir: Path, timeout: float = 30) -> Gateway:
    """Start `infergate serve` on the config; `timeout` bounds the wait for "serving" (a config
    with payload features embeds its corpora at start: seconds in release, much longer in a debug
    build on a busy machine)."""
    cfg = workdir / "gateway.yaml"
    cfg.write_text(config_yaml)
    stderr_path = workdir / "gateway.stderr"
    stderr = open(stderr_path, "w")
    proc = subprocess.Popen(
        [infergate_bin(), "serve", "--config", str(cfg), "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
        stdout=open(workdir / "access.log", "w"),
        stderr=stderr,
    )
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = stderr_path.read_text()
        m = re.search(r"serving (http://[\d.:]+) .*admin (http://[\d.:]+)", text)
        if m:
            return Gateway(proc, m.group(1), m.group(2), workdir)
        if proc.poll() is not None:
            raise RuntimeError(f"infergate exited early:\n{text}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"infergate did not start:\n{stderr_path.read_text()}")


def sim_pool_config(model: str = "demo", target: str = "sim/llama-3-8b", replicas: int = 2, sim_args: str = "") -> str:
    base = free_port_block(replicas)
    endpoints = "".join(f"  - {{address: 127.0.0.1, port: {base + i}}}\n" for i in range(replicas))
    return f"""apiVersion: infergate.dev/v1alpha1
kind: Simulator
metadata: {{name: sim}}
spec:
  model: {target}
  replicas: {replicas}
  port: {base}
  args: {{time-to-first-token: 5, inter-token-latency: 1{sim_args}}}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {{name: pool}}
spec:
  selector: {{matchLabels: {{app: sim}}}}
  targetPorts: [{{number: {base}}}]
  endpoints:
{endpoints}---
apiVersion: infergate.dev/v1alpha1
kind: PublicModel
metadata: {{name: {model}}}
spec:
  targets: [{{pool: pool, model: {target}}}]
"""


@pytest.fixture
def gateway():
    with tempfile.TemporaryDirectory() as d:
        gw = start_gateway(sim_pool_config(), Path(d))
        try:
            yield gw
        finally:
            gw.proc.terminate()
            try:
                gw.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                gw.proc.kill()
