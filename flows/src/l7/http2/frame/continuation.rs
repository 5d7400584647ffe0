//! CONTINUATION (RFC 9113 §6.10): `Field Block Fragment (..)`.
//!
//! §6.10: "Any number of CONTINUATION frames can be sent, as long as the preceding frame is
//! on the same stream and is a HEADERS, PUSH_PROMISE, or CONTINUATION frame without the
//! END_HEADERS flag set" — and anything else in between is a connection error. "Any number"
//! is a flood waiting to happen (CVE-2024-27316), so the decoder caps frames and bytes per
//! field block.

use super::{FrameHeader, FrameType};

/// Whether `h` may continue a field block open on `stream_id` (§6.10).
pub fn continues(h: &FrameHeader, stream_id: u32) -> bool {
    h.kind == FrameType::Continuation && h.stream_id == stream_id
}
