//! HEADERS (RFC 9113 §6.2):
//! `[Pad Length (8)] [E (1) Stream Dependency (31) Weight (8)] Field Block Fragment (..) Padding (..)`.

use super::{flags, strip_padding, FrameError, FrameHeader};

/// Bytes of the priority fields when PRIORITY is set.
const PRIORITY_LEN: usize = 5;

/// §6.2: the optional fields must fit in the payload.
pub fn check_len(h: &FrameHeader) -> Result<(), FrameError> {
    let need = u32::from(h.has(flags::PADDED)) + if h.has(flags::PRIORITY) { 5 } else { 0 };
    if h.len < need {
        return Err(FrameError::BadLength {
            kind: h.kind,
            len: h.len,
        });
    }
    Ok(())
}

/// A HEADERS frame's field block fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadersFrame<'a> {
    /// HPACK-encoded fragment (continued by CONTINUATION unless END_HEADERS).
    pub fragment: &'a [u8],
    /// END_STREAM: no DATA follows on this stream from this sender (§6.2).
    pub end_stream: bool,
    /// END_HEADERS: the field block is complete.
    pub end_headers: bool,
}

/// Parses the payload of HEADERS header `h`.
pub fn parse<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<HeadersFrame<'a>, FrameError> {
    check_len(h)?;
    let mut content = strip_padding(h, payload)?;
    if h.has(flags::PRIORITY) {
        // §6.2: "Stream Dependency ... Weight" — deprecated by RFC 9113 §5.3.2 but still sent.
        content = content.get(PRIORITY_LEN..).ok_or(FrameError::BadLength {
            kind: h.kind,
            len: h.len,
        })?;
    }
    Ok(HeadersFrame {
        fragment: content,
        end_stream: h.has(flags::END_STREAM),
        end_headers: h.has(flags::END_HEADERS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::http2::frame::encode::frame;

    #[test]
    fn padded_and_priority() {
        let payload = [1, 0, 0, 0, 3, 15, 0x82, 0x84, 0];
        let f = frame(
            1,
            flags::PADDED | flags::PRIORITY | flags::END_HEADERS,
            5,
            &payload,
        );
        let h = FrameHeader::parse(&f).unwrap();
        let v = parse(&h, &f[9..]).unwrap();
        assert_eq!(v.fragment, &[0x82, 0x84]);
        assert!(v.end_headers && !v.end_stream);
        // Padding that eats into the priority fields.
        let f = frame(1, flags::PADDED | flags::PRIORITY, 5, &[4, 0, 0, 0, 3, 15]);
        let h = FrameHeader::parse(&f).unwrap();
        assert!(parse(&h, &f[9..]).is_err());
    }
}
