//! HTTP/2 frame layer (RFC 9113 §4, §6): the 9-byte frame header as a checked view, and one
//! module per frame type with the RFC's rules for its payload beside each check.
//!
//! The decoder never answers a peer, so "connection error" in the RFC becomes "this frame is
//! not trusted" here: the caller counts it and, for header-bearing frames, forgets HPACK state.

pub mod continuation;
pub mod data;
pub mod goaway;
pub mod headers;
pub mod ping;
pub mod priority;
pub mod push_promise;
pub mod rst_stream;
pub mod settings;
pub mod window_update;

/// Length of the frame header (RFC 9113 §4.1).
pub const HEADER_LEN: usize = 9;

/// SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113 §6.5.2): the largest payload a peer
/// sends unless told otherwise, and the largest we accept when searching for frame boundaries.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;

/// Flag bits by name (RFC 9113 §6).
pub mod flags {
    /// DATA, HEADERS: the sender's last frame on this stream (§6.1, §6.2).
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: acknowledgement (§6.5, §6.7).
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the field block ends here (§6.2, §6.6, §6.10).
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a Pad Length byte and padding are present (§6.1).
    pub const PADDED: u8 = 0x8;
    /// HEADERS: exclusive flag, stream dependency and weight are present (§6.2).
    pub const PRIORITY: u8 = 0x20;
}

/// Frame types defined by RFC 9113 §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameType {
    /// §6.1.
    Data,
    /// §6.2.
    Headers,
    /// §6.3.
    Priority,
    /// §6.4.
    RstStream,
    /// §6.5.
    Settings,
    /// §6.6.
    PushPromise,
    /// §6.7.
    Ping,
    /// §6.8.
    GoAway,
    /// §6.9.
    WindowUpdate,
    /// §6.10.
    Continuation,
    /// An extension type; RFC 9113 §4.1/§5.5: implementations MUST ignore unknown types.
    Unknown(u8),
}

impl FrameType {
    /// The type for a wire value.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0x0 => Self::Data,
            0x1 => Self::Headers,
            0x2 => Self::Priority,
            0x3 => Self::RstStream,
            0x4 => Self::Settings,
            0x5 => Self::PushPromise,
            0x6 => Self::Ping,
            0x7 => Self::GoAway,
            0x8 => Self::WindowUpdate,
            0x9 => Self::Continuation,
            v => Self::Unknown(v),
        }
    }

    /// Flags this type defines; others are unused and ignored (§4.1), but a search for a
    /// frame boundary treats them as implausible.
    fn defined_flags(self) -> u8 {
        use flags::*;
        match self {
            Self::Data => END_STREAM | PADDED,
            Self::Headers => END_STREAM | END_HEADERS | PADDED | PRIORITY,
            Self::Settings | Self::Ping => ACK,
            Self::PushPromise => END_HEADERS | PADDED,
            Self::Continuation => END_HEADERS,
            _ => 0,
        }
    }

    /// Whether frames of this type carry a field block (HPACK state depends on them).
    pub fn carries_field_block(self) -> bool {
        matches!(self, Self::Headers | Self::PushPromise | Self::Continuation)
    }
}

/// Why a frame was not accepted, with the offending values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame that must be on a stream came on stream 0, or the reverse.
    #[error("{kind:?} frame on stream {stream_id}: RFC 9113 §6 forbids this stream for the type")]
    BadStream {
        /// Frame type.
        kind: FrameType,
        /// The stream id it came on.
        stream_id: u32,
    },
    /// The payload length is wrong for the type.
    #[error("{kind:?} frame with {len}-byte payload: RFC 9113 §6 fixes or bounds this length")]
    BadLength {
        /// Frame type.
        kind: FrameType,
        /// Payload length.
        len: u32,
    },
    /// The Pad Length is not smaller than what follows it.
    #[error(
        "{kind:?} frame pads {pad} bytes of a {len}-byte payload (RFC 9113 §6.1: padding must fit)"
    )]
    BadPadding {
        /// Frame type.
        kind: FrameType,
        /// Pad Length.
        pad: u8,
        /// Payload length.
        len: u32,
    },
    /// A value the RFC forbids (zero window increment, invalid setting value, ...).
    #[error("{kind:?} frame carries invalid value {value}")]
    BadValue {
        /// Frame type.
        kind: FrameType,
        /// The value.
        value: u32,
    },
}

/// A checked view of the 9-byte frame header (RFC 9113 §4.1):
///
/// ```text
/// Length (24) | Type (8) | Flags (8) | Reserved (1) | Stream Identifier (31)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub len: u32,
    /// Frame type.
    pub kind: FrameType,
    /// Raw type byte.
    pub raw_kind: u8,
    /// Flag bits.
    pub flags: u8,
    /// Stream identifier; the reserved bit is masked off (§4.1: "MUST be ignored").
    pub stream_id: u32,
    /// Whether the reserved bit was set (never by a correct sender).
    pub reserved_bit: bool,
}

mod field {
    use std::ops::Range;
    pub const LENGTH: Range<usize> = 0..3;
    pub const TYPE: usize = 3;
    pub const FLAGS: usize = 4;
    pub const STREAM_ID: Range<usize> = 5..9;
}

impl FrameHeader {
    /// Reads a header from the first 9 bytes of `b`; `None` when fewer are given.
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b = b.get(..HEADER_LEN)?;
        let l = &b[field::LENGTH];
        let len = u32::from(l[0]) << 16 | u32::from(l[1]) << 8 | u32::from(l[2]);
        let sid = u32::from_be_bytes(b[field::STREAM_ID].try_into().ok()?);
        Some(Self {
            len,
            kind: FrameType::from_u8(b[field::TYPE]),
            raw_kind: b[field::TYPE],
            flags: b[field::FLAGS],
            stream_id: sid & 0x7fff_ffff,
            reserved_bit: sid & 0x8000_0000 != 0,
        })
    }

    /// Whether `flags` has `bit`.
    pub fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// The stream-id and length rules that hold for the header alone (RFC 9113 §6.x).
    pub fn check(&self) -> Result<(), FrameError> {
        let (kind, len, sid) = (self.kind, self.len, self.stream_id);
        let on_stream = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(FrameError::BadStream {
                    kind,
                    stream_id: sid,
                })
            }
        };
        let length = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(FrameError::BadLength { kind, len })
            }
        };
        match kind {
            FrameType::Data => on_stream(sid != 0).and(data::check_len(self)),
            FrameType::Headers => on_stream(sid != 0).and(headers::check_len(self)),
            FrameType::Priority => on_stream(sid != 0).and(length(len == priority::LEN)),
            FrameType::RstStream => on_stream(sid != 0).and(length(len == rst_stream::LEN)),
            FrameType::Settings => on_stream(sid == 0).and(settings::check_len(self)),
            FrameType::PushPromise => on_stream(sid != 0).and(push_promise::check_len(self)),
            FrameType::Ping => on_stream(sid == 0).and(length(len == ping::LEN)),
            FrameType::GoAway => on_stream(sid == 0).and(length(len >= goaway::MIN_LEN)),
            FrameType::WindowUpdate => length(len == window_update::LEN),
            FrameType::Continuation => on_stream(sid != 0),
            FrameType::Unknown(_) => Ok(()),
        }
    }

    /// Whether this header plausibly starts a frame, for finding frame boundaries in a
    /// stream joined mid-way: a known type, only its defined flags, the reserved bit clear,
    /// a payload within the default maximum frame size and the §6 rules.
    pub fn plausible(&self) -> bool {
        !matches!(self.kind, FrameType::Unknown(_))
            && !self.reserved_bit
            && self.flags & !self.kind.defined_flags() == 0
            && self.len <= DEFAULT_MAX_FRAME_SIZE
            && self.check().is_ok()
    }
}

/// Where a run of plausible frame headers starts in `buf` (RFC 9113 §4.1), for a stream
/// joined mid-way. A start is taken when its header and the next one are plausible, or when
/// its frame ends exactly at the end of `buf` with `at_end` (a segment boundary, where senders
/// usually end frames). `Err(keep)` when no start was found: the caller keeps the last
/// `keep` bytes, which may hold a start whose frames are not complete yet.
pub fn find_frame_start(buf: &[u8], at_end: bool) -> Result<usize, usize> {
    let mut keep_from = buf.len();
    for off in 0..buf.len() {
        let Some(h) = FrameHeader::parse(&buf[off..]) else {
            keep_from = keep_from.min(off);
            break;
        };
        if !h.plausible() {
            continue;
        }
        let next = off + HEADER_LEN + h.len as usize;
        match buf.get(next..) {
            Some([]) if at_end && h.kind != FrameType::Data => return Ok(off),
            Some(rest) => match FrameHeader::parse(rest) {
                Some(n) if n.plausible() => return Ok(off),
                Some(_) => {}
                None => keep_from = keep_from.min(off),
            },
            None => keep_from = keep_from.min(off),
        }
    }
    Err(buf.len() - keep_from)
}

/// Splits a padded payload (RFC 9113 §6.1, §6.2, §6.6): `Pad Length (8)` when PADDED, the
/// content, then that many padding octets. Returns the content.
pub fn strip_padding<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    if !h.has(flags::PADDED) {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(FrameError::BadLength {
        kind: h.kind,
        len: h.len,
    })?;
    // §6.1: "If the length of the padding is the length of the frame payload or greater,
    // the recipient MUST treat this as a connection error".
    if usize::from(pad) > rest.len() {
        return Err(FrameError::BadPadding {
            kind: h.kind,
            pad,
            len: h.len,
        });
    }
    Ok(&rest[..rest.len() - usize::from(pad)])
}

/// Builders for frames, for tests here and in `tests/`.
pub mod encode {
    /// A frame: header then payload.
    pub fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut v = Vec::with_capacity(9 + payload.len());
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.push(kind);
        v.push(flags);
        v.extend_from_slice(&stream_id.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::encode::frame;
    use super::*;

    #[test]
    fn header_fields() {
        let f = frame(1, 0x25, 0x8000_0003, &[0; 5]);
        let h = FrameHeader::parse(&f).unwrap();
        assert_eq!(h.len, 5);
        assert_eq!(h.kind, FrameType::Headers);
        assert_eq!(h.stream_id, 3);
        assert!(h.reserved_bit);
        assert!(h.has(flags::END_STREAM) && h.has(flags::END_HEADERS));
        assert!(FrameHeader::parse(&f[..8]).is_none());
    }

    #[test]
    fn stream_rules() {
        let bad = [
            frame(0, 0, 0, b"x"),       // DATA on stream 0 (§6.1)
            frame(4, 0, 1, &[]),        // SETTINGS on a stream (§6.5)
            frame(4, 0, 0, &[0; 5]),    // SETTINGS not a multiple of 6 (§6.5)
            frame(4, 1, 0, &[0; 6]),    // SETTINGS ACK with payload (§6.5)
            frame(6, 0, 0, &[0; 7]),    // PING not 8 bytes (§6.7)
            frame(3, 0, 1, &[0; 3]),    // RST_STREAM not 4 bytes (§6.4)
            frame(2, 0, 1, &[0; 4]),    // PRIORITY not 5 bytes (§6.3)
            frame(8, 0, 0, &[0; 3]),    // WINDOW_UPDATE not 4 bytes (§6.9)
            frame(7, 0, 0, &[0; 7]),    // GOAWAY shorter than 8 (§6.8)
            frame(9, 0, 0, &[]),        // CONTINUATION on stream 0 (§6.10)
            frame(1, 0x20, 1, &[0; 4]), // HEADERS PRIORITY shorter than 5 (§6.2)
        ];
        for f in bad {
            assert!(FrameHeader::parse(&f).unwrap().check().is_err(), "{f:?}");
        }
        assert!(FrameHeader::parse(&frame(0xa, 0xff, 0, &[]))
            .unwrap()
            .check()
            .is_ok());
    }

    #[test]
    fn finds_frame_start_after_junk() {
        let mut buf = vec![0xff, 0x13, 0x37];
        buf.extend(frame(8, 0, 0, &[0, 0, 1, 0]));
        buf.extend(frame(6, 0, 0, &[0; 8]));
        assert_eq!(find_frame_start(&buf, false), Ok(3));
        // Only one complete frame ending at the buffer's end: at a segment end it counts.
        let one = [&[0xffu8, 0xff][..], &frame(8, 0, 0, &[0, 0, 1, 0])].concat();
        assert_eq!(find_frame_start(&one, true), Ok(2));
        assert!(find_frame_start(&one, false).is_err());
    }

    #[test]
    fn padding() {
        let f = frame(0, flags::PADDED, 1, &[2, b'a', b'b', 0, 0]);
        let h = FrameHeader::parse(&f).unwrap();
        assert_eq!(strip_padding(&h, &f[9..]).unwrap(), b"ab");
        let f = frame(0, flags::PADDED, 1, &[5, b'a']);
        let h = FrameHeader::parse(&f).unwrap();
        assert!(strip_padding(&h, &f[9..]).is_err());
    }
}
