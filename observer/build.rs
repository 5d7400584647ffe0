//! Compiles the gRPC API in proto/ with protox (a Rust protobuf compiler: no `protoc` needed)
//! and generates the prost messages and tonic services; also writes the descriptor set that
//! the JSON printers use (`-o json`/`jsonpb` follow protobuf's JSON mapping by reflection).
//! And bundles the web UI (ui/, TypeScript) into OUT_DIR/ui for `flowscope ui` to embed.

use std::{env, path::PathBuf, process::Command};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/flow/flow.proto",
        "proto/observer/observer.proto",
        "proto/relay/relay.proto",
        "proto/flowscope/flowscope.proto",
        "proto/peer/peer.proto",
        // OTLP (opentelemetry-proto, verbatim): the span exporter's messages, its gRPC client,
        // and the TraceService server the tests receive spans with.
        "proto/opentelemetry/proto/collector/trace/v1/trace_service.proto",
        "proto/opentelemetry/proto/trace/v1/trace.proto",
        "proto/opentelemetry/proto/resource/v1/resource.proto",
        "proto/opentelemetry/proto/common/v1/common.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("flowscope_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    build_ui(&out.join("ui"))?;
    Ok(())
}

/// Bundles ui/ with its own esbuild (`node ui/build.mjs OUT`), so `include_bytes!` in
/// src/ui/assets.rs always embeds the page of this very checkout. Only the bundling runs
/// here: `npm ci` (network, the registry) is ./dev.sh's job, done once before cargo runs, so
/// two build scripts never install into ui/node_modules at the same time.
fn build_ui(out: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let ui = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../ui");
    for p in [
        "src",
        "build.mjs",
        "index.html",
        "package-lock.json",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(p).display());
    }
    let how = "run ./dev.sh (it installs Node.js and npm and runs `npm ci` in ui/), \
               or `npm ci --prefix ui` with Node.js >= 18 and npm installed";
    if !ui.join("node_modules/.package-lock.json").exists() {
        return Err(format!(
            "flowscope's web UI cannot be built: {} has no node_modules: {how}",
            ui.display()
        )
        .into());
    }
    let status = Command::new("node")
        .arg(ui.join("build.mjs"))
        .arg(out)
        .status()
        .map_err(|e| format!("cannot run `node` to bundle the web UI ({e}): {how}"))?;
    if !status.success() {
        return Err(format!("bundling the web UI failed (node ui/build.mjs: {status})").into());
    }
    Ok(())
}
