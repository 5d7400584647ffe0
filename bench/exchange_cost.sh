#!/usr/bin/env bash
# Instructions (and heap allocations) per HTTP/1.1, h2c or gRPC exchange of the agent's own per-record path,
# counted by callgrind (exact and repeatable on a busy machine, unlike CPU time), split by step:
# engine decode (with span building), the agent's owner lookup, span owners and the span split
# (flows::roles), metrics, the endpoint resolver, the flow store (insert and the flow it evicts).
# The workload is the ignored unit test `agent::exchange_cost` (observer/src/agent/exchange_cost.rs):
# the real `Pipeline` fed a real capture as the agent in bench/ab.sh is (`-o none`, metrics on,
# both ends owned by local processes), after a warm-up that fills the store's ring.
#
#   bench/record_http1.sh /tmp/h1cost/h1.pcap 10 20000 1024   # once: nginx + h2load --h1
#   bench/exchange_cost.sh /tmp/h1cost/h1.pcap
#   MODE=h2c bench/record_http1.sh /tmp/h2agent/h2c.pcap 10 20000 1024   # or MODE=grpc: HTTP/2
#   bench/exchange_cost.sh /tmp/h2agent/h2c.pcap   # exchanges = final responses the engine decodes
#   BIN=path bench/exchange_cost.sh PCAP   # measures that test binary (e.g. one built from main)
#   CACHE_SIM=1 bench/exchange_cost.sh PCAP   # also D1 and LL read/write misses per exchange
#   MAX_FLOWS=64 bench/exchange_cost.sh PCAP  # the store's ring size (default Hubble's 4,095)
#   KEEP=DIR bench/exchange_cost.sh PCAP   # keeps callgrind's output (DIR/cg.out.2: the measured part)
#   PREFETCH=touch|off bench/exchange_cost.sh PCAP   # the store's eviction prefetch (default on):
#       callgrind ignores prefetch instructions, so `touch` (loads instead) shows the misses it covers
# CACHE_SIM simulates a 32 KiB 8-way L1d and, as "LL", a 512 KiB 8-way cache: this machine's
# per-core L2 (AMD EPYC, 1 MiB over 2 vCPUs). callgrind models two levels only; the L2 is the one
# a few-MiB working set overflows (the 32 MiB L3 holds it), so its misses are the ones that cost.
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
if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    trap 'cp "$work"/cg.out* "$KEEP"/; rm -rf "$work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
# Dumps before the measured function and before `Pipeline::finish`, which follows it: part 2
# of 3 is the measured feed alone (setup and warm-up before, the wrap-up after).
cache=()
[ "${CACHE_SIM:-0}" = 1 ] && cache=(--cache-sim=yes --D1=32768,8,64 --LL=524288,8,64)
EXCHANGE_COST_PCAP="$pcap" EXCHANGE_COST_MAX_FLOWS="${MAX_FLOWS:-4095}" \
    EXCHANGE_COST_PREFETCH="${PREFETCH:-prefetch}" \
    valgrind --tool=callgrind "${cache[@]}" --callgrind-out-file="$work/cg.out" \
    --dump-before="*exchange_cost_measured*" --dump-before="*Pipeline<W>::finish" \
    "$bin" --ignored --exact agent::exchange_cost::exchange_cost --nocapture \
    >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
n="$(sed -n 's/.*exchange_cost: frames [0-9]* exchanges \([0-9]*\).*/\1/p' "$work/log")"
grep -o 'max_flows .*' "$work/log" | sed 's/ ns_per_exchange.*//'  # (time under valgrind: meaningless)
part="$work/cg.out.2"
[ -f "$part" ] || { echo "exchange_cost.sh: no dump before Pipeline::finish" >&2; exit 1; }
callgrind_annotate --inclusive=yes --threshold=100 "$part" >"$work/incl.txt" 2>/dev/null
python3 - "$work/incl.txt" "$part" "$n" <<'PY'
import re, sys
incl, out, n = open(sys.argv[1]).read(), sys.argv[2], int(sys.argv[3])
# One row per symbol: a count per event (Ir alone, or with CACHE_SIM=1 Ir Dr Dw I1mr D1mr D1mw
# ILmr DLmr DLmw), each "N (P%)", "0" or "." for none.
events = re.search(r"^events: (.*)$", open(out).read(), re.M).group(1).split()
cell = r"(?:([\d,]+)(?:\s+\(\s*[\d.]+%\))?|\.)\s+"
rows = []
for line in incl.splitlines():
    m = re.match(r"\s*" + cell * len(events) + r"(\S.*)$", line)
    if m:
        vals = [int(v.replace(",", "")) if v else 0 for v in m.groups()[:-1]]
        rows.append((vals, m.group(len(events) + 1)))
totals = [int(v) for v in re.search(r"^summary: (.*)$", open(out).read(), re.M).group(1).split()]
total = totals[0]
# Misses shown (CACHE_SIM=1): L1 data read/write misses and "LL" (the simulated L2) ones.
shown = [e for e in ("D1mr", "D1mw", "DLmr", "DLmw") if e in events]
# (label, pattern on the symbol): the largest match's inclusive cost.
steps = [
    ("engine: handle_frame (decode, records, spans)", r"Engine::handle_frame\b"),
    ("  tcp reassembly + L7 decoder (HTTP/1, HTTP/2)", r"TcpReassembler::push\b"),
    ("  http1 records (flows, spans)", r"http1_records\b"),
    ("    http1::records::span", r"http1::records::span\b"),
    ("    http1::records::request_flow", r"http1::records::request_flow\b"),
    ("    http1::records::response_flow", r"http1::records::response_flow\b"),
    ("  http2 decoder (frames, HPACK, streams)", r"Http2Decoder as flows::l7::StreamDecoder>::on_event\b|Http2Decoder::feed\b"),
    ("    hpack: Decoder::decode", r"hpack::Decoder::decode\b"),
    ("    huffman::decode", r"huffman::decode\b"),
    ("    FieldSummary::new", r"FieldSummary::new\b"),
    ("  http2::records::span", r"http2::records::span\b"),
    ("  http2::records::request_flow", r"http2::records::request_flow\b"),
    ("  http2::records::response_flow", r"http2::records::response_flow\b"),
    ("  engine::counterpart_of", r"engine::counterpart_of\b"),
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
    ("store: eviction prefetch (api/store/prefetch.rs)", r"store::prefetch::evictions\b"),
    ("clock_gettime", r"clock_gettime"),
    ("malloc+free+realloc", r"^(\S*:)?(malloc|free|realloc|calloc)$"),
    ("memmove/memcpy", r"mem(move|cpy)"),
]
print(f"exchanges measured: {n}; per exchange (inclusive; lines overlap)")
print(f"{'':<48} {'Ir':>8}" + "".join(f" {e:>7}" for e in shown))
def line(label, vals):
    misses = "".join(f" {vals[events.index(e)] / n:>7.2f}" for e in shown)
    print(f"{label:<48} {vals[0] / n:>8.0f}{misses}")
line("total", totals)
for label, pat in steps:
    hits = [v for v, s in rows if re.search(pat, s.split(" [")[0])]
    if label.startswith("malloc") or label.startswith("memmove") or label.startswith("clock"):
        vals = [sum(col) for col in zip(*hits)] if hits else [0] * len(events)
    else:
        # The symbol's own entry: the largest (inlined copies are listed apart, by file).
        vals = max(hits, key=lambda v: v[0]) if hits else [0] * len(events)
    line(label, vals)
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
