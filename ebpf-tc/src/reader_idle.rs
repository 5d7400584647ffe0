//! The capture ring reader's "gone idle" flag (`reader_idle` in `bpf/capture.bpf.c`).
//!
//! With batched wakeups (`LoadOptions::wakeup_bytes`) the kernel wakes the reader only once
//! per that many bytes written, and the reader otherwise looks on a timer that grows long
//! when nothing comes (the agent's idle poll, 200 ms). The first records after a quiet spell
//! then waited in the ring for that timer: a lone request showed up to 200 ms late, and the
//! engine learned of a long body too late to have the kernel cut it. The reader sets this flag
//! as it goes to sleep with nothing unread; the first record written after that wakes it at
//! once and clears the flag, so a quiet spell costs one wakeup, while steady traffic (where
//! the reader never goes idle) keeps its batches.

use aya::maps::{Array, Map, MapData};

use crate::error::CaptureError;

/// The capture programs' `reader_idle` flag, taken from a loaded
/// [`crate::KernelCapture::take_reader_idle`].
pub struct ReaderIdle {
    flag: Array<MapData, u32>,
}

impl std::fmt::Debug for ReaderIdle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderIdle").finish_non_exhaustive()
    }
}

fn map_err(e: aya::maps::MapError) -> CaptureError {
    CaptureError::Map {
        map: "reader_idle",
        detail: e.to_string(),
    }
}

impl ReaderIdle {
    pub(crate) fn new(map: Map) -> Result<Self, CaptureError> {
        Ok(Self {
            flag: Array::try_from(map).map_err(map_err)?,
        })
    }

    /// Asks the programs to wake the reader with the next record they write (one `bpf(2)`
    /// map update). Call it just before sleeping with the ring drained, then look at the ring
    /// once more: a record written between the last look and this call woke no one.
    pub fn set(&mut self) -> Result<(), CaptureError> {
        self.flag.set(0, 1, 0).map_err(map_err)
    }

    /// Whether the flag is still set (no record was written since [`ReaderIdle::set`]).
    pub fn is_set(&self) -> Result<bool, CaptureError> {
        Ok(self.flag.get(&0, 0).map_err(map_err)? != 0)
    }
}
