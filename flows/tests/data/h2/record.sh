#!/usr/bin/env bash
# Records the HTTP/2 golden captures in this directory. Run as root from anywhere:
#   sudo flows/tests/data/h2/record.sh
#
# Same layout as ../record.sh: two network namespaces joined by a veth pair, nghttpd in fs-h2-srv
# (198.18.0.1), clients in fs-h2-cli (198.18.0.2); only 198.18.0.0/15 is used and nothing leaves
# the namespaces. tcpdump records on the client's veth end (Ethernet link type).
# Needs: ip, tcpdump, nghttpd (nghttp2-server), nghttp and h2load (nghttp2-client), nghttpx
# (nghttp2-proxy), curl, python3 with grpcio (pip install grpcio).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tag=fs-h2
tools="nghttpd nghttp h2load nghttpx curl"
# shellcheck source=flows/tests/data/netns.sh
. "$here/../netns.sh"

mkdir -p "$work/www"
printf 'alpha\n' > "$work/www/a"
printf 'bravo bravo\n' > "$work/www/b"
head -c 40000 /dev/zero | tr '\0' 'z' > "$work/www/big"

ip netns exec "$srv" nghttpd --no-tls -d "$work/www" --address=198.18.0.1 8080 &
pids+=($!)
# nghttpx in front of nghttpd: its cleartext frontend accepts HTTP/1.1 `Upgrade: h2c`
# (nghttpd does not).
ip netns exec "$srv" nghttpx --frontend='198.18.0.1,8081;no-tls' \
    --backend='198.18.0.1,8080;;proto=h2' --workers=1 --log-level=WARN \
    --conf=/dev/null --errorlog-file="$work/nghttpx.log" &
pids+=($!)
ip netns exec "$srv" python3 "$here/grpc_peers.py" server 198.18.0.1:50051 &
pids+=($!)
sleep 1

capture() {
    local name=$1 port=$2; shift 2
    ip netns exec "$cli" tcpdump -i "$veth_c" -U -w "$here/$name" -s 0 tcp port "$port" 2>/dev/null &
    local dump=$!
    pids+=("$dump")
    sleep 0.5
    ip netns exec "$cli" "$@" >/dev/null || echo "record.sh: client failed: $*" >&2
    sleep 0.5
    kill "$dump"
    wait "$dump" 2>/dev/null || true
}

# Prior knowledge (RFC 9113 §3.3): four streams on one connection, one of them a 404, a
# traceparent on every request; nghttp's HPACK encoder indexes fields, so later requests
# refer to earlier ones through the dynamic table.
capture prior.pcap 8080 nghttp -n \
    -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
    http://198.18.0.1:8080/a http://198.18.0.1:8080/b http://198.18.0.1:8080/missing \
    http://198.18.0.1:8080/big

# Six requests one after another on one connection (h2load -m 1), each in its own packets:
# the mid-stream tests drop the start of this capture.
capture sequential.pcap 8080 h2load -n 6 -c 1 -m 1 \
    http://198.18.0.1:8080/a http://198.18.0.1:8080/b http://198.18.0.1:8080/missing

# h2c upgrade (RFC 7540 §3.2): HTTP/1.1 GET with Upgrade: h2c, 101, then HTTP/2.
capture upgrade.pcap 8081 curl -s --http2 -o /dev/null http://198.18.0.1:8081/a

# gRPC (grpcio on both ends, prior knowledge): unary OK with traceparent and grpc-timeout,
# NOT_FOUND, server streaming, UNIMPLEMENTED, a gzip-compressed request.
capture grpc.pcap 50051 python3 "$here/grpc_peers.py" client 198.18.0.1:50051

echo "recorded: $(cd "$here" && ls ./*.pcap)"
