//! DATA (RFC 9113 §6.1): `[Pad Length (8)] Data (..) Padding (..)`.
//!
//! DATA payloads are never buffered: the decoder streams them, reading only the Pad Length
//! byte (when PADDED) to know where the data ends and the padding starts.

use super::{flags, FrameError, FrameHeader};

/// §6.1: a PADDED frame has at least the Pad Length byte.
pub fn check_len(h: &FrameHeader) -> Result<(), FrameError> {
    if h.has(flags::PADDED) && h.len == 0 {
        return Err(FrameError::BadLength {
            kind: h.kind,
            len: h.len,
        });
    }
    Ok(())
}

/// Data and padding lengths once the Pad Length byte `pad` is known (§6.1: "If the length
/// of the padding is the length of the frame payload or greater, the recipient MUST treat
/// this as a connection error").
pub fn split(h: &FrameHeader, pad: u8) -> Result<(u32, u32), FrameError> {
    let rest = h.len - 1;
    if u32::from(pad) > rest {
        return Err(FrameError::BadPadding {
            kind: h.kind,
            pad,
            len: h.len,
        });
    }
    Ok((rest - u32::from(pad), u32::from(pad)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::http2::frame::encode::frame;

    #[test]
    fn padded_split() {
        let f = frame(0, flags::PADDED, 1, &[3, 1, 2, 0, 0, 0]);
        let h = FrameHeader::parse(&f).unwrap();
        assert_eq!(split(&h, 3), Ok((2, 3)));
        assert!(split(&h, 6).is_err());
        let empty = FrameHeader::parse(&frame(0, flags::PADDED, 1, &[])).unwrap();
        assert!(check_len(&empty).is_err());
    }
}
