//! Compiles bpf/openssl.bpf.c into OUT_DIR (see the ebpf-build crate).

fn main() {
    ebpf_build::compile_programs(&["openssl"]);
}
