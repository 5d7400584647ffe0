#!/bin/sh
# Added cost of process attribution per TCP connection (connect + accept + close on loopback),
# with and without the ebpf-kprobe programs loaded and their ring drained into an OwnerCache.
# Needs root. Not run in CI. Usage: sudo bench/attribution/run.sh [CONNECTIONS] [ROUNDS]
set -eu
cd "$(dirname "$0")/../.."
cargo build --release -p ebpf-kprobe --example attribution_bench
exec target/release/examples/attribution_bench "${1:-20000}" "${2:-5}"
