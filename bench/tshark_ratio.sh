#!/usr/bin/env bash
# A/B: time `flowscope replay` against tshark on the same generated HTTP/1.1 capture.
# DESIGN.md budget: flowscope >= 20x tshark. Not a test; prints the ratio.
#
#   bench/tshark_ratio.sh [CONNECTIONS] [EXCHANGES_PER_CONNECTION] [BODY_BYTES]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
conns="${1:-1000}" exchanges="${2:-50}" body="${3:-512}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v tshark >/dev/null || { echo "tshark_ratio.sh: tshark is not installed (apt-get install tshark)" >&2; exit 1; }
cd "$root"
cargo build --release -p flowscope -p flowscope-bench >&2
"$root/target/release/gen-pcap" "$work/http.pcap" "$conns" "$exchanges" "$body"

now() { date +%s.%N; }
t0=$(now)
"$root/target/release/flowscope" replay "$work/http.pcap" -o json --l4 off > "$work/flowscope.out" 2>/dev/null
t1=$(now)
tshark -r "$work/http.pcap" -Y http -T fields \
    -e http.request.method -e http.request.uri -e http.response.code > "$work/tshark.out" 2>/dev/null
t2=$(now)

fs=$(echo "$t1 - $t0" | bc -l)
ts=$(echo "$t2 - $t1" | bc -l)
printf 'flowscope replay: %.3fs (%s records)\n' "$fs" "$(wc -l < "$work/flowscope.out")"
printf 'tshark:           %.3fs (%s lines)\n' "$ts" "$(wc -l < "$work/tshark.out")"
printf 'ratio tshark/flowscope: %.1fx (budget >= 20x)\n' "$(echo "$ts / $fs" | bc -l)"
