# Shared setup of the golden-capture recording scripts (sourced, not run): a server and a client
# network namespace joined by a veth pair, and their removal on exit.
#
# The sourcing script sets `tag` (a short unique prefix for the namespace and veth names),
# `tools` (the commands it needs) and optionally `net` (the /24, default 198.18.0) first, and
# then reads:
#   srv, cli          the namespaces: server $net.1 (and 2001:db8::1), client $net.2
#                     (and 2001:db8::2); only 198.18.0.0/15 and 2001:db8::/32 are used and
#                     nothing leaves the namespaces
#   veth_s, veth_c    the server's and the client's veth end (tcpdump records on the client's)
#   work              a temporary directory, removed on exit
#   pids              an array: background processes added to it are killed on exit
# shellcheck shell=bash

srv="${tag}-srv"
cli="${tag}-cli"
veth_s="${tag}-veth-s"
veth_c="${tag}-veth-c"
net="${net:-198.18.0}"
work="$(mktemp -d)"
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for tool in ip tcpdump $tools; do
    command -v "$tool" >/dev/null || { echo "record.sh: $tool is missing (apt-get install it)" >&2; exit 1; }
done

ip netns add "$srv"
ip netns add "$cli"
ip link add "$veth_c" netns "$cli" type veth peer name "$veth_s" netns "$srv"
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" addr add "$net.1/24" dev "$veth_s"
ip -n "$srv" addr add 2001:db8::1/64 dev "$veth_s" nodad
ip -n "$cli" addr add "$net.2/24" dev "$veth_c"
ip -n "$cli" addr add 2001:db8::2/64 dev "$veth_c" nodad
ip -n "$srv" link set "$veth_s" up
ip -n "$cli" link set "$veth_c" up
