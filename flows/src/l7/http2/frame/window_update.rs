//! WINDOW_UPDATE (RFC 9113 §6.9): `R (1) Window Size Increment (31)`, exactly 4 bytes.

use super::{FrameError, FrameHeader};

/// §6.9: "A WINDOW_UPDATE frame with a length other than 4 octets MUST be treated as a
/// connection error".
pub const LEN: u32 = 4;

/// The increment; §6.9: "A receiver MUST treat the receipt of a WINDOW_UPDATE frame with a
/// flow-control window increment of 0 as a stream error".
pub fn parse(h: &FrameHeader, payload: &[u8]) -> Result<u32, FrameError> {
    let b: [u8; 4] = payload.try_into().map_err(|_| FrameError::BadLength {
        kind: h.kind,
        len: h.len,
    })?;
    let inc = u32::from_be_bytes(b) & 0x7fff_ffff;
    if inc == 0 {
        return Err(FrameError::BadValue {
            kind: h.kind,
            value: 0,
        });
    }
    Ok(inc)
}
