#!/usr/bin/env bash
# Cost of syscall spans (`--syscall-spans`) on the syscalls they watch, A/B/C interleaved.
#
# A workload of 2*COUNT syscalls (`dd if=/dev/zero of=/dev/null bs=1 count=COUNT`: one read(2)
# and one write(2) per byte, both syscalls the programs attach to) is timed
#   off:      no agent;
#   agent:    the agent without syscall spans (its other programs: what is not ours to charge);
#   other:    the agent tracing a process name that is not running (`--syscall-spans
#             no-such-proc`): what every process on the node pays for each watched syscall
#             while syscall spans are on for someone else (the tracepoint programs run and
#             find the process not selected);
#   traced:   the agent tracing `dd` itself: the full cost of a traced syscall (entry/exit
#             records, the fd walk, the ring, the agent's userspace work).
# Reported: ns per syscall (median and min-max over the runs) and the added cost against off.
# The agent runs in its own network namespace capturing lo (`-o none`).
#
# Needs root and a release build. Not run in CI. Stops by itself.
#   bench/syscall_cost.sh [RUNS=5] [COUNT=500000]
# Env: FLOWSCOPE=path/to/flowscope (default target/release/flowscope), KEEP=1 keeps the work dir.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-5}" count="${2:-500000}"
fs="${FLOWSCOPE:-$root/target/release/flowscope}"
name=syscall_cost.sh tag="fssc$$"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need ip dd python3 "$fs"
bench_netns

# ns per syscall of one dd run.
run_dd() {
    local t0 t1
    t0=$(date +%s%N)
    dd if=/dev/zero of=/dev/null bs=1 count="$count" status=none
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / (2 * count) ))
}

printf 'run\tvariant\tns_per_syscall\n' > "$work/results.tsv"
for run in $(seq "$runs"); do
    for variant in off agent other traced; do
        case $variant in
            off) ;;
            agent) bench_start_agent "$fs" -- -i lo ;;
            other) bench_start_agent "$fs" -- -i lo --syscall-spans no-such-proc ;;
            traced) bench_start_agent "$fs" -- -i lo --syscall-spans dd ;;
        esac
        ns=$(run_dd)
        [ "$variant" != off ] && bench_stop_agent
        printf '%s\t%s\t%s\n' "$run" "$variant" "$ns" | tee -a "$work/results.tsv" >&2
    done
done
python3 - "$work/results.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {v: sorted(int(r["ns_per_syscall"]) for r in rows if r["variant"] == v) for v in ("off", "agent", "other", "traced")}
off = statistics.median(by["off"])
for v, xs in by.items():
    m = statistics.median(xs)
    print(f"{v:7}: {m:.0f} ns/syscall (min-max {xs[0]}-{xs[-1]} over {len(xs)} runs), added {m - off:+.0f} ns")
PY
