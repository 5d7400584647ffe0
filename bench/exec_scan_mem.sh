#!/usr/bin/env bash
# What an executable starting on the host costs the agent in memory: its TLS executable scan
# (ebpf-tls executable.rs) reads each new executable's tables, and hooks OpenSSL linked into it.
#
# Starts the agent on lo (`-o none`), waits for it to settle, then for each program: resets
# the agent's peak RSS (clear_refs 5), starts the program, waits 3 s, and prints VmHWM and
# VmRSS before and after (KiB). Needs root, a release build, node (a build with OpenSSL linked in, as NodeSource's; Debian's links libssl.so.3, which shows the shared-library path instead), nginx, curl.
#   bench/exec_scan_mem.sh [GO_BINARY]
# GO_BINARY: a Go program using crypto/tls (tests/tests/go_tls/main.go built with `go build`),
# run as `GO_BINARY serve 127.0.0.1:18443 DIR/cert.pem DIR/key.pem`, DIR its directory (make
# them with `openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -subj /CN=x`).
# Env: FLOWSCOPE=path/to/flowscope, AGENT_LOG=FILE keeps the agent's log.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fs="${FLOWSCOPE:-$root/target/release/flowscope}"
gobin="${1:-}"
work=$(mktemp -d /tmp/exec_scan_mem.XXXX)
sock="$work/api.sock"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "${agent:-}" ] && kill -INT "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
"$fs" agent -i lo -o none --listen "unix://$sock" --metrics-listen "" 2>"$work/agent.log" &
agent=$!
for _ in $(seq 150); do
    [ -S "$sock" ] && "$fs" status --server "unix://$sock" >/dev/null 2>&1 && break
    sleep 0.1
done
sleep 5
mem() { awk '/VmHWM|VmRSS/ {printf "%s %s ", $1, $2}' "/proc/$agent/status"; }
run() {
    local label="$1"; shift
    echo 5 >"/proc/$agent/clear_refs"
    local before; before=$(mem)
    "$@" >/dev/null 2>&1 &
    local p=$!
    pids+=("$p")
    sleep 3
    printf '%-8s before: %s after: %s\n' "$label" "$before" "$(mem)"
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    sleep 1
}
run idle sleep 3
run node node -e 'setTimeout(()=>{},5000)'
run node2 node -e 'setTimeout(()=>{},5000)'
run curl curl -s -o /dev/null http://127.0.0.1:1/
echo "daemon off; error_log stderr; pid $work/ng.pid; events {} http { access_log off; server { listen 127.0.0.1:18080; } }" >"$work/ng.conf"
run nginx nginx -p "$work" -c "$work/ng.conf"
if [ -n "$gobin" ]; then
    d=$(dirname "$gobin")
    run go "$gobin" serve 127.0.0.1:18443 "$d/cert.pem" "$d/key.pem"
fi
cp "$work/agent.log" "${AGENT_LOG:-/dev/null}"
grep -E "hooked library=|hooked executable=|not placed|not hooked" "$work/agent.log" | sed "s/\x1b\[[0-9;]*m//g" | cut -c1-220
