//! TCP: sequence-number arithmetic, per-direction stream reassembly and RST judgement.

pub mod reassembler;
pub mod rst;
pub mod seq;

pub use reassembler::{ReassemblerConfig, Segment, SendPosition, StreamEvent, TcpReassembler};
pub use rst::{AfterReset, ResetTracker, RstVerdict};
