#!/usr/bin/env bash
# Where the observed service's CPU goes under the agent: nginx (one worker) and h2load at
# saturation (closed loop, CONNS connections), recorded system-wide with `perf record -a -g`
# (cpu-clock: this VM has no PMU), with no agent ("off") and with each of two builds, runs
# interleaved off A B, B A off, ... Reports per variant (median over the runs):
#   - throughput, and each process's share of the 2 CPUs (nginx, h2load, the agent, idle);
#   - for nginx and for h2load, µs of their own CPU per request, split into what the agent's
#     kernel programs add on their path (each BPF program by name, with the ring wakeup's
#     self-IPI inside it counted apart; the syscall-tracepoint entry/exit work that attached
#     syscall tracepoints force on every syscall; the socket tracepoints' dispatch) and the rest.
# A sample is charged to the first of these it finds on its stack, leaf first, and weighs its
# own period (cpu-clock: ns), so a throttled sample rate does not skew the times. h2load warms
# up for 3 s, then measures for exactly the recorded window, so its rate is the window's (perf
# itself costs a little of it, alike for every variant). The "(ring wakeup IPI)" part counts only
# samples taken inside the IPI's sending; its interrupt's own handling lands in the program or
# the rest, so it is a lower bound. On kernels where the TLS socket link is fentry (6.1), its
# trampoline's dispatch lands in "rest". One run is one profile: read the medians, and the
# spread, not a single run.
#
# Needs root, perf, nginx, h2load and two release builds. Not run in CI. Stops by itself.
#   bench/service_cpu.sh A B [RUNS=3] [SECS=8] [CONNS=32]
# Env: KEEP=1 keeps the work dir (perf data and per-run reports).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
bin_a="$1" bin_b="$2" runs="${3:-3}" secs="${4:-8}" conns="${5:-32}"
root="$(cd "$(dirname "$0")/.." && pwd)"
name=service_cpu.sh tag="fssc$$"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need nginx h2load ip perf python3 "$bin_a" "$bin_b"
bench_netns
bench_page
bench_nginx 1024

# run VARIANT BIN|"" RUN: one saturation run, profiled in its middle; appends a JSON line.
run() {
    local variant="$1" bin="$2" n="$3"
    if [ -n "$bin" ]; then bench_start_agent "$bin"; fi
    ip netns exec "$cli" h2load --h1 -c "$conns" -t 1 --warm-up-time 3 -D "$secs" "$url" \
        > "$work/h2load-$n-$variant.out" 2>&1 &
    local h=$!
    sleep 3
    perf record -a -g -F 2999 -o "$work/perf-$n-$variant.data" -- sleep "$secs" \
        > "$work/perf-$n-$variant.log" 2>&1 \
        || { echo "$name: perf record failed:" >&2; cat "$work/perf-$n-$variant.log" >&2; exit 1; }
    wait "$h" || { echo "$name: h2load failed" >&2; cat "$work/h2load-$n-$variant.out" >&2; exit 1; }
    if [ -n "$bin" ]; then bench_stop_agent; fi
    local rate
    rate=$(awk '/^finished in/ {print $4}' "$work/h2load-$n-$variant.out")
    perf script -i "$work/perf-$n-$variant.data" -F comm,period,ip,sym 2>/dev/null \
        | python3 "$work/split.py" "$variant" "$rate" "$secs" >> "$work/runs.jsonl"
    tail -n1 "$work/runs.jsonl" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["variant"], "req/s", r["rate"], "nginx us/req", round(r["per_req"]["nginx"]["total"],2), file=sys.stderr)'
}

cat > "$work/split.py" <<'EOF'
import collections, json, sys
variant, rate, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
samples, cur = [], None
for line in sys.stdin:
    if not line.strip():
        if cur: samples.append(cur)
        cur = None
    elif not line[0].isspace():
        f = line.split()
        cur = (f[0], [], int(f[-1]))  # comm ... period
    elif cur is not None:
        parts = line.split()
        cur[1].append(parts[1] if len(parts) > 1 else "?")
if cur: samples.append(cur)
def bucket(stack):
    for i, s in enumerate(stack):
        if s.startswith("bpf_prog_"):
            prog = s.split("_", 3)[-1]
            if any(f == "irq_work_queue" for f in stack[:i]):
                return prog + " (ring wakeup IPI)"
            return prog
        if s in ("syscall_trace_enter", "syscall_exit_work"):
            return "syscall tracepoint work"
        if s.startswith("call_trace_sock_"):
            return "socket tracepoint dispatch"
    return "rest"
total = sum(p for _, _, p in samples)
share = collections.Counter()
per = {"nginx": collections.Counter(), "h2load": collections.Counter()}
for comm, stack, period in samples:
    key = {"nginx": "nginx", "h2load": "h2load", "swapper": "idle"}.get(comm)
    if key is None and comm.startswith(("tokio", "flowscope", "fs-", "afpacket")):
        key = "agent"
    share[key or "other"] += period
    if comm in per:
        per[comm][bucket(stack)] += period
requests = rate * secs
ns_to_us_per_req = 1e-3 / requests
out = {"variant": variant, "rate": rate,
       "share": {k: v / total for k, v in share.items()},
       "per_req": {c: dict({k: v * ns_to_us_per_req for k, v in b.items()},
                           total=sum(b.values()) * ns_to_us_per_req) for c, b in per.items()}}
print(json.dumps(out))
EOF

echo "$name: A=$bin_a B=$bin_b, $runs runs each of off/A/B, ${conns} connections, ${secs}s profiled" >&2
for n in $(seq "$runs"); do
    if [ $((n % 2)) = 1 ]; then run off "" "$n"; run A "$bin_a" "$n"; run B "$bin_b" "$n"
    else run B "$bin_b" "$n"; run A "$bin_a" "$n"; run off "" "$n"; fi
done
python3 - "$work/runs.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
vs = ["off", "A", "B"]
med = lambda xs: statistics.median(xs) if xs else 0.0
def col(f):
    return [f"{med([f(r) for r in runs if r['variant'] == v]):.3f}" for v in vs]
print()
print(f"{'':44} {'off':>8} {'A':>8} {'B':>8}   (median over runs)")
print(f"{'req/s':44} " + " ".join(f"{med([r['rate'] for r in runs if r['variant'] == v]):8.0f}" for v in vs))
print("spread req/s: " + "; ".join(f"{v} " + ", ".join(f"{r['rate']:.0f}" for r in runs if r["variant"] == v) for v in vs))
for k in ("nginx", "h2load", "agent", "idle"):
    print(f"{'share of the 2 CPUs: ' + k:44} " + " ".join(f"{x:>8}" for x in col(lambda r: r["share"].get(k, 0.0))))
for c in ("nginx", "h2load"):
    keys = sorted({k for r in runs for k in r["per_req"][c]} - {"total", "rest"})
    print(f"{c + ' us per request, total':44} " + " ".join(f"{x:>8}" for x in col(lambda r: r["per_req"][c]["total"])))
    for k in keys + ["rest"]:
        print(f"{'  ' + k:44} " + " ".join(f"{x:>8}" for x in col(lambda r: r["per_req"][c].get(k, 0.0))))
EOF
