#!/usr/bin/env bash
# flowscope's one entry point for a fresh Debian 12 machine, as root:
#   ./dev.sh run    install what is needed, build, and run the agent on this host
#   ./dev.sh test   install what is needed, build, and run the whole test suite
# Extra arguments after `run` go to `flowscope agent` (e.g. ./dev.sh run -i eth0 -o json).
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages: the eBPF toolchain, the kernel tools, and the real servers/clients/oracles
# the tests drive (python3-grpc*: the foreign Python gRPC client of tests/tests/foreign_client.rs,
# run with /usr/bin/python3; dnsmasq-base: the DNS server of tests/tests/endpoints.rs;
# prometheus: the real scraper of tests/tests/prometheus.rs).
# Nothing is fetched from anywhere but Debian and crates.io.
PACKAGES=(
  clang-19 llvm-19 libbpf-dev bpftool linux-libc-dev
  iproute2 iputils-ping procps psmisc util-linux nftables
  nginx-light curl tcpdump tshark python3 bind9-dnsutils dnsmasq-base
  python3-grpcio python3-grpc-tools
  prometheus
  qemu-system-x86 linux-image-amd64 busybox-static cpio jq file binutils
)

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "dev.sh: run me as root (sudo ./dev.sh $1): installing packages and loading eBPF need it" >&2
    exit 1
  fi
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "dev.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  # nginx-light's package starts a system nginx on :80; our tests run their own.
  if command -v systemctl >/dev/null && systemctl is-active -q nginx 2>/dev/null; then
    systemctl stop nginx || true
  fi
  # Likewise prometheus's package starts one on :9090; the tests start their own in a netns.
  if command -v systemctl >/dev/null && systemctl is-active -q prometheus 2>/dev/null; then
    systemctl stop prometheus || true
  fi
  command -v cargo >/dev/null || { echo "dev.sh: cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
}

case "${1:-}" in
  run)
    shift
    need_root run
    install_packages
    cargo build --release -p flowscope
    exec ./target/release/flowscope agent "$@"
    ;;
  test)
    need_root test
    install_packages
    # Unit, property and golden tests; then the binary the end-to-end tests drive.
    cargo build --workspace --all-targets
    # Style gates (DESIGN.md): formatted, and clippy-clean with warnings as errors.
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace --exclude flowscope-e2e
    # End-to-end tests share the kernel (namespaces, TC links): one at a time.
    cargo test -p flowscope-e2e -- --test-threads=1
    tests/vm/run.sh  # the same checks in a VM on Debian's stock kernel (clsact, kprobes): README "Testing another kernel"
    ;;
  *)
    echo "usage: $0 run [agent options] | test" >&2
    exit 2
    ;;
esac
