#!/usr/bin/env bash
# Records a real HTTP/1.1 capture for the replay benchmarks (issue 15: "replay throughput on a
# real HTTP/1 capture is no lower than today"): Debian's nginx serving a static body in one
# network namespace, h2load (`--h1`, keep-alive, one request in flight per connection) in
# another, joined by a veth pair; tcpdump records the server's veth, whole packets.
#
# Unlike `gen-pcap` (flows::synth), the packets are what Linux and nginx really send: delayed
# ACKs, TCP timestamps and window scaling, nginx's response headers, h2load's pacing across
# connections, connections opened and closed with their handshakes and FINs.
#
#   bench/record_http1.sh [OUT=/tmp/replay/http1-nginx.pcap] [CONNS=200] [REQUESTS=300000] [BODY=512]
#
# MODE picks the protocol, as in bench/ab.sh: h1 (default), h2c (HTTP/2 over cleartext TCP with
# prior knowledge, RFC 9113 §3.3: nginx `listen ... http2`, h2load without --h1, one stream per
# connection) or grpc (the same h2c connections carrying ab.sh's gRPC-shaped unary call: a POST
# of a fixed length-prefixed message, a length-prefixed reply and a `grpc-status: 0` trailer;
# BODY is then unused). SNAPLEN=N cuts each packet to N bytes as the agent's TC program does
# (`--snaplen`, default 512 there); default 0, whole packets.
#
# Needs root; installs nginx, nghttp2-client (h2load) and tcpdump with apt when missing. The
# capture is large (about 1 KiB per packet): keep it under /tmp, never in the repository.
# Prints tcpdump's own count of packets dropped by the kernel (should be 0: a dropped packet
# is a gap the replay then reports, which is not what a throughput benchmark should measure).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-/tmp/replay/http1-nginx.pcap}" conns="${2:-200}" requests="${3:-300000}" body="${4:-512}"
name=record_http1.sh tag="fsrh$$"
proto="${MODE:-h1}" url="http://198.18.0.1/body"
case "$proto" in
    h1) proto_args=(--h1) ;;
    h2c) proto_args=(-m 1) nginx_listen_opts=http2 ;;
    grpc)
        nginx_listen_opts=http2
        # As bench/ab.sh: the static module's 405 to a POST is turned into the file itself.
        nginx_locations='location /helloworld.Greeter/ { default_type application/grpc;
            add_trailer grpc-status 0; error_page 405 =200 $uri; }'
        url="http://198.18.0.1/helloworld.Greeter/SayHello"
        ;;
    *) echo "$name: MODE is h1, h2c or grpc, not $proto" >&2; exit 1 ;;
esac

missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v tcpdump >/dev/null || missing+=(tcpdump)
if [ ${#missing[@]} -gt 0 ]; then
    echo "$name: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

tcpdump_pid=""
bench_extra_cleanup() { [ -n "$tcpdump_pid" ] && kill -INT "$tcpdump_pid" 2>/dev/null; }
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_need nginx h2load tcpdump ip
mkdir -p "$(dirname "$out")"
bench_netns
# Segments as on a wire (no 64 KiB GSO/GRO super-packets in the capture), when ethtool is here.
if command -v ethtool >/dev/null; then
    ip netns exec "$srv" ethtool -K "$dev" tso off gso off gro off >/dev/null 2>&1 || true
    ip netns exec "$cli" ethtool -K "${tag}b" tso off gso off gro off >/dev/null 2>&1 || true
fi
# nginx counts its listening socket among worker_connections: room for every client and more.
bench_nginx "$(( conns * 2 + 64 ))"
head -c "$body" /dev/zero | tr '\0' x > "$work/www/body"
if [ "$proto" = grpc ]; then
    # gRPC messages: flag 0 (uncompressed), 4-byte big-endian length, protobuf field 1 (string).
    mkdir -p "$work/www/helloworld.Greeter"
    printf '\0\0\0\0\007\012\005world' > "$work/grpc-request.bin"
    printf '\0\0\0\0\015\012\013Hello world' > "$work/www/helloworld.Greeter/SayHello"
    proto_args=(-m 1 -d "$work/grpc-request.bin" -H 'content-type: application/grpc' -H 'te: trailers')
fi

# -B: a 64 MiB kernel buffer so that a busy machine does not make tcpdump drop packets.
ip netns exec "$srv" tcpdump -i "$dev" -s "${SNAPLEN:-0}" -B 65536 -w "$out" "tcp port 80" 2>"$work/tcpdump.err" &
tcpdump_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$work/tcpdump.err" && break; sleep 0.1; done

ip netns exec "$cli" h2load "${proto_args[@]}" -c "$conns" -n "$requests" "$url" > "$work/h2load.out"
grep -E "^(finished in|requests:|status codes:)" "$work/h2load.out" >&2

sleep 0.5
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump_pid=""
grep -E "packets (captured|received by filter|dropped by kernel)" "$work/tcpdump.err" >&2
echo "$name: wrote $out ($(du -h "$out" | cut -f1); MODE=$proto SNAPLEN=${SNAPLEN:-0}, $conns connections, $requests requests, ${body}-byte body)" >&2
