//! Compiles the gRPC API in proto/ with protox (a Rust protobuf compiler: no `protoc` needed)
//! and generates the prost messages and tonic services; also writes the descriptor set that
//! the JSON printers use (`-o json`/`jsonpb` follow protobuf's JSON mapping by reflection).

use std::{env, path::PathBuf};

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
    Ok(())
}
