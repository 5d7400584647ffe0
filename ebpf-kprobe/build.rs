//! Compiles the C kernel programs in bpf/ with clang-19 and leaves the objects in OUT_DIR,
//! where src/ embeds them with `include_bytes!`. No bpf-linker, no nightly toolchain.
use std::{env, path::PathBuf, process::Command};

const PROGRAMS: &[&str] = &["attribution"];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let clang = env::var("FLOWSCOPE_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    println!("cargo:rerun-if-env-changed=FLOWSCOPE_CLANG");
    println!("cargo:rerun-if-changed=bpf");
    let multiarch = match env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => ("arm64", "/usr/include/aarch64-linux-gnu"),
        _ => ("x86", "/usr/include/x86_64-linux-gnu"),
    };
    for prog in PROGRAMS {
        let src = format!("bpf/{prog}.bpf.c");
        let obj = out.join(format!("{prog}.bpf.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
            .arg(format!("-D__TARGET_ARCH_{}", multiarch.0))
            .arg(format!("-I{}", multiarch.1))
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
