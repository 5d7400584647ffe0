//! Userspace's side of body skipping (`body_skip` and `skip_live` in `bpf/capture.h`): the
//! flow engine names ranges of a sender's TCP sequence space whose bytes no decoder reads,
//! and the capture programs then keep only the headers of segments lying wholly inside one.
//!
//! A long body (a download, an upload) is most of what the capture copies to userspace: up
//! to `--snaplen` bytes of every segment. Cut to its headers, each of its segments still
//! reaches the engine (sequence numbers, flags, window and timing feed reassembly and the
//! connection's health), with its payload counted as snapped.
//!
//! Each call here is a `bpf(2)` map update or delete, so the engine asks only for long bodies
//! (see `flows::engine::CaptureHint`). The table holds at most [`SKIP_MAX`] ranges; a range
//! that does not fit is counted and its segments are captured as before, so a full table
//! costs CPU, never a byte the decoders read.

use std::{collections::HashSet, net::SocketAddr};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData};

use crate::{
    error::CaptureError,
    wire::{skip_key, skip_range, SKIP_KEY_LEN, SKIP_MAX, SKIP_RANGE_LEN},
};

/// The capture programs' skip table, taken from a loaded
/// [`crate::KernelCapture::take_body_skip`].
pub struct BodySkip {
    ranges: BpfHashMap<MapData, [u8; SKIP_KEY_LEN], [u8; SKIP_RANGE_LEN]>,
    live: Array<MapData, u32>,
    /// Keys this side wrote and has not removed: what the table holds.
    held: HashSet<[u8; SKIP_KEY_LEN]>,
    counters: BodySkipCounters,
}

impl std::fmt::Debug for BodySkip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySkip")
            .field("held", &self.held.len())
            .field("counters", &self.counters)
            .finish()
    }
}

/// What the table was asked to do, and what it could not (published by
/// [`BodySkip::counter_pairs`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BodySkipCounters {
    /// Ranges written.
    ranges_set: u64,
    /// Ranges removed (passed, or their connection gone).
    ranges_cleared: u64,
    /// Ranges not written because the table held [`SKIP_MAX`]: their segments are captured
    /// as if there were no range.
    table_full: u64,
    /// Map updates the kernel refused for another reason (each also leaves the segments
    /// captured as before).
    update_errors: u64,
}

impl BodySkip {
    pub(crate) fn new(ranges: Map, live: Map) -> Result<Self, CaptureError> {
        let map_err = |map: &'static str| {
            move |e: aya::maps::MapError| CaptureError::Map {
                map,
                detail: e.to_string(),
            }
        };
        let mut me = Self {
            ranges: BpfHashMap::try_from(ranges).map_err(map_err("body_skip"))?,
            live: Array::try_from(live).map_err(map_err("skip_live"))?,
            held: HashSet::new(),
            counters: BodySkipCounters::default(),
        };
        me.set_live(false).map_err(map_err("skip_live"))?;
        Ok(me)
    }

    /// Segments from `src` to `dst` with sequence numbers wholly in `[from_seq, until_seq)`
    /// (modulo 2^32) are cut to their headers from now on; replaces the pair's earlier range.
    pub fn skip(&mut self, src: SocketAddr, dst: SocketAddr, from_seq: u32, until_seq: u32) {
        let Some(key) = skip_key(src, dst) else {
            return;
        };
        let new = !self.held.contains(&key);
        if new && self.held.len() >= SKIP_MAX as usize {
            self.counters.table_full += 1;
            return;
        }
        if self
            .ranges
            .insert(key, skip_range(from_seq, until_seq), 0)
            .is_err()
        {
            self.counters.update_errors += 1;
            return;
        }
        self.counters.ranges_set += 1;
        if new {
            self.held.insert(key);
            if self.held.len() == 1 && self.set_live(true).is_err() {
                self.counters.update_errors += 1;
            }
        }
    }

    /// Segments from `src` to `dst` are captured whole again.
    pub fn clear(&mut self, src: SocketAddr, dst: SocketAddr) {
        let Some(key) = skip_key(src, dst) else {
            return;
        };
        if !self.held.remove(&key) {
            return;
        }
        // Gone already only if the map was changed behind our back: nothing to undo.
        let _ = self.ranges.remove(&key);
        self.counters.ranges_cleared += 1;
        if self.held.is_empty() && self.set_live(false).is_err() {
            self.counters.update_errors += 1;
        }
    }

    /// Whether the kernel's table holds a range for segments from `src` to `dst` now. It can
    /// hold fewer than this side wrote: the capture programs delete a range themselves when
    /// its sender sends a SYN or RST (a new connection on the tuple, or the end of this one).
    ///
    /// # Errors
    /// [`CaptureError::Map`] when the map cannot be read.
    pub fn kernel_holds(&self, src: SocketAddr, dst: SocketAddr) -> Result<bool, CaptureError> {
        let Some(key) = skip_key(src, dst) else {
            return Ok(false);
        };
        match self.ranges.get(&key, 0) {
            Ok(_) => Ok(true),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(CaptureError::Map {
                map: "body_skip",
                detail: e.to_string(),
            }),
        }
    }

    /// The counters as `(name, value)`, for status and metrics.
    pub fn counter_pairs(&self) -> [(&'static str, u64); 5] {
        let c = self.counters;
        [
            ("body_skip_ranges_set", c.ranges_set),
            ("body_skip_ranges_cleared", c.ranges_cleared),
            ("body_skip_ranges_held", self.held.len() as u64),
            ("body_skip_table_full", c.table_full),
            ("body_skip_update_errors", c.update_errors),
        ]
    }

    fn set_live(&mut self, on: bool) -> Result<(), aya::maps::MapError> {
        self.live.set(0, u32::from(on), 0)
    }
}
