//! The consumer's side of the ring protocol, over memory that is mapped already (the kernel's
//! pages in the agent, a plain buffer in the tests).
//!
//! The protocol is the kernel's (kernel/bpf/ringbuf.c) as libbpf's `ringbuf_process_ring` and
//! aya's `RingBuf` read it: records in position order; a BUSY one stops the read (it and those
//! after it are not committed yet); a DISCARD one is skipped; each record is released by
//! storing the position after it, so the producer can reuse its bytes.

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering};

/// `BPF_RINGBUF_BUSY_BIT`: the record is still being written.
pub(crate) const BUSY: u32 = 1 << 31;
/// `BPF_RINGBUF_DISCARD_BIT`: the producer gave the record up.
pub(crate) const DISCARD: u32 = 1 << 30;
/// `BPF_RINGBUF_HDR_SZ`.
pub(crate) const HEADER: usize = 8;

/// Where a mapped ring's positions and data are.
#[derive(Clone, Copy)]
pub(crate) struct RingView {
    /// The consumer position (ours to write).
    pub(crate) consumer: NonNull<AtomicUsize>,
    /// The producer position (the kernel's).
    pub(crate) producer: NonNull<AtomicUsize>,
    /// The first of the data area's `size` bytes, mapped once.
    pub(crate) data: NonNull<u8>,
    /// Bytes of the data area: a power of two, a multiple of 8.
    pub(crate) size: usize,
}

impl RingView {
    fn consumer(&self) -> &AtomicUsize {
        // SAFETY: points into a mapping (or buffer) that outlives every use of the view.
        unsafe { self.consumer.as_ref() }
    }

    fn producer(&self) -> &AtomicUsize {
        // SAFETY: as above.
        unsafe { self.producer.as_ref() }
    }

    /// The header word of the record at `offset` (< size, 8-aligned).
    fn header(&self, offset: usize) -> u32 {
        // SAFETY: records start 8-byte aligned and the data area is a multiple of 8 bytes,
        // so the header is inside it.
        unsafe { self.data.add(offset).cast::<AtomicU32>().as_ref() }.load(Ordering::Acquire)
    }

    /// `n` bytes of the data area from `from` (`from + n <= size`).
    ///
    /// # Safety
    /// The bytes must be a committed record's, not yet released (the producer does not
    /// write them until then), and the view's memory must live for `'a`.
    unsafe fn bytes<'a>(&self, from: usize, n: usize) -> &'a [u8] {
        debug_assert!(from + n <= self.size);
        // SAFETY: in bounds (above); the caller vouches for the rest.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr().add(from), n) }
    }
}

/// Our place in a ring: the position read up to, and the record handed out last.
#[derive(Debug)]
pub(crate) struct Cursor {
    /// Our consumer position (the kernel's copy trails it by the record handed out).
    pos: usize,
    /// Bytes of the record last returned, released at the next call.
    unreleased: Option<usize>,
    /// A position was published since the last full fence (see [`Cursor::next`]).
    fence_due: bool,
    /// A record that wrapped around the end, made contiguous.
    wrapped: Vec<u8>,
}

impl Cursor {
    /// Starts where the ring's consumer position is now.
    pub(crate) fn at(view: &RingView) -> Self {
        Self {
            pos: view.consumer().load(Ordering::Acquire),
            unreleased: None,
            fence_due: false,
            wrapped: Vec::new(),
        }
    }

    /// Releases the record returned last, then returns the next committed record, if any;
    /// valid until the next call.
    ///
    /// # Safety
    /// `view` must describe a live ring (or buffer) that this cursor alone consumes, the same
    /// one on every call, and stay mapped while the returned slice is used.
    pub(crate) unsafe fn next<'a>(&'a mut self, view: &RingView) -> Option<&'a [u8]> {
        if let Some(len) = self.unreleased.take() {
            self.release(view, len);
        }
        loop {
            let produced = view.producer().load(Ordering::Acquire);
            let offset = self.pos & (view.size - 1);
            let header = if self.pos < produced {
                view.header(offset)
            } else {
                BUSY
            };
            if header & BUSY != 0 {
                // Nothing (more) to read. The producer wakes us only if, when it commits, it
                // sees our position at its record; order our last position store before
                // these loads, and look once more, or we could sleep on a record whose
                // producer saw an older position (libbpf and aya fence here too).
                if std::mem::take(&mut self.fence_due) {
                    fence(Ordering::SeqCst);
                    continue;
                }
                return None;
            }
            let len = (header & !(BUSY | DISCARD)) as usize;
            if header & DISCARD != 0 {
                self.release(view, len);
                continue;
            }
            self.unreleased = Some(len);
            let start = (offset + HEADER) & (view.size - 1);
            let first = len.min(view.size - start);
            if first == len {
                // SAFETY: committed and not released (the caller's contract for the rest).
                return Some(unsafe { view.bytes(start, len) });
            }
            // Wraps around the end: the rest is at the start of the data area (and fits: the
            // kernel reserves no record whose header and bytes exceed the data area,
            // `__bpf_ringbuf_reserve`).
            self.wrapped.clear();
            // SAFETY: as above, in two pieces.
            self.wrapped
                .extend_from_slice(unsafe { view.bytes(start, first) });
            self.wrapped
                .extend_from_slice(unsafe { view.bytes(0, len - first) });
            return Some(&self.wrapped);
        }
    }

    /// Bytes the producers have committed or reserved past our position: how far behind the
    /// reader is (one load of the producer position, which every producer writes).
    pub(crate) fn backlog(&self, view: &RingView) -> usize {
        view.producer()
            .load(Ordering::Relaxed)
            .saturating_sub(self.pos)
    }

    /// Gives the record of `len` bytes at our position back to the kernel.
    fn release(&mut self, view: &RingView, len: usize) {
        self.pos += (HEADER + len).next_multiple_of(8);
        view.consumer().store(self.pos, Ordering::Release);
        self.fence_due = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring in a plain buffer: consumer word, producer word, data area; and a producer
    /// that writes records the way the kernel lays them out.
    struct FakeRing {
        /// Owns the memory; every access goes through `base`.
        _words: Vec<u64>,
        base: NonNull<u64>,
        size: usize,
    }

    impl FakeRing {
        fn new(size: usize, start: usize) -> Self {
            let mut words = vec![0u64; 2 + size / 8];
            words[0] = start as u64;
            words[1] = start as u64;
            let base = NonNull::new(words.as_mut_ptr()).expect("vec pointer");
            Self {
                _words: words,
                base,
                size,
            }
        }

        fn view(&self) -> RingView {
            RingView {
                consumer: self.base.cast(),
                // SAFETY: inside the buffer.
                producer: unsafe { self.base.add(1) }.cast(),
                data: unsafe { self.base.add(2) }.cast(),
                size: self.size,
            }
        }

        fn word(&self, i: usize) -> usize {
            // SAFETY: one of the two position words.
            unsafe { self.base.add(i).read() as usize }
        }

        fn set_word(&mut self, i: usize, v: usize) {
            // SAFETY: one of the two position words.
            unsafe { self.base.add(i).write(v as u64) }
        }

        fn consumer_pos(&self) -> usize {
            self.word(0)
        }

        fn producer_pos(&self) -> usize {
            self.word(1)
        }

        fn data_mut(&mut self) -> &mut [u8] {
            // SAFETY: the data area is the buffer after the two position words.
            unsafe { std::slice::from_raw_parts_mut(self.base.add(2).cast().as_ptr(), self.size) }
        }

        /// Reserves a record at the producer position: header `flags | len`, bytes `payload`
        /// (wrapping around the end as the kernel's double mapping lets it), and moves the
        /// producer position past it. Returns the record's position.
        fn write(&mut self, payload: &[u8], flags: u32) -> usize {
            let pos = self.producer_pos();
            let size = self.size;
            let offset = pos & (size - 1);
            let header = flags | payload.len() as u32;
            let data = self.data_mut();
            data[offset..offset + 4].copy_from_slice(&header.to_ne_bytes());
            data[offset + 4..offset + 8].copy_from_slice(&0u32.to_ne_bytes());
            for (i, b) in payload.iter().enumerate() {
                data[(offset + HEADER + i) & (size - 1)] = *b;
            }
            self.set_word(1, pos + (HEADER + payload.len()).next_multiple_of(8));
            pos
        }

        /// Sets the header flags of the record at `pos` (e.g. commits a BUSY one).
        fn set_header(&mut self, pos: usize, header: u32) {
            let offset = pos & (self.size - 1);
            self.data_mut()[offset..offset + 4].copy_from_slice(&header.to_ne_bytes());
        }
    }

    /// Every record the cursor returns now, as owned bytes.
    fn read_all(cursor: &mut Cursor, view: &RingView) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        // SAFETY: the fake ring outlives the reads and has no other consumer.
        while let Some(r) = unsafe { cursor.next(view) } {
            out.push(r.to_vec());
        }
        out
    }

    #[test]
    fn empty_ring_returns_nothing_and_moves_nothing() {
        let ring = FakeRing::new(4096, 0);
        let view = ring.view();
        let mut cursor = Cursor::at(&view);
        assert!(read_all(&mut cursor, &view).is_empty());
        assert!(read_all(&mut cursor, &view).is_empty());
        assert_eq!(ring.consumer_pos(), 0);
    }

    #[test]
    fn records_come_in_order_and_each_is_released_at_the_next_call() {
        let mut ring = FakeRing::new(4096, 0);
        ring.write(b"first", 0);
        let second = ring.write(&[7u8; 100], 0);
        let view = ring.view();
        let mut cursor = Cursor::at(&view);
        // SAFETY (all three): the fake ring outlives the reads and has no other consumer.
        assert_eq!(unsafe { cursor.next(&view) }, Some(&b"first"[..]));
        // Not released while the caller may still read it.
        assert_eq!(ring.consumer_pos(), 0);
        assert_eq!(unsafe { cursor.next(&view) }.map(<[u8]>::len), Some(100));
        assert_eq!(ring.consumer_pos(), second, "the first is released");
        assert_eq!(unsafe { cursor.next(&view) }, None);
        assert_eq!(ring.consumer_pos(), ring.producer_pos(), "all released");
    }

    #[test]
    fn a_record_that_wraps_reads_whole() {
        // The record's header sits in the last 16 bytes; its 40 bytes run past the end.
        let mut ring = FakeRing::new(4096, 3 * 4096 - 16);
        let payload: Vec<u8> = (0..40).collect();
        ring.write(&payload, 0);
        ring.write(b"after", 0);
        let view = ring.view();
        let mut cursor = Cursor::at(&view);
        assert_eq!(
            read_all(&mut cursor, &view),
            vec![payload, b"after".to_vec()]
        );
        assert_eq!(ring.consumer_pos(), ring.producer_pos());
    }

    #[test]
    fn a_record_that_ends_at_the_end_is_not_copied() {
        let mut ring = FakeRing::new(4096, 4096 - 24);
        ring.write(&[1u8; 16], 0);
        let view = ring.view();
        let mut cursor = Cursor::at(&view);
        // SAFETY: the fake ring outlives the read and has no other consumer.
        let r = unsafe { cursor.next(&view) }.expect("a record");
        assert_eq!(r, &[1u8; 16]);
        assert!(cursor.wrapped.is_empty(), "read in place");
    }

    #[test]
    fn discarded_records_are_skipped_and_released() {
        let mut ring = FakeRing::new(4096, 0);
        ring.write(b"dropped", DISCARD);
        ring.write(b"kept", 0);
        ring.write(b"also dropped", DISCARD);
        let view = ring.view();
        let mut cursor = Cursor::at(&view);
        assert_eq!(read_all(&mut cursor, &view), vec![b"kept".to_vec()]);
        assert_eq!(ring.consumer_pos(), ring.producer_pos());
    }

    #[test]
    fn a_busy_record_stops_the_read_until_it_is_committed() {
        let mut ring = FakeRing::new(4096, 0);
        ring.write(b"one", 0);
        let busy = ring.write(b"two", BUSY);
        ring.write(b"three", 0);
        let view = ring.view();
        let mut cursor = Cursor::at(&view);
        assert_eq!(read_all(&mut cursor, &view), vec![b"one".to_vec()]);
        assert_eq!(ring.consumer_pos(), busy, "stopped before the busy one");
        ring.set_header(busy, 3);
        assert_eq!(
            read_all(&mut cursor, &view),
            vec![b"two".to_vec(), b"three".to_vec()]
        );
        assert_eq!(ring.consumer_pos(), ring.producer_pos());
    }

    #[test]
    fn records_written_between_reads_are_found() {
        let mut ring = FakeRing::new(4096, 0);
        let view = ring.view();
        let mut cursor = Cursor::at(&view);
        for round in 0..200u32 {
            // 200 rounds of ~3 records cross the 4 KiB end several times.
            for i in 0..3 {
                ring.write(&(round * 3 + i).to_ne_bytes().repeat(1 + i as usize), 0);
            }
            let got = read_all(&mut cursor, &view);
            let want: Vec<Vec<u8>> = (0..3)
                .map(|i| (round * 3 + i).to_ne_bytes().repeat(1 + i as usize))
                .collect();
            assert_eq!(got, want, "round {round}");
        }
        assert_eq!(ring.consumer_pos(), ring.producer_pos());
    }

    #[test]
    fn starts_at_the_published_consumer_position() {
        let mut ring = FakeRing::new(4096, 0);
        ring.write(b"read before", 0);
        let second = ring.write(b"not yet", 0);
        ring.set_word(0, second);
        let view = ring.view();
        let mut cursor = Cursor::at(&view);
        assert_eq!(read_all(&mut cursor, &view), vec![b"not yet".to_vec()]);
    }
}
