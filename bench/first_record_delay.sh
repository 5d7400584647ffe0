#!/usr/bin/env bash
# How late an idle agent reports a lone request: nginx in one namespace, curl in another, the
# agent on the server's veth printing flows as JSON (`-o json`). After a quiet spell of GAP
# seconds (randomised by ±25%), one curl; the delay is from just before curl starts to the
# moment the agent prints that exchange's HTTP response flow (the curl itself takes a few ms
# of it). Each binary given gets REQS such requests per run, RUNS runs, alternated. An idle
# agent used to find the first records after a quiet spell only at its next idle poll (up to
# 200 ms later); the capture programs' `reader_idle` flag makes the first one wake it, and the
# reader then looks again within its shortest poll (20 ms) for the rest of the exchange.
#
# Needs root, nginx, curl and release builds. Not run in CI.
#   bench/first_record_delay.sh BIN [BIN...]      env RUNS=2 REQS=10 GAP=1.5
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
name=first_record_delay tag="fsfrd$$"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need nginx curl python3
bench_netns
bench_page
bench_nginx 64
runs="${RUNS:-2}" reqs="${REQS:-10}" gap="${GAP:-1.5}"

for run in $(seq "$runs"); do
    for bin in "$@"; do
        rm -f "$sock"
        python3 - "$bin" "$srv" "$cli" "$dev" "$sock" "$url" "$reqs" "$gap" "$run" <<'PY'
import json, random, statistics, subprocess, sys, threading, time
bin_, srv, cli, dev, sock, url, reqs, gap, run = sys.argv[1:]
reqs, gap = int(reqs), float(gap)
agent = subprocess.Popen(
    ["ip", "netns", "exec", srv, bin_, "agent", "-i", dev, "-o", "json",
     "--listen", f"unix://{sock}", "--metrics-listen", "127.0.0.1:0"],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
responses, lock = [], threading.Condition()

def is_response(line):
    try:
        f = json.loads(line)
    except ValueError:
        return False
    return f.get("l7", {}).get("type") == "RESPONSE" and "http" in f.get("l7", {})

def read():
    for line in agent.stdout:
        if is_response(line):
            with lock:
                responses.append(time.time())
                lock.notify_all()

threading.Thread(target=read, daemon=True).start()
# Until the agent answers, then a settle.
for _ in range(150):
    if subprocess.run([bin_, "status", "--server", f"unix://{sock}"],
                      capture_output=True).returncode == 0:
        break
    time.sleep(0.1)
else:
    sys.exit(f"{bin_}: agent did not answer")
time.sleep(2)
delays = []
for _ in range(reqs):
    # A random phase against the agent's timers: a fixed gap would meet its polls at the
    # same point every time.
    time.sleep(gap * random.uniform(0.75, 1.25))
    with lock:
        seen = len(responses)
    t0 = time.time()
    subprocess.run(["ip", "netns", "exec", cli, "curl", "-sS", "--max-time", "5", "-o",
                    "/dev/null", url], check=True)
    with lock:
        if not lock.wait_for(lambda: len(responses) > seen, timeout=5):
            sys.exit(f"{bin_}: no response flow within 5 s")
        delays.append((responses[seen] - t0) * 1e3)
agent.send_signal(2)
agent.wait(timeout=10)
q = statistics.quantiles(delays, n=4)
print(f"run {run} {bin_}: ms from curl to the printed response, median {statistics.median(delays):.1f} "
      f"(quartiles {q[0]:.1f} / {q[2]:.1f}, min {min(delays):.1f}, max {max(delays):.1f}) over {reqs}: "
      + " ".join(f"{d:.0f}" for d in delays))
PY
    done
done
