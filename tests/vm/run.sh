#!/usr/bin/env bash
# Runs flowscope's end-to-end capture checks (tests/vm/check.sh) inside a QEMU VM booted on
# another kernel: by default the newest Debian kernel package installed in /boot (on Debian 12,
# `linux-image-amd64`: 6.1, which has kprobes, BTF and no lockdown, but no TCX), so the clsact
# attach path and kprobe attribution are exercised even when the host kernel can't.
#
#   tests/vm/run.sh                               newest /boot/vmlinuz-* with /lib/modules
#   tests/vm/run.sh --kernel-version 6.1.0-56-amd64
#   tests/vm/run.sh --bzimage PATH [--modules-dir DIR]
#
# Other options: --binary PATH (the flowscope to test; default $FLOWSCOPE_BIN, else
# target/debug/flowscope, which `./dev.sh test` builds), --timeout SECONDS (default 300),
# --memory MB (default 1024), --keep (keep the work directory with the initramfs and console log).
#
# The VM is software-emulated (TCG): no /dev/kvm needed. The initramfs holds busybox-static,
# the flowscope binary, nginx (also serving HTTPS, with a certificate made here by openssl),
# curl, ip, tc, bpftool, jq with their shared libraries, and the
# kernel modules the checks need (veth, sch_ingress, cls_bpf, tcp_diag and their modules.dep
# dependencies). The VM prints `FLOWSCOPE-VM-RESULT: <failed checks>` and powers off; this script
# exits 0 only when that line says 0. A VM that doesn't boot, hangs, or panics fails, and its
# console output is shown. Needs root only to read /boot and the modules on some systems.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

KVER=""
BZIMAGE=""
MODDIR=""
BINARY="${FLOWSCOPE_BIN:-$ROOT/target/debug/flowscope}"
TIMEOUT=300
MEMORY=1024
KEEP=0
# Modules the checks need; modprobe -D adds their dependencies. tcp_diag: the agent reads each
# listener's drop count over sock_diag (the kernel would load it on demand, with a modprobe the
# initramfs doesn't have).
MODULES=(veth sch_ingress cls_bpf tcp_diag)
# Programs copied into the VM with their shared libraries (the first found on the host).
TOOLS=(nginx curl ip tc bpftool jq)

die() { echo "tests/vm/run.sh: $*" >&2; exit 1; }
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --kernel-version) KVER=${2:?}; shift 2 ;;
    --bzimage) BZIMAGE=${2:?}; shift 2 ;;
    --modules-dir) MODDIR=${2:?}; shift 2 ;;
    --binary) BINARY=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --memory) MEMORY=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
done

for t in qemu-system-x86_64 cpio gzip busybox timeout ldd objcopy file openssl; do
  command -v "$t" >/dev/null || die "$t not found: apt-get install qemu-system-x86 busybox-static cpio binutils file (./dev.sh test installs them)"
done
busybox_bin=$(command -v busybox)
file -bL "$busybox_bin" | grep -q "statically linked" \
  || die "$busybox_bin is not statically linked: apt-get install busybox-static"
[ -x "$BINARY" ] || die "$BINARY is missing: cargo build -p flowscope (or pass --binary PATH)"

# Which kernel, and where its modules are.
if [ -n "$BZIMAGE" ]; then
  [ -n "$KVER" ] && die "--kernel-version and --bzimage are exclusive"
  [ -r "$BZIMAGE" ] || die "cannot read $BZIMAGE"
  KVER=$(file -bL "$BZIMAGE" | sed -n 's/.*, version \([^ ]*\) .*/\1/p')
  [ -n "$KVER" ] || die "$BZIMAGE: not a bzImage (file says: $(file -bL "$BZIMAGE"))"
else
  if [ -z "$KVER" ]; then
    KVER=$(for k in /boot/vmlinuz-*; do
             v=${k#/boot/vmlinuz-}; [ -d "/lib/modules/$v" ] && echo "$v"
           done | sort -V | tail -n1 || true)
    [ -n "$KVER" ] || die "no /boot/vmlinuz-* with /lib/modules: apt-get install linux-image-amd64 (or pass --bzimage PATH)"
  fi
  BZIMAGE=/boot/vmlinuz-$KVER
  [ -r "$BZIMAGE" ] || die "$BZIMAGE missing: apt-get install linux-image-$KVER"
fi
MODDIR=${MODDIR:-/lib/modules/$KVER}

WORK=$(mktemp -d /tmp/flowscope-vm.XXXXXX)
cleanup() { if [ "$KEEP" = 1 ]; then echo "tests/vm/run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib64,etc,proc,sys,dev,run,tmp,var/log/nginx,var/lib/nginx,www}

t0=$(date +%s)
echo "== flowscope VM check: kernel $KVER ($BZIMAGE), binary $BINARY"

# Copies a file and the shared libraries it loads (per ldd) to the same paths under $R.
copy_with_libs() {
  local src=$1 dst=$2
  mkdir -p "$R$(dirname "$dst")"
  cp -L "$src" "$R$dst"
  ldd "$src" 2>/dev/null | awk '/=> \//{print $3} /^[ \t]*\/[^ ]+ \(/{print $1}' | while read -r lib; do
    [ -e "$R$lib" ] && continue
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
  done
}

cp "$busybox_bin" "$R/bin/busybox"
ln -s busybox "$R/bin/sh"  # /init is a script: its interpreter must exist before --install
# The debug binary is ~190 MB, mostly DWARF: the VM needs none of it.
objcopy --strip-debug "$BINARY" "$R/usr/bin/flowscope.tmp"
copy_with_libs "$BINARY" /usr/bin/flowscope
mv "$R/usr/bin/flowscope.tmp" "$R/usr/bin/flowscope"
for t in "${TOOLS[@]}"; do
  p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$t") || die "$t not found on this host (./dev.sh test installs it)"
  case "$p" in */sbin/*) d=/usr/sbin ;; *) d=/usr/bin ;; esac
  copy_with_libs "$p" "$d/$t"
done

# Kernel modules, in load order (dependencies first, from modules.dep as modprobe -D does);
# builtin ones (modules.builtin) need nothing.
: > "$R/modules.list"
mod_path() { # NAME -> path relative to $MODDIR per modules.dep ('-' and '_' are the same)
  local n=${1//-/_}
  awk -F: -v n="$n" '{ b = $1; sub(/.*\//, "", b); sub(/\.ko(\.(xz|zst|gz))?$/, "", b); gsub(/-/, "_", b);
                       if (b == n) { print $1; exit } }' "$MODDIR/modules.dep"
}
add_module() { # RELPATH: its dependencies first, then itself
  local rel=$1 dep out
  grep -qxF "$rel" "$WORK/seen" 2>/dev/null && return 0
  echo "$rel" >> "$WORK/seen"
  for dep in $(grep -F "$rel:" "$MODDIR/modules.dep" | grep "^$rel:" | cut -d: -f2); do
    add_module "$dep"
  done
  out=${rel%.xz}; out=${out%.zst}; out=${out%.gz}
  mkdir -p "$(dirname "$R/lib/modules/$KVER/$out")"
  case "$rel" in
    *.ko.xz) xz -dc "$MODDIR/$rel" > "$R/lib/modules/$KVER/$out" ;;
    *.ko.zst) zstd -qdc "$MODDIR/$rel" > "$R/lib/modules/$KVER/$out" ;;
    *.ko.gz) gzip -dc "$MODDIR/$rel" > "$R/lib/modules/$KVER/$out" ;;
    *) cp "$MODDIR/$rel" "$R/lib/modules/$KVER/$out" ;;
  esac
  echo "/lib/modules/$KVER/$out" >> "$R/modules.list"
}
if [ -d "$MODDIR" ]; then
  [ -f "$MODDIR/modules.dep" ] || die "$MODDIR/modules.dep missing: run depmod $KVER"
  for m in "${MODULES[@]}"; do
    rel=$(mod_path "$m")
    if [ -n "$rel" ]; then
      add_module "$rel"
    elif grep -q "/${m//_/[_-]}\.ko$" "$MODDIR/modules.builtin" 2>/dev/null; then
      echo "   module $m: built into $KVER"
    else
      die "module $m: neither in $MODDIR/modules.dep nor in modules.builtin (kernel config lacks it?)"
    fi
  done
  echo "   modules: $(tr '\n' ' ' < "$R/modules.list")"
else
  echo "tests/vm/run.sh: no $MODDIR: assuming ${MODULES[*]} are built into $BZIMAGE" >&2
fi

# nginx refuses to start as root without the `nobody` user it would switch to.
cat > "$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$R/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo "127.0.0.1 localhost" > "$R/etc/hosts"
echo flowscope-vm > "$R/etc/hostname"
cp "$HERE/check.sh" "$R/check.sh"
# nginx's HTTPS server (the TLS plaintext check): a self-signed certificate made here.
mkdir -p "$R/etc/flowscope-tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=198.18.0.1 \
  -keyout "$R/etc/flowscope-tls/key.pem" -out "$R/etc/flowscope-tls/cert.pem" 2>/dev/null \
  || die "openssl could not make the test certificate"

cat > "$R/init" <<'EOF'
#!/bin/sh
# PID 1 in the VM: mount what the agent expects, load modules, run the checks, power off.
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns /root && ln -s /run /var/run
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t securityfs securityfs /sys/kernel/security  # the agent logs the lockdown mode from it
hostname flowscope-vm
echo "FLOWSCOPE-VM: booted $(uname -r) in $(cut -d' ' -f1 /proc/uptime) s"
modfail=0
while read -r m; do
  [ -n "$m" ] || continue
  insmod "$m" || { echo "FLOWSCOPE-VM: insmod $m failed"; modfail=1; }
done < /modules.list
MODFAIL=$modfail sh /check.sh
rc=$?
echo "FLOWSCOPE-VM-RESULT: $rc"
sync
poweroff -f
EOF
chmod +x "$R/init" "$R/check.sh"

(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.gz"
t1=$(date +%s)
echo "== initramfs $(du -h "$WORK/initramfs.gz" | cut -f1) built in $((t1 - t0)) s; booting (TCG, timeout ${TIMEOUT} s)"

# TCG only: KVM isn't assumed (CI machines may have no usable /dev/kvm).
set +e
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -m "$MEMORY" -smp 2 \
  -nographic -no-reboot -kernel "$BZIMAGE" -initrd "$WORK/initramfs.gz" \
  -append "console=ttyS0 panic=-1 quiet" < /dev/null 2>&1 | tr -d '\r' | tee "$WORK/console.log"
qemu_rc=${PIPESTATUS[0]}
set -e
t2=$(date +%s)

result=$(sed -n 's/^FLOWSCOPE-VM-RESULT: \([0-9]*\)$/\1/p' "$WORK/console.log" | tail -n1)
if [ -z "$result" ]; then
  if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
    why="timed out after ${TIMEOUT} s"
  else
    why="qemu exited with status $qemu_rc"
  fi
  echo "== FAIL: the VM ($KVER) did not finish the checks: $why; console output above" >&2
  KEEP=1; rm -rf "$R"
  exit 1
fi
if [ "$result" != 0 ]; then
  echo "== FAIL: $result check(s) failed in the VM ($KVER) after $((t2 - t1)) s; console output above" >&2
  KEEP=1; rm -rf "$R"
  exit 1
fi
echo "== PASS: all checks passed in the VM ($KVER) in $((t2 - t1)) s (total $((t2 - t0)) s)"
