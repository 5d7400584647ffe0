//! TCP: sequence-number arithmetic and per-direction stream reassembly.

pub mod reassembler;
pub mod seq;

pub use reassembler::{ReassemblerConfig, Segment, StreamEvent, TcpReassembler};
