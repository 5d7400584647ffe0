#!/usr/bin/env bash
# Records lossy.pcap, the capture of flows/tests/tcp_health_golden.rs. Run as root:
#   sudo flows/tests/data/health/record.sh
#
# Two network namespaces joined by a veth pair: nginx in hl-srv (198.18.0.1), curl and a slow
# Python reader in hl-cli (198.18.0.2). An nftables rule in hl-cli drops every 20th data
# segment nginx sends on port 80 as it arrives, so the server retransmits (fast retransmit and
# RTO) and the client sends duplicate ACKs; a client with a tiny receive buffer that stops reading makes
# zero-window advertisements; a connect to a closed port is refused. tcpdump records on the
# client's veth end, headers only (snaplen 128), so the file stays small.
# Needs: ip, tcpdump, nginx, curl, nft (Debian's nftables), python3.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tag=hl
tools="nginx curl nft python3"
net=198.18.0
# shellcheck source=flows/tests/data/netns.sh
. "$here/../netns.sh"
# One MSS per skb (no TSO/GSO super-packets): the drop rule and the capture see real segments.
ip -n "$srv" link set "$veth_s" gso_max_segs 1
ip -n "$cli" link set "$veth_c" gso_max_segs 1

mkdir -p "$work/www"
head -c 300000 /dev/zero | tr '\0' 'x' > "$work/www/big"
chmod -R a+rX "$work"
cat > "$work/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 64; }
http {
    access_log off;
    sendfile off;
    server { listen 198.18.0.1:80; root $work/www; }
}
CONF
ip netns exec "$srv" nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
# Every 20th data segment from port 80 is dropped on its way into the client, after tcpdump
# (packet taps run before netfilter) and before TCP: the capture shows the segment, the
# client's duplicate ACKs and the server's retransmission. (A drop in the sender's output hook
# is reported back to TCP, which just sends again: no loss on the wire.)
ip netns exec "$cli" nft -f - <<'NFT'
table inet lossy {
    chain in {
        type filter hook input priority 0;
        tcp sport 80 ip length > 100 numgen inc mod 20 == 0 counter drop
    }
}
NFT
sleep 1

ip netns exec "$cli" tcpdump -i "$veth_c" -s 128 -w "$work/lossy.pcap" -U tcp 2>/dev/null & tpid=$!
sleep 1
for i in 1 2 3; do
    ip netns exec "$cli" curl -s -o /dev/null http://198.18.0.1/big
done
# A slow reader: a 4 KiB receive buffer, reads nothing for 0.5 s, then drains.
ip netns exec "$cli" python3 - <<'PY'
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("198.18.0.1", 80))
s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
time.sleep(0.5)
while s.recv(65536):
    pass
s.close()
PY
# Refused: nothing listens on port 81.
ip netns exec "$cli" curl -s -o /dev/null http://198.18.0.1:81/ || true
sleep 1
kill "$tpid"; wait "$tpid" 2>/dev/null || true
ip netns exec "$cli" nft list ruleset | grep counter >&2
cp "$work/lossy.pcap" "$here/lossy.pcap"
ls -l "$here/lossy.pcap"
