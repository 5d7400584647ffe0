//! A reader of a BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`) whose data pages are mapped once.
//!
//! The kernel lets user space map a ring's data pages twice in a row, so that a record that
//! wraps around the end reads as one slice; aya's `RingBuf` does that. The pages are the
//! kernel's and cost nothing more, but every mapped page counts in the process's VmRSS: the
//! 8 MiB TLS plaintext ring showed as 16 MiB (BENCHMARKS.md, "Quiet-machine check"). This
//! reader maps them once and copies the rare record that wraps into a buffer of its own.
//!
//! A ring can also be mapped later ([`SingleMapRing::deferred`]): the TLS plaintext ring is
//! mapped only once a TLS library is hooked, so a node with no TLS library (or whose
//! processes link none the probes can read) does not carry its pages (4 MiB) in RSS.
//!
//! Layout (kernel/bpf/ringbuf.c, libbpf's ringbuf.c): page 0 holds the consumer position
//! (written by user space), page 1 the producer position, then the data pages. Each record
//! starts 8-byte aligned with an 8-byte header: a u32 length whose top bits are BUSY (being
//! written) and DISCARD (skip it), and a u32 page offset the kernel uses.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use aya::maps::{Map, MapData};
use tracing::{info, warn};

use crate::TlsProbeError;

/// `BPF_RINGBUF_BUSY_BIT`: the record is still being written.
const BUSY: u32 = 1 << 31;
/// `BPF_RINGBUF_DISCARD_BIT`: the producer gave the record up.
const DISCARD: u32 = 1 << 30;
/// `BPF_RINGBUF_HDR_SZ`.
const HEADER: usize = 8;

/// One shared mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, prot: i32, offset: usize) -> std::io::Result<Self> {
        // SAFETY: a fresh shared mapping of the map's fd; the kernel checks len and offset.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(std::io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }

    /// The position word at the start of the mapping.
    fn position(&self) -> &AtomicUsize {
        // SAFETY: the mapping is at least a page, page-aligned, and lives as long as `self`.
        unsafe { self.ptr.cast::<AtomicUsize>().as_ref() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// When a deferred ring is to be mapped, and whether it is (shared between whoever decides,
/// the ring's reader and status).
#[derive(Debug, Default)]
pub struct RingMapping {
    wanted: AtomicBool,
    mapped: AtomicBool,
}

impl RingMapping {
    /// Asks for the ring to be mapped: its reader does it at its next read.
    pub fn want(&self) {
        self.wanted.store(true, Ordering::Relaxed);
    }

    /// Whether the ring's pages are mapped (count in the process's RSS).
    pub fn is_mapped(&self) -> bool {
        self.mapped.load(Ordering::Relaxed)
    }
}

/// The consumer page and the producer page with the data pages after it.
struct Mapped {
    consumer: Mapping,
    producer: Mapping,
}

/// A BPF ring buffer read with its data pages mapped once (see the module docs).
pub struct SingleMapRing {
    map: MapData,
    name: &'static str,
    /// None until mapped (a deferred ring).
    mapped: Option<Mapped>,
    /// For a deferred ring: when to map it.
    mapping: Arc<RingMapping>,
    page: usize,
    size: usize,
    /// Our consumer position (the kernel's copy is updated as records are released).
    pos: usize,
    /// Bytes of the record last returned, released at the next call.
    unreleased: Option<usize>,
    /// A record that wrapped around the end, made contiguous.
    wrapped: Vec<u8>,
}

// SAFETY: the mappings are only read and written through atomics and `&mut self`.
unsafe impl Send for SingleMapRing {}

impl std::fmt::Debug for SingleMapRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleMapRing")
            .field("size", &self.size)
            .field("pos", &self.pos)
            .field("mapped", &self.mapped.is_some())
            .finish()
    }
}

impl SingleMapRing {
    /// Maps `map`, which must be a ring buffer.
    pub fn new(map: Map, name: &'static str) -> Result<Self, TlsProbeError> {
        let mut ring = Self::deferred(map, name, Arc::default())?;
        ring.map_now()?;
        Ok(ring)
    }

    /// Takes `map`, which must be a ring buffer, without mapping it: [`SingleMapRing::next`]
    /// maps it once `mapping` is wanted, and returns nothing until then (records written
    /// before wait in the kernel's pages).
    pub fn deferred(
        map: Map,
        name: &'static str,
        mapping: Arc<RingMapping>,
    ) -> Result<Self, TlsProbeError> {
        let err = |detail: String| TlsProbeError::Map { map: name, detail };
        let Map::RingBuf(map) = map else {
            return Err(err("not a ring buffer".into()));
        };
        let size = map.info().map_err(|e| err(e.to_string()))?.max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        if !size.is_power_of_two() || !size.is_multiple_of(page) {
            return Err(err(format!("size {size} is not a power of two of pages")));
        }
        Ok(Self {
            map,
            name,
            mapped: None,
            mapping,
            page,
            size,
            pos: 0,
            unreleased: None,
            wrapped: Vec::new(),
        })
    }

    /// Bytes of the ring's data area.
    pub fn size(&self) -> usize {
        self.size
    }

    fn map_now(&mut self) -> Result<(), TlsProbeError> {
        let err = |detail: String| TlsProbeError::Map {
            map: self.name,
            detail,
        };
        let fd = self.map.fd().as_fd();
        let consumer = Mapping::new(fd, self.page, libc::PROT_READ | libc::PROT_WRITE, 0)
            .map_err(|e| err(format!("mmap consumer page: {e}")))?;
        let producer = Mapping::new(fd, self.page + self.size, libc::PROT_READ, self.page)
            .map_err(|e| err(format!("mmap data pages: {e}")))?;
        self.pos = consumer.position().load(Ordering::Acquire);
        self.mapped = Some(Mapped { consumer, producer });
        self.mapping.mapped.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Maps a deferred ring if it is wanted now; whether it is mapped.
    fn mapped_when_wanted(&mut self) -> bool {
        if self.mapped.is_some() {
            return true;
        }
        if !self.mapping.wanted.load(Ordering::Relaxed) {
            return false;
        }
        match self.map_now() {
            Ok(()) => {
                info!(
                    ring = self.name,
                    bytes = self.size,
                    "TLS library hooked: plaintext ring mapped"
                );
                true
            }
            Err(e) => {
                // Not retried: status shows the ring unmapped, the flows as blind spots.
                self.mapping.wanted.store(false, Ordering::Relaxed);
                warn!("TLS plaintext ring not mapped, its plaintext is not read: {e}");
                false
            }
        }
    }

    /// The next record, valid until the next call (which releases it to the kernel).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<&[u8]> {
        if !self.mapped_when_wanted() {
            return None;
        }
        if let Some(len) = self.unreleased.take() {
            self.release(len);
        }
        let producer = &self.mapped.as_ref().expect("mapped above").producer;
        loop {
            let produced = producer.position().load(Ordering::Acquire);
            if self.pos >= produced {
                return None;
            }
            let offset = self.pos & (self.size - 1);
            // SAFETY: records start 8-byte aligned and the data area is a multiple of 8, so
            // the header is inside the mapping.
            let header = unsafe {
                producer
                    .ptr
                    .add(self.page + offset)
                    .cast::<AtomicU32>()
                    .as_ref()
            }
            .load(Ordering::Acquire);
            if header & BUSY != 0 {
                return None;
            }
            let len = (header & !(BUSY | DISCARD)) as usize;
            if header & DISCARD != 0 {
                self.pos += (HEADER + len).next_multiple_of(8);
                self.publish();
                continue;
            }
            self.unreleased = Some(len);
            let start = (offset + HEADER) & (self.size - 1);
            let first = len.min(self.size - start);
            // SAFETY: `start + first <= size`, inside the data pages; the kernel does not
            // write a committed record until it is released.
            let data = |from: usize, n: usize| unsafe {
                std::slice::from_raw_parts(producer.ptr.as_ptr().add(self.page + from), n)
            };
            if first == len {
                return Some(data(start, len));
            }
            // Wraps around the end: the rest is at the start of the data pages.
            self.wrapped.clear();
            self.wrapped.extend_from_slice(data(start, first));
            self.wrapped.extend_from_slice(data(0, len - first));
            return Some(&self.wrapped);
        }
    }

    /// Gives a record of `len` bytes back to the kernel.
    fn release(&mut self, len: usize) {
        self.pos += (HEADER + len).next_multiple_of(8);
        self.publish();
    }

    /// Tells the kernel our consumer position.
    fn publish(&self) {
        let consumer = &self
            .mapped
            .as_ref()
            .expect("released only when mapped")
            .consumer;
        consumer.position().store(self.pos, Ordering::Release);
        // Order the store before the next producer read, or a wakeup could be missed
        // (libbpf and aya do the same).
        fence(Ordering::SeqCst);
    }
}

impl AsFd for SingleMapRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.fd().as_fd()
    }
}

impl AsRawFd for SingleMapRing {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
