//! Generates the OTLP TraceService server for the `otlp_receiver` test binary from the same
//! verbatim opentelemetry-proto files the agent's exporter is built from (protox: no protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../observer/proto/opentelemetry/proto/collector/trace/v1/trace_service.proto";
    println!("cargo:rerun-if-changed=../observer/proto/opentelemetry");
    let fds = protox::compile([proto], ["../observer/proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(fds)?;
    Ok(())
}
