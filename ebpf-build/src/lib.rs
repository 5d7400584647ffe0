//! Compiles the C kernel programs of a crate (its `bpf/NAME.bpf.c`) with clang-19 into
//! `OUT_DIR/NAME.bpf.o`, where the crate embeds them with `include_bytes!`. Shared by the
//! build scripts of ebpf-tc, ebpf-kprobe and ebpf-tls: no bpf-linker, no nightly toolchain.
//! Headers every crate's programs share are in this crate's `bpf/`, on the include path.

use std::{env, path::PathBuf, process::Command};

/// Compiles each `bpf/{name}.bpf.c` of the calling crate. Call from `build.rs`; panics with
/// what to install when clang is missing, and with clang's own errors when it fails.
pub fn compile_programs(names: &[&str]) {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("FLOWSCOPE_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    println!("cargo:rerun-if-env-changed=FLOWSCOPE_CLANG");
    println!("cargo:rerun-if-changed=bpf");
    // Headers shared by every crate's programs (ringbuf_wakeup.h).
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/bpf");
    println!("cargo:rerun-if-changed={shared}");
    let (arch, multiarch) = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => ("arm64", "/usr/include/aarch64-linux-gnu"),
        _ => ("x86", "/usr/include/x86_64-linux-gnu"),
    };
    for name in names {
        let src = format!("bpf/{name}.bpf.c");
        let obj = out.join(format!("{name}.bpf.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-D__TARGET_ARCH_{arch}"))
            .arg(format!("-I{multiarch}"))
            .arg(format!("-I{shared}"))
            .args(["-Ibpf", "-c", &src, "-o"])
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{clang} failed to compile {src} ({s}); see the errors above"),
            Err(e) => panic!(
                "cannot run `{clang}` to compile the eBPF programs: {e}. \
                 On Debian 12 install it with `apt-get install clang-19 libbpf-dev` \
                 (or point FLOWSCOPE_CLANG at another clang >= 14)"
            ),
        }
    }
}
