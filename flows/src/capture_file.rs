//! Capture files: pcap (draft-ietf-opsawg-pcap) and pcapng (draft-ietf-opsawg-pcapng) into
//! frames with their link type, time, interface and direction.
//!
//! Sans-IO like the engine: [`CaptureParser::parse`] takes bytes that start at a record or
//! block boundary and says how many it consumed, or how many it needs; the caller owns the
//! file and the buffer (`flowscope replay` streams a file through it; tests hand it a whole
//! file with [`CaptureParser::frames`]). Frames borrow the caller's buffer; nothing is copied.
//!
//! What the formats leave to the reader is done as the drafts say: the link type is per
//! pcapng interface (IDB, §4.2), every section header (SHB, §4.1) sets its own byte order and
//! restarts interface numbering, `if_tsresol` and `if_tsoffset` apply per interface, and
//! blocks of unknown type are skipped by their length (§3.1). A frame of a link type we do
//! not decode is still returned, as [`LinkType::Unsupported`], so the engine counts it.

use crate::packet::{Direction, LinkType};

/// No pcap record or pcapng block we accept is larger; beyond it the length field is taken
/// as corrupt rather than buffered (libpcap's own limit on a record is 256 KiB).
pub const MAX_BLOCK_BYTES: usize = 64 << 20;

/// Why a capture file cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureFileError {
    /// The first four bytes are neither a pcap magic number nor a pcapng section header.
    #[error("not a pcap or pcapng file (starts with {0:02x?})")]
    UnknownFormat([u8; 4]),
    /// A pcapng section header whose byte-order magic is neither 0x1A2B3C4D nor swapped.
    #[error("pcapng section header has byte-order magic {0:#010x}, not 0x1a2b3c4d")]
    BadByteOrderMagic(u32),
    /// A pcapng block whose total length is shorter than its own fields, not a multiple of
    /// 4, or above [`MAX_BLOCK_BYTES`].
    #[error("pcapng block of type {block_type:#x} has total length {len}, which cannot be right")]
    BadBlockLength {
        /// Block type.
        block_type: u32,
        /// Its total length field.
        len: u32,
    },
    /// A pcap record whose captured length is above [`MAX_BLOCK_BYTES`].
    #[error("pcap record claims {0} captured bytes, which cannot be right")]
    BadRecordLength(u32),
}

/// One captured frame and what the file says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// How the frame begins (the pcap header's or the frame's pcapng interface's link type).
    pub link: LinkType,
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The interface, numbered from 1 over the whole file in the order the pcapng interface
    /// descriptions appear (so interface 0 of a second section is another number); 0 in pcap.
    pub interface: u32,
    /// From pcapng `epb_flags` (bits 0-1: 01 inbound, 10 outbound), else unknown.
    pub direction: Direction,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// What [`CaptureParser::parse`] made of the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// The buffer must hold at least this many bytes (from its start) to go on; at the end
    /// of the file, the bytes left are an incomplete last record.
    NeedBytes(usize),
    /// A record or block of `consumed` bytes was read; `frame` is set when it held a packet.
    Read {
        /// Bytes to drop from the front of the buffer before the next call.
        consumed: usize,
        /// The packet it held, if any.
        frame: Option<Frame<'a>>,
    },
}

/// Things the file held that are not frames, for the reader's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureFileStats {
    /// pcapng sections (SHBs) read.
    pub sections: u64,
    /// pcapng interfaces (IDBs) read, over all sections.
    pub interfaces: u64,
    /// pcapng packet blocks naming an interface their section never described (skipped:
    /// without an IDB there is no link type to decode them with).
    pub packets_without_interface: u64,
    /// pcapng blocks of a type that holds no packet we use (statistics, name resolution,
    /// custom, unknown), skipped by length.
    pub other_blocks: u64,
    /// pcapng interface or packet blocks too short for their own fixed fields (skipped).
    pub malformed_blocks: u64,
}

/// Byte order of a pcap file or pcapng section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        match self {
            Self::Little => u16::from_le_bytes(v),
            Self::Big => u16::from_be_bytes(v),
        }
    }

    fn u32(self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match self {
            Self::Little => u32::from_le_bytes(v),
            Self::Big => u32::from_be_bytes(v),
        }
    }

    fn u64(self, b: &[u8], at: usize) -> u64 {
        let (hi, lo) = match self {
            Self::Little => (self.u32(b, at + 4), self.u32(b, at)),
            Self::Big => (self.u32(b, at), self.u32(b, at + 4)),
        };
        (u64::from(hi) << 32) | u64::from(lo)
    }
}

/// A pcapng interface: what its IDB says that frames need.
#[derive(Debug, Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Global number (1-based, over the file).
    number: u32,
    snaplen: u32,
    /// `if_tsresol` (§4.2): MSB clear = 10^-n s, set = 2^-n s; default 6 (microseconds).
    tsresol: u8,
    /// `if_tsoffset` (§4.2): seconds to add to every timestamp.
    tsoffset: i64,
}

#[derive(Debug, Clone)]
enum Format {
    /// Nothing read yet.
    Start,
    /// pcap: one link type and byte order for the whole file.
    Pcap {
        order: Order,
        /// Nanosecond timestamps (magic 0xA1B23C4D) rather than microseconds.
        nanos: bool,
        link: LinkType,
    },
    /// pcapng: the current section's byte order and interfaces.
    PcapNg {
        order: Order,
        interfaces: Vec<Interface>,
        /// Time of the last packet, for Simple Packet Blocks, which carry none.
        last_ts_ns: u64,
    },
}

/// pcap file header magic numbers as read little-endian (draft-ietf-opsawg-pcap §4).
const PCAP_MAGIC_US: u32 = 0xA1B2_C3D4;
const PCAP_MAGIC_NS: u32 = 0xA1B2_3C4D;
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

/// pcapng block types (draft-ietf-opsawg-pcapng §10.1).
const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 1;
const BT_OBSOLETE_PB: u32 = 2;
const BT_SPB: u32 = 3;
const BT_EPB: u32 = 6;
/// Section header byte-order magic (§4.1).
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Option codes (§3.5, §4.2, §4.3).
const OPT_ENDOFOPT: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;
const OPT_EPB_FLAGS: u16 = 2;

/// Reads pcap and pcapng bytes into frames; see the module doc for how to drive it.
#[derive(Debug, Clone)]
pub struct CaptureParser {
    format: Format,
    stats: CaptureFileStats,
}

impl Default for CaptureParser {
    fn default() -> Self {
        Self::new()
    }
}

impl CaptureParser {
    /// A parser for a file, before its first byte.
    pub fn new() -> Self {
        Self {
            format: Format::Start,
            stats: CaptureFileStats::default(),
        }
    }

    /// What the file held besides frames, so far.
    pub fn stats(&self) -> &CaptureFileStats {
        &self.stats
    }

    /// "pcap" or "pcapng" once the file header was read.
    pub fn format_name(&self) -> Option<&'static str> {
        match self.format {
            Format::Start => None,
            Format::Pcap { .. } => Some("pcap"),
            Format::PcapNg { .. } => Some("pcapng"),
        }
    }

    /// Parses the record or block at the start of `buf` (the file's first bytes on the first
    /// call). Call it again with the bytes after `consumed`; on [`Step::NeedBytes`] call it
    /// again with at least that many bytes, or stop at the end of the file.
    pub fn parse<'a>(&mut self, buf: &'a [u8]) -> Result<Step<'a>, CaptureFileError> {
        match &mut self.format {
            Format::Start => self.parse_file_header(buf),
            Format::Pcap { order, nanos, link } => parse_pcap_record(buf, *order, *nanos, *link),
            Format::PcapNg { .. } => self.parse_block(buf),
        }
    }

    /// The frames of a whole capture file held in memory (tests, fuzzing); see [`Frames`].
    pub fn frames(bytes: &[u8]) -> Frames<'_> {
        Frames {
            parser: Self::new(),
            rest: bytes,
            failed: false,
        }
    }

    fn parse_file_header<'a>(&mut self, buf: &'a [u8]) -> Result<Step<'a>, CaptureFileError> {
        if buf.len() < 4 {
            return Ok(Step::NeedBytes(4));
        }
        let magic = [buf[0], buf[1], buf[2], buf[3]];
        if u32::from_le_bytes(magic) == BT_SHB {
            // The SHB is an ordinary block; parse_block sets the section up.
            self.format = Format::PcapNg {
                order: Order::Little,
                interfaces: Vec::new(),
                last_ts_ns: 0,
            };
            return self.parse_block(buf);
        }
        let (order, nanos) = match (u32::from_le_bytes(magic), u32::from_be_bytes(magic)) {
            (PCAP_MAGIC_US, _) => (Order::Little, false),
            (PCAP_MAGIC_NS, _) => (Order::Little, true),
            (_, PCAP_MAGIC_US) => (Order::Big, false),
            (_, PCAP_MAGIC_NS) => (Order::Big, true),
            _ => return Err(CaptureFileError::UnknownFormat(magic)),
        };
        if buf.len() < PCAP_HEADER_LEN {
            return Ok(Step::NeedBytes(PCAP_HEADER_LEN));
        }
        // magic(4) major(2) minor(2) reserved(4) reserved(4) snaplen(4) linktype(4) (§4).
        // The link type field also holds FCS information in its top bits; libpcap's
        // LT_LINKTYPE mask takes the link type from the low 26 bits (pcap-common.h).
        let link = LinkType::from_capture_header(order.u32(buf, 20) & 0x03FF_FFFF);
        self.format = Format::Pcap { order, nanos, link };
        Ok(Step::Read {
            consumed: PCAP_HEADER_LEN,
            frame: None,
        })
    }

    fn parse_block<'a>(&mut self, buf: &'a [u8]) -> Result<Step<'a>, CaptureFileError> {
        let Format::PcapNg {
            order,
            interfaces,
            last_ts_ns,
        } = &mut self.format
        else {
            unreachable!("parse_block is called for pcapng only");
        };
        // type(4) total_length(4) body total_length(4) (§3.1). A section header's byte order
        // is its own (the type reads the same both ways), told by the magic after the length.
        let need =
            if buf.len() >= 4 && u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) == BT_SHB {
                12
            } else {
                8
            };
        if buf.len() < need {
            return Ok(Step::NeedBytes(need));
        }
        let block_type = order.u32(buf, 0);
        let section_order = if block_type == BT_SHB {
            match u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) {
                BYTE_ORDER_MAGIC => Order::Little,
                m if m.swap_bytes() == BYTE_ORDER_MAGIC => Order::Big,
                m => return Err(CaptureFileError::BadByteOrderMagic(m)),
            }
        } else {
            *order
        };
        let len = section_order.u32(buf, 4);
        let min = if block_type == BT_SHB { 28 } else { 12 };
        if (len as usize) < min || len % 4 != 0 || len as usize > MAX_BLOCK_BYTES {
            return Err(CaptureFileError::BadBlockLength { block_type, len });
        }
        let len = len as usize;
        if buf.len() < len {
            return Ok(Step::NeedBytes(len));
        }
        let body = &buf[8..len - 4];
        let o = section_order;
        let read = |frame| {
            Ok(Step::Read {
                consumed: len,
                frame,
            })
        };
        match block_type {
            BT_SHB => {
                // A new section: its own byte order, interfaces numbered from 0 again (§4.1).
                *order = o;
                interfaces.clear();
                self.stats.sections += 1;
                read(None)
            }
            BT_IDB if body.len() >= 8 => {
                self.stats.interfaces += 1;
                let mut iface = Interface {
                    link: LinkType::from_capture_header(u32::from(o.u16(body, 0))),
                    number: u32::try_from(self.stats.interfaces).unwrap_or(u32::MAX),
                    snaplen: o.u32(body, 4),
                    tsresol: 6,
                    tsoffset: 0,
                };
                for (code, value) in options(&body[8..], o) {
                    match code {
                        OPT_IF_TSRESOL if !value.is_empty() => iface.tsresol = value[0],
                        OPT_IF_TSOFFSET if value.len() >= 8 => {
                            iface.tsoffset = o.u64(value, 0) as i64;
                        }
                        _ => {}
                    }
                }
                interfaces.push(iface);
                read(None)
            }
            // EPB (§4.3): interface(4) ts_high(4) ts_low(4) caplen(4) origlen(4) data options.
            // The obsolete Packet Block (Appendix A) differs only in its first word:
            // interface(2) drops(2); its pack_flags has epb_flags' code and bits.
            BT_EPB | BT_OBSOLETE_PB if body.len() >= 20 => {
                let index = if block_type == BT_EPB {
                    o.u32(body, 0) as usize
                } else {
                    usize::from(o.u16(body, 0))
                };
                let Some(iface) = interfaces.get(index) else {
                    self.stats.packets_without_interface += 1;
                    return read(None);
                };
                let ts = (u64::from(o.u32(body, 4)) << 32) | u64::from(o.u32(body, 8));
                let (data, opts) = packet_data(&body[20..], o.u32(body, 12));
                let frame = packet_frame(iface, ts, o.u32(body, 16), data, opts, o);
                *last_ts_ns = frame.ts_ns;
                read(Some(frame))
            }
            // origlen(4) data (§4.4): interface 0, no timestamp, captured length is the
            // original length cut at the interface's snaplen (and by the block's padding).
            BT_SPB if body.len() >= 4 => {
                let Some(iface) = interfaces.first() else {
                    self.stats.packets_without_interface += 1;
                    return read(None);
                };
                let orig_len = o.u32(body, 0);
                let mut caplen = orig_len.min(u32::try_from(body.len() - 4).unwrap_or(u32::MAX));
                if iface.snaplen != 0 {
                    caplen = caplen.min(iface.snaplen);
                }
                read(Some(Frame {
                    link: iface.link,
                    ts_ns: *last_ts_ns,
                    interface: iface.number,
                    direction: Direction::Unknown,
                    orig_len,
                    data: &body[4..4 + caplen as usize],
                }))
            }
            BT_IDB | BT_EPB | BT_OBSOLETE_PB | BT_SPB => {
                self.stats.malformed_blocks += 1;
                read(None)
            }
            _ => {
                self.stats.other_blocks += 1;
                read(None)
            }
        }
    }
}

/// Splits a packet block's tail into the captured bytes and the options after their padding;
/// a captured length past the block is cut to the block (the frame then reads as snapped).
fn packet_data(tail: &[u8], caplen: u32) -> (&[u8], &[u8]) {
    let caplen = (caplen as usize).min(tail.len());
    let padded = caplen.next_multiple_of(4).min(tail.len());
    (&tail[..caplen], &tail[padded..])
}

/// A frame from an EPB or obsolete PB: timestamp in the interface's units and offset,
/// direction from the flags option.
fn packet_frame<'a>(
    iface: &Interface,
    ts_units: u64,
    orig_len: u32,
    data: &'a [u8],
    opts: &[u8],
    o: Order,
) -> Frame<'a> {
    let direction = options(opts, o)
        .find(|(code, value)| *code == OPT_EPB_FLAGS && value.len() >= 4)
        .map_or(Direction::Unknown, |(_, v)| match o.u32(v, 0) & 3 {
            1 => Direction::Ingress,
            2 => Direction::Egress,
            _ => Direction::Unknown,
        });
    let ts_ns = ts_to_ns(ts_units, iface.tsresol)
        .saturating_add_signed(iface.tsoffset.saturating_mul(1_000_000_000));
    Frame {
        link: iface.link,
        ts_ns,
        interface: iface.number,
        direction,
        orig_len,
        data,
    }
}

/// pcapng options (§3.5): code(2) length(2) value padded to 4, until opt_endofopt or the end.
/// An option running past the block ends the list (the packet before it is still good).
fn options(mut opts: &[u8], o: Order) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if opts.len() < 4 {
            return None;
        }
        let code = o.u16(opts, 0);
        let len = usize::from(o.u16(opts, 2));
        if code == OPT_ENDOFOPT || 4 + len > opts.len() {
            return None;
        }
        let value = &opts[4..4 + len];
        opts = &opts[(4 + len.next_multiple_of(4)).min(opts.len())..];
        Some((code, value))
    })
}

/// Converts a timestamp in `if_tsresol` units to nanoseconds (§4.2: MSB clear = 10^-n s,
/// set = 2^-n s).
pub fn ts_to_ns(raw: u64, tsresol: u8) -> u64 {
    let n = u32::from(tsresol & 0x7f);
    if tsresol & 0x80 == 0 {
        if n <= 9 {
            raw.saturating_mul(10u64.pow(9 - n))
        } else {
            raw / 10u64.pow((n - 9).min(19))
        }
    } else {
        u64::try_from((u128::from(raw) * 1_000_000_000) >> n.min(127)).unwrap_or(u64::MAX)
    }
}

/// A pcap record: ts_sec(4) ts_frac(4) caplen(4) origlen(4) data (draft-ietf-opsawg-pcap §5).
fn parse_pcap_record(
    buf: &[u8],
    order: Order,
    nanos: bool,
    link: LinkType,
) -> Result<Step<'_>, CaptureFileError> {
    if buf.len() < PCAP_RECORD_HEADER_LEN {
        return Ok(Step::NeedBytes(PCAP_RECORD_HEADER_LEN));
    }
    let caplen = order.u32(buf, 8);
    if caplen as usize > MAX_BLOCK_BYTES {
        return Err(CaptureFileError::BadRecordLength(caplen));
    }
    let end = PCAP_RECORD_HEADER_LEN + caplen as usize;
    if buf.len() < end {
        return Ok(Step::NeedBytes(end));
    }
    let frac = u64::from(order.u32(buf, 4));
    let ts_ns = u64::from(order.u32(buf, 0))
        .saturating_mul(1_000_000_000)
        .saturating_add(if nanos { frac } else { frac * 1000 });
    Ok(Step::Read {
        consumed: end,
        frame: Some(Frame {
            link,
            ts_ns,
            interface: 0,
            direction: Direction::Unknown,
            orig_len: order.u32(buf, 12),
            data: &buf[PCAP_RECORD_HEADER_LEN..end],
        }),
    })
}

/// The frames of a capture file held in memory; from [`CaptureParser::frames`].
///
/// Yields each frame, or the error that stops the file; an incomplete last record ends the
/// iteration and is left in [`Frames::rest`].
#[derive(Debug)]
pub struct Frames<'a> {
    parser: CaptureParser,
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Frames<'a> {
    /// The parser, for its [`CaptureFileStats`].
    pub fn parser(&self) -> &CaptureParser {
        &self.parser
    }

    /// Bytes not parsed (an incomplete last record once the iteration ended).
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, CaptureFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && !self.rest.is_empty() {
            match self.parser.parse(self.rest) {
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                Ok(Step::NeedBytes(_)) => return None,
                Ok(Step::Read { consumed, frame }) => {
                    self.rest = &self.rest[consumed..];
                    if frame.is_some() {
                        return frame.map(Ok);
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes pcap and pcapng files in either byte order.
    struct Writer {
        big: bool,
        out: Vec<u8>,
    }

    impl Writer {
        fn new(big: bool) -> Self {
            Self {
                big,
                out: Vec::new(),
            }
        }
        fn u16(&mut self, v: u16) -> &mut Self {
            let b = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.extend_from_slice(&b);
            self
        }
        fn u32(&mut self, v: u32) -> &mut Self {
            let b = if self.big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.out.extend_from_slice(&b);
            self
        }
        fn bytes(&mut self, b: &[u8]) -> &mut Self {
            self.out.extend_from_slice(b);
            self.out.resize(self.out.len().next_multiple_of(4), 0);
            self
        }

        /// pcap file header.
        fn pcap_header(&mut self, nanos: bool, linktype: u32) -> &mut Self {
            let magic = if nanos { PCAP_MAGIC_NS } else { PCAP_MAGIC_US };
            self.u32(magic)
                .u16(2)
                .u16(4)
                .u32(0)
                .u32(0)
                .u32(65535)
                .u32(linktype)
        }
        fn pcap_record(&mut self, sec: u32, frac: u32, data: &[u8]) -> &mut Self {
            self.u32(sec)
                .u32(frac)
                .u32(data.len() as u32)
                .u32(data.len() as u32);
            self.out.extend_from_slice(data);
            self
        }

        /// A pcapng block: type, body (already in this writer's order), lengths.
        fn block(&mut self, block_type: u32, body: &Writer) -> &mut Self {
            let len = 12 + body.out.len() as u32;
            self.u32(block_type).u32(len);
            self.out.extend_from_slice(&body.out);
            self.u32(len)
        }
        fn body(&self) -> Writer {
            Writer::new(self.big)
        }
        fn shb(&mut self) -> &mut Self {
            let mut b = self.body();
            b.u32(BYTE_ORDER_MAGIC)
                .u16(1)
                .u16(0)
                .u32(u32::MAX)
                .u32(u32::MAX);
            self.block(BT_SHB, &b)
        }
        /// An IDB with options `(code, value)`.
        fn idb(&mut self, linktype: u16, opts: &[(u16, &[u8])]) -> &mut Self {
            let mut b = self.body();
            b.u16(linktype).u16(0).u32(0);
            for (code, value) in opts {
                b.u16(*code).u16(value.len() as u16).bytes(value);
            }
            if !opts.is_empty() {
                b.u32(0);
            }
            self.block(BT_IDB, &b)
        }
        fn epb(&mut self, iface: u32, ts: u64, data: &[u8], flags: Option<u32>) -> &mut Self {
            let mut b = self.body();
            b.u32(iface)
                .u32((ts >> 32) as u32)
                .u32(ts as u32)
                .u32(data.len() as u32)
                .u32(data.len() as u32 + 10)
                .bytes(data);
            if let Some(f) = flags {
                b.u16(OPT_EPB_FLAGS).u16(4).u32(f).u32(0);
            }
            self.block(BT_EPB, &b)
        }
    }

    fn all(bytes: &[u8]) -> Vec<Frame<'_>> {
        CaptureParser::frames(bytes).map(Result::unwrap).collect()
    }

    #[test]
    fn pcap_in_either_byte_order_and_resolution() {
        for (big, nanos) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut w = Writer::new(big);
            w.pcap_header(nanos, 1)
                .pcap_record(10, 5, b"abc")
                .pcap_record(11, 0, b"de");
            let frames = all(&w.out);
            let unit = if nanos { 1 } else { 1000 };
            assert_eq!(frames.len(), 2, "big {big} nanos {nanos}");
            assert_eq!(frames[0].ts_ns, 10_000_000_000 + 5 * unit);
            assert_eq!(frames[0].data, b"abc");
            assert_eq!(frames[0].link, LinkType::Ethernet);
            assert_eq!(frames[0].orig_len, 3);
            assert_eq!(frames[1].ts_ns, 11_000_000_000);
        }
    }

    #[test]
    fn pcap_link_type_field_holds_fcs_bits_and_unknown_types() {
        // draft-ietf-opsawg-pcap §4: FCS length in bits 28-31, F bit 26 (libpcap LT_FCS_*).
        let mut w = Writer::new(false);
        w.pcap_header(false, 0x4400_0000 | 108)
            .pcap_record(1, 0, b"x");
        assert_eq!(all(&w.out)[0].link, LinkType::Loop);
        let mut w = Writer::new(true);
        w.pcap_header(false, 147).pcap_record(1, 0, b"x");
        assert_eq!(all(&w.out)[0].link, LinkType::Unsupported(147));
    }

    #[test]
    fn pcapng_link_type_resolution_and_direction_per_interface() {
        let mut w = Writer::new(false);
        w.shb()
            .idb(1, &[])
            .idb(0, &[(OPT_IF_TSRESOL, &[9]), (2, b"lo0")])
            .idb(101, &[(OPT_IF_TSRESOL, &[0x80 | 10])])
            .idb(113, &[(OPT_IF_TSOFFSET, &100u64.to_le_bytes())])
            .epb(0, 1_500_000, b"eth", Some(2))
            .epb(1, 1_500_000_123, b"null", Some(1))
            .epb(2, 3 << 10, b"raw", None)
            .epb(3, 7, b"sll", Some(0));
        let frames = all(&w.out);
        let got: Vec<_> = frames
            .iter()
            .map(|f| (f.link, f.ts_ns, f.interface, f.direction, f.data))
            .collect();
        assert_eq!(
            got,
            [
                (
                    LinkType::Ethernet,
                    1_500_000_000,
                    1,
                    Direction::Egress,
                    &b"eth"[..]
                ),
                (
                    LinkType::Null,
                    1_500_000_123,
                    2,
                    Direction::Ingress,
                    b"null"
                ),
                (
                    LinkType::RawIp,
                    3_000_000_000,
                    3,
                    Direction::Unknown,
                    b"raw"
                ),
                (
                    LinkType::LinuxSll,
                    100_000_007_000,
                    4,
                    Direction::Unknown,
                    b"sll"
                ),
            ]
        );
        assert_eq!(frames[0].orig_len, 13);
    }

    #[test]
    fn pcapng_sections_have_their_own_byte_order_and_interfaces() {
        // A concatenated file: section 1 little-endian Ethernet, section 2 big-endian raw
        // IP. Section 2's interface 0 is its own IDB (§4.1), with its own global number.
        let mut w = Writer::new(false);
        w.shb().idb(1, &[]).epb(0, 1, b"one", None);
        let mut w2 = Writer::new(true);
        w2.shb()
            .idb(101, &[])
            .idb(0, &[])
            .epb(0, 2, b"two", None)
            .epb(1, 3, b"three", None);
        w.out.extend_from_slice(&w2.out);
        let mut frames = CaptureParser::frames(&w.out);
        let got: Vec<_> = frames
            .by_ref()
            .map(|f| f.map(|f| (f.link, f.interface, f.data)))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            got,
            [
                (LinkType::Ethernet, 1, &b"one"[..]),
                (LinkType::RawIp, 2, b"two"),
                (LinkType::Null, 3, b"three"),
            ]
        );
        let stats = frames.parser().stats();
        assert_eq!((stats.sections, stats.interfaces), (2, 3));
    }

    #[test]
    fn pcapng_packets_of_undescribed_interfaces_are_counted() {
        let mut w = Writer::new(false);
        w.shb()
            .idb(1, &[])
            .epb(1, 1, b"orphan", None)
            .epb(0, 2, b"ok", None);
        let mut frames = CaptureParser::frames(&w.out);
        assert_eq!(frames.by_ref().count(), 1);
        assert_eq!(frames.parser().stats().packets_without_interface, 1);
    }

    #[test]
    fn pcapng_simple_and_obsolete_packet_blocks() {
        let mut w = Writer::new(true);
        w.shb().idb(1, &[]).epb(0, 5_000_000, b"first", None);
        // Simple Packet Block (§4.4): original length 4 of 6 data bytes (padding cut).
        let mut b = w.body();
        b.u32(4).bytes(b"spbxyz");
        w.block(BT_SPB, &b);
        // Obsolete Packet Block (Appendix A) with pack_flags outbound.
        let mut b = w.body();
        b.u16(0)
            .u16(0)
            .u32(0)
            .u32(6_000_000)
            .u32(3)
            .u32(3)
            .bytes(b"opb");
        b.u16(OPT_EPB_FLAGS).u16(4).u32(2).u32(0);
        w.block(BT_OBSOLETE_PB, &b);
        let got: Vec<_> = all(&w.out)
            .iter()
            .map(|f| (f.ts_ns, f.direction, f.data.to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                (5_000_000_000, Direction::Unknown, b"first".to_vec()),
                (5_000_000_000, Direction::Unknown, b"spbx".to_vec()),
                (6_000_000_000, Direction::Egress, b"opb".to_vec()),
            ]
        );
    }

    #[test]
    fn pcapng_other_blocks_and_bad_options_are_skipped() {
        let mut w = Writer::new(false);
        w.shb().idb(1, &[]);
        // Interface Statistics, Name Resolution, custom and unknown blocks (§3.1: skipped).
        for block_type in [5, 4, 0x0000_0BAD, 0x4000_0BAD, 0x1234] {
            let mut b = w.body();
            b.u32(0).u32(0);
            w.block(block_type, &b);
        }
        // An EPB whose option claims more bytes than the block has: the packet still counts.
        let mut b = w.body();
        b.u32(0).u32(0).u32(1).u32(2).u32(2).bytes(b"ok");
        b.u16(OPT_EPB_FLAGS).u16(400).u32(1);
        w.block(BT_EPB, &b);
        // An EPB too short for its fixed fields is counted, not read.
        let mut b = w.body();
        b.u32(0).u32(0);
        w.block(BT_EPB, &b);
        let mut frames = CaptureParser::frames(&w.out);
        let f = frames.next().unwrap().unwrap();
        assert_eq!((f.data, f.direction), (&b"ok"[..], Direction::Unknown));
        assert!(frames.next().is_none());
        assert_eq!(frames.parser().stats().other_blocks, 5);
        assert_eq!(frames.parser().stats().malformed_blocks, 1);
    }

    #[test]
    fn bad_files_say_why() {
        assert_eq!(
            CaptureParser::new().parse(b"GET / HTTP/1.1").unwrap_err(),
            CaptureFileError::UnknownFormat(*b"GET ")
        );
        let mut w = Writer::new(false);
        w.shb().u32(BT_EPB).u32(6).u32(6);
        let e = CaptureParser::frames(&w.out).next().unwrap().unwrap_err();
        assert_eq!(
            e,
            CaptureFileError::BadBlockLength {
                block_type: BT_EPB,
                len: 6
            }
        );
        let mut w = Writer::new(false);
        w.u32(BT_SHB).u32(28).u32(0xdead_beef);
        let e = CaptureParser::new().parse(&w.out).unwrap_err();
        assert_eq!(e, CaptureFileError::BadByteOrderMagic(0xdead_beef));
        let mut w = Writer::new(false);
        w.pcap_header(false, 1).u32(0).u32(0).u32(u32::MAX).u32(0);
        let e = CaptureParser::frames(&w.out).next().unwrap().unwrap_err();
        assert_eq!(e, CaptureFileError::BadRecordLength(u32::MAX));
    }

    #[test]
    fn a_cut_off_last_record_ends_the_frames() {
        let mut w = Writer::new(false);
        w.pcap_header(false, 1)
            .pcap_record(1, 0, b"whole")
            .pcap_record(2, 0, b"cut");
        let cut = &w.out[..w.out.len() - 1];
        let mut frames = CaptureParser::frames(cut);
        assert_eq!(frames.by_ref().count(), 1);
        assert_eq!(frames.rest().len(), 16 + 2);
    }

    #[test]
    fn pcapng_timestamp_resolutions() {
        assert_eq!(ts_to_ns(1_500_000, 6), 1_500_000_000);
        assert_eq!(ts_to_ns(7, 9), 7);
        assert_eq!(ts_to_ns(1 << 10, 0x80 | 10), 1_000_000_000);
        assert_eq!(ts_to_ns(12_345, 12), 12);
    }

    /// Frames as owned values, to compare parses of the same file.
    fn owned(f: &Frame<'_>) -> (LinkType, u64, u32, Direction, u32, Vec<u8>) {
        (
            f.link,
            f.ts_ns,
            f.interface,
            f.direction,
            f.orig_len,
            f.data.to_vec(),
        )
    }

    proptest::proptest! {
        /// Fed in chunks of any size, as `replay` streams a file, the parser yields the same
        /// frames as from the whole file.
        #[test]
        fn chunked_input_gives_the_same_frames(chunk in 1usize..64, big: bool) {
            let mut w = Writer::new(big);
            w.shb().idb(1, &[]).idb(0, &[(OPT_IF_TSRESOL, &[9])]);
            for i in 0..5u8 {
                w.epb(u32::from(i % 2), u64::from(i), &vec![i; usize::from(i) * 3], Some(1));
            }
            let whole: Vec<_> = all(&w.out).iter().map(owned).collect();
            let mut parser = CaptureParser::new();
            let (mut buf, mut fed, mut got) = (Vec::new(), 0, Vec::new());
            loop {
                match parser.parse(&buf).unwrap() {
                    Step::Read { consumed, frame } => {
                        got.extend(frame.as_ref().map(owned));
                        buf.drain(..consumed);
                    }
                    Step::NeedBytes(n) => {
                        proptest::prop_assert!(n > buf.len());
                        if fed == w.out.len() {
                            break;
                        }
                        let end = (fed + chunk).min(w.out.len());
                        buf.extend_from_slice(&w.out[fed..end]);
                        fed = end;
                    }
                }
            }
            proptest::prop_assert!(buf.is_empty());
            proptest::prop_assert_eq!(got, whole);
        }

        /// Any bytes: an error or frames, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), ng: bool) {
            let mut file = if ng {
                let mut w = Writer::new(false);
                w.shb();
                w.out
            } else {
                let mut w = Writer::new(false);
                w.pcap_header(false, 1);
                w.out
            };
            file.extend_from_slice(&bytes);
            for f in CaptureParser::frames(&file).flatten() {
                proptest::prop_assert!(f.data.len() <= file.len());
            }
        }
    }
}
