//! flowscope TLS plaintext: what processes hand to their TLS library and get back from it,
//! read with uprobes (OpenSSL 1.1 and 3.x, `libssl.so.*` or linked in; Go's crypto/tls, see
//! [`go`]), each chunk tied
//! to the TCP socket its records went over, so the agent can decode HTTPS, HTTP/2 over TLS
//! and gRPC over TLS with the same decoders as cleartext (`flows::engine::Engine::handle_plaintext`).
//!
//! [`TlsProbes`] loads the C programs (bpf/openssl.bpf.c), finds the TLS libraries processes
//! map ([`libraries`]) and attaches per library file; the ring carries [`TlsEvent`]s, whose
//! layout is the contract in [`wire`]. The probes only read the application's memory
//! (`bpf_probe_read_user`), never write it, and never wait.

pub mod elf_symbols;
pub mod error;
pub mod executable;
pub mod go;
mod go_dwarf;
pub mod libraries;
pub mod probes;
#[cfg(test)]
mod test_executables;
pub mod wire;

pub use error::TlsProbeError;
pub use libraries::TlsLibraryKind;
pub use probes::{LibraryStatus, SocketLink, TlsProbes, TlsProbesOptions, PROGRAM_PREFIX};
pub use wire::{TlsEvent, TlsEventKind, TlsSocket, TlsStack, TlsWireError};
