#!/usr/bin/env bash
# Soak: the agent under N minutes of mixed HTTP/1.1 traffic, sampling its memory and flow table
# every 10 s, to show RSS stays flat.
#
# nginx (1 worker) in one network namespace, h2load in another, joined by a veth pair; the agent
# captures the server's veth with TC (`-o none`). Traffic, repeated in 10 s slots:
#   - a new connection every millisecond (h2load -r 1 --rate-period 1ms), 2 requests each
#     (so ~1000 flows created and closed per second);
#   - 4 keep-alive connections at 500 req/s in total;
#   both cycling through a 1 KiB page, a 64 KiB page, a 404 and a 301.
# Every 10 s: VmRSS, VmHWM, agent CPU, and from `flowscope status -o json` the engine's flows
# created/evicted (live = created - evicted), HTTP/1 responses, packets captured, ring losses.
#
# Needs root, nginx, h2load, a release build. Not run in CI. Stops by itself.
#   bench/soak.sh [MINUTES=10]
# Env: FLOWSCOPE=path/to/flowscope, KEEP=1 keeps the work dir, AGENT_ARGS="..." extra options.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
minutes="${1:-10}"
fs="${FLOWSCOPE:-$root/target/release/flowscope}"
for t in nginx h2load ip "$fs"; do
    command -v "$t" >/dev/null || { echo "soak.sh: $t not found (apt-get install -y nginx nghttp2-client; cargo build --release -p flowscope)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root (namespaces, eBPF)" >&2; exit 1; }

tag="fssk$$"
srv="${tag}s" cli="${tag}c"
work="$(mktemp -d /tmp/flowscope-soak.XXXXXX)"
agent_pid="" nginx_pid="" load_pid=""
cleanup() {
    set +e
    [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
    [ -n "$agent_pid" ] && kill -INT "$agent_pid" 2>/dev/null && sleep 1 && kill -KILL "$agent_pid" 2>/dev/null
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
    wait 2>/dev/null
    ip netns pids "$cli" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$srv" 2>/dev/null
    ip netns del "$cli" 2>/dev/null
    if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "soak.sh: kept $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 198.18.0.1 (server) <-> 198.18.0.2 (client), RFC 2544 benchmarking range.
ip netns add "$srv"
ip netns add "$cli"
ip link add "${tag}a" netns "$srv" type veth peer name "${tag}b" netns "$cli"
ip -n "$srv" addr add 198.18.0.1/30 dev "${tag}a"
ip -n "$cli" addr add 198.18.0.2/30 dev "${tag}b"
for n in "$srv" "$cli"; do ip -n "$n" link set lo up; done
ip -n "$srv" link set "${tag}a" up
ip -n "$cli" link set "${tag}b" up

mkdir -p "$work/www" "$work/nginx"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/small.html"
head -c 65536 /dev/zero | tr '\0' 'y' > "$work/www/big.html"
mkdir -p "$work/www/dir"
cat > "$work/nginx/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $work/nginx/nginx.pid; error_log stderr;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 198.18.0.1:80; root $work/www; } }
EOF
ip netns exec "$srv" nginx -c "$work/nginx/nginx.conf" -e stderr 2>"$work/nginx.err" &
nginx_pid=$!
for _ in $(seq 100); do ip netns exec "$cli" bash -c 'exec 3<>/dev/tcp/198.18.0.1/80' 2>/dev/null && break; sleep 0.1; done
# Short-lived connections leave TIME_WAIT on the client; let it reuse them.
ip netns exec "$cli" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"

sock="$work/agent.sock"
# shellcheck disable=SC2086
ip netns exec "$srv" "$fs" agent -i "${tag}a" -o none --listen "unix://$sock" \
    --metrics-listen 127.0.0.1:9965 ${AGENT_ARGS:-} 2>"$work/agent.log" &
agent_pid=$!
for _ in $(seq 150); do
    [ -S "$sock" ] && "$fs" status --server "unix://$sock" >/dev/null 2>&1 && break
    kill -0 "$agent_pid" 2>/dev/null || { echo "soak.sh: agent died:" >&2; tail "$work/agent.log" >&2; exit 1; }
    sleep 0.1
done

urls=(http://198.18.0.1/small.html http://198.18.0.1/big.html http://198.18.0.1/missing http://198.18.0.1/dir)
end=$(( $(date +%s) + minutes * 60 ))
# The load: 10 s slots until the end.
(
    while [ "$(date +%s)" -lt "$end" ]; do
        ip netns exec "$cli" h2load --h1 -r 1 --rate-period=1ms -c 10000 -n 20000 -t 1 "${urls[@]}" >/dev/null 2>&1 &
        ip netns exec "$cli" h2load --h1 -c 4 -t 1 --rps 125 -D 10 "${urls[@]}" >/dev/null 2>&1 &
        wait
    done
) &
load_pid=$!

hz=$(getconf CLK_TCK)
printf 'elapsed_s\trss_mib\thwm_mib\tcpu_pct\tflows_created\tflows_evicted\tflows_live\thttp1_responses\tpackets_captured\tring_lost\n' | tee "$work/soak.tsv"
t0=$(date +%s); c_prev=$(awk '{print $14 + $15}' "/proc/$agent_pid/stat")
while :; do
    sleep 10
    now=$(date +%s)
    c=$(awk '{print $14 + $15}' "/proc/$agent_pid/stat")
    "$fs" status --server "unix://$sock" -o json 2>/dev/null | python3 -c '
import json, sys
c = json.load(sys.stdin)["counters"]
ev = c["engine_flows_evicted_idle"] + c["engine_flows_evicted_closed"] + c["engine_flows_evicted_flush"]
print(c["engine_flows_created"], ev, c["engine_flows_created"] - ev, c["engine_http1_responses"], c["kernel_packets_captured"], c["kernel_ring_full_lost"], sep="\t")' > "$work/c"
    rss=$(awk '$1 == "VmRSS:" {printf "%.1f", $2 / 1024}' "/proc/$agent_pid/status")
    hwm=$(awk '$1 == "VmHWM:" {printf "%.1f", $2 / 1024}' "/proc/$agent_pid/status")
    printf '%s\t%s\t%s\t%.1f\t%s\n' "$(( now - t0 ))" "$rss" "$hwm" "$(echo "($c - $c_prev) * 100 / $hz / 10" | bc -l)" "$(cat "$work/c")" | tee -a "$work/soak.tsv"
    c_prev=$c
    [ "$now" -lt "$end" ] || break
done
wait "$load_pid" 2>/dev/null || true
load_pid=""
python3 - "$work/soak.tsv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
rss = [float(r["rss_mib"]) for r in rows]
half = rss[len(rss) // 2:]
print(f"RSS: first sample {rss[0]:.1f} MiB, last {rss[-1]:.1f} MiB, min/max over the second half "
      f"{min(half):.1f}/{max(half):.1f} MiB, peak VmHWM {rows[-1]['hwm_mib']} MiB")
print(f"flows created {rows[-1]['flows_created']}, live at end {rows[-1]['flows_live']}, "
      f"HTTP/1 responses {rows[-1]['http1_responses']}, ring lost {rows[-1]['ring_lost']}")
EOF
