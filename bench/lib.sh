# Shared setup of the bench/ scripts (sourced, not run): a server and a client network namespace
# joined by a veth pair, nginx in the server namespace, the agent started and stopped, and
# everything removed on exit.
#
# The sourcing script sets `name` (for messages) and `tag` (unique per run: netns and veth names)
# before sourcing, may define `bench_extra_cleanup` (run first on exit), and reads:
#   srv, cli      the namespaces (server 198.18.0.1, client 198.18.0.2: RFC 2544 benchmarking range)
#   dev           the server's veth (the agent's capture interface)
#   work          a fresh work directory (removed on exit unless KEEP=1)
#   sock          the agent's Observer API socket in $work
#   agent_pid, nginx_pid
# shellcheck shell=bash

srv="${tag}s" cli="${tag}c" dev="${tag}a"
work="$(mktemp -d "/tmp/flowscope-$name.XXXXXX")"
sock="$work/agent.sock"
agent_pid="" nginx_pid=""

bench_cleanup() {
    set +e
    declare -F bench_extra_cleanup >/dev/null && bench_extra_cleanup
    [ -n "$agent_pid" ] && kill -INT "$agent_pid" 2>/dev/null && sleep 1 && kill -KILL "$agent_pid" 2>/dev/null
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
    wait 2>/dev/null
    ip netns pids "$cli" 2>/dev/null | xargs -r kill 2>/dev/null
    ip netns del "$srv" 2>/dev/null
    ip netns del "$cli" 2>/dev/null
    if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "$name: kept $work" >&2; fi
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# bench_need TOOL...: each must be on PATH (or an executable path), and we must be root.
bench_need() {
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "$name: $t not found (apt-get install -y nginx nghttp2-client bpftool; cargo build --release -p flowscope)" >&2; exit 1; }
    done
    [ "$(id -u)" = 0 ] || { echo "$name: needs root (namespaces, eBPF)" >&2; exit 1; }
}

# bench_netns: the two namespaces and the veth pair between them.
bench_netns() {
    ip netns add "$srv"
    ip netns add "$cli"
    ip link add "$dev" netns "$srv" type veth peer name "${tag}b" netns "$cli"
    ip -n "$srv" addr add 198.18.0.1/30 dev "$dev"
    ip -n "$cli" addr add 198.18.0.2/30 dev "${tag}b"
    for n in "$srv" "$cli"; do ip -n "$n" link set lo up; done
    ip -n "$srv" link set "$dev" up
    ip -n "$cli" link set "${tag}b" up
}

# bench_page: the page the benchmarks serve, 1 KiB unless BODY=BYTES ($work/www/index.html; the published reference
# uses 1 KB payloads), and its URL in $url.
bench_page() {
    mkdir -p "$work/www"
    head -c "${BODY:-1024}" /dev/zero | tr '\0' 'x' > "$work/www/index.html"
    url="http://198.18.0.1/index.html"
}

# bench_nginx CONNECTIONS [PREFIX...]: nginx, one worker, serving $work/www on 198.18.0.1:80,
# run under PREFIX (e.g. `taskset -c 1`); returns when it accepts connections. The sourcing
# script may set `nginx_listen_opts` (e.g. `http2`: HTTP/2 over cleartext TCP, for clients with
# prior knowledge) and `nginx_locations` (extra configuration inside the server block).
bench_nginx() {
    local conns="$1"
    shift
    mkdir -p "$work/www" "$work/nginx"
    cat > "$work/nginx/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1; pid $work/nginx/nginx.pid; error_log stderr;
worker_rlimit_nofile $(( conns * 2 + 2048 ));
events { worker_connections $conns; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $work/nginx; proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx; uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 198.18.0.1:80 ${nginx_listen_opts:-}; root $work/www; ${nginx_locations:-} } }
EOF
    "$@" ip netns exec "$srv" nginx -c "$work/nginx/nginx.conf" -e stderr 2>"$work/nginx.err" &
    nginx_pid=$!
    for _ in $(seq 100); do ip netns exec "$cli" bash -c 'exec 3<>/dev/tcp/198.18.0.1/80' 2>/dev/null && return 0; sleep 0.1; done
    echo "$name: nginx did not start:" >&2; cat "$work/nginx.err" >&2; exit 1
}

# bench_start_agent BINARY [PREFIX...] -- [AGENT ARGS...]: the agent in the server namespace,
# capturing $dev with TC, `-o none`, its API on $sock; returns when it answers.
bench_start_agent() {
    local bin="$1" prefix=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do prefix+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    rm -f "$sock"
    "${prefix[@]}" ip netns exec "$srv" "$bin" agent -i "$dev" -o none --listen "unix://$sock" \
        --metrics-listen 127.0.0.1:9965 "$@" 2>>"$work/agent.log" &
    agent_pid=$!
    for _ in $(seq 150); do
        [ -S "$sock" ] && "$bin" status --server "unix://$sock" >/dev/null 2>&1 && return 0
        kill -0 "$agent_pid" 2>/dev/null || { echo "$name: agent died:" >&2; tail "$work/agent.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "$name: agent did not answer on $sock" >&2; exit 1
}

# bench_stop_agent: Ctrl-C, then a kill if it has not exited within 5 s.
bench_stop_agent() {
    kill -INT "$agent_pid"
    for _ in $(seq 50); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
    agent_pid=""
}
