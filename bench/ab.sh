#!/usr/bin/env bash
# Overhead of `flowscope agent` on an observed HTTP/1.1 (or HTTP/2 cleartext, or gRPC-shaped)
# service, A/B interleaved in one run.
#
# nginx (1 worker, 1 KiB static body) runs in one network namespace, h2load in another, joined
# by a veth pair. Each pair of runs is "off" (no agent) then "on" (agent attached with TC to
# the server's veth, `-o none`); each run has two phases:
#   rate: h2load (--h1 for MODE=h1) at a fixed total rate (default 10k req/s over 10 connections)
#   sat:  h2load closed loop (default 32 connections), i.e. saturation
# Reported per run: achieved req/s, p50/p99 latency (from h2load's per-request log), and when
# the agent is on: its CPU (utime+stime from /proc/PID/stat, µs per request), RSS (VmRSS at the
# end of the rate phase, VmHWM at the end), kernel ring losses and responses decoded (see MODE)
# (from `flowscope status -o json`) against requests sent; also the agent's CPU from the run time
# of its threads (`sched_us_per_req`, /proc/PID/task/*/schedstat: exact, where utime+stime are
# 10 ms ticks; a thread that exits within a phase is missed) and, for every run, the host's steal
# (`steal_pct`, /proc/stat: share of the vCPUs' time the hypervisor gave to someone else).
#
# Load generator: h2load (Debian nghttp2-client) because wrk has no fixed-rate mode and wrk2 is
# not packaged. `--rps` is per client, so total rate = RPS; it paces sends per connection but is
# not coordinated-omission corrected (a stalled response delays the next send on that
# connection; latency is measured from the actual send).
#
# MODE picks the protocol (same columns; "decoded" counts the engine's counter for it):
#   h1   (default) HTTP/1.1 GET of the 1 KiB file; decoded = engine_http1_responses
#   h2c  HTTP/2 over cleartext TCP with prior knowledge (RFC 9113 §3.3; nginx `listen ... http2`,
#        h2load's default for http:// URLs), GET of the same file; decoded = engine_h2_responses
#   grpc the same h2c connection carrying a unary gRPC-shaped call: h2load POSTs a fixed
#        length-prefixed message (helloworld.Greeter/SayHello, `content-type: application/grpc`,
#        `te: trailers`) and nginx answers 200 with a fixed length-prefixed reply
#        (application/grpc) and a `grpc-status: 0` trailer; no gRPC library on either side, so
#        it measures the wire shape (HEADERS + DATA each way, trailers), not a gRPC stack;
#        decoded = engine_grpc_calls
#   STREAMS=N (h2c, grpc) concurrent streams per connection (h2load -m; default 1, so the
#   request rate and connection count mean what they mean for h1).
# Needs root, nginx, h2load, a release build. Not run in CI. Stops by itself.
#   bench/ab.sh [PAIRS=3] [SECS=10] [RPS=10000] [RATE_CONNS=10] [SAT_CONNS=32]
# Env: FLOWSCOPE=path/to/flowscope (default target/release/flowscope), KEEP=1 keeps the work dir,
#      BODY=BYTES the page size instead of 1 KiB (e.g. 4194304 for a bulk transfer: then pick a low RPS),
#      AGENT_ARGS="..." extra agent options, NICE=N runs the agent under `nice -n N`, PERF_FREQ=Hz for PROFILE, PROFILE=1 records the agent with `perf record -g`
#      during each "on" phase (PROFILE=dwarf: DWARF call graphs, the release build has no frame pointers) (perf-PAIR-PHASE.{data,txt} in the work dir; implies KEEP=1; the
#      profiler's own cost then shows in the numbers), PIN=1 pins nginx to CPU 1 and h2load and the
#      agent to CPU 0 (isolates the agent's in-kernel cost on the server's path from CPU sharing).
set -euo pipefail
[ -n "${PROFILE:-}" ] && KEEP=1
root="$(cd "$(dirname "$0")/.." && pwd)"
pairs="${1:-3}" secs="${2:-10}" rps="${3:-10000}" rate_conns="${4:-10}" sat_conns="${5:-32}"
fs="${FLOWSCOPE:-$root/target/release/flowscope}"
pin_srv="" pin_cli=""
[ -n "${PIN:-}" ] && pin_srv="taskset -c 1" pin_cli="taskset -c 0"
name=ab.sh tag="fsab$$"
proto="${MODE:-h1}"
case "$proto" in
    h1) proto_args=(--h1) decoded_counter=engine_http1_responses ;;
    h2c) proto_args=(-m "${STREAMS:-1}") decoded_counter=engine_h2_responses nginx_listen_opts=http2 ;;
    grpc)
        decoded_counter=engine_grpc_calls nginx_listen_opts=http2
        # nginx serves no POST from a file; the 405 its static module answers is turned into
        # the file itself (error_page re-requests it as a GET), with gRPC's type and trailer.
        nginx_locations='location /helloworld.Greeter/ { default_type application/grpc;
            add_trailer grpc-status 0; error_page 405 =200 $uri; }'
        ;;
    *) echo "ab.sh: MODE is h1, h2c or grpc, not $proto" >&2; exit 1 ;;
esac
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need nginx h2load ip "$fs"
bench_netns

# --- nginx: 1 worker, 1 KiB body ---
bench_page
if [ "$proto" = grpc ]; then
    # gRPC messages: flag 0 (uncompressed), 4-byte big-endian length, protobuf field 1 (string).
    mkdir -p "$work/www/helloworld.Greeter"
    printf '\0\0\0\0\007\012\005world' > "$work/grpc-request.bin"
    printf '\0\0\0\0\015\012\013Hello world' > "$work/www/helloworld.Greeter/SayHello"
    proto_args=(-m "${STREAMS:-1}" -d "$work/grpc-request.bin"
        -H 'content-type: application/grpc' -H 'te: trailers')
    url="http://198.18.0.1/helloworld.Greeter/SayHello"
fi
# shellcheck disable=SC2086
bench_nginx 1024 $pin_srv

status_json() { "$fs" status --server "unix://$sock" -o json 2>/dev/null || echo '{}'; }
# counter NAME < status json: the first integer value of a key named NAME anywhere in it.
counter() { python3 -c '
import json, sys
name = sys.argv[1]
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            if k == name and isinstance(x, (int, float, str)):
                try: return int(x)
                except ValueError: pass
            r = walk(x)
            if r is not None: return r
        # {"name": NAME, "value": N} pairs
        if v.get("name") == name and "value" in v: return int(v["value"])
    elif isinstance(v, list):
        for x in v:
            r = walk(x)
            if r is not None: return r
    return None
r = walk(json.load(sys.stdin))
print(0 if r is None else r)' "$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# ns the agent's threads ran (sum of /proc/PID/task/*/schedstat's first field): exact, where the
# tick-sampled utime+stime of /proc/PID/stat charges whole 10 ms ticks to whoever runs at the tick
# (the agent runs in sub-millisecond bursts at 10k req/s).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
# The machine's steal ticks (/proc/stat "cpu" line, 8th value): time the hypervisor ran something
# else while this VM's vCPUs wanted to run. A phase with steal measured the host, not the agent.
steal_ticks() { awk '$1 == "cpu" {print $9}' /proc/stat; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

start_agent() {
    # shellcheck disable=SC2086
    bench_start_agent "$fs" $pin_cli ${NICE:+nice -n "$NICE"} -- ${AGENT_ARGS:-}
}
stop_agent() { bench_stop_agent; }

# load PHASE LOGFILE: runs h2load, prints "done rps p50_us p99_us"
load() {
    local phase="$1" log="$2" args
    if [ "$phase" = rate ]; then
        args=(-c "$rate_conns" -t 1 --rps "$(( rps / rate_conns ))")
    else
        args=(-c "$sat_conns" -t 1)
    fi
    $pin_cli ip netns exec "$cli" h2load "${proto_args[@]}" "${args[@]}" -D "$secs" --log-file="$log" "$url" \
        > "$log.out" 2>&1 || { echo "ab.sh: h2load failed:" >&2; tail "$log.out" >&2; exit 1; }
    local done_ rps_
    done_=$(awk '/^requests:/ {print $8}' "$log.out")
    rps_=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$log.out")
    # Column 3: µs from request start to end of response.
    read -r p50 p99 < <(awk -F'\t' '$2 == 200 {print $3}' "$log" | sort -n | awk '
        function q(f,  i) {i = int(NR * f) + 1; if (i > NR) i = NR; return v[i]}
        {v[NR] = $1} END {if (NR == 0) {print "nan nan"; exit} print q(0.50), q(0.99)}')
    echo "$done_ $rps_ $p50 $p99"
}

results="$work/results.tsv"
printf 'pair\tagent\tphase\trequests\treq_s\tp50_us\tp99_us\tagent_us_per_req\tagent_cpu_pct\trss_kb\tanon_kb\thwm_kb\tring_lost\tdecoded\tsched_us_per_req\tsteal_pct\n' > "$results"
echo "ab.sh: MODE=$proto, $pairs pairs x (rate ${rps}/s over $rate_conns conns, saturation over $sat_conns conns), ${secs}s each, work dir $work" >&2
for pair in $(seq "$pairs"); do
    for mode in off on; do
        [ "$mode" = on ] && { start_agent; sleep 1; }
        for phase in rate sat; do
            if [ "$mode" = on ]; then
                s0=$(status_json); c0=$(cpu_ticks "$agent_pid"); ns0=$(cpu_ns "$agent_pid")
            fi
            st0=$(steal_ticks); t0=$(date +%s.%N)
            perf_pid=""
            if [ "$mode" = on ] && [ -n "${PROFILE:-}" ]; then
                perf record -q $( [ "$PROFILE" = dwarf ] && echo "-F ${PERF_FREQ:-199} --call-graph dwarf,16384" || echo "-F ${PERF_FREQ:-499} -g" ) -p "$agent_pid" -o "$work/perf-$pair-$phase.data" -- sleep "$secs" 2>/dev/null &
                perf_pid=$!
            fi
            read -r n r p50 p99 < <(load "$phase" "$work/h2load-$pair-$mode-$phase.log")
            steal=$(echo "($(steal_ticks) - $st0) * 100 / $hz / ($(date +%s.%N) - $t0) / $(nproc)" | bc -l)
            if [ -n "$perf_pid" ]; then
                wait "$perf_pid" || true
                perf report -i "$work/perf-$pair-$phase.data" --no-children --percent-limit 1 --stdio -g none \
                    > "$work/perf-$pair-$phase.txt" 2>/dev/null || true
            fi
            if [ "$mode" = on ]; then
                sleep 1.5   # let the agent drain its ring and the engine pair the last exchanges
                c1=$(cpu_ticks "$agent_pid"); ns1=$(cpu_ns "$agent_pid"); s1=$(status_json)
                sent_all=$n
                dec=$(( $(counter "$decoded_counter" <<<"$s1") - $(counter "$decoded_counter" <<<"$s0") ))
                lost=$(( $(counter kernel_ring_full_lost <<<"$s1") - $(counter kernel_ring_full_lost <<<"$s0") ))
                us=$(echo "($c1 - $c0) * 1000000 / $hz / $sent_all" | bc -l)
                pct=$(echo "($c1 - $c0) * 100 / $hz / $secs" | bc -l)
                sus=$(echo "($ns1 - $ns0) / 1000 / $sent_all" | bc -l)
                rss=$(status_kb "$agent_pid" VmRSS); anon=$(status_kb "$agent_pid" RssAnon); hwm=$(status_kb "$agent_pid" VmHWM)
                echo "$s1" > "$work/status-$pair-$phase.json"
                printf '%s\ton\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\n' "$pair" "$phase" "$n" "$r" "$p50" "$p99" "$us" "$pct" "$rss" "$anon" "$hwm" "$lost" "$dec/$sent_all" "$sus" "$steal" >> "$results"
            else
                printf '%s\toff\t%s\t%s\t%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t%.2f\n' "$pair" "$phase" "$n" "$r" "$p50" "$p99" "$steal" >> "$results"
            fi
            tail -n1 "$results" >&2
        done
        [ "$mode" = on ] && stop_agent
    done
done

echo
column -t -s $'\t' "$results"
echo
# Summary: per pair on/off, then the median over pairs.
python3 - "$results" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def get(pair, agent, phase):
    return next(r for r in rows if r["pair"] == pair and r["agent"] == agent and r["phase"] == phase)
pairs = sorted({r["pair"] for r in rows}, key=int)
sat_ratio, rate_ratio, d50, d99, us, rss, anon, hwm = [], [], [], [], [], [], [], []
sus, steal = [], []
dec = []
for p in pairs:
    off_s, on_s = get(p, "off", "sat"), get(p, "on", "sat")
    off_r, on_r = get(p, "off", "rate"), get(p, "on", "rate")
    sat_ratio.append(float(on_s["req_s"]) / float(off_s["req_s"]))
    rate_ratio.append(float(on_r["req_s"]) / float(off_r["req_s"]))
    d50.append(float(on_r["p50_us"]) - float(off_r["p50_us"]))
    d99.append(float(on_r["p99_us"]) - float(off_r["p99_us"]))
    us.append((float(on_r["agent_us_per_req"]), float(on_s["agent_us_per_req"])))
    sus.append((float(on_r["sched_us_per_req"]), float(on_s["sched_us_per_req"])))
    steal.append(max(float(get(p, a, ph)["steal_pct"]) for a in ("off", "on") for ph in ("rate", "sat")))
    rss.append(int(on_r["rss_kb"])); anon.append(int(on_r["anon_kb"])); hwm.append(int(on_s["hwm_kb"]))
    lost_r = int(on_r["ring_lost"]); lost_s = int(on_s["ring_lost"])
    dec.append((on_r["decoded"], on_s["decoded"], lost_r, lost_s))
m = statistics.median
print(f"throughput ratio at saturation (on/off): median {m(sat_ratio):.3f}  per pair {', '.join(f'{x:.3f}' for x in sat_ratio)}  (budget >= 0.97)")
print(f"throughput ratio at fixed rate (on/off): median {m(rate_ratio):.3f}")
print(f"added latency at fixed rate: p50 {m(d50):+.0f} us, p99 {m(d99):+.0f} us (median over pairs; per pair p99 {', '.join(f'{x:+.0f}' for x in d99)}; budget p99 < +100 us)")
print(f"agent CPU per request: {m(u[0] for u in us):.2f} us at fixed rate, {m(u[1] for u in us):.2f} us at saturation (ticks of /proc/PID/stat)")
print(f"agent CPU per request, run time of its threads (schedstat): {m(u[0] for u in sus):.2f} us at fixed rate (per pair {', '.join(f'{u[0]:.2f}' for u in sus)}), {m(u[1] for u in sus):.2f} us at saturation")
print(f"host steal, worst phase of each pair: {', '.join(f'{x:.2f}%' for x in steal)} of the vCPUs' time (nonzero: the host ran something else in that pair)")
print(f"agent RSS: steady VmRSS {m(rss)/1024:.1f} MiB of which RssAnon {m(anon)/1024:.1f} MiB (end of rate phase; the rest is mostly the binary and the kernel rings, each mapped once), peak VmHWM {max(hwm)/1024:.1f} MiB (budget < 50 MB)")
for p, (dr, ds, lr, ls) in zip(pairs, dec):
    print(f"pair {p}: decoded/sent rate {dr} (ring lost {lr}), saturation {ds} (ring lost {ls})")
EOF
