#!/usr/bin/env bash
# Records the golden captures in this directory. Run as root from anywhere:
#   sudo flows/tests/data/record.sh
#
# Two network namespaces joined by a veth pair; servers in fs-srv (198.18.0.1,
# 2001:db8::1), clients in fs-cli (198.18.0.2, 2001:db8::2). Only documentation/benchmark
# ranges (198.18.0.0/15, 2001:db8::/32) are used and nothing leaves the namespaces.
# tcpdump records on the client's veth end (Ethernet link type), one pcap per scenario.
# Needs: ip, tcpdump, nginx, curl, dig (bind9-dnsutils), python3.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tag=fs
tools="nginx curl dig python3"
# shellcheck source=flows/tests/data/netns.sh
. "$here/netns.sh"
# Small MTU on one side is not wanted: keep 1500 so segment sizes are ordinary.

# --- servers -----------------------------------------------------------------
mkdir -p "$work/www" "$work/py"
printf 'alpha\n' > "$work/www/a"
printf 'bravo bravo\n' > "$work/www/b"
printf 'python file\n' > "$work/py/f.txt"
chmod -R a+rX "$work"  # nginx workers run as nobody
cat > "$work/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 64; }
http {
    access_log off;
    keepalive_requests 100;
    server {
        listen 198.18.0.1:80;
        listen [2001:db8::1]:80;
        root $work/www;
    }
}
CONF
ip netns exec "$srv" nginx -c "$work/nginx.conf" -p "$work" & pids+=($!)
ip netns exec "$srv" python3 "$here/odd_server.py" 198.18.0.1 8088 & pids+=($!)
(cd "$work/py" && exec ip netns exec "$srv" python3 -m http.server 8080 --bind 198.18.0.1) >/dev/null 2>&1 & pids+=($!)
ip netns exec "$srv" python3 "$here/dns_server.py" 198.18.0.1 & pids+=($!)
sleep 1

# --- captures ------------------------------------------------------------------
record() { # record NAME COMMAND...  (on the client's veth: Ethernet)
    record_on "$veth_c" "$@"
}
record_on() { # record_on IFACE NAME COMMAND...  (IFACE "any": Linux cooked v2 headers)
    local iface="$1" name="$2"; shift 2
    ip netns exec "$cli" tcpdump -q --immediate-mode -i "$iface" -s 0 -U -w "$here/$name.pcap" 'tcp or udp' 2>"$work/tcpdump-$name.log" &
    local tp=$!
    sleep 1
    ip netns exec "$cli" "$@"
    sleep 1.5
    kill -INT "$tp"; wait "$tp" || true
    tail -n 3 "$work/tcpdump-$name.log" >&2
    echo "recorded $name.pcap ($(stat -c %s "$here/$name.pcap") bytes)"
}

# keep-alive: three GETs on one connection, then a HEAD on a second one.
record keepalive sh -c 'curl -s -o /dev/null -o /dev/null -o /dev/null \
    http://198.18.0.1/a http://198.18.0.1/b http://198.18.0.1/missing \
    && curl -s -I -o /dev/null http://198.18.0.1/a'
# pipelining: three requests in one write.
record pipeline python3 "$here/clients.py" pipeline 198.18.0.1 80
# odd framing: chunked + 204 + 304 on one connection; POST with Expect: 100-continue;
# a close-delimited response.
head -c 3000 /dev/zero | tr '\0' 'p' > "$work/body"
record odd sh -c "curl -s -o /dev/null -o /dev/null -o /dev/null \
    http://198.18.0.1:8088/chunked http://198.18.0.1:8088/nocontent http://198.18.0.1:8088/notmodified \
    && curl -s -o /dev/null -H 'Expect: 100-continue' --data-binary @$work/body http://198.18.0.1:8088/upload \
    && curl -s -o /dev/null http://198.18.0.1:8088/close"
# 101 upgrade: bytes after it look like HTTP but are not.
record upgrade python3 "$here/clients.py" upgrade 198.18.0.1 8088
# IPv6.
record ipv6 curl -s -g -o /dev/null -o /dev/null 'http://[2001:db8::1]/a' 'http://[2001:db8::1]/b'
# python http.server (HTTP/1.0 responses).
record pyserver sh -c 'curl -s -o /dev/null http://198.18.0.1:8080/f.txt && curl -s -o /dev/null http://198.18.0.1:8080/nothing'
# DNS over UDP.
record dns sh -c 'dig +tries=1 +time=2 +noedns @198.18.0.1 example.test A >/dev/null
    dig +tries=1 +time=2 @198.18.0.1 example.test AAAA >/dev/null
    dig +tries=1 +time=2 +noedns @198.18.0.1 www.test A >/dev/null
    dig +tries=1 +time=2 +noedns @198.18.0.1 missing.test A >/dev/null'
# Linux cooked capture on the client host ("any"): direction and ifindex come from the
# cooked header, so the request is seen leaving (a CLIENT span).
record_on any cooked sh -c 'curl -s -o /dev/null http://198.18.0.1/b'
