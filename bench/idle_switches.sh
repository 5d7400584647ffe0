#!/usr/bin/env bash
# How often an idle agent wakes: the agent capturing the loopback of an empty network namespace
# (`-o none`), and, after it has settled, each of its threads' context switches (voluntary +
# involuntary, /proc/PID/task/TID/status), CPU ticks and the CPU time the scheduler counted
# (schedstat) over SECS seconds, for each binary given,
# RUNS times, alternated. Every wakeup costs the node a context switch and cold caches (tens of
# µs on a VM), so this is the agent's floor when nothing happens.
#
# Needs root and release builds. Not run in CI. Stops by itself.
#   bench/idle_switches.sh BIN [BIN...]      env RUNS=2 SECS=10 SETTLE=6
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
runs="${RUNS:-2}" secs="${SECS:-10}" settle="${SETTLE:-6}"
ns="fsidle$$" work="$(mktemp -d /tmp/idle_switches.XXXXXX)" pid=""
cleanup() {
    [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

# snap: "comm tid switches ticks run_ns" per thread of $pid (run_ns: the scheduler's own
# count of the time it ran, /proc/PID/task/TID/schedstat, exact where ticks are sampled).
snap() {
    for t in /proc/"$pid"/task/*; do
        printf '%s %s %s %s %s\n' "$(cat "$t/comm")" "${t##*/}" \
            "$(awk '/^voluntary_ctxt|^nonvoluntary_ctxt/ {n += $2} END {print n}' "$t/status")" \
            "$(awk '{print $14 + $15}' "$t/stat")" "$(awk '{print $1}' "$t/schedstat")"
    done 2>/dev/null | sort -k2
}

for run in $(seq "$runs"); do
    for bin in "$@"; do
        ip netns exec "$ns" "$bin" agent -i lo -o none --listen "unix://$work/agent.sock" \
            --metrics-listen 127.0.0.1:0 > "$work/agent.log" 2>&1 &
        pid=$!
        sleep "$settle"
        kill -0 "$pid" 2>/dev/null || { echo "idle_switches.sh: agent died:" >&2; tail "$work/agent.log" >&2; exit 1; }
        snap > "$work/a"
        sleep "$secs"
        snap > "$work/b"
        kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=""
        # Joined: tid comm sw ticks ns comm sw ticks ns.
        join -1 2 -2 2 "$work/a" "$work/b" | awk -v s="$secs" -v bin="$bin" -v run="$run" '
            { d = $7 - $3; ticks += $8 - $4; ns += $9 - $5; if (d > 0) { per = per sprintf(" %s/%s %.1f", $2, $1, d / s); total += d } }
            END { printf "run %d %s: %.1f switches/s (per thread:%s), %d CPU ticks in %d s, %.2f ms CPU/s (schedstat)\n", run, bin, total / s, per, ticks, s, ns / s / 1e6 }'
    done
done
