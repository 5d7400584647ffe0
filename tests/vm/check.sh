#!/bin/sh
# Runs inside the VM that tests/vm/run.sh boots (busybox sh, as PID 1's child): the checks of
# tests/tests/capture.rs `fetch_and_check` (v4, default `--capture tc`, `--tc-attach auto`) plus
# what this kernel must choose: clsact (no TCX before 6.6) and kprobe attribution.
# Prints PASS/FAIL per check and `N passed, M failed`; exits with M.
#
# Two namespaces joined by a veth: fss (vs0, 198.18.0.1) runs nginx and the agent, fsc (vc0,
# 198.18.0.2) runs curl.

pass=0
fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
# check DESCRIPTION COMMAND...: PASS if the command succeeds.
check() { d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
finish() {
  if [ "$fail" != 0 ]; then
    echo "---- agent stderr ----"; cat /tmp/agent.err 2>/dev/null
    echo "---- nginx stderr ----"; cat /tmp/nginx.err 2>/dev/null
    echo "---- agent status ----"; cat /tmp/status.txt 2>/dev/null
    echo "---- agent flows (first 40) ----"; head -n 40 /tmp/agent.out 2>/dev/null
    echo "---- dmesg (last 40) ----"; dmesg | tail -n 40
  fi
  echo "$pass passed, $fail failed"
  exit "$fail"
}
# wait_for SECONDS COMMAND...: polls every 0.2 s.
wait_for() {
  n=$(($1 * 5)); shift
  while ! "$@" 2>/dev/null; do
    n=$((n - 1)); [ "$n" -gt 0 ] || return 1
    sleep 0.2
  done
}
# Debian's busybox runs its own applets before PATH (FEATURE_PREFER_APPLETS): iproute2's ip and
# tc by path. Commands run through `ip netns exec` are looked up in PATH (/usr/sbin first).
ip() { /usr/sbin/ip "$@"; }
tc() { /usr/sbin/tc "$@"; }
in_s() { ip netns exec fss "$@"; }
in_c() { ip netns exec fsc "$@"; }

SIF=vs0
CIF=vc0
SERVER=198.18.0.1
CLIENT=198.18.0.2
SOCK=unix:///run/fs.sock

echo "== flowscope checks on $(uname -r); lockdown: $(cat /sys/kernel/security/lockdown 2>&1)"
# (The agent logs lockdown=unknown: `ip netns exec` mounts a fresh /sys without securityfs.)
check "kernel modules loaded (veth sch_ingress cls_bpf tcp_diag)" [ "${MODFAIL:-0}" = 0 ]

# --- Link ---
ip netns add fss && ip netns add fsc \
  && ip link add "$SIF" netns fss type veth peer name "$CIF" netns fsc \
  && in_s ip link set lo up && in_c ip link set lo up \
  && in_s ip addr add "$SERVER/24" dev "$SIF" && in_s ip link set "$SIF" up \
  && in_c ip addr add "$CLIENT/24" dev "$CIF" && in_c ip link set "$CIF" up
check "veth $SIF/$CIF between namespaces fss/fsc" [ $? = 0 ]
[ "$fail" = 0 ] || finish

# --- nginx, serving 7000 bytes (several segments each way at MTU 1500) ---
i=0
while [ $i -lt 700 ]; do printf 'flowscope '; i=$((i + 1)); done > /www/page.txt
mkdir -p /tmp/nginx
cat > /tmp/nginx/nginx.conf <<'EOF'
daemon off; master_process off; worker_processes 1; pid /tmp/nginx/nginx.pid; error_log stderr;
events { worker_connections 64; }
http { access_log off; client_body_temp_path /tmp/nginx; proxy_temp_path /tmp/nginx;
  fastcgi_temp_path /tmp/nginx; uwsgi_temp_path /tmp/nginx; scgi_temp_path /tmp/nginx;
  server { listen 80; listen [::]:80; root /www; }
  server { listen 443 ssl; root /www;
    ssl_certificate /etc/flowscope-tls/cert.pem; ssl_certificate_key /etc/flowscope-tls/key.pem; } }
EOF
# `ip netns exec` execs nginx: $! is nginx's pid (one process: master_process off). By path, not
# through the ip() function: a function in the background is a forked shell, $! would be its pid.
/usr/sbin/ip netns exec fss nginx -c /tmp/nginx/nginx.conf -e stderr 2>/tmp/nginx.err &
NGINX_PID=$!
nginx_listens() { in_s netstat -ltn | grep -q ':80 ' && in_s netstat -ltn | grep -q ':443 '; }
check "nginx (pid $NGINX_PID) listens on :80 and :443 (TLS)" wait_for 30 nginx_listens

# --- the agent, on the server side's veth ---
# start_agent STDOUT STDERR ARGS...: sets AGENT_PID; waits (120 s: TCG) for "Ctrl-C to stop".
start_agent() {
  out=$1 err=$2; shift 2
  /usr/sbin/ip netns exec fss flowscope agent -i "$SIF" "$@" >"$out" 2>"$err" &
  AGENT_PID=$! AGENT_ERR=$err
  t=0
  while ! agent_ready && agent_alive && [ $t -lt 600 ]; do sleep 0.2; t=$((t + 1)); done
  agent_ready
}
agent_ready() { grep -q "Ctrl-C to stop" "$AGENT_ERR"; }
agent_alive() { kill -0 "$AGENT_PID" 2>/dev/null; }
# stop_agent SIGNAL: sets AGENT_RC (exit status; 255 if it didn't exit in 30 s)
stop_agent() {
  kill -"$1" "$AGENT_PID"
  t=0
  while agent_alive && [ $t -lt 300 ]; do sleep 0.1; t=$((t + 1)); done
  if agent_alive; then kill -KILL "$AGENT_PID"; wait "$AGENT_PID"; AGENT_RC=255
  else wait "$AGENT_PID"; AGENT_RC=$?; fi
}
tc_state() {
  in_s tc qdisc show dev "$SIF"
  in_s tc filter show dev "$SIF" ingress 2>&1
  in_s tc filter show dev "$SIF" egress 2>&1
}
# The drop loader's debug lines say why a hook did not load (the listen overflow check).
export FLOWSCOPE_LOG=info,ebpf_kprobe::drops=debug
check "agent started (printed 'Ctrl-C to stop')" start_agent /tmp/agent.out /tmp/agent.err -o json --l4-records every-packet --listen "$SOCK"
unset FLOWSCOPE_LOG
agent_ready || finish

check "agent: capturing (path: tc)" grep -q "capturing (path: tc)" /tmp/agent.err
check "agent log: attribution method=\"kprobe\"" grep -q 'process attribution method="kprobe"' /tmp/agent.err
echo "---- agent start-up log ----"; cat /tmp/agent.err; echo "----"
flowscope status --server "$SOCK" >/tmp/status.txt 2>&1
echo "---- flowscope status ----"; cat /tmp/status.txt; echo "----"
check "status: Attached: $SIF (clsact)  [6.1 has no TCX]" grep -Eq "^Attached: +$SIF \(clsact\)$" /tmp/status.txt
check "status: Attribution: kprobe" grep -Eq "^Attribution: +kprobe$" /tmp/status.txt
in_s tc qdisc show dev "$SIF" > /tmp/tc.running
in_s tc filter show dev "$SIF" ingress >> /tmp/tc.running
in_s tc filter show dev "$SIF" egress >> /tmp/tc.running
check "tc while running: clsact qdisc with fs_tc_ingress and fs_tc_egress" \
  sh -c 'grep -q clsact /tmp/tc.running && grep -q fs_tc_ingress /tmp/tc.running && grep -q fs_tc_egress /tmp/tc.running'

# The kernel's own list of registered kprobes (debugfs): aya attaches them through perf_event
# bpf_links, which `bpftool perf show` (perf event fds only) doesn't list.
cat /sys/kernel/debug/kprobes/list > /tmp/kprobes.running 2>&1
echo "---- /sys/kernel/debug/kprobes/list ----"; cat /tmp/kprobes.running; echo "----"
check "kprobes registered: tcp_connect, inet_csk_accept (kretprobe), tcp_sendmsg, tcp_recvmsg, tcp_close" \
  sh -c 'for f in " k  tcp_connect+0x0" " r  inet_csk_accept+0x0" " k  tcp_sendmsg+0x0" " k  tcp_recvmsg+0x0" " k  tcp_close+0x0"; do
           grep -q "$f" /tmp/kprobes.running || { echo "   missing: $f"; exit 1; }; done'

# --- one fetch ---
T=$(in_c curl -sS -g -o /dev/null --max-time 20 \
  -w '%{local_port} %{size_request} %{size_header} %{size_download} %{http_code}' \
  "http://$SERVER/page.txt" 2>/tmp/curl.err)
echo "curl: local_port size_request size_header size_download http_code = $T $(cat /tmp/curl.err)"
set -- $T
PORT=${1:-0} REQ=${2:-0} RESP=$((${3:-0} + ${4:-0})) CODE=${5:-0}
check "curl http://$SERVER/page.txt: HTTP 200" [ "$CODE" = 200 ]
# --- one HTTPS fetch: curl and nginx both use Debian's libssl.so.3, hooked by the agent; 6.1
# has no sock_send_length/sock_recv_length tracepoints, so the calls are tied to their socket
# by fentry on tcp_sendmsg/tcp_recvmsg ---
T=$(in_c curl -sS -k --http1.1 -o /dev/null --max-time 30 -w '%{local_port} %{http_code}' \
  "https://$SERVER/page.txt" 2>/tmp/curl.err)
echo "curl https: local_port http_code = $T $(cat /tmp/curl.err)"
set -- $T
TPORT=${1:-0} TCODE=${2:-0}
check "curl https://$SERVER/page.txt: HTTP 200" [ "$TCODE" = 200 ]
# Let the FIN exchange and the ring drain (TCG is slow: more than the host's 0.7 s).
sleep 3
# The owners must come from the kernel programs, not only from /proc scans.
flowscope status --server "$SOCK" >/tmp/status.after 2>&1
echo "---- attribution counters after the fetch ----"; grep attribution_ /tmp/status.after
counter() { awk -v k="$1" '$1 == k { print $2 }' /tmp/status.after; }
check "attribution events from the kernel applied (attribution_owner_events_applied > 0)" \
  [ "$(counter attribution_owner_events_applied)" -gt 0 ]
echo "---- TLS counters after the fetches ----"; grep tls_ /tmp/status.after
check "TLS: libssl hooked (tls_libraries_hooked > 0)" [ "$(counter tls_libraries_hooked)" -gt 0 ]
check "TLS: calls tied to sockets by fentry (tls_socket_link_tcp_fentry 1: no sock_*_length tracepoints on 6.1)" \
  [ "$(counter tls_socket_link_tcp_fentry)" = 1 ]
check "TLS: no call without its socket (tls_kernel_calls_without_socket 0)" \
  [ "$(counter tls_kernel_calls_without_socket)" = 0 ]
# The fetch's plaintext must reach the engine before its FINs (else the connection is also
# counted as one without plaintext, a blind spot).
check "TLS: the HTTPS connection decoded, not a blind spot (engine_tls_plaintext_flows 1, engine_tls_flows_without_plaintext 0)" \
  [ "$(counter engine_tls_plaintext_flows)/$(counter engine_tls_flows_without_plaintext)" = 1/0 ]

# --- a full accept queue (issue #17): SYNs the kernel drops as consumed, which kfree_skb never
# sees; the fentry program on tcp_conn_request (BPF trampolines: 6.1 has them, unlike the
# host's kernel) reports each as DROPPED TCP_LISTEN_OVERFLOW. The listener: a second nginx on
# port 81 with backlog 1, stopped (SIGSTOP) so it never accepts; backlog 1 holds two
# connections, the other connects' SYNs (and their retransmissions after 1 s) are dropped ---
OPORT=81
mkdir -p /tmp/nginx81
cat > /tmp/nginx81/nginx.conf <<'EOF'
daemon off; master_process off; worker_processes 1; pid /tmp/nginx81/nginx.pid; error_log stderr;
events { worker_connections 64; }
http { access_log off; client_body_temp_path /tmp/nginx81; proxy_temp_path /tmp/nginx81;
  fastcgi_temp_path /tmp/nginx81; uwsgi_temp_path /tmp/nginx81; scgi_temp_path /tmp/nginx81;
  server { listen 81 backlog=1; root /www; } }
EOF
/usr/sbin/ip netns exec fss nginx -c /tmp/nginx81/nginx.conf -e stderr 2>/tmp/nginx81.err &
NGINX81_PID=$!
listens81() { in_s netstat -ltn | grep -q ":$OPORT "; }
stop81() { wait_for 30 listens81 && kill -STOP "$NGINX81_PID"; }
check "listener on :$OPORT with backlog 1 (nginx pid $NGINX81_PID, stopped: never accepts)" stop81
CPIDS=""
for i in 1 2 3 4 5; do
  /usr/sbin/ip netns exec fsc curl -sS -o /dev/null --max-time 4 "http://$SERVER:$OPORT/page.txt" 2>/dev/null &
  CPIDS="$CPIDS $!"
  sleep 0.2
done
for p in $CPIDS; do wait "$p"; done
# While the listener lives: its drop count (sock_diag) is read at each status request.
flowscope status --server "$SOCK" >/tmp/status.overflow 2>&1
kill -CONT "$NGINX81_PID"; kill "$NGINX81_PID" 2>/dev/null
echo "---- listen overflow counters ----"; grep -E "listen_overflow|listen_drops" /tmp/status.overflow
grep -E "tcp_conn_request|listen overflow" /tmp/agent.err
counter_o() { awk -v k="$1" '$1 == k { print $2 }' /tmp/status.overflow; }
check "listen overflow hook attached: fentry on tcp_conn_request (kernel_listen_overflow_hook_missing 0)" \
  [ "$(counter_o kernel_listen_overflow_hook_missing)" = 0 ]
check "the listener's own drop count (sock_diag, as ss -ltm): tcp_listen_drops_port_$OPORT > 0" \
  [ "$(counter_o tcp_listen_drops_port_$OPORT)" -gt 0 ]
# Each SYN dropped for the full queue, seen at tcp_conn_request's entry, is one the kernel
# counts on the listener (tcp_listendrop): the hook misses none.
check "the hook counted every drop (kernel_tcp_listen_overflows = tcp_listen_drops_port_$OPORT)" \
  [ "$(counter_o kernel_tcp_listen_overflows)" = "$(counter_o tcp_listen_drops_port_$OPORT)" ]
# The drops wait up to 250 ms for their owner (the connecting socket) in the agent: poll.
overflow_drops() {
  flowscope observe --server "$SOCK" --last 10000 -o json --verdict DROPPED >/tmp/drops.json 2>/tmp/drops.err
  jq -se --argjson port "$OPORT" --arg s "$SERVER" "$OVERFLOW_JQ" /tmp/drops.json >/tmp/jq.out 2>&1
}
OVERFLOW_JQ='[.[] | select(.verdict == "DROPPED" and .l4.TCP.destination_port == $port
                 and .extensions.kernel_drop.reason_name == "TCP_LISTEN_OVERFLOW")] as $d
   | ($d | length >= 2) and ($d | all(.l4.TCP.flags.SYN == true and .IP.destination == $s))
     and ($d | any(.extensions.process.comm == "curl"))
     or ({overflow_drops: $d, all: length} | tostring | error)'
if wait_for 10 overflow_drops; then
  ok "DROPPED flows, reason TCP_LISTEN_OVERFLOW, SYNs to :$OPORT, sent by curl (observe --verdict DROPPED)"
  jq -M -c -s --argjson port "$OPORT" 'map(select(.l4.TCP.destination_port == $port)) | .[0]' /tmp/drops.json
else
  bad "DROPPED flows, reason TCP_LISTEN_OVERFLOW, SYNs to :$OPORT, sent by curl (observe --verdict DROPPED)"
  echo "   jq said: $(head -c 2000 /tmp/jq.out) $(head -c 500 /tmp/drops.err)"
fi

stop_agent TERM
check "agent exit status 0 after SIGTERM (got $AGENT_RC; 255: still running after 30 s)" [ "$AGENT_RC" = 0 ]

# --- the flows: same assertions as capture.rs ---
# jq -e over all JSON lines ($e: every event); prints the offending value on failure.
flows() { # DESCRIPTION JQ-EXPRESSION (true when the check holds)
  d=$1
  if jq -se --argjson port "$PORT" --argjson req "$REQ" --argjson resp "$RESP" \
    --argjson nginx "$NGINX_PID" --arg sif "$SIF" --arg s "$SERVER" --arg c "$CLIENT" \
    "def conn: [.[] | select(.Type != \"L7\" and .l4.TCP != null
                  and (.l4.TCP.source_port == \$port or .l4.TCP.destination_port == \$port))];
     def l7: [.[] | select(.Type == \"L7\" and ((.l4.TCP.source_port == \$port) or (.l4.TCP.destination_port == \$port)))];
     def dir: if .trace_observation_point == \"TO_ENDPOINT\" then \"ingress\"
              elif .trace_observation_point == \"FROM_ENDPOINT\" then \"egress\" else \"unknown\" end;
     def flags: [(.l4.TCP.flags // {}) | to_entries[] | select(.value == true) | .key] | sort;
     def payload: (.extensions.payload_bytes // 0 | tonumber);
     $2" /tmp/agent.out >/tmp/jq.out 2>&1; then
    ok "$d"
  else
    bad "$d"; echo "   jq said: $(head -c 2000 /tmp/jq.out)"
  fi
}
check "agent printed only JSON lines" jq -e -s 'length > 0' /tmp/agent.out
flows "packets of the curl connection (port $PORT) seen" 'conn | length > 0'
flows "each packet: on $SIF, client->server ingress / server->client egress, port 80, is_reply" \
  'conn | map(select(
      (.interface.name == $sif) and
      (if .l4.TCP.source_port == $port
       then .IP.source == $c and .IP.destination == $s and dir == "ingress" and .l4.TCP.destination_port == 80 and .is_reply == false
       else .IP.source == $s and .IP.destination == $c and dir == "egress" and .l4.TCP.source_port == 80 and .is_reply == true end)
      | not)) | if length == 0 then true else (.[0] | tostring | error) end'
flows "handshake: SYN ingress first" 'conn[0] | (flags == ["SYN"] and dir == "ingress") or (tostring | error)'
flows "handshake: SYN-ACK egress second" 'conn[1] | (flags == ["ACK", "SYN"] and dir == "egress") or (tostring | error)'
flows "both sides close (FIN ingress and egress)" \
  '(conn | map(select(dir == "ingress" and (flags | any(. == "FIN")))) | length > 0) and
   (conn | map(select(dir == "egress" and (flags | any(. == "FIN")))) | length > 0)'
flows "payload bytes ingress = curl's request bytes ($REQ)" \
  '(conn | map(select(dir == "ingress") | payload) | add) as $n | $n == $req or ("got \($n)" | error)'
flows "payload bytes egress = curl's response bytes, headers + body ($RESP)" \
  '(conn | map(select(dir == "egress") | payload) | add) as $n | $n == $resp or ("got \($n)" | error)'
flows "L7: exactly one request and one response for the fetch" 'l7 | length == 2 or (tostring | error)'
flows "L7 request: GET .../page.txt" \
  'l7[0] | (.l7.type == "REQUEST" and .l7.http.method == "GET" and (.l7.http.url | endswith("/page.txt"))) or (tostring | error)'
flows "L7 response: 200" 'l7[1] | (.l7.type == "RESPONSE" and .l7.http.code == 200) or (tostring | error)'
flows "L7 process: nginx, pid $NGINX_PID (server socket owner, via attribution)" \
  'l7 | length > 0 and all(.extensions.process.pid == $nginx and .extensions.process.comm == "nginx")
   or (map(.extensions) | tostring | error)'
flows "L7 peer_process: curl (client socket owner)" \
  'l7 | length > 0 and all(.extensions.peer_process.comm == "curl") or (map(.extensions) | tostring | error)'
# The HTTPS fetch: decoded from the plaintext read at libssl. Both ends are local: whichever
# wrote first (curl's request) feeds the decoders, so the flows are about curl.
if jq -se --argjson port "$TPORT" --arg s "$SERVER" \
  '[.[] | select(.Type == "L7" and (.l4.TCP.source_port == $port or .l4.TCP.destination_port == $port))] as $l7
   | ($l7 | length == 2) and ($l7[0].l7.type == "REQUEST") and ($l7[0].l7.http.method == "GET")
     and ($l7[0].l7.http.url == "https://\($s)/page.txt") and ($l7[1].l7.type == "RESPONSE")
     and ($l7[1].l7.http.code == 200) and ($l7[0].l7.http.protocol == "HTTP/1.1")
     and ($l7 | all(.extensions.l7_source == "openssl_uprobe"))
     and ($l7 | all(.extensions.process.comm == "curl" or .extensions.process.comm == "nginx"))
     or ($l7 | tostring | error)' /tmp/agent.out >/tmp/jq.out 2>&1; then
  ok "L7 over TLS (port $TPORT): GET https://$SERVER/page.txt -> 200, HTTP/1.1, l7_source openssl_uprobe"
else
  bad "L7 over TLS (port $TPORT): GET https://$SERVER/page.txt -> 200, HTTP/1.1, l7_source openssl_uprobe"
  echo "   jq said: $(head -c 2000 /tmp/jq.out)"
fi
check "kernel_ring_full_lost: 0" sh -c '[ "$(grep ^kernel_ring_full_lost /tmp/agent.err)" = "kernel_ring_full_lost: 0" ]'

# --- cleanup after SIGTERM ---
in_s tc qdisc show dev "$SIF" > /tmp/tc.after
in_s tc filter show dev "$SIF" ingress > /tmp/tc.after.filters 2>&1
in_s tc filter show dev "$SIF" egress >> /tmp/tc.after.filters 2>&1
check "after exit: no clsact qdisc on $SIF" sh -c '! grep -q clsact /tmp/tc.after || { cat /tmp/tc.after; false; }'
check "after exit: no TC filter of ours on $SIF" sh -c '! grep -q fs_tc /tmp/tc.after.filters || { cat /tmp/tc.after.filters; false; }'
# fs_* capture, fsa_* attribution, fsd_* kernel drop and fss_* syscall programs (the host e2e
# checks fs_* only).
no_bpf_left() { ! bpftool prog show | grep -Eq ' name fs[adst]?_'; }
if wait_for 5 no_bpf_left; then ok "after exit: no fs_*/fsa_*/fsd_*/fss_*/fst_* BPF program loaded (bpftool)"
else bad "after exit: no fs_*/fsa_*/fsd_*/fss_*/fst_* BPF program loaded (bpftool)"; bpftool prog show | grep -EA2 ' name fs[adst]?_'; fi
check "after exit: no kprobe left registered (debugfs kprobes/list)" sh -c '! grep -Eq "(tcp_connect|inet_csk_accept|tcp_sendmsg|tcp_recvmsg|tcp_close)\\+" /sys/kernel/debug/kprobes/list'


# --- unclean exit (capture.rs next_start_cleans_up_after_sigkill): clsact filters outlive a
# SIGKILLed agent; the next start removes them and its own clean exit leaves nothing ---
if start_agent /dev/null /tmp/agent2.err -o none --listen unix:///run/fs2.sock; then
  stop_agent KILL
  tc_state > /tmp/tc.killed
  check "after SIGKILL: the clsact filters stay (expected: nothing runs at SIGKILL)" grep -q fs_tc_ingress /tmp/tc.killed
  check "after SIGKILL: no kprobe left registered (perf links die with the process)" \
    sh -c '! grep -Eq "(tcp_connect|inet_csk_accept|tcp_sendmsg|tcp_recvmsg|tcp_close)\+" /sys/kernel/debug/kprobes/list'
  # This run also follows curl's syscalls (--syscall-spans): the programs must load on 6.1
  # (tp_btf/sys_enter where the agent's mount namespace has no tracefs) and report them.
  # It also ties TLS calls to sockets with the kprobe link (kernels without BPF trampolines),
  # forced here: 6.1 would choose fentry.
  export FLOWSCOPE_TLS_SOCKET_LINK=kprobe
  if start_agent /dev/null /tmp/agent3.err -o none --listen unix:///run/fs3.sock --syscall-spans curl; then
    unset FLOWSCOPE_TLS_SOCKET_LINK
    check "next start reports the cleanup" grep -Eq "did not exit cleanly|cleaned up after an agent" /tmp/agent3.err
    grep "syscall spans" /tmp/agent3.err
    in_c curl -sS -o /dev/null --max-time 20 "http://$SERVER/page.txt"
    in_c curl -sS -k --http1.1 -o /dev/null --max-time 30 "https://$SERVER/page.txt"
    sleep 2
    flowscope status --server unix:///run/fs3.sock >/tmp/status3 2>&1
    grep syscall_ /tmp/status3
    counter3() { awk -v k="$1" '$1 == k { print $2 }' /tmp/status3; }
    check "syscall spans: curl's syscalls reported (syscall_events > 0, syscall_spans_unavailable 0)" \
      sh -c '[ "${1:-0}" -gt 0 ] && [ "$2" = 0 ]' _ "$(counter3 syscall_events)" "$(counter3 syscall_spans_unavailable)"
    grep -E "tls_socket_link|tls_plaintext_flows|tls_kernel_calls_without_socket" /tmp/status3
    check "TLS, kprobe link forced: the HTTPS fetch decoded with its socket (tls_socket_link_tcp_kprobe 1, engine_tls_plaintext_flows 1, tls_kernel_calls_without_socket 0)" \
      [ "$(counter3 tls_socket_link_tcp_kprobe)/$(counter3 engine_tls_plaintext_flows)/$(counter3 tls_kernel_calls_without_socket)" = 1/1/0 ]
    tc_state > /tmp/tc.restarted
    check "next start: exactly one fs_tc_ingress and one fs_tc_egress filter" \
      sh -c '[ "$(grep -c fs_tc_ingress /tmp/tc.restarted)" = 1 ] && [ "$(grep -c fs_tc_egress /tmp/tc.restarted)" = 1 ] || { cat /tmp/tc.restarted; false; }'
    stop_agent INT
    check "agent exit status 0 after SIGINT (got $AGENT_RC)" [ "$AGENT_RC" = 0 ]
    tc_state > /tmp/tc.final
    check "after clean exit: no clsact, no fs_tc filter" sh -c '! grep -Eq "clsact|fs_tc" /tmp/tc.final || { cat /tmp/tc.final; false; }'
    if wait_for 5 no_bpf_left; then ok "after clean exit: no fs_*/fsa_*/fsd_*/fss_*/fst_* BPF program loaded"
    else bad "after clean exit: no fs_*/fsa_*/fsd_*/fss_*/fst_* BPF program loaded"; fi
  else
    bad "agent restarted after SIGKILL"; cat /tmp/agent3.err
  fi
else
  bad "agent started (second run, for SIGKILL)"; cat /tmp/agent2.err
fi

kill "$NGINX_PID" 2>/dev/null
finish
