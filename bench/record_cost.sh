#!/usr/bin/env bash
# Instructions per record of the agent's work after the engine, counted by callgrind (exact and
# repeatable on a busy machine, unlike CPU time): per span, `Metrics::observe_span` with all three
# metric families; per flow, the pipeline's `emit_flow` after the owner lookup (metrics, endpoint
# resolution, the flow store, including freeing the flow it evicts). The workload is the ignored
# unit test `export::record_cost` (observer/src/export/record_cost.rs): the engine's records of a
# synthetic HTTP/1.1 capture fed a few rounds, so label caches are warm and the ring evicts.
#
#   bench/record_cost.sh        # builds the release test binary of the flowscope crate first
#   BIN=path bench/record_cost.sh   # measures that test binary (e.g. a copy built from main)
# Needs valgrind. Not run in CI. Prints instructions (Ir) per span and per flow: in the first
# round, in the later ones (the steady state), and over all.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
command -v valgrind >/dev/null || { echo "record_cost.sh: needs valgrind" >&2; exit 1; }
# shellcheck source=bench/test_bin.sh
. "$root/bench/test_bin.sh"
bin="$(flowscope_test_bin)"
work="$(mktemp -d /tmp/record_cost.XXXXXX)"
trap 'rm -rf "$work"' EXIT
for what in spans flows; do
    # A dump after each round: the first round meets every label set for the first time
    # (prometheus-client's families, the caps, the caches fill), the later ones are the steady
    # state (and the store's ring is full: each flow evicts one).
    valgrind --tool=callgrind --callgrind-out-file="$work/$what.out" \
        --toggle-collect="*record_cost_$what*" \
        --dump-after="flowscope::export::record_cost::record_cost_$what" \
        "$bin" --ignored --exact export::record_cost::record_cost --nocapture \
        >"$work/$what.log" 2>&1 || { cat "$work/$what.log" >&2; exit 1; }
    n="$(sed -n "s/.*record_cost: spans \([0-9]*\) flows \([0-9]*\).*/\1 \2/p" "$work/$what.log")"
    [ "$what" = spans ] && n="${n% *}" || n="${n#* }"
    python3 - "$work/$what.out" "$n" "$what" <<'PY'
import glob, re, sys
out, n, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rounds = []
for f in sorted(glob.glob(out + ".*"), key=lambda f: int(f.rsplit(".", 1)[1])):
    rounds.append(int(re.search(r"^summary: (\d+)", open(f).read(), re.M).group(1)))
per = n // len(rounds)
later = rounds[1:]
print(f"{what}: {n} in {len(rounds)} rounds; Ir/{what[:-1]}: first round {rounds[0] // per}, "
      f"later rounds {sum(later) // (per * len(later))}, all {sum(rounds) // n}")
PY
done
