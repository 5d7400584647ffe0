//! TCP: sequence-number arithmetic, per-direction stream reassembly, RST judgement and
//! connection health (RTT, retransmissions).

pub mod health;
pub mod reassembler;
pub mod rst;
pub mod seq;
pub mod sighting;

pub use health::ConnectionHealth;
pub use reassembler::{ReassemblerConfig, Segment, SendPosition, StreamEvent, TcpReassembler};
pub use rst::{AfterReset, ResetTracker, RstVerdict};
pub use sighting::Sightings;
