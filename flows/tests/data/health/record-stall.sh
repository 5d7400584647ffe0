#!/usr/bin/env bash
# Records stall.pcap, the window-full / zero-window-probe capture of
# flows/tests/tcp_health_golden.rs. Run as root:
#   sudo flows/tests/data/health/record-stall.sh
#
# Two network namespaces joined by a veth pair (as record.sh). A Python server in st-srv
# (198.18.1.1) with a 4 KiB receive buffer accepts, sleeps 2 s before its first recv, then drains:
# the client's sendall of 256 kB fills the advertised window (window-full segments), the window
# closes, and the client's kernel probes it (zero-window probes, which Linux sends as
# SND.UNA - 1 with no data) until the server reads. A second connection with SO_KEEPALIVE
# (idle 1 s, interval 1 s) stays quiet for 3.5 s: real keep-alives, with the window open.
# tcpdump records on the client's veth end, headers only (snaplen 128).
# Needs: ip, tcpdump, python3.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tag=st
tools="python3"
net=198.18.1
# shellcheck source=flows/tests/data/netns.sh
. "$here/../netns.sh"
# One MSS per skb (no TSO/GSO super-packets): the capture sees real segments.
ip -n "$srv" link set "$veth_s" gso_max_segs 1
ip -n "$cli" link set "$veth_c" gso_max_segs 1

ip netns exec "$srv" python3 - <<'PY' & pids+=($!)
import socket, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# Set on the listener: accepted sockets inherit it.
l.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
l.bind(("198.18.1.1", 9000))
l.listen(4)
for slow in (True, False):
    c, _ = l.accept()
    if slow:
        time.sleep(2)
    while c.recv(65536):
        pass
    c.close()
PY
sleep 1

ip netns exec "$cli" tcpdump -i "$veth_c" -s 128 -w "$work/stall.pcap" -U tcp 2>/dev/null & tpid=$!
sleep 1
ip netns exec "$cli" python3 - <<'PY'
import socket, time
s = socket.create_connection(("198.18.1.1", 9000))
s.sendall(b"x" * 262144)
s.close()
k = socket.create_connection(("198.18.1.1", 9000))
k.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
k.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
k.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
k.sendall(b"hello")
time.sleep(3.5)
k.close()
PY
sleep 1
kill "$tpid"; wait "$tpid" 2>/dev/null || true
cp "$work/stall.pcap" "$here/stall.pcap"
ls -l "$here/stall.pcap"
