//! IP-layer work that spans packets: reassembling fragmented datagrams (RFC 791 §3.2,
//! RFC 8200 §4.5) before the transport decoders see them.
//!
//! - [`fragment`]: one fragment as a checked view (its datagram key, offset, data).
//! - [`reassembly`]: the bounded table of datagrams being put back together.

pub mod fragment;
pub mod reassembly;

pub use fragment::{DatagramKey, Fragment, FragmentError};
pub use reassembly::{CapturePoint, IpReassembler, Reassembled, ReassemblyLimits};
