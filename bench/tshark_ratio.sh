#!/usr/bin/env bash
# A/B: time `flowscope replay` against tshark on the same generated HTTP/1.1 capture.
# DESIGN.md budgets: flowscope >= 20x tshark, >= 1M packets/s per core. Not a test; prints the
# ratios. Each side runs REPS times interleaved (flowscope, tshark, flowscope, ...), best time
# kept, so a concurrent build slows both sides alike.
#
#   bench/tshark_ratio.sh [CONNECTIONS] [EXCHANGES_PER_CONNECTION] [BODY_BYTES]   (env REPS=3)
#
# Env: CARGO_TARGET_DIR is honoured; FLOWSCOPE=path/to/flowscope times that binary instead of
# the one just built (e.g. an older build, for a before/after pair); CAPTURE=FILE times that
# capture instead of a generated one (e.g. a real one from bench/record_http1.sh; the
# arguments are then ignored, and with FLOWSCOPE set as well nothing is built).
#
# Timed:
#   engine:  flowscope replay FILE --quiet --l4 off     (decode + reassembly + HTTP/1 pairing)
#   json:    flowscope replay FILE -o json --l4 off     (the same, printing every HTTP record)
#   tshark:  tshark -r FILE -Y http -T fields -e http.request.method -e http.request.uri -e http.response.code
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
conns="${1:-1000}" exchanges="${2:-50}" body="${3:-512}" reps="${REPS:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v tshark >/dev/null || { echo "tshark_ratio.sh: tshark is not installed (apt-get install tshark)" >&2; exit 1; }
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
if [ -n "${CAPTURE:-}" ]; then
    [ -n "${FLOWSCOPE:-}" ] || cargo build --release -p flowscope >&2
    fs="${FLOWSCOPE:-$target/release/flowscope}"
    ln -s "$(realpath "$CAPTURE")" "$work/http.pcap"
    "$fs" replay "$work/http.pcap" --quiet --l4 off > "$work/count.out" 2>&1
    packets=$(awk '$1 == "packets" {print $2}' "$work/count.out")
    requests=$(awk '$1 == "http1_requests" {print $2}' "$work/count.out")
    what="$(basename "$CAPTURE"): $packets packets, $requests HTTP/1 requests"
else
    cargo build --release -p flowscope -p flowscope-bench >&2
    fs="${FLOWSCOPE:-$target/release/flowscope}"
    "$target/release/gen-pcap" "$work/http.pcap" "$conns" "$exchanges" "$body" 2> "$work/gen.out"
    cat "$work/gen.out" >&2
    packets=$(grep -o '[0-9]* packets' "$work/gen.out" | awk '{print $1}')
    requests=$(( conns * exchanges ))
    what="$packets packets, $requests HTTP exchanges ($conns connections x $exchanges, ${body}-byte bodies)"
fi

now() { date +%s.%N; }
best() { sort -g | head -n1; }
for _ in $(seq "$reps"); do
    t0=$(now); "$fs" replay "$work/http.pcap" --quiet --l4 off > "$work/quiet.out" 2>&1; t1=$(now)
    echo "$t1 - $t0" | bc -l >> "$work/t_engine"
    t0=$(now); tshark -r "$work/http.pcap" -Y http -T fields \
        -e http.request.method -e http.request.uri -e http.response.code > "$work/tshark.out" 2>/dev/null; t1=$(now)
    echo "$t1 - $t0" | bc -l >> "$work/t_tshark"
    t0=$(now); "$fs" replay "$work/http.pcap" -o json --l4 off > "$work/flowscope.out" 2>/dev/null; t1=$(now)
    echo "$t1 - $t0" | bc -l >> "$work/t_json"
done
te=$(best < "$work/t_engine") tj=$(best < "$work/t_json") tt=$(best < "$work/t_tshark")

echo "capture: $what; best of $reps"
printf 'flowscope replay --quiet: %.3fs  (%.2fM packets/s, %.0fk exchanges/s, one thread)\n' \
    "$te" "$(echo "$packets / $te / 1000000" | bc -l)" "$(echo "$requests / $te / 1000" | bc -l)"
printf 'flowscope replay -o json: %.3fs  (%s records)\n' "$tj" "$(wc -l < "$work/flowscope.out")"
printf 'tshark:                   %.3fs  (%s lines)\n' "$tt" "$(wc -l < "$work/tshark.out")"
printf 'ratio tshark/flowscope: %.1fx engine (--quiet), %.1fx with JSON output (budget >= 20x)\n' \
    "$(echo "$tt / $te" | bc -l)" "$(echo "$tt / $tj" | bc -l)"
echo "replay --quiet summary:"; sed 's/^/  /' "$work/quiet.out"
