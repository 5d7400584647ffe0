#!/usr/bin/env bash
# Cost of the TLS plaintext probes (issue 19) on an observed HTTPS service, A/B interleaved.
#
# nginx (1 worker, 1 KiB static body, TLS with a self-signed certificate made here) runs in one
# network namespace, h2load in another, joined by a veth pair. Each pair of runs is the agent
# with `--tls-plaintext false` ("notls": capture and attribution only, the TLS flows not
# decoded), then the agent with the probes on ("tls": uprobes on SSL_read/SSL_write and their
# _ex forms in libssl.so.3, the socket link, the plaintext decoded). Both nginx and h2load
# link Debian's libssl.so.3, so with the probes on every request costs both ends' probes (four
# SSL calls per request: h2load's write and read, nginx's read and write), as on a node where
# client and server are both local. Each run has two phases at a fixed total rate:
#   h1: h2load --h1 over TLS (ALPN http/1.1), RPS req/s over CONNS keep-alive connections
#   h2: h2load over TLS (ALPN h2), the same rate, one stream at a time per connection
# The connections are opened once per phase, so the TLS handshakes are not what is measured:
# the per-request cost is the SSL calls' probes, the ring and the decoding.
# Reported per run: achieved req/s, p50/p99 latency (h2load's per-request log), the agent's
# CPU (utime+stime from /proc/PID/stat, µs per request) and RSS, TLS ring losses and plaintext
# chunks decoded; then per pair tls minus notls, and the median over pairs.
#
# Needs root, nginx, h2load (Debian nghttp2-client), openssl, a release build. Not run in CI.
#   bench/https_ab.sh [PAIRS=3] [SECS=10] [RPS=5000] [CONNS=10]
# Env: FLOWSCOPE=path/to/flowscope (default target/release/flowscope), KEEP=1 keeps the work
#      dir, AGENT_ARGS="..." extra agent options (both modes), PROFILE=1 records the agent with
#      `perf record -g` during each "tls" phase (perf-PAIR-PHASE.txt in the work dir; implies
#      KEEP=1; the profiler's own cost then shows in the numbers).
set -euo pipefail
[ -n "${PROFILE:-}" ] && KEEP=1
root="$(cd "$(dirname "$0")/.." && pwd)"
pairs="${1:-3}" secs="${2:-10}" rps="${3:-5000}" conns="${4:-10}"
fs="${FLOWSCOPE:-$root/target/release/flowscope}"
name=https_ab.sh tag="fsha$$"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need nginx h2load openssl ip bc "$fs"
bench_netns

# --- nginx over TLS: 1 worker, 1 KiB body, HTTP/1.1 and h2 by ALPN ---
mkdir -p "$work/www" "$work/nginx"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/index.html"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=198.18.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat > "$work/nginx/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $work/nginx/nginx.pid; error_log stderr;
worker_rlimit_nofile 4096;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 198.18.0.1:443 ssl http2; root $work/www;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; } }
EOF
ip netns exec "$srv" nginx -c "$work/nginx/nginx.conf" -e stderr 2>"$work/nginx.err" &
nginx_pid=$!
for _ in $(seq 100); do ip netns exec "$cli" bash -c 'exec 3<>/dev/tcp/198.18.0.1/443' 2>/dev/null && break; sleep 0.1; done
ip netns exec "$cli" bash -c 'exec 3<>/dev/tcp/198.18.0.1/443' 2>/dev/null \
    || { echo "$name: nginx did not start:" >&2; cat "$work/nginx.err" >&2; exit 1; }
url="https://198.18.0.1/index.html"

status_json() { "$fs" status --server "unix://$sock" -o json 2>/dev/null || echo '{}'; }
# counter NAME < status json: the integer value of counters.NAME (0 when absent).
counter() { python3 -c '
import json, sys
c = json.load(sys.stdin).get("counters", {})
print(int(c.get(sys.argv[1], 0)))' "$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

# load PHASE LOGFILE: runs h2load over TLS at the fixed rate, prints "done rps p50_us p99_us".
load() {
    local phase="$1" log="$2" proto=()
    [ "$phase" = h1 ] && proto=(--h1)
    ip netns exec "$cli" h2load "${proto[@]}" -c "$conns" -t 1 -m 1 --rps "$(( rps / conns ))" \
        -D "$secs" --log-file="$log" "$url" > "$log.out" 2>&1 \
        || { echo "$name: h2load failed:" >&2; tail "$log.out" >&2; exit 1; }
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
printf 'pair\tmode\tphase\trequests\treq_s\tp50_us\tp99_us\tagent_us_per_req\trss_kb\ttls_ring_lost\tplaintext_chunks\tplaintext_flows\n' > "$results"
echo "$name: $pairs pairs x (h1, h2 over TLS at ${rps}/s over $conns conns), ${secs}s each, work dir $work" >&2
for pair in $(seq "$pairs"); do
    for mode in notls tls; do
        if [ "$mode" = tls ]; then
            # shellcheck disable=SC2086
            bench_start_agent "$fs" -- ${AGENT_ARGS:-}
        else
            # shellcheck disable=SC2086
            bench_start_agent "$fs" -- --tls-plaintext false ${AGENT_ARGS:-}
        fi
        sleep 1
        for phase in h1 h2; do
            s0=$(status_json); c0=$(cpu_ticks "$agent_pid")
            perf_pid=""
            if [ "$mode" = tls ] && [ -n "${PROFILE:-}" ]; then
                perf record -q -F 499 -g -p "$agent_pid" -o "$work/perf-$pair-$phase.data" -- sleep "$secs" 2>/dev/null &
                perf_pid=$!
            fi
            read -r n r p50 p99 < <(load "$phase" "$work/h2load-$pair-$mode-$phase.log")
            if [ -n "$perf_pid" ]; then
                wait "$perf_pid" || true
                perf report -i "$work/perf-$pair-$phase.data" --no-children --percent-limit 1 --stdio -g none \
                    > "$work/perf-$pair-$phase.txt" 2>/dev/null || true
            fi
            sleep 1.5   # let the agent drain its rings and decode the last exchanges
            c1=$(cpu_ticks "$agent_pid"); s1=$(status_json)
            delta() { echo $(( $(counter "$1" <<<"$s1") - $(counter "$1" <<<"$s0") )); }
            us=$(echo "($c1 - $c0) * 1000000 / $hz / $n" | bc -l)
            rss=$(status_kb "$agent_pid" VmRSS)
            echo "$s1" > "$work/status-$pair-$mode-$phase.json"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\t%s\t%s\n' "$pair" "$mode" "$phase" "$n" "$r" \
                "$p50" "$p99" "$us" "$rss" "$(delta tls_kernel_ring_full_lost)" \
                "$(delta engine_tls_plaintext_chunks)" "$(delta engine_tls_plaintext_flows)" >> "$results"
            tail -n1 "$results" >&2
        done
        bench_stop_agent
    done
done

echo
column -t -s $'\t' "$results"
echo
python3 - "$results" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def get(pair, mode, phase):
    return next(r for r in rows if r["pair"] == pair and r["mode"] == mode and r["phase"] == phase)
pairs = sorted({r["pair"] for r in rows}, key=int)
m = statistics.median
for phase in ("h1", "h2"):
    dus, d50, d99, rate = [], [], [], []
    for p in pairs:
        a, b = get(p, "notls", phase), get(p, "tls", phase)
        dus.append(float(b["agent_us_per_req"]) - float(a["agent_us_per_req"]))
        d50.append(float(b["p50_us"]) - float(a["p50_us"]))
        d99.append(float(b["p99_us"]) - float(a["p99_us"]))
        rate.append(float(b["req_s"]) / float(a["req_s"]))
    on = [float(get(p, "tls", phase)["agent_us_per_req"]) for p in pairs]
    off = [float(get(p, "notls", phase)["agent_us_per_req"]) for p in pairs]
    print(f"{phase} over TLS: agent CPU per request {m(off):.2f} us without the probes, {m(on):.2f} us with them: "
          f"+{m(dus):.2f} us median (per pair {', '.join(f'{x:+.2f}' for x in dus)}, spread {max(dus) - min(dus):.2f})")
    print(f"{phase} over TLS: added latency p50 {m(d50):+.0f} us, p99 {m(d99):+.0f} us median "
          f"(per pair p50 {', '.join(f'{x:+.0f}' for x in d50)}; p99 {', '.join(f'{x:+.0f}' for x in d99)}); "
          f"rate ratio {m(rate):.3f}")
EOF
