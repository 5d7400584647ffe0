#!/usr/bin/env bash
# Engine throughput against the number of engine worker threads (issue 18, "scale with cores").
#
# replay: `flowscope replay --quiet --workers N PCAP`, N taking each value of WORKERS in turn,
#   RUNS rounds (1 2 1 2 ...), so that whatever else runs slows every N alike. Reported per N:
#   packets/s (the `packets` counter over wall time), median and min..max over the runs, and the
#   CPU time (user+sys) per packet, which shows the cost of the handoff even where the machine
#   has no idle core for the extra worker; per run also the process's context switches
#   (voluntary + involuntary, all threads: each handoff that blocks a thread is one) and the
#   host's steal while it ran (/proc/stat: share of the vCPUs' time given to other guests; a run
#   with steal measured the host).
# agent (AGENT=1; root, nginx, h2load): bench/ab.sh AB_PAIRS AB_SECS once per N with
#   AGENT_ARGS="--workers N", in turn; see ab.sh for what it reports (saturation ratio, agent CPU
#   per request, responses decoded against requests sent).
#
# The load average (uptime) and CPU count are printed first: on a busy or small machine the
# numbers are provisional.
#
#   bench/workers.sh [PCAP=/tmp/http1-base/http.pcap] [RUNS=5]
# Env: FLOWSCOPE=path/to/flowscope (default target/release/flowscope), WORKERS="1 2",
#      REPLAY_ARGS="--quiet" (e.g. "--quiet --l4 off"), AGENT=1, AB_PAIRS=1, AB_SECS=10.
# A missing PCAP is generated with the bench crate's gen-pcap (4000 connections x 50 exchanges,
# 512-byte bodies: ~424k packets of HTTP/1.1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pcap="${1:-/tmp/http1-base/http.pcap}" runs="${2:-5}"
fs="${FLOWSCOPE:-$root/target/release/flowscope}"
workers="${WORKERS:-1 2}"
[ -x "$fs" ] || { echo "workers.sh: $fs not found (cargo build --release -p flowscope)" >&2; exit 1; }
if [ ! -f "$pcap" ]; then
    (cd "$root" && cargo build --release -p flowscope-bench >&2)
    mkdir -p "$(dirname "$pcap")"
    "${CARGO_TARGET_DIR:-$root/target}/release/gen-pcap" "$pcap" 4000 50 512 >&2
fi
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $(uptime | sed 's/.*load average/load average/')"
echo "# $fs $(git -C "$root" rev-parse --short HEAD 2>/dev/null || true), $pcap"
work="$(mktemp -d /tmp/flowscope-workers.XXXXXX)"
trap 'rm -rf "$work"' EXIT
for r in $(seq "$runs"); do
    for n in $workers; do
        # shellcheck disable=SC2086
        st0=$(awk '$1 == "cpu" {print $9}' /proc/stat)
        /usr/bin/time -f '%e %U %S %w %c' -o "$work/time" "$fs" replay ${REPLAY_ARGS:---quiet} --workers "$n" "$pcap" \
            > /dev/null 2> "$work/err"
        st1=$(awk '$1 == "cpu" {print $9}' /proc/stat)
        packets=$(awk '$1 == "packets" { print $2 }' "$work/err")
        read -r wall user sys vcsw ivcsw < "$work/time"
        steal=$(awk -v d="$((st1 - st0))" -v hz="$(getconf CLK_TCK)" -v w="$wall" -v c="$(nproc)" \
            'BEGIN { printf "%.1f", (w > 0 ? d * 100 / hz / w / c : 0) }')
        echo "$n $packets $wall $user $sys" >> "$work/runs"
        echo "run $r workers $n: $packets packets in ${wall}s wall, ${user}s user, ${sys}s sys, $((vcsw + ivcsw)) context switches, host steal ${steal}%" >&2
    done
done
printf 'workers\truns\tpkt_s_median\tpkt_s_min\tpkt_s_max\tcpu_ns_per_pkt_median\n'
for n in $workers; do
    awk -v n="$n" '$1 == n { printf "%.0f %.0f\n", $2 / $3, ($4 + $5) * 1e9 / $2 }' "$work/runs" > "$work/n"
    cut -d' ' -f1 "$work/n" | sort -n > "$work/pps"
    cut -d' ' -f2 "$work/n" | sort -n > "$work/cpu"
    c=$(wc -l < "$work/pps")
    med() { awk -v c="$c" 'NR == int((c + 1) / 2) { print }' "$1"; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$c" "$(med "$work/pps")" "$(head -1 "$work/pps")" \
        "$(tail -1 "$work/pps")" "$(med "$work/cpu")"
done
echo "# after: $(uptime | sed 's/.*load average/load average/')"
if [ -n "${AGENT:-}" ]; then
    for n in $workers; do
        echo "# agent, --workers $n"
        AGENT_ARGS="--workers $n --tls-plaintext false ${AGENT_ARGS:-}" "$root/bench/ab.sh" "${AB_PAIRS:-1}" "${AB_SECS:-10}"
    done
fi
