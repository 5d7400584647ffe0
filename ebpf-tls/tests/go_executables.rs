//! Go executables built here from source (the `go` that `./dev.sh` installs, standard library
//! only, offline): their Go version, the RET instructions of `(*tls.Conn).Read`/`Write`, and
//! the Conn -> descriptor offsets, from DWARF and from the version table (which must agree
//! with the DWARF of today's Go), or why a stripped one is not hooked.

use std::{path::Path, process::Command};

use ebpf_tls::{
    executable::classify,
    go::{GoCall, GoExecutable, GoLayout, LayoutSource},
    TlsLibraryKind,
};

const MAIN: &str = r#"package main

import (
	"crypto/tls"
	"fmt"
	"os"
)

func main() {
	c, err := tls.Dial("tcp", os.Args[1], nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	c.Write([]byte("x"))
	b := make([]byte, 1)
	c.Read(b)
}
"#;

/// Builds MAIN with `ldflags` into target/tmp; the `go` command must be there. The build
/// cache is the one tests/tests/tls_go.rs uses (target/tmp/go).
fn build(name: &str, ldflags: &str) -> GoExecutable {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ebpf-tls-go");
    let go = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("main.go"), MAIN).unwrap();
    std::fs::write(src.join("go.mod"), "module gotlsprobe\n\ngo 1.21\n").unwrap();
    let out = dir.join(name);
    let status = Command::new("go")
        .args(["build", &format!("-ldflags={ldflags}"), "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(&src)
        .env("GOCACHE", go.join("cache"))
        .env("GOPATH", go.join("path"))
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "0")
        .status()
        .unwrap_or_else(|e| {
            panic!("go is not installed ({e}): run ./dev.sh test, which installs it")
        });
    assert!(status.success(), "go build failed");
    match classify(&out) {
        Some(TlsLibraryKind::GoTls(exe)) => exe,
        other => panic!("{name}: not a Go TLS executable: {other:?}"),
    }
}

fn offsets(l: &GoLayout) -> (u32, u32, u32) {
    (l.conn_data, l.tcp_fd, l.sysfd)
}

#[test]
fn go_executables_are_read_for_their_probes() {
    let full = build("full", "");
    assert!(full.version.starts_with("go1."), "{}", full.version);
    let hooks = full.hooks.as_ref().expect("hookable");
    assert_eq!(hooks.layout.source, LayoutSource::Dwarf);
    // Not position-independent (Go's default on linux/amd64): the TCPConn check is on.
    assert_ne!(hooks.layout.tcp_close, 0);
    let calls: Vec<GoCall> = hooks.functions.iter().map(|f| f.call).collect();
    assert_eq!(calls, [GoCall::Write, GoCall::Read]);
    for f in &hooks.functions {
        assert!(!f.returns.is_empty(), "{}: no RET", f.symbol);
        assert!(
            f.returns.iter().all(|&o| o > 0),
            "{}: RET at entry",
            f.symbol
        );
    }

    // Without DWARF the table gives the offsets: the same as today's DWARF.
    let no_dwarf = build("nodwarf", "-w");
    let h = no_dwarf.hooks.as_ref().expect("hookable");
    assert_eq!(h.layout.source, LayoutSource::VersionTable);
    assert_eq!(offsets(&h.layout), offsets(&hooks.layout));
    assert_eq!(h.layout.tcp_close, hooks.layout.tcp_close);
    assert_eq!(h.functions, hooks.functions);

    // Stripped: named (its version is still in .go.buildinfo), not hooked.
    let stripped = build("stripped", "-s -w");
    assert_eq!(stripped.version, full.version);
    let why = stripped.hooks.unwrap_err();
    assert!(why.starts_with("stripped Go executable"), "{why}");
}
