#!/usr/bin/env bash
# A/B: replay throughput of two flowscope binaries on one capture, runs alternating (A, B, A,
# B, ...) so that load from other processes on a shared machine hits both alike. Prints each
# run and, per binary, the median and range of wall time, CPU time (user+sys) and packets/s.
#
#   bench/replay_ab.sh A_BINARY B_BINARY CAPTURE [RUNS]     (RUNS default 9)
#
# Timed: `flowscope replay CAPTURE --l4 off --quiet` (decode, reassembly, HTTP/1 pairing,
# records built and dropped; what `bench/tshark_ratio.sh` calls "engine").
set -euo pipefail
a="$1" b="$2" cap="$3" runs="${4:-9}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
packets=$("$a" replay "$cap" --l4 off --quiet 2>&1 | awk '$1 == "packets" {print $2}')
for i in $(seq "$runs"); do
    for side in A B; do
        bin=$a; [ "$side" = B ] && bin=$b
        /usr/bin/time -f "%e %U %S" -o "$work/t" "$bin" replay "$cap" --l4 off --quiet > /dev/null 2>&1
        read -r wall user sys < "$work/t"
        echo "$side $wall $(echo "$user + $sys" | bc -l)" | tee -a "$work/runs"
    done
done
# Median and range of a column of numbers on stdin.
stats() { sort -g | awk '{ v[NR] = $1 } END { printf "%.3f %.3f %.3f\n", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
for side in A B; do
    read -r wm wlo whi < <(awk -v s="$side" '$1 == s {print $2}' "$work/runs" | stats)
    read -r cm clo chi < <(awk -v s="$side" '$1 == s {print $3}' "$work/runs" | stats)
    awk -v s="$side" -v p="$packets" -v wm="$wm" -v wlo="$wlo" -v whi="$whi" -v cm="$cm" -v clo="$clo" -v chi="$chi" 'BEGIN {
        printf "%s: wall median %.3fs (%.3f-%.3f), %.2fM packets/s (%.2f-%.2f); ", s, wm, wlo, whi, p / wm / 1e6, p / whi / 1e6, p / wlo / 1e6
        printf "cpu median %.3fs (%.3f-%.3f), %.2fM packets/s per cpu-second\n", cm, clo, chi, p / cm / 1e6 }'
done
echo "packets: $packets; A=$a B=$b; $runs runs each, alternating"
