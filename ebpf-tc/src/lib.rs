//! flowscope packet capture: C TC classifiers and a socket filter (compiled by build.rs with
//! clang-19, loaded with aya), the plain AF_PACKET path, and the interface plumbing around them.
//!
//! The ring record layout is the contract with the kernel side: see [`wire`].

pub mod afpacket;
pub mod body_skip;
pub mod capture;
pub mod error;
pub mod iface;
pub mod linkwatch;
mod qdisc;
pub mod reader_idle;
pub mod wire;

pub use body_skip::BodySkip;
pub use capture::{cleanup_stale, Filters, KernelCapture, LoadOptions, TcMethod, TcMode};
pub use error::CaptureError;
pub use qdisc::delete_clsact;
pub use reader_idle::ReaderIdle;
