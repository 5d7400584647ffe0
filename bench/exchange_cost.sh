#!/usr/bin/env bash
# Instructions (and heap allocations) per HTTP/1.1 exchange of the agent's own per-record path,
# counted by callgrind (exact and repeatable on a busy machine, unlike CPU time), split by step:
# engine decode (with span building), the agent's owner lookup, span owners and the span split
# (flows::roles), metrics, the endpoint resolver, the flow store (insert and the flow it evicts).
# The workload is the ignored unit test `agent::exchange_cost` (observer/src/agent/exchange_cost.rs):
# the real `Pipeline` fed a real capture as the agent in bench/ab.sh is (`-o none`, metrics on,
# both ends owned by local processes), after a warm-up that fills the store's ring.
#
#   bench/record_http1.sh /tmp/h1cost/h1.pcap 10 20000 1024   # once: nginx + h2load --h1
#   bench/exchange_cost.sh /tmp/h1cost/h1.pcap
#   BIN=path bench/exchange_cost.sh PCAP   # measures that test binary (e.g. one built from main)
# Needs valgrind. Not run in CI. Steps overlap (a step's line includes the calls it makes, e.g.
# engine decode includes span building); "total" is everything inside the measured function.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
pcap="${1:?usage: bench/exchange_cost.sh PCAP (from bench/record_http1.sh)}"
command -v valgrind >/dev/null || { echo "exchange_cost.sh: needs valgrind" >&2; exit 1; }
# shellcheck source=bench/test_bin.sh
. "$root/bench/test_bin.sh"
bin="$(flowscope_test_bin)"
work="$(mktemp -d /tmp/exchange_cost.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# Dumps before the measured function and before `Pipeline::finish`, which follows it: part 2
# of 3 is the measured feed alone (setup and warm-up before, the wrap-up after).
EXCHANGE_COST_PCAP="$pcap" valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    --dump-before="*exchange_cost_measured*" --dump-before="*Pipeline<W>::finish" \
    "$bin" --ignored --exact agent::exchange_cost::exchange_cost --nocapture \
    >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
n="$(sed -n 's/.*exchange_cost: frames [0-9]* exchanges \([0-9]*\).*/\1/p' "$work/log")"
part="$work/cg.out.2"
[ -f "$part" ] || { echo "exchange_cost.sh: no dump before Pipeline::finish" >&2; exit 1; }
callgrind_annotate --inclusive=yes --threshold=100 "$part" >"$work/incl.txt" 2>/dev/null
python3 - "$work/incl.txt" "$part" "$n" <<'PY'
import re, sys
incl, out, n = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3])
rows = []
for line in incl.splitlines():
    m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$", line)
    if m:
        rows.append((int(m.group(1).replace(",", "")), m.group(2)))
total = int(re.search(r"^summary: (\d+)", open(out).read(), re.M).group(1))
# (label, pattern on the symbol): the first match's inclusive cost (symbols appear once).
steps = [
    ("engine: handle_frame (decode, records, spans)", r"Engine::handle_frame\b"),
    ("  tcp reassembly + HTTP/1 decoder", r"TcpReassembler::push\b"),
    ("  http1 records (flows, spans)", r"http1_records\b"),
    ("    http1::records::span", r"http1::records::span\b"),
    ("    http1::records::request_flow", r"records::request_flow\b"),
    ("    http1::records::response_flow", r"records::response_flow\b"),
    ("agent: owners_of", r"Pipeline<.*>::owners_of\b"),
    ("agent: emit_flow (all below)", r"Pipeline<.*>::emit_flow\b"),
    ("  metrics: observe_flow", r"Metrics::observe_flow\b"),
    ("  endpoints: observe + resolve", r"EndpointResolver::(observe|resolve)\b"),
    ("  store: push_engine (insert + evict)", r"FlowStore::push_engine\b"),
    ("  store: insert (with the evicted flow's drop)", r"FlowStore::insert\b"),
    ("agent: spans_for_owners", r"roles::spans_for_owners\b"),
    ("agent: emit_span (metrics)", r"Pipeline<.*>::emit_span\b"),
    ("  metrics: observe_span", r"Metrics::observe_span\b"),
    ("drop of a Span", r"drop_in_place<flows::record::Span>"),
    ("drop of a Flow", r"drop_in_place<flows::record::Flow>"),
    ("clock_gettime", r"clock_gettime"),
    ("malloc+free+realloc", r"^(\S*:)?(malloc|free|realloc|calloc)$"),
    ("memmove/memcpy", r"mem(move|cpy)"),
]
print(f"exchanges measured: {n}; Ir per exchange (inclusive; lines overlap)")
print(f"{'total':<48} {total / n:>8.0f}")
for label, pat in steps:
    cost = 0
    hits = [c for c, s in rows if re.search(pat, s.split(" [")[0])]
    if label.startswith("malloc") or label.startswith("memmove") or label.startswith("clock"):
        cost = sum(hits)
    elif hits:
        cost = hits[0]
    print(f"{label:<48} {cost / n:>8.0f}")
# Calls to the allocator, from the call records (names are compressed: "(id) name" once).
names, cur, calls = {}, None, {}
for line in open(out):
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        if line.startswith("cfn"):
            cur = names.get(m.group(1), "")
        continue
    m = re.match(r"calls=(\d+)", line)
    if m and cur is not None:
        calls[cur] = calls.get(cur, 0) + int(m.group(1))
        cur = None
alloc = sum(v for k, v in calls.items() if re.fullmatch(r"(malloc|realloc|calloc)", k))
free = sum(v for k, v in calls.items() if k == "free")
print(f"{'allocations (malloc+realloc+calloc calls)':<48} {alloc / n:>8.2f}")
print(f"{'frees':<48} {free / n:>8.2f}")
PY
