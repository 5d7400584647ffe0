//! A reader of BPF ring buffers (`BPF_MAP_TYPE_RINGBUF`) whose data pages are mapped once.
//!
//! The kernel lets user space map a ring's data pages twice in a row, so that a record that
//! wraps around the end reads as one slice; aya's `RingBuf` does that. The pages are the
//! kernel's and cost nothing more, but the kernel maps every page at mmap time
//! (`remap_vmalloc_range`) and each one counts in the process's VmRSS: a 4 MiB ring showed as
//! 8 MiB (BENCHMARKS.md, "Quiet-machine check" and "One mapping per ring"). This reader maps
//! them once and copies the rare record that wraps into a buffer of its own.
//!
//! Every ring the agent reads goes through it: packet capture (ebpf-tc), socket owners, kernel
//! drops and syscall spans (ebpf-kprobe), TLS plaintext and exec events (ebpf-tls). It sits
//! in its own crate so each of those can hand out a [`SingleMapRing`] without depending on
//! another (imports stay one-way: the kernel crates use this one, the agent uses them all).
//!
//! A ring can also be mapped later ([`SingleMapRing::deferred`]): the TLS plaintext ring is
//! mapped only once a TLS library is hooked, so a node with no TLS library (or whose
//! processes link none the probes can read) does not carry its pages in RSS.
//!
//! Layout (kernel/bpf/ringbuf.c, libbpf's ringbuf.c): page 0 holds the consumer position
//! (written by user space), page 1 the producer position, then the data pages. Each record
//! starts 8-byte aligned with an 8-byte header: a u32 length whose top bits are BUSY (being
//! written) and DISCARD (skip it), and a u32 page offset the kernel uses.

mod cursor;
mod error;
mod mapping;
mod reader;

pub use error::RingError;
pub use reader::{RingMapping, SingleMapRing};
