#!/usr/bin/env bash
# In-kernel cost of the TC capture programs, A/B interleaved in one run.
#
# nginx (1 worker, 1 KiB static body) in one network namespace, h2load --h1 in another, joined
# by a veth pair (198.18.0.0/30, RFC 2544 benchmarking range). Each run starts one agent binary
# attached with TC to the server's veth (`-o none`), drives a fixed HTTP/1.1 load, then reads the
# kernel's per-program statistics (`kernel.bpf_stats_enabled=1`: run_time_ns and run_cnt of the
# ingress and egress programs attached to that veth, found with `bpftool net show`) and reports
# ns per packet. Runs alternate A, B, A, B, ... so drift and other work on the machine hit both;
# the summary gives the median and the min–max spread per variant.
#
# run_time_ns includes the cost of the statistics themselves (two sched_clock() reads per run).
#
# Needs root, nginx, h2load, bpftool, two agent builds. Not run in CI. Stops by itself.
#   bench/tc_cost.sh OLD_BINARY NEW_BINARY [PAIRS=5] [SECS=8] [RPS=5000] [CONNS=10]
# Build OLD_BINARY from the commit to compare against (e.g. `git worktree add /tmp/old main &&
# cd /tmp/old && cargo build --release -p flowscope`), NEW_BINARY is target/release/flowscope.
# Env: KEEP=1 keeps the work dir.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,18p' "$0" >&2; exit 2; }
bin_a="$1" bin_b="$2" pairs="${3:-5}" secs="${4:-8}" rps="${5:-5000}" conns="${6:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
name=tc_cost.sh tag="fstc$$"
stats_before="$(cat /proc/sys/kernel/bpf_stats_enabled)"
bench_extra_cleanup() { echo "$stats_before" > /proc/sys/kernel/bpf_stats_enabled; }
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need nginx h2load ip bpftool python3 "$bin_a" "$bin_b"
echo 1 > /proc/sys/kernel/bpf_stats_enabled
bench_netns
bench_page
bench_nginx 1024

# prog_stats PID JSON: "ingress_ns ingress_cnt egress_ns egress_cnt" of the agent's TC programs (the
# programs whose ids its file descriptors hold: other agents on the machine load programs of the
# same names); every program's (run_time_ns, run_cnt) by name goes to JSON.
prog_stats() {
    bpftool -j prog show > "$work/progs.json"
    python3 - "$work/progs.json" "$1" "$2" <<'EOF'
import glob, json, sys
ids = set()
for f in glob.glob(f"/proc/{sys.argv[2]}/fdinfo/*"):
    try:
        for line in open(f):
            if line.startswith("prog_id:"):
                ids.add(int(line.split()[1]))
    except OSError:
        pass
out, every = {}, {}
for p in json.load(open(sys.argv[1])):
    if p["id"] in ids:
        every[p.get("name", "?")] = (p.get("run_time_ns", 0), p.get("run_cnt", 0))
        if p.get("name") in ("fs_tc_ingress", "fs_tc_egress"):
            out[p["name"]] = (p.get("run_time_ns", 0), p.get("run_cnt", 0))
# Every program of the agent, for the per-program table at the end (the socket and syscall
# tracepoint programs run on the service's path too).
print(json.dumps(every), file=open(sys.argv[3], "w"))
print(*out["fs_tc_ingress"], *out["fs_tc_egress"])
EOF
}

run() {
    local bin="$1" variant="$2" pair="$3"
    bench_start_agent "$bin"
    read -r ti0 ci0 te0 ce0 < <(prog_stats "$agent_pid" "$work/p0.json")
    ip netns exec "$cli" h2load --h1 -c "$conns" -t 1 --rps "$(( rps / conns ))" -D "$secs" "$url" \
        > "$work/h2load-$pair-$variant.out" 2>&1 || { echo "tc_cost.sh: h2load failed" >&2; exit 1; }
    read -r ti1 ci1 te1 ce1 < <(prog_stats "$agent_pid" "$work/p1.json")
    python3 - "$work/p0.json" "$work/p1.json" "$variant" >> "$work/progs.jsonl" <<'EOF'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
d = {n: (b[n][0] - a.get(n, (0, 0))[0], b[n][1] - a.get(n, (0, 0))[1]) for n in b}
print(json.dumps({"variant": sys.argv[3], "progs": d}))
EOF
    bench_stop_agent
    local req
    req=$(awk '/^requests:/ {print $8}' "$work/h2load-$pair-$variant.out")
    printf '%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\n' "$pair" "$variant" "$req" "$((ci1 - ci0))" "$((ce1 - ce0))" \
        "$(echo "($ti1 - $ti0) / ($ci1 - $ci0)" | bc -l)" "$(echo "($te1 - $te0) / ($ce1 - $ce0)" | bc -l)" >> "$work/results.tsv"
    tail -n1 "$work/results.tsv" >&2
}

printf 'pair\tvariant\trequests\tingress_pkts\tegress_pkts\tingress_ns\tegress_ns\n' > "$work/results.tsv"
echo "tc_cost.sh: A=$bin_a B=$bin_b, $pairs pairs, ${rps} req/s over $conns conns, ${secs}s each" >&2
for pair in $(seq "$pairs"); do
    # Alternate which variant goes first so a trend in the machine's load does not favour one.
    if [ $((pair % 2)) = 1 ]; then run "$bin_a" A "$pair"; run "$bin_b" B "$pair"
    else run "$bin_b" B "$pair"; run "$bin_a" A "$pair"; fi
done
echo
column -t -s $'\t' "$work/results.tsv"
echo
python3 - "$work/results.tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
for v in ("A", "B"):
    for d in ("ingress", "egress"):
        xs = sorted(float(r[f"{d}_ns"]) for r in rows if r["variant"] == v)
        print(f"{v} {d:7}: median {statistics.median(xs):.0f} ns/pkt, spread {xs[0]:.0f}-{xs[-1]:.0f} over {len(xs)} runs")
EOF
echo
echo "every program that ran: ns per run (median over runs) and runs per request (median)"
echo "(a program run by tail call has no statistics of its own: attribution's fsa_sock_* are in the TLS probes' fst_sock_* when chained)"
python3 - "$work/progs.jsonl" "$work/results.tsv" <<'EOF'
import csv, json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
reqs = [int(r["requests"]) for r in csv.DictReader(open(sys.argv[2]), delimiter="\t")]
names = sorted({n for r in runs for n, (t, c) in r["progs"].items() if c})
for v in ("A", "B"):
    vr = [(r, q) for r, q in zip(runs, reqs) if r["variant"] == v]
    for n in names:
        per_run = [r["progs"][n][0] / r["progs"][n][1] for r, _ in vr if r["progs"].get(n, (0, 0))[1]]
        per_req = [r["progs"].get(n, (0, 0))[1] / q for r, q in vr if q]
        if per_run:
            print(f"{v} {n:24} {statistics.median(per_run):6.0f} ns/run  {statistics.median(per_req):6.2f} runs/request")
EOF
