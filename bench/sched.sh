#!/usr/bin/env bash
# Where the added tail latency comes from: scheduler data for nginx, h2load and the agent at a
# fixed request rate, without and with the agent (issue 18: "confirm or refute with a profile and
# scheduler data before changing anything").
#
# Same setup as ab.sh (bench/lib.sh: nginx with one worker and a 1 KiB page in one namespace,
# `h2load --h1` at RPS over CONNS connections in another, the agent on the server's veth with
# `-o none`). For each pair, an "off" run then an "on" run; during each, `perf sched record -a`
# records every context switch and wakeup. `perf sched timehist` then gives, per task:
#   - scheduling delay: wakeup -> running (the time a runnable nginx or h2load waited for a CPU)
#   - run slices: how long each task ran before it switched out (for the agent: the length of
#     its bursts of work, which is what can hold a CPU away from nginx and h2load)
# and the script prints, per run and process (nginx, h2load, flowscope): slice count, p50/p99/max
# of sch delay and of run time, slices longer than 100 µs, plus h2load's own request p50/p99,
# and the vCPU steal time during the run (/proc/stat; a VM's host taking the CPU away shows here).
#
# Needs root, nginx, h2load, perf, a release build. Not run in CI.
#   bench/sched.sh [PAIRS=2] [SECS=8] [RPS=10000] [CONNS=10]
# Env: FLOWSCOPE=path, AGENT_ARGS="...", PIN=1 (nginx on CPU 1, h2load and the agent on CPU 0),
#      KEEP=1 keeps the work dir (perf data, timehist text).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pairs="${1:-2}" secs="${2:-8}" rps="${3:-10000}" conns="${4:-10}"
fs="${FLOWSCOPE:-$root/target/release/flowscope}"
pin_srv="" pin_cli=""
[ -n "${PIN:-}" ] && pin_srv="taskset -c 1" pin_cli="taskset -c 0"
name=sched.sh tag="fssc$$"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need nginx h2load perf ip python3 "$fs"
bench_netns
bench_page
# shellcheck disable=SC2086
bench_nginx 1024 $pin_srv

steal() { awk '/^cpu / {print $9}' /proc/stat; }
hz=$(getconf CLK_TCK)

# run MODE PAIR: one fixed-rate load with `perf sched record` around it; prints a summary line
# per process.
run() {
    local mode="$1" pair="$2" log="$work/h2load-$2-$1.log" data="$work/sched-$2-$1.data"
    if [ "$mode" = on ]; then
        # shellcheck disable=SC2086
        bench_start_agent "$fs" $pin_cli -- ${AGENT_ARGS:-}
        sleep 1
    fi
    perf sched record -a -o "$data" -- sleep "$(( secs + 1 ))" >/dev/null 2>&1 &
    local perf_pid=$! st0
    st0=$(steal)
    sleep 0.5
    $pin_cli ip netns exec "$cli" h2load --h1 -c "$conns" -t 1 --rps "$(( rps / conns ))" -D "$secs" \
        --log-file="$log" "$url" > "$log.out" 2>&1 || { echo "sched.sh: h2load failed" >&2; tail "$log.out" >&2; exit 1; }
    wait "$perf_pid" || true
    local st1 steal_ms
    st1=$(steal)
    steal_ms=$(( (st1 - st0) * 1000 / hz ))
    [ "$mode" = on ] && bench_stop_agent
    perf sched timehist -i "$data" > "$work/timehist-$pair-$mode.txt" 2>/dev/null
    python3 - "$work/timehist-$pair-$mode.txt" "$log" "$pair" "$mode" "$steal_ms" <<'EOF'
import re, sys
path, log, pair, mode, steal_ms = sys.argv[1:]
# timehist: time cpu task[tid/pid] wait_ms sch_delay_ms run_ms
rx = re.compile(r"^\s*\d+\.\d+\s+\[\d+\]\s+(.+?)\[(\d+)(?:/(\d+))?\]\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")
groups = {"nginx": ([], []), "h2load": ([], []), "flowscope": ([], [])}
for line in open(path):
    m = rx.match(line)
    if not m:
        continue
    task = m.group(1).strip()
    # Agent threads are named tokio-runtime-w, flowscope, ring readers etc.; pid is the group.
    key = "nginx" if task.startswith("nginx") else "h2load" if task.startswith("h2load") else None
    if key is None and (task.startswith("flowscope") or task.startswith("tokio") or task.startswith("fs-")):
        key = "flowscope"
    if key is None:
        continue
    delay_us, run_us = float(m.group(5)) * 1000, float(m.group(6)) * 1000
    groups[key][0].append(delay_us)
    groups[key][1].append(run_us)
def q(v, f):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * f))]
lat = sorted(float(l.split("\t")[2]) for l in open(log) if l.count("\t") >= 2 and l.split("\t")[1] == "200")
print(f"{pair}\t{mode}\th2load\trequests {len(lat)}\tp50 {q(lat, .5):.0f} us\tp99 {q(lat, .99):.0f} us\tsteal {steal_ms} ms")
for k, (delay, run) in groups.items():
    if not run:
        continue
    long_ = sum(1 for r in run if r > 100)
    print(f"{pair}\t{mode}\t{k}\tslices {len(run)}\tsch delay p50 {q(delay, .5):.0f} p99 {q(delay, .99):.0f} max {max(delay):.0f} us"
          f"\trun p50 {q(run, .5):.0f} p99 {q(run, .99):.0f} max {max(run):.0f} us\truns > 100 us: {long_} ({100 * long_ / len(run):.1f}%)"
          f"\tcpu {sum(run) / 1000:.0f} ms")
EOF
}

echo "sched.sh: $pairs pairs, ${rps} req/s over $conns conns, ${secs}s each, work dir $work" >&2
for pair in $(seq "$pairs"); do
    run off "$pair"
    run on "$pair"
done
