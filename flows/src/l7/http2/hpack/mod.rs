//! HPACK (RFC 7541): a tolerant decoder that knows what it does not know.
//!
//! One [`Decoder`] per direction of a connection. Field blocks decode into [`Field`]s whose
//! name or value is `None` when it came from a dynamic table entry we never saw (a connection
//! joined mid-way, or a field block lost to a capture gap); see [`table`] for how exact
//! indices survive an unknown history. Decoding is bounded: a field block's decoded size is
//! capped (an HPACK bomb — many references to one large entry — stops materialising fields
//! at the cap but still updates the table), the table's bytes are capped, and integers and
//! strings are checked against the bytes that carry them.

pub mod huffman;
pub mod table;

use std::sync::Arc;

use table::{DynamicTable, Entry, Lookup};

/// A field name or value. Most fields of a real field block are references to a table entry
/// (RFC 7541 §6.1, and §6.2 literals with an indexed name): a static one (Appendix A) is
/// borrowed and a dynamic one shares the entry's bytes, so neither costs an allocation. A
/// string literal (§5.2) of up to [`INLINE_LEN`] bytes is kept inline (names, dates, most
/// paths, content types, lengths, status codes: nearly every literal a real peer sends), a
/// longer one is allocated once and shared with the dynamic table entry it may be inserted as
/// (§6.2.1).
#[derive(Debug, Clone)]
pub enum FieldBytes {
    /// A static table string (text: read as such without a UTF-8 check).
    Static(&'static str),
    /// A short literal's bytes, copied (cheaper than an allocation at this size).
    Inline {
        /// Bytes used.
        len: u8,
        /// The bytes, `len` of them.
        bytes: [u8; INLINE_LEN],
    },
    /// A long literal's bytes, shared with the dynamic table.
    Shared(Arc<[u8]>),
}

/// Longest literal kept inline: 30 bytes hold an HTTP date (29, RFC 9110 §5.6.7), and keep
/// [`FieldBytes`] at 32 bytes, the size of a tag and the largest other variant rounded up.
pub const INLINE_LEN: usize = 30;

impl std::ops::Deref for FieldBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Static(t) => t.as_bytes(),
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Shared(b) => b,
        }
    }
}

/// Equal when the bytes are: where they are kept does not matter.
impl PartialEq for FieldBytes {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for FieldBytes {}

/// Inline when short enough, else one shared allocation.
impl From<&[u8]> for FieldBytes {
    fn from(b: &[u8]) -> Self {
        if b.len() <= INLINE_LEN {
            let mut bytes = [0; INLINE_LEN];
            bytes[..b.len()].copy_from_slice(b);
            Self::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Self::Shared(b.into())
        }
    }
}

/// One decoded field; `None` parts are unknown (never guessed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Name, lowercase on the wire for HTTP/2 (RFC 9113 §8.2.1).
    pub name: Option<FieldBytes>,
    /// Value.
    pub value: Option<FieldBytes>,
}

impl Field {
    /// The name as text, when known.
    pub fn name_str(&self) -> Option<&str> {
        self.name
            .as_deref()
            .and_then(|n| std::str::from_utf8(n).ok())
    }
    /// The value as (lossy) text, when known.
    pub fn value_string(&self) -> Option<String> {
        self.value
            .as_deref()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// Why a field block did not decode; the decoder's table is then uncertain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    /// An integer ran past the block or past 2^32 (RFC 7541 §5.1).
    #[error("HPACK integer at byte {at} is truncated or too large (RFC 7541 §5.1)")]
    BadInteger {
        /// Offset in the block.
        at: usize,
    },
    /// A string literal is longer than what is left of the block (§5.2).
    #[error("HPACK string of {len} bytes at byte {at} runs past the field block")]
    StringPastEnd {
        /// Offset in the block.
        at: usize,
        /// Declared length.
        len: usize,
    },
    /// Bad Huffman coding (§5.2).
    #[error("HPACK Huffman string at byte {at}: {source}")]
    Huffman {
        /// Offset in the block.
        at: usize,
        /// What was wrong.
        source: huffman::HuffmanError,
    },
    /// An index that refers to nothing (§2.3.3: "Indices strictly greater than the sum of the
    /// lengths of both tables MUST be treated as a decoding error").
    #[error("HPACK index {index} refers to no table entry (RFC 7541 §2.3.3)")]
    BadIndex {
        /// The index.
        index: usize,
    },
}

/// How one field block went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Fields whose name or value stayed unknown.
    pub unknown_fields: u32,
    /// Fields resolved from entries inserted since capture began while older entries were
    /// unknown (the FIFO model at work).
    pub resolved_in_partial_table: u32,
    /// The decoded size passed the cap; later fields were not kept.
    pub list_capped: bool,
    /// A size update exceeded SETTINGS_HEADER_TABLE_SIZE (§6.3).
    pub bad_size_update: bool,
}

/// One direction's HPACK decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    table: DynamicTable,
    /// The receiver's SETTINGS_HEADER_TABLE_SIZE, when seen (§4.2 bound on size updates).
    limit: Option<usize>,
    /// Where a Huffman string (§5.2) is decoded before it is copied inline or into its one
    /// allocation; kept between strings, given back when a long one made it large.
    scratch: Vec<u8>,
    /// Short Huffman strings decoded lately, by their coded bytes (allocated at the first).
    memo: Option<Box<HuffmanMemo>>,
}

/// Longest Huffman-coded string (§5.2) whose decoding [`HuffmanMemo`] keeps.
const MEMO_CODED_LEN: usize = 24;

/// Slots of [`HuffmanMemo`] (a power of two). 64 bytes each: 1 KiB per direction of a
/// connection that sends Huffman literals.
const MEMO_SLOTS: usize = 16;

/// The last short Huffman strings decoded, by their coded bytes: servers send most response
/// fields as the same literals in every response (nginx: `server`, `content-type`,
/// `last-modified`, `etag`, `date` within a second, a gRPC `grpc-status: 0` trailer; §6.2
/// literals, indexed or not, re-sent rather than referenced), and comparing a string's coded
/// bytes with a few remembered ones is far cheaper than decoding them again. The same coded
/// bytes always decode to the same text (§5.2, Appendix B), so a hit is exact; only strings
/// that decoded without error and fit inline ([`INLINE_LEN`]) are kept, so the memo holds no
/// shared allocation. Each string has two candidate slots (two hashes of its coded bytes)
/// and replaces the less recently used one: a response's seven or eight literals then all
/// stay (with one slot each, two strings sharing it would both miss every time).
#[derive(Debug, Clone)]
struct HuffmanMemo {
    slots: [MemoSlot; MEMO_SLOTS],
    /// Lookups so far: the slots' recency stamps.
    clock: u32,
}

/// One [`HuffmanMemo`] entry: coded bytes (zero-padded) and what they decode to.
#[derive(Debug, Clone)]
struct MemoSlot {
    /// Coded length; 0: empty (an empty string is never looked up).
    coded_len: u8,
    coded: [u8; MEMO_CODED_LEN],
    /// [`HuffmanMemo::clock`] when last hit or filled.
    used: u32,
    decoded: FieldBytes,
}

impl HuffmanMemo {
    fn new() -> Box<Self> {
        Box::new(Self {
            slots: std::array::from_fn(|_| MemoSlot {
                coded_len: 0,
                coded: [0; MEMO_CODED_LEN],
                used: 0,
                decoded: FieldBytes::Static(""),
            }),
            clock: 0,
        })
    }

    /// The two candidate slots of `coded` (1..=[`MEMO_CODED_LEN`] bytes) and its
    /// zero-padded bytes.
    fn key(coded: &[u8]) -> ([usize; 2], [u8; MEMO_CODED_LEN]) {
        let mut padded = [0; MEMO_CODED_LEN];
        padded[..coded.len()].copy_from_slice(coded);
        let word = |at: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&padded[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let mixed = (word(0) ^ word(8).rotate_left(21) ^ word(16).rotate_left(42))
            .wrapping_add(coded.len() as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let bits = MEMO_SLOTS.trailing_zeros();
        let a = (mixed >> (64 - bits)) as usize;
        let b = (mixed >> (64 - 2 * bits)) as usize % MEMO_SLOTS;
        ([a, if b == a { a ^ 1 } else { b }], padded)
    }

    /// What `coded` decoded to, when remembered.
    fn get(
        &mut self,
        slots: [usize; 2],
        coded_len: usize,
        padded: &[u8; MEMO_CODED_LEN],
    ) -> Option<FieldBytes> {
        self.clock = self.clock.wrapping_add(1);
        for i in slots {
            let slot = &mut self.slots[i];
            if usize::from(slot.coded_len) == coded_len && slot.coded == *padded {
                slot.used = self.clock;
                return Some(slot.decoded.clone());
            }
        }
        None
    }

    /// Remembers `decoded` for `coded` in the less recently used of its slots.
    fn put(
        &mut self,
        slots: [usize; 2],
        coded_len: usize,
        padded: [u8; MEMO_CODED_LEN],
        decoded: &FieldBytes,
    ) {
        let age = |i: usize| self.clock.wrapping_sub(self.slots[i].used);
        let i = if age(slots[1]) > age(slots[0]) {
            slots[1]
        } else {
            slots[0]
        };
        self.slots[i] = MemoSlot {
            coded_len: coded_len as u8,
            coded: padded,
            used: self.clock,
            decoded: decoded.clone(),
        };
    }
}

/// Scratch capacity kept between field blocks; a longer Huffman string's is freed after it.
const SCRATCH_KEPT: usize = 4096;

/// Largest string literal we allocate for; longer ones are skipped as unknown values.
const MAX_STRING: usize = 64 * 1024;

impl Decoder {
    /// A decoder that has seen the connection from its start.
    pub fn new(table_cap: usize) -> Self {
        Self {
            table: DynamicTable::known(table_cap),
            limit: None,
            scratch: Vec::new(),
            memo: None,
        }
    }

    /// A decoder for a connection joined mid-way.
    pub fn partial(table_cap: usize) -> Self {
        Self {
            table: DynamicTable::unknown(table_cap),
            limit: None,
            scratch: Vec::new(),
            memo: None,
        }
    }

    /// The table (for counters and tests).
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Forgets the table: a field block was lost.
    pub fn forget(&mut self) {
        self.table.forget();
    }

    /// The receiver announced SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = Some(limit);
    }

    /// Decodes field block `block`, appending fields to `out` until their decoded size
    /// (§4.1 sizes, as SETTINGS_MAX_HEADER_LIST_SIZE counts them) passes `max_list_bytes`.
    /// On error the table is forgotten; fields decoded before the error stay in `out`.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_bytes: usize,
        out: &mut Vec<Field>,
    ) -> Result<BlockStats, HpackError> {
        let r = self.decode_inner(block, max_list_bytes, out);
        if r.is_err() {
            self.table.forget();
        }
        if self.scratch.capacity() > SCRATCH_KEPT {
            self.scratch = Vec::new();
        }
        r
    }

    fn decode_inner(
        &mut self,
        block: &[u8],
        max_list_bytes: usize,
        out: &mut Vec<Field>,
    ) -> Result<BlockStats, HpackError> {
        let mut stats = BlockStats::default();
        let mut list_bytes = 0usize;
        let mut pos = 0;
        let mut keep = |f: Field, stats: &mut BlockStats, out: &mut Vec<Field>| {
            if f.name.is_none() || f.value.is_none() {
                stats.unknown_fields += 1;
            }
            let size = f.name.as_ref().map_or(0, |n| n.len())
                + f.value.as_ref().map_or(0, |v| v.len())
                + table::ENTRY_OVERHEAD;
            list_bytes = list_bytes.saturating_add(size);
            if list_bytes > max_list_bytes {
                stats.list_capped = true;
            } else {
                out.push(f);
            }
        };
        while pos < block.len() {
            let b = block[pos];
            if b & 0x80 != 0 {
                // §6.1 Indexed Header Field.
                let index = integer(block, &mut pos, 7)?;
                let f = self.indexed(index, &mut stats)?;
                keep(f, &mut stats, out);
            } else if b & 0xc0 == 0x40 {
                // §6.2.1 Literal with Incremental Indexing.
                let (name, value) = self.literal(block, &mut pos, 6, &mut stats)?;
                match value.clone() {
                    Some(v) => self.table.insert(Entry {
                        name: name.clone(),
                        value: v,
                    }),
                    // A value we skipped for size: the entry exists but is unknown; our exact
                    // indices end here.
                    None => self.table.forget(),
                }
                keep(Field { name, value }, &mut stats, out);
            } else if b & 0xe0 == 0x20 {
                // §6.3 Dynamic Table Size Update.
                let at = pos;
                let size = integer(block, &mut pos, 5)?;
                if !self.table.resize(size, self.limit) {
                    stats.bad_size_update = true;
                }
                let _ = at;
            } else {
                // §6.2.2 without indexing (0000), §6.2.3 never indexed (0001).
                let (name, value) = self.literal(block, &mut pos, 4, &mut stats)?;
                keep(Field { name, value }, &mut stats, out);
            }
        }
        Ok(stats)
    }

    fn indexed(&self, index: usize, stats: &mut BlockStats) -> Result<Field, HpackError> {
        match self.table.get(index) {
            Lookup::Static(n, v) => Ok(Field {
                name: Some(FieldBytes::Static(n)),
                value: Some(FieldBytes::Static(v)),
            }),
            Lookup::Dynamic(e) => {
                if !self.table.fully_known() {
                    stats.resolved_in_partial_table += 1;
                }
                Ok(Field {
                    name: e.name.clone(),
                    value: Some(e.value.clone()),
                })
            }
            Lookup::Unknown => Ok(Field {
                name: None,
                value: None,
            }),
            Lookup::Invalid => Err(HpackError::BadIndex { index }),
        }
    }

    /// A literal representation with an `n`-bit name index prefix (§6.2).
    #[allow(clippy::type_complexity)]
    fn literal(
        &mut self,
        block: &[u8],
        pos: &mut usize,
        n: u8,
        stats: &mut BlockStats,
    ) -> Result<(Option<FieldBytes>, Option<FieldBytes>), HpackError> {
        let index = integer(block, pos, n)?;
        let name = if index == 0 {
            string(block, pos, &mut self.scratch, &mut self.memo)?
        } else {
            self.indexed(index, stats)?.name
        };
        let value = string(block, pos, &mut self.scratch, &mut self.memo)?;
        Ok((name, value))
    }
}

/// §5.1 integer with an `n`-bit prefix, starting at `block[*pos]`.
fn integer(block: &[u8], pos: &mut usize, n: u8) -> Result<usize, HpackError> {
    let at = *pos;
    let max_prefix = (1usize << n) - 1;
    let first = *block.get(*pos).ok_or(HpackError::BadInteger { at })?;
    *pos += 1;
    let mut value = usize::from(first) & max_prefix;
    if value < max_prefix {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let b = *block.get(*pos).ok_or(HpackError::BadInteger { at })?;
        *pos += 1;
        // Past 2^32 nothing in a field block makes sense; stop before overflow.
        if shift > 28 {
            return Err(HpackError::BadInteger { at });
        }
        value += usize::from(b & 0x7f) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
}

/// §5.2 string literal; `None` when longer than we keep (skipped, value unknown). A Huffman
/// string is decoded into `scratch` first (unless `memo` has it); either kind is then copied
/// inline or into one allocation ([`FieldBytes`]).
fn string(
    block: &[u8],
    pos: &mut usize,
    scratch: &mut Vec<u8>,
    memo: &mut Option<Box<HuffmanMemo>>,
) -> Result<Option<FieldBytes>, HpackError> {
    let at = *pos;
    let huffman = block.get(*pos).is_some_and(|b| b & 0x80 != 0);
    let len = integer(block, pos, 7)?;
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= block.len())
        .ok_or(HpackError::StringPastEnd { at, len })?;
    let raw = &block[*pos..end];
    *pos = end;
    if len > MAX_STRING {
        return Ok(None);
    }
    if huffman {
        if (1..=MEMO_CODED_LEN).contains(&raw.len()) {
            let memo = memo.get_or_insert_with(HuffmanMemo::new);
            let (slots, padded) = HuffmanMemo::key(raw);
            if let Some(hit) = memo.get(slots, raw.len(), &padded) {
                return Ok(Some(hit));
            }
            let text = huffman::decode(raw, scratch)
                .map_err(|source| HpackError::Huffman { at, source })?;
            let decoded = FieldBytes::from(text);
            if matches!(decoded, FieldBytes::Inline { .. }) {
                memo.put(slots, raw.len(), padded, &decoded);
            }
            return Ok(Some(decoded));
        }
        let text =
            huffman::decode(raw, scratch).map_err(|source| HpackError::Huffman { at, source })?;
        Ok(Some(text.into()))
    } else {
        Ok(Some(raw.into()))
    }
}

/// A tiny HPACK encoder for tests: literals without Huffman, optional indexing.
pub mod encode {
    /// Appends a §5.1 integer with an `n`-bit prefix and the high bits `mask`.
    pub fn integer(out: &mut Vec<u8>, mask: u8, n: u8, mut v: usize) {
        let max = (1usize << n) - 1;
        if v < max {
            out.push(mask | v as u8);
            return;
        }
        out.push(mask | max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128) as u8 | 0x80);
            v /= 128;
        }
        out.push(v as u8);
    }

    /// Appends a raw (non-Huffman) string literal.
    pub fn string(out: &mut Vec<u8>, s: &[u8]) {
        integer(out, 0, 7, s.len());
        out.extend_from_slice(s);
    }

    /// Indexed field (§6.1).
    pub fn indexed(out: &mut Vec<u8>, index: usize) {
        integer(out, 0x80, 7, index);
    }

    /// Literal with a new name, incremental indexing when `index` (§6.2.1) else without
    /// indexing (§6.2.2).
    pub fn literal(out: &mut Vec<u8>, name: &str, value: &str, index: bool) {
        out.push(if index { 0x40 } else { 0x00 });
        string(out, name.as_bytes());
        string(out, value.as_bytes());
    }

    /// Literal with an indexed name (§6.2.1 / §6.2.2).
    pub fn literal_indexed_name(out: &mut Vec<u8>, name_index: usize, value: &str, index: bool) {
        if index {
            integer(out, 0x40, 6, name_index);
        } else {
            integer(out, 0x00, 4, name_index);
        }
        string(out, value.as_bytes());
    }

    /// Dynamic table size update (§6.3).
    pub fn size_update(out: &mut Vec<u8>, size: usize) {
        integer(out, 0x20, 5, size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn decode(d: &mut Decoder, block: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        d.decode(&hex(block), usize::MAX, &mut out).unwrap();
        out.iter()
            .map(|f| (f.name_str().unwrap().to_string(), f.value_string().unwrap()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Dynamic table contents, newest first, with its size.
    fn table(d: &Decoder) -> (Vec<(String, String)>, usize) {
        let t = d.table();
        let v = (62..62 + t.len())
            .map(|i| match t.get(i) {
                Lookup::Dynamic(e) => (
                    String::from_utf8(e.name.clone().unwrap().to_vec()).unwrap(),
                    String::from_utf8(e.value.to_vec()).unwrap(),
                ),
                other => panic!("{other:?}"),
            })
            .collect();
        (v, t.bytes())
    }

    #[test]
    fn field_bytes_inline_up_to_its_size() {
        // A tag plus 31 bytes: no bigger than a field of two pointers would be anyway.
        assert_eq!(std::mem::size_of::<FieldBytes>(), 32);
        assert_eq!(std::mem::size_of::<Option<FieldBytes>>(), 32);
        for n in [0, 1, INLINE_LEN - 1, INLINE_LEN, INLINE_LEN + 1, 300] {
            let text: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            let f = FieldBytes::from(&text[..]);
            assert_eq!(&*f, &text[..]);
            assert_eq!(
                matches!(f, FieldBytes::Inline { .. }),
                n <= INLINE_LEN,
                "{n}"
            );
            assert_eq!(
                f,
                FieldBytes::Static(String::from_utf8(text).unwrap().leak())
            );
        }
    }

    #[test]
    fn c1_integers() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix; C.1.3: 42 at 8 bits.
        assert_eq!(integer(&[0x0a], &mut 0, 5), Ok(10));
        assert_eq!(integer(&[0x1f, 0x9a, 0x0a], &mut 0, 5), Ok(1337));
        assert_eq!(integer(&[0x2a], &mut 0, 8), Ok(42));
        let mut v = Vec::new();
        encode::integer(&mut v, 0, 5, 1337);
        assert_eq!(v, [0x1f, 0x9a, 0x0a]);
        assert!(integer(&[0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], &mut 0, 5).is_err());
        assert!(integer(&[0x1f, 0x9a], &mut 0, 5).is_err());
    }

    #[test]
    fn c2_literal_representations() {
        // C.2.1 Literal Header Field with Indexing.
        let mut d = Decoder::new(4096);
        assert_eq!(
            decode(
                &mut d,
                "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"
            ),
            pairs(&[("custom-key", "custom-header")])
        );
        assert_eq!(table(&d), (pairs(&[("custom-key", "custom-header")]), 55));
        // C.2.2 Literal Header Field without Indexing.
        let mut d = Decoder::new(4096);
        assert_eq!(
            decode(&mut d, "040c 2f73 616d 706c 652f 7061 7468"),
            pairs(&[(":path", "/sample/path")])
        );
        assert_eq!(table(&d).1, 0);
        // C.2.3 Literal Header Field Never Indexed.
        let mut d = Decoder::new(4096);
        assert_eq!(
            decode(&mut d, "1008 7061 7373 776f 7264 0673 6563 7265 74"),
            pairs(&[("password", "secret")])
        );
        assert_eq!(table(&d).1, 0);
        // C.2.4 Indexed Header Field.
        let mut d = Decoder::new(4096);
        assert_eq!(decode(&mut d, "82"), pairs(&[(":method", "GET")]));
        assert_eq!(table(&d).1, 0);
    }

    const C3_1: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
    ];
    const C3_2: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ];
    const C3_3: &[(&str, &str)] = &[
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ];

    fn requests(blocks: [&str; 3]) {
        let mut d = Decoder::new(4096);
        assert_eq!(decode(&mut d, blocks[0]), pairs(C3_1));
        assert_eq!(table(&d), (pairs(&[(":authority", "www.example.com")]), 57));
        assert_eq!(decode(&mut d, blocks[1]), pairs(C3_2));
        assert_eq!(
            table(&d),
            (
                pairs(&[
                    ("cache-control", "no-cache"),
                    (":authority", "www.example.com")
                ]),
                110
            )
        );
        assert_eq!(decode(&mut d, blocks[2]), pairs(C3_3));
        assert_eq!(
            table(&d),
            (
                pairs(&[
                    ("custom-key", "custom-value"),
                    ("cache-control", "no-cache"),
                    (":authority", "www.example.com")
                ]),
                164
            )
        );
    }

    #[test]
    fn c3_requests_without_huffman() {
        requests([
            "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
            "8286 84be 5808 6e6f 2d63 6163 6865",
            "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
        ]);
    }

    #[test]
    fn c4_requests_with_huffman() {
        requests([
            "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
            "8286 84be 5886 a8eb 1064 9cbf",
            "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
        ]);
    }

    fn responses(blocks: [&str; 3]) {
        let mut d = Decoder::new(4096);
        d.table.resize(256, None);
        assert_eq!(
            decode(&mut d, blocks[0]),
            pairs(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(
            table(&d),
            (
                pairs(&[
                    ("location", "https://www.example.com"),
                    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                    ("cache-control", "private"),
                    (":status", "302"),
                ]),
                222
            )
        );
        assert_eq!(
            decode(&mut d, blocks[1]),
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        assert_eq!(
            table(&d),
            (
                pairs(&[
                    (":status", "307"),
                    ("location", "https://www.example.com"),
                    ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                    ("cache-control", "private"),
                ]),
                222
            )
        );
        assert_eq!(
            decode(&mut d, blocks[2]),
            pairs(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ("location", "https://www.example.com"),
                ("content-encoding", "gzip"),
                (
                    "set-cookie",
                    "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                ),
            ])
        );
        assert_eq!(
            table(&d),
            (
                pairs(&[
                    (
                        "set-cookie",
                        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
                    ),
                    ("content-encoding", "gzip"),
                    ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
                ]),
                215
            )
        );
    }

    #[test]
    fn c5_responses_without_huffman() {
        responses([
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
             6c65 2e63 6f6d",
            "4803 3330 37c1 c0bf",
            "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
             54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
             5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
             3d31",
        ]);
    }

    #[test]
    fn c6_responses_with_huffman() {
        responses([
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
             2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
            "4883 640e ffc1 c0bf",
            "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
             77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
             9587 3160 65c0 03ed 4ee5 b106 3d50 07",
        ]);
    }

    #[test]
    fn partial_decoder_resolves_what_it_saw_inserted() {
        // Joined mid-way: the first reference to an old entry is unknown; a new literal is
        // inserted at 62 and the next reference to it resolves exactly.
        let mut d = Decoder::partial(65536);
        let mut block = Vec::new();
        encode::indexed(&mut block, 62); // old, unknown
        encode::literal_indexed_name(&mut block, 4, "/pkg.Svc/Call", true); // :path, indexed
        let mut out = Vec::new();
        let s = d.decode(&block, usize::MAX, &mut out).unwrap();
        assert_eq!(s.unknown_fields, 1);
        assert_eq!(
            out[0],
            Field {
                name: None,
                value: None
            }
        );
        let mut out = Vec::new();
        let mut block = Vec::new();
        encode::indexed(&mut block, 62);
        encode::indexed(&mut block, 64); // older than capture
        let s = d.decode(&block, usize::MAX, &mut out).unwrap();
        assert_eq!(out[0].value_string().unwrap(), "/pkg.Svc/Call");
        assert_eq!(out[0].name_str(), Some(":path"));
        assert_eq!((s.unknown_fields, s.resolved_in_partial_table), (1, 1));
        // A literal whose name comes from an unknown entry keeps its value.
        let mut block = Vec::new();
        encode::literal_indexed_name(&mut block, 70, "v", false);
        let mut out = Vec::new();
        d.decode(&block, usize::MAX, &mut out).unwrap();
        assert_eq!(out[0].name, None);
        assert_eq!(out[0].value_string().unwrap(), "v");
        // Size update to 0 flushes everything: fully known from then on.
        let mut block = Vec::new();
        encode::size_update(&mut block, 0);
        encode::size_update(&mut block, 4096);
        d.decode(&block, usize::MAX, &mut Vec::new()).unwrap();
        assert!(d.table().fully_known());
        let mut block = Vec::new();
        encode::indexed(&mut block, 62);
        assert_eq!(
            d.decode(&block, usize::MAX, &mut Vec::new()),
            Err(HpackError::BadIndex { index: 62 })
        );
    }

    #[test]
    fn hpack_bomb_is_capped_but_table_stays_in_step() {
        let mut d = Decoder::new(65536);
        let mut block = Vec::new();
        encode::size_update(&mut block, 4096);
        encode::literal(&mut block, "x", &"a".repeat(4000), true);
        for _ in 0..10_000 {
            encode::indexed(&mut block, 62);
        }
        encode::literal(&mut block, "after", "1", true);
        let mut out = Vec::new();
        let s = d.decode(&block, 16 * 1024, &mut out).unwrap();
        assert!(s.list_capped);
        assert!(out.len() <= 5);
        // The insertion after the cap still happened.
        assert!(matches!(d.table().get(62), Lookup::Dynamic(e) if e.value[..] == *b"1"));
    }

    #[test]
    fn errors_forget_the_table() {
        let mut d = Decoder::new(4096);
        let mut block = Vec::new();
        encode::literal(&mut block, "a", "b", true);
        d.decode(&block, usize::MAX, &mut Vec::new()).unwrap();
        assert!(d
            .decode(&[0x40, 0x05, b'a'], usize::MAX, &mut Vec::new())
            .is_err());
        assert!(!d.table().fully_known());
        assert_eq!(d.table().get(62), Lookup::Unknown);
    }

    #[test]
    fn huffman_memo_hits_decode_as_the_reference() {
        // Coded strings of RFC 7541 Appendix C.4 and C.6, slots shared and not.
        let coded: Vec<Vec<u8>> = [
            "f1e3 c2e5 f23a 6ba0 ab90 f4ff",
            "a8eb 1064 9cbf",
            "25a8 49e9 5ba9 7d7f",
            "25a8 49e9 5bb8 e8b4 bf",
            "aec3 771a 4b",
            "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff",
            "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3",
        ]
        .iter()
        .map(|h| hex(h))
        .collect();
        let reference = |c: &[u8]| {
            let mut o = Vec::new();
            huffman::decode_reference(c, &mut o).unwrap();
            o
        };
        let mut d = Decoder::new(4096);
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let (n, v) = (
                &coded[(rng % 7) as usize],
                &coded[((rng >> 8) % 7) as usize],
            );
            // §6.2.1 with a new name, both strings Huffman-coded (§5.2).
            let mut block = vec![0x40, 0x80 | n.len() as u8];
            block.extend_from_slice(n);
            block.push(0x80 | v.len() as u8);
            block.extend_from_slice(v);
            let mut out = Vec::new();
            d.decode(&block, usize::MAX, &mut out).unwrap();
            assert_eq!(&*out[0].name.clone().unwrap(), &reference(n)[..]);
            assert_eq!(&*out[0].value.clone().unwrap(), &reference(v)[..]);
            let (entries, bytes) = table(&d);
            assert_eq!(
                entries[0].0.len() + entries[0].1.len(),
                reference(n).len() + reference(v).len()
            );
            assert_eq!(
                bytes,
                entries
                    .iter()
                    .map(|(a, b)| a.len() + b.len() + 32)
                    .sum::<usize>()
            );
        }
        // A bad string is an error every time: errors are not remembered.
        for _ in 0..2 {
            let block = [0x00, 0x81, 0xf1, 0x84, 0xff, 0xff, 0xff, 0xff];
            assert!(d.decode(&block, usize::MAX, &mut Vec::new()).is_err());
        }
    }
}
