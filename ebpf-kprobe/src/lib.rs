//! flowscope process attribution: which process owns each socket, for the connecting and the
//! accepting side.
//!
//! [`Attribution::start`] probes the kernel and loads the best set of C programs
//! (bpf/attribution.bpf.c): kprobes where the kernel has them, else cgroup sock_addr hooks plus
//! tp_btf tracepoints, else nothing ("proc-only"). The programs push [`SockEvent`]s into a ring;
//! [`OwnerCache`] turns them into cookie/tuple -> [`ProcessInfo`] maps, bounded, with a /proc
//! fallback for sockets older than the agent.
//!
//! The ring record layout is the contract with the kernel side: see [`wire`].
//!
//! [`drops`] reports the packets the kernel drops (kfree_skb with its drop reason), with the
//! socket cookie that ties them to the owners above.
//!
//! [`syscalls`] reports what traced processes' threads do in the kernel (files, fsync,
//! connects, socket I/O) for syscall spans.

pub mod attribution;
pub mod cgroup;
pub mod drops;
pub mod error;
pub mod owner;
pub mod probe;
pub mod procfs;
pub mod syscalls;
pub mod wire;

pub use attribution::{Attribution, AttributionOptions, Method, SocketOwnerHook, PROGRAM_PREFIX};
pub use error::AttributionError;
pub use owner::{OwnerCache, OwnerCacheOptions, OwnerSource, ProcessInfo};
pub use wire::{SockEvent, SockEventKind, SocketTuple, Transport, WireError, WireProcess};
