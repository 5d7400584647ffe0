#!/usr/bin/env bash
# Instructions and heap allocations per exchange of the engine as the agent drives it, counted
# by callgrind over `flowscope replay --spans` (exact and repeatable on a busy machine, unlike
# CPU time). Used for the HTTP/2 and gRPC decoder passes (BENCHMARKS.md, issue 18).
#
#   MODE=grpc SNAPLEN=512 bench/record_http1.sh /tmp/x/grpc-s512.pcap 10 20000 1024   # once
#   bench/replay_cost.sh /tmp/x/grpc-s512.pcap [OUTDIR]
#   FLOWSCOPE=path bench/replay_cost.sh PCAP     # measures that binary (e.g. one built from main)
#
# Collects everything inside the engine's calls (L3/L4 records for control packets only, spans
# on), not span printing. Ir per exchange = collected Ir / spans printed (one per exchange);
# allocations = calls to __rust_alloc, __rust_realloc and __rust_alloc_zeroed from collected
# code. Prints one summary line, then the top functions by inclusive Ir per exchange; keeps
# callgrind's output and the spans in OUTDIR (default a temporary directory, removed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pcap="${1:?usage: bench/replay_cost.sh PCAP [OUTDIR]}"
bin="${FLOWSCOPE:-$root/target/release/flowscope}"
command -v valgrind >/dev/null || { echo "replay_cost.sh: needs valgrind" >&2; exit 1; }
if [ -n "${2:-}" ]; then out="$2"; mkdir -p "$out"; else
    out="$(mktemp -d /tmp/replay_cost.XXXXXX)"; trap 'rm -rf "$out"' EXIT; fi
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" \
    --toggle-collect='<flows::engine::Engine as flowscope::workers::FlowEngine>::*' \
    --toggle-collect='flowscope::workers::FlowEngine::recycle' \
    "$bin" replay --l4 control-only --spans "$pcap" >"$out/spans.json" 2>"$out/stderr"
callgrind_annotate --inclusive=yes --threshold=100 "$out/cg.out" >"$out/incl.txt" 2>/dev/null
python3 - "$out" "$(basename "$pcap")" <<'PY'
import re, sys
out, name = sys.argv[1], sys.argv[2]
n = sum(1 for _ in open(f"{out}/spans.json"))
text = open(f"{out}/cg.out").read()
total = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
names, cur, calls = {}, None, {}
for line in text.splitlines():
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        cur = names.get(m.group(1), "") if line.startswith("cfn") else None
        continue
    m = re.match(r"calls=(\d+)", line)
    if m and cur is not None:
        calls[cur] = calls.get(cur, 0) + int(m.group(1))
        cur = None
alloc = sum(v for k, v in calls.items()
            if re.fullmatch(r"__rustc::__rust_(alloc|realloc|alloc_zeroed)", k))
print(f"{name}  spans {n}  Ir {total}  Ir/exchange {total / n:.0f}  "
      f"allocs {alloc}  allocs/exchange {alloc / n:.1f}")
rows = []
for line in open(f"{out}/incl.txt"):
    m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$", line)
    if m:
        rows.append((int(m.group(1).replace(",", "")), m.group(2).split(" [")[0]))
for c, s in rows[:40]:
    print(f"  {c / n:>8.0f}  {s}")
PY
