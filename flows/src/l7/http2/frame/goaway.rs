//! GOAWAY (RFC 9113 §6.8): `R (1) Last-Stream-ID (31) Error Code (32) Additional Debug Data (..)`.

use super::{FrameError, FrameHeader};

/// Last-Stream-ID and Error Code.
pub const MIN_LEN: u32 = 8;

/// A GOAWAY: streams above `last_stream_id` were not and will not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAwayFrame<'a> {
    /// Highest stream id the sender may have acted on.
    pub last_stream_id: u32,
    /// Why (RFC 9113 §7).
    pub error_code: u32,
    /// Opaque diagnostics.
    pub debug_data: &'a [u8],
}

/// Parses a GOAWAY payload.
pub fn parse<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<GoAwayFrame<'a>, FrameError> {
    if payload.len() < MIN_LEN as usize {
        return Err(FrameError::BadLength {
            kind: h.kind,
            len: h.len,
        });
    }
    Ok(GoAwayFrame {
        last_stream_id: u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
            & 0x7fff_ffff,
        error_code: u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]),
        debug_data: &payload[8..],
    })
}
