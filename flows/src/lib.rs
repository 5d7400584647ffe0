//! flowscope's sans-IO engine: frames in, flows and spans out.
//!
//! Bytes and timestamps go in ([`engine::Engine::handle_frame`]), records come out
//! ([`engine::Engine::poll_record`]). Nothing here reads a clock, a socket or the kernel; the
//! agent and `flowscope replay` drive the same engine.
//!
//! - [`packet`]: link/IP/transport decoding into borrowed [`packet::Packet`] views.
//! - [`ip`]: IP fragment reassembly, before the transport decoders.
//! - [`capture_file`]: pcap and pcapng bytes into frames with link type, time and interface.
//! - [`key`]: normalised 5-tuples; [`table`]: per-conversation state and eviction.
//! - [`tcp`]: per-direction stream reassembly.
//! - [`l7`]: protocol detection and decoders (HTTP/1.x, HTTP/2 and gRPC, DNS).
//! - [`trace`]: W3C Trace Context and id generation.
//! - [`record`]: the Hubble-style flows and OpenTelemetry-style spans we emit.
//! - [`roles`]: which end of an exchange (client, server) a span belongs to.
//! - [`counters`]: every drop, cap hit and parse error, by reason.
//! - [`shard`]: spreading flows over engine workers and merging their records back.
//! - [`synth`]: synthetic conversations for tests and benches.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capture_file;
pub mod counters;
pub mod engine;
pub mod ip;
pub mod key;
pub mod l7;
pub mod packet;
pub mod record;
pub mod roles;
pub mod shard;
pub mod synth;
pub mod table;
pub mod tcp;
pub mod trace;
