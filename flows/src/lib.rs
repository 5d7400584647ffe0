//! flowscope's sans-IO engine: frames in, flows and spans out.
//!
//! Bytes and timestamps go in ([`engine::Engine::handle_frame`]), records come out
//! ([`engine::Engine::poll_record`]). Nothing here reads a clock, a socket or the kernel.
#![forbid(unsafe_code)]

pub mod counters;
pub mod engine;
pub mod key;
pub mod l7;
pub mod packet;
pub mod record;
pub mod synth;
pub mod table;
pub mod tcp;
pub mod trace;
