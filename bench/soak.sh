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
name=soak.sh tag="fssk$$"
load_pid=""
bench_extra_cleanup() { [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null; }
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need nginx h2load ip "$fs"
bench_netns

mkdir -p "$work/www/dir"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/small.html"
head -c 65536 /dev/zero | tr '\0' 'y' > "$work/www/big.html"
bench_nginx 4096
# Short-lived connections leave TIME_WAIT on the client; let it reuse them.
ip netns exec "$cli" sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="10000 65000"

# shellcheck disable=SC2086
bench_start_agent "$fs" -- ${AGENT_ARGS:-}

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
