//! SETTINGS (RFC 9113 §6.5): a list of `Identifier (16) Value (32)` pairs on stream 0.

use super::{flags, FrameError, FrameHeader};

/// SETTINGS_HEADER_TABLE_SIZE (§6.5.2): the most the peer's HPACK encoder may use.
pub const HEADER_TABLE_SIZE: u16 = 0x1;
/// SETTINGS_ENABLE_PUSH (§6.5.2).
pub const ENABLE_PUSH: u16 = 0x2;
/// SETTINGS_INITIAL_WINDOW_SIZE (§6.5.2).
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
/// SETTINGS_MAX_FRAME_SIZE (§6.5.2).
pub const MAX_FRAME_SIZE: u16 = 0x5;

/// §6.5: the length is a multiple of 6; an ACK carries nothing.
pub fn check_len(h: &FrameHeader) -> Result<(), FrameError> {
    let ok = if h.has(flags::ACK) {
        h.len == 0
    } else {
        h.len.is_multiple_of(6)
    };
    if ok {
        Ok(())
    } else {
        Err(FrameError::BadLength {
            kind: h.kind,
            len: h.len,
        })
    }
}

/// The `(identifier, value)` pairs of a SETTINGS payload, with §6.5.2's value checks.
pub fn parse<'a>(
    h: &FrameHeader,
    payload: &'a [u8],
) -> Result<impl Iterator<Item = Result<(u16, u32), FrameError>> + 'a, FrameError> {
    check_len(h)?;
    let kind = h.kind;
    Ok(payload.chunks_exact(6).map(move |c| {
        let id = u16::from_be_bytes([c[0], c[1]]);
        let value = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
        let ok = match id {
            ENABLE_PUSH => value <= 1,
            INITIAL_WINDOW_SIZE => value <= 0x7fff_ffff,
            MAX_FRAME_SIZE => (16_384..=16_777_215).contains(&value),
            _ => true, // §6.5.2: unknown settings MUST be ignored.
        };
        if ok {
            Ok((id, value))
        } else {
            Err(FrameError::BadValue { kind, value })
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::http2::frame::encode::frame;

    #[test]
    fn pairs_and_checks() {
        let f = frame(4, 0, 0, &[0, 1, 0, 0, 0x10, 0, 0, 5, 0, 0, 0, 1]);
        let h = FrameHeader::parse(&f).unwrap();
        let v: Vec<_> = parse(&h, &f[9..]).unwrap().collect();
        assert_eq!(v[0], Ok((HEADER_TABLE_SIZE, 4096)));
        assert!(v[1].is_err(), "MAX_FRAME_SIZE below 16384");
    }
}
