//! [`SingleMapRing`]: a kernel ring's pages mapped once, read through a [`Cursor`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aya::maps::{Map, MapData};
use tracing::{info, warn};

use crate::cursor::{Cursor, RingView};
use crate::mapping::Mapping;
use crate::RingError;

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

/// The consumer page, the producer page with the data pages after it, and our place.
struct Mapped {
    /// Kept for the view's pointers into it.
    _consumer: Mapping,
    /// Kept for the view's pointers into it.
    _producer: Mapping,
    view: RingView,
    cursor: Cursor,
}

/// A BPF ring buffer read with its data pages mapped once (see the crate docs).
pub struct SingleMapRing {
    map: MapData,
    name: &'static str,
    /// None until mapped (a deferred ring).
    mapped: Option<Mapped>,
    /// For a deferred ring: when to map it.
    mapping: Arc<RingMapping>,
    page: usize,
    size: usize,
}

// SAFETY: the mappings are owned, and read and written only through atomics and `&mut self`.
unsafe impl Send for SingleMapRing {}

impl std::fmt::Debug for SingleMapRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SingleMapRing")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("cursor", &self.mapped.as_ref().map(|m| &m.cursor))
            .finish()
    }
}

impl SingleMapRing {
    /// Maps `map` (named `name` in errors and logs), which must be a ring buffer.
    pub fn new(map: Map, name: &'static str) -> Result<Self, RingError> {
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
    ) -> Result<Self, RingError> {
        let Map::RingBuf(map) = map else {
            return Err(RingError::NotARing { map: name });
        };
        let size = map
            .info()
            .map_err(|e| RingError::Info {
                map: name,
                detail: e.to_string(),
            })?
            .max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        if !size.is_power_of_two() || !size.is_multiple_of(page) {
            return Err(RingError::Size { map: name, size });
        }
        Ok(Self {
            map,
            name,
            mapped: None,
            mapping,
            page,
            size,
        })
    }

    /// Bytes of the ring's data area.
    pub fn size(&self) -> usize {
        self.size
    }

    fn map_now(&mut self) -> Result<(), RingError> {
        let mmap_err = |what| {
            let map = self.name;
            move |source| RingError::Mmap { map, what, source }
        };
        let fd = self.map.fd().as_fd();
        let consumer = Mapping::new(fd, self.page, libc::PROT_READ | libc::PROT_WRITE, 0)
            .map_err(mmap_err("consumer page"))?;
        // The producer page and the data pages once: not the second copy of the data pages
        // the kernel offers after them (the crate docs say why).
        let producer = Mapping::new(fd, self.page + self.size, libc::PROT_READ, self.page)
            .map_err(mmap_err("data pages"))?;
        let view = RingView {
            consumer: consumer.ptr().cast(),
            producer: producer.ptr().cast(),
            // SAFETY: the data pages follow the producer page inside the mapping.
            data: unsafe { producer.ptr().add(self.page) },
            size: self.size,
        };
        self.mapped = Some(Mapped {
            cursor: Cursor::at(&view),
            view,
            _consumer: consumer,
            _producer: producer,
        });
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
                    "ring wanted now: mapped"
                );
                true
            }
            Err(e) => {
                // Not retried: status shows the ring unmapped (for the TLS ring, its flows
                // as blind spots).
                self.mapping.wanted.store(false, Ordering::Relaxed);
                warn!("{e}; its records are not read");
                false
            }
        }
    }

    /// Bytes written into the ring and not yet read (0 while unmapped): how far the reader
    /// is behind. Costs a load of the line every producer writes: ask now and then, not per
    /// record.
    pub fn backlog(&self) -> usize {
        self.mapped
            .as_ref()
            .map_or(0, |m| m.cursor.backlog(&m.view))
    }

    /// The next record, valid until the next call (which releases it to the kernel). A
    /// record that wraps around the end of the ring is copied whole into a buffer of the
    /// ring's; discarded records are skipped; `None` when no committed record waits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<&[u8]> {
        if !self.mapped_when_wanted() {
            return None;
        }
        let mapped = self.mapped.as_mut()?;
        // SAFETY: the view points into the mappings `mapped` owns, which live as long as the
        // returned borrow of `self`; this ring is the map's only consumer (it owns the map).
        unsafe { mapped.cursor.next(&mapped.view) }
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
