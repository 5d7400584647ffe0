//! RST_STREAM (RFC 9113 §6.4): `Error Code (32)`, exactly 4 bytes.

use super::{FrameError, FrameHeader};

/// §6.4: "A RST_STREAM frame with a length other than 4 octets MUST be treated as a
/// connection error".
pub const LEN: u32 = 4;

/// The error code of a RST_STREAM payload.
pub fn parse(h: &FrameHeader, payload: &[u8]) -> Result<u32, FrameError> {
    match payload.try_into() {
        Ok(b) => Ok(u32::from_be_bytes(b)),
        Err(_) => Err(FrameError::BadLength {
            kind: h.kind,
            len: h.len,
        }),
    }
}

/// The RFC 9113 §7 name of an error code.
pub fn error_name(code: u32) -> &'static str {
    match code {
        0x0 => "NO_ERROR",
        0x1 => "PROTOCOL_ERROR",
        0x2 => "INTERNAL_ERROR",
        0x3 => "FLOW_CONTROL_ERROR",
        0x4 => "SETTINGS_TIMEOUT",
        0x5 => "STREAM_CLOSED",
        0x6 => "FRAME_SIZE_ERROR",
        0x7 => "REFUSED_STREAM",
        0x8 => "CANCEL",
        0x9 => "COMPRESSION_ERROR",
        0xa => "CONNECT_ERROR",
        0xb => "ENHANCE_YOUR_CALM",
        0xc => "INADEQUATE_SECURITY",
        0xd => "HTTP_1_1_REQUIRED",
        _ => "UNKNOWN_ERROR",
    }
}
