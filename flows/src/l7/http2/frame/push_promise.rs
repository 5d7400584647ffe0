//! PUSH_PROMISE (RFC 9113 §6.6):
//! `[Pad Length (8)] R (1) Promised Stream ID (31) Field Block Fragment (..) Padding (..)`.

use super::{flags, strip_padding, FrameError, FrameHeader};

/// §6.6: the promised stream id (and Pad Length when PADDED) must fit.
pub fn check_len(h: &FrameHeader) -> Result<(), FrameError> {
    if h.len < 4 + u32::from(h.has(flags::PADDED)) {
        return Err(FrameError::BadLength {
            kind: h.kind,
            len: h.len,
        });
    }
    Ok(())
}

/// A PUSH_PROMISE's promised stream and request field block fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushPromiseFrame<'a> {
    /// The stream the server will answer on (even, §5.1.1).
    pub promised_stream_id: u32,
    /// HPACK fragment of the promised request's fields.
    pub fragment: &'a [u8],
    /// END_HEADERS.
    pub end_headers: bool,
}

/// Parses the payload of PUSH_PROMISE header `h`.
pub fn parse<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<PushPromiseFrame<'a>, FrameError> {
    check_len(h)?;
    let content = strip_padding(h, payload)?;
    let Some((id, fragment)) = content.split_first_chunk::<4>() else {
        return Err(FrameError::BadLength {
            kind: h.kind,
            len: h.len,
        });
    };
    let promised = u32::from_be_bytes(*id) & 0x7fff_ffff;
    // §6.6: the promised stream must be a new server-initiated (even, non-zero) stream.
    if promised == 0 || promised % 2 == 1 {
        return Err(FrameError::BadValue {
            kind: h.kind,
            value: promised,
        });
    }
    Ok(PushPromiseFrame {
        promised_stream_id: promised,
        fragment,
        end_headers: h.has(flags::END_HEADERS),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::http2::frame::encode::frame;

    #[test]
    fn promised_id() {
        let f = frame(5, flags::END_HEADERS, 1, &[0, 0, 0, 2, 0x82]);
        let h = FrameHeader::parse(&f).unwrap();
        let p = parse(&h, &f[9..]).unwrap();
        assert_eq!((p.promised_stream_id, p.fragment), (2, &[0x82u8][..]));
        let f = frame(5, 0, 1, &[0, 0, 0, 3]);
        assert!(parse(&FrameHeader::parse(&f).unwrap(), &f[9..]).is_err());
    }
}
