//! HPACK Huffman decoding (RFC 7541 §5.2, code from Appendix B).
//!
//! The Appendix B code is canonical: codes of each length are consecutive, and lengths
//! ascend with (length, symbol) order. So the code lengths alone define it (a 257-byte
//! table), and the lookup tables are built from them at compile time: one that decodes the
//! next one or two codes from 12 bits (the common case), one for the last bits of a string,
//! and the canonical walk (first code per length) for the long codes of rare bytes.

/// Code length in bits of each symbol 0..=256 (256 is EOS), RFC 7541 Appendix B.
const CODE_LEN: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

/// Longest code (EOS).
const MAX_LEN: usize = 30;

/// Canonical-code tables: per length, the first code, how many codes, and where their
/// symbols start in `SYMBOLS`.
struct Canonical {
    first: [u32; MAX_LEN + 1],
    count: [u16; MAX_LEN + 1],
    offset: [u16; MAX_LEN + 1],
    symbols: [u16; 257],
}

const fn build() -> Canonical {
    let mut count = [0u16; MAX_LEN + 1];
    let mut s = 0;
    while s < 257 {
        count[CODE_LEN[s] as usize] += 1;
        s += 1;
    }
    let mut first = [0u32; MAX_LEN + 1];
    let mut offset = [0u16; MAX_LEN + 1];
    let mut code = 0u32;
    let mut off = 0u16;
    let mut len = 1;
    while len <= MAX_LEN {
        code = (code + count[len - 1] as u32) << 1;
        first[len] = code;
        offset[len] = off;
        off += count[len];
        len += 1;
    }
    // Symbols sorted by (length, symbol): fill each length's slots in symbol order.
    let mut symbols = [0u16; 257];
    let mut next = offset;
    let mut s = 0;
    while s < 257 {
        let l = CODE_LEN[s] as usize;
        symbols[next[l] as usize] = s as u16;
        next[l] += 1;
        s += 1;
    }
    Canonical {
        first,
        count,
        offset,
        symbols,
    }
}

impl Canonical {
    /// The symbol whose code is the `len`-bit `code`, if one is (canonical codes: the codes of
    /// one length are consecutive from `first[len]`).
    const fn symbol(&self, code: u32, len: usize) -> Option<u16> {
        let idx = code.wrapping_sub(self.first[len]);
        if code >= self.first[len] && idx < self.count[len] as u32 {
            Some(self.symbols[self.offset[len] as usize + idx as usize])
        } else {
            None
        }
    }
}

static TABLE: Canonical = build();

/// Why a Huffman string did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HuffmanError {
    /// §5.2: "A Huffman-encoded string literal containing the EOS symbol MUST be treated as a
    /// decoding error."
    #[error("Huffman string contains EOS (RFC 7541 §5.2)")]
    Eos,
    /// §5.2: padding longer than 7 bits, or not the EOS prefix (all ones).
    #[error("Huffman string has {bits} bits of bad padding (RFC 7541 §5.2)")]
    BadPadding {
        /// Bits left over.
        bits: u8,
    },
}

/// Bits of the tail lookup: near the end of the input, where fewer than [`MULTI_BITS`] bits
/// are left, a code of up to `PEEK` bits (the 5-8-bit codes of letters, digits and common
/// punctuation) decodes with one table read instead of a bit-by-bit walk.
const PEEK: u32 = 8;

/// For each `PEEK`-bit prefix: the symbol and length of the code it starts with, when that
/// code has at most `PEEK` bits (length 0 otherwise: a longer code, walked from `PEEK + 1`).
static SHORT: [(u8, u8); 1 << PEEK] = build_short();

const fn build_short() -> [(u8, u8); 1 << PEEK] {
    let t = build();
    let mut short = [(0u8, 0u8); 1 << PEEK];
    let mut prefix = 0;
    while prefix < (1 << PEEK) {
        if let Some((sym, len)) = first_code(&t, prefix as u32, PEEK) {
            short[prefix] = (sym, len);
        }
        prefix += 1;
    }
    short
}

/// The symbol and length of the code of at most `bits` bits that starts `prefix` (a
/// `bits`-bit number), if one does. Codes of up to 26 bits are all for bytes, never EOS (30
/// bits), so the symbol fits a `u8`.
const fn first_code(t: &Canonical, prefix: u32, bits: u32) -> Option<(u8, u8)> {
    let mut len = 1;
    while len <= bits as usize {
        let code = prefix >> (bits as usize - len);
        if let Some(sym) = t.symbol(code, len) {
            return Some((sym as u8, len as u8));
        }
        len += 1;
    }
    None
}

/// Bits of the main lookup, which decodes up to two symbols at once: the shortest code has 5
/// bits (Appendix B), so 12 bits hold two of the 5-7-bit codes that make up most header text
/// (lowercase letters, digits, ` `, `-`, `/`, `.`, `=`), one of any code up to 12 bits.
/// 4096 entries of 4 bytes (16 KiB): larger tables (three symbols need 15 bits) stop fitting
/// the L1 cache.
const MULTI_BITS: u32 = 12;

/// What a `MULTI_BITS`-bit prefix starts with: one or two whole codes, or (`count` 0) a code
/// longer than `MULTI_BITS`, walked from `MULTI_BITS + 1`. Four bytes, each field read
/// with one load.
#[derive(Clone, Copy)]
struct Multi {
    /// The symbols, in order; the second is 0 when `count` is 1.
    symbols: [u8; 2],
    /// Bits the codes take.
    bits: u8,
    /// How many codes (0, 1 or 2).
    count: u8,
}

static MULTI: [Multi; 1 << MULTI_BITS] = build_multi();

const fn build_multi() -> [Multi; 1 << MULTI_BITS] {
    let t = build();
    let none = Multi {
        symbols: [0; 2],
        bits: 0,
        count: 0,
    };
    let mut multi = [none; 1 << MULTI_BITS];
    let mut prefix = 0u32;
    while prefix < (1 << MULTI_BITS) {
        if let Some((s1, l1)) = first_code(&t, prefix, MULTI_BITS) {
            let rest_bits = MULTI_BITS - l1 as u32;
            let rest = prefix & ((1 << rest_bits) - 1);
            multi[prefix as usize] = match first_code(&t, rest, rest_bits) {
                Some((s2, l2)) => Multi {
                    symbols: [s1, s2],
                    bits: l1 + l2,
                    count: 2,
                },
                None => Multi {
                    symbols: [s1, 0],
                    bits: l1,
                    count: 1,
                },
            };
        }
        prefix += 1;
    }
    multi
}

/// Decodes `src` (RFC 7541 §5.2) into `buf`, returning the decoded bytes (a prefix of `buf`).
///
/// `buf` is working space: its length only grows (to what the longest string needs), so a
/// buffer kept between strings is not cleared or zeroed for each one.
///
/// Bits are taken from a 64-bit window refilled four bytes at a time. While at least
/// [`MULTI_BITS`] are left, one `MULTI` lookup decodes the next one or two codes; near the
/// end, one `SHORT` lookup the next code of up to [`PEEK`] bits; a longer code takes the
/// canonical walk (first code per length) from the bits the lookup covered. The code is
/// prefix-free, so when no code of up to `n` bits starts the window none of the shorter
/// lengths can match. Same results (errors and their `bits` included) as walking every code
/// bit by bit, which the tests check.
pub fn decode<'b>(src: &[u8], buf: &'b mut Vec<u8>) -> Result<&'b [u8], HuffmanError> {
    let t = &TABLE;
    // Every code has at least 5 bits: at most 8/5 symbols per input byte, and one more slot
    // because two symbols are written at once.
    let room = src.len() * 8 / 5 + 2;
    if buf.len() < room {
        buf.resize(room, 0);
    }
    let mut o = 0;
    // Unconsumed bits are the low `avail` bits of `window`, oldest first.
    let mut window = 0u64;
    let mut avail = 0u32;
    let mut rest = src;
    let r = 'symbols: loop {
        if avail < 32 {
            if let Some((four, tail)) = rest.split_first_chunk::<4>() {
                window = window << 32 | u64::from(u32::from_be_bytes(*four));
                avail += 32;
                rest = tail;
            } else {
                top_up(&mut window, &mut avail, &mut rest);
            }
        }
        let walk_from = if avail >= MULTI_BITS {
            let e = MULTI[(window >> (avail - MULTI_BITS)) as usize & ((1 << MULTI_BITS) - 1)];
            if e.count != 0 {
                buf[o..o + 2].copy_from_slice(&e.symbols);
                o += usize::from(e.count);
                avail -= u32::from(e.bits);
                continue;
            }
            MULTI_BITS as usize + 1
        } else {
            if avail == 0 {
                break Ok(());
            }
            // The next PEEK bits; past the end of the input, ones (the padding EOS prefix),
            // so a code found here that is longer than what is left is padding, not a symbol.
            let peek = if avail >= PEEK {
                (window >> (avail - PEEK)) as usize & ((1 << PEEK) - 1)
            } else {
                ((window << (PEEK - avail)) as usize | ((1 << (PEEK - avail)) - 1))
                    & ((1 << PEEK) - 1)
            };
            let (sym, len) = SHORT[peek];
            if len != 0 {
                if u32::from(len) > avail {
                    break Ok(());
                }
                buf[o] = sym;
                o += 1;
                avail -= u32::from(len);
                continue;
            }
            PEEK as usize + 1
        };
        // A long code (rare in header text): top the window up so it holds any code.
        top_up(&mut window, &mut avail, &mut rest);
        let mut len = walk_from;
        while len as u32 <= avail {
            let code = (window >> (avail - len as u32)) as u32 & ((1u32 << len) - 1);
            if let Some(sym) = t.symbol(code, len) {
                if sym == 256 {
                    break 'symbols Err(HuffmanError::Eos);
                }
                buf[o] = sym as u8;
                o += 1;
                avail -= len as u32;
                continue 'symbols;
            }
            if len == MAX_LEN {
                // Only EOS is 30 bits long and it matched above; unreachable for valid input.
                break 'symbols Err(HuffmanError::Eos);
            }
            len += 1;
        }
        // The input ended inside a code.
        break Ok(());
    };
    r?;
    // Padding: the most significant bits of EOS (all ones), strictly shorter than 8 bits.
    let rest = window & ((1u64 << avail) - 1);
    if avail > 7 || rest != (1u64 << avail) - 1 {
        return Err(HuffmanError::BadPadding { bits: avail as u8 });
    }
    Ok(&buf[..o])
}

/// The textbook bit-by-bit canonical decoder (RFC 7541 §5.2), appending to `out`: slow, kept
/// as the reference [`decode`] must agree with on every input (the unit tests, and the
/// `http2` fuzz target).
pub fn decode_reference(src: &[u8], out: &mut Vec<u8>) -> Result<(), HuffmanError> {
    let t = &TABLE;
    let mut code = 0u32;
    let mut len = 0usize;
    for &byte in src {
        for shift in (0..8).rev() {
            code = code << 1 | u32::from(byte >> shift & 1);
            len += 1;
            if let Some(sym) = t.symbol(code, len) {
                if sym == 256 {
                    return Err(HuffmanError::Eos);
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            } else if len == MAX_LEN {
                return Err(HuffmanError::Eos);
            }
        }
    }
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(HuffmanError::BadPadding { bits: len as u8 });
    }
    Ok(())
}

/// Moves input bytes into `window` one at a time until it holds more than 56 bits (any code
/// fits: the longest is 30) or the input ends.
#[inline(always)]
fn top_up(window: &mut u64, avail: &mut u32, rest: &mut &[u8]) {
    while *avail <= 56 {
        let Some((&b, tail)) = rest.split_first() else {
            break;
        };
        *window = *window << 8 | u64::from(b);
        *avail += 8;
        *rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(b: &[u8]) -> Result<Vec<u8>, HuffmanError> {
        decode(b, &mut Vec::new()).map(<[u8]>::to_vec)
    }

    #[test]
    fn fast_decoder_matches_bitwise_reference() {
        // Every 1- and 2-byte input, then pseudo-random longer ones (xorshift), biased to
        // valid strings by encoding random text and flipping a bit now and then.
        // One working buffer for all, as the HPACK decoder keeps one: what earlier strings
        // left in it must not show.
        let mut fast = Vec::new();
        let mut check = |b: &[u8]| {
            let mut slow = Vec::new();
            let rs = decode_reference(b, &mut slow).map(|_| slow);
            let rf = decode(b, &mut fast).map(<[u8]>::to_vec);
            assert_eq!(rf, rs, "{b:02x?}");
        };
        for a in 0..=255u8 {
            check(&[a]);
            for b in 0..=255u8 {
                check(&[a, b]);
                // Every MULTI index (the first 12 bits) and SHORT tail, followed by tails that
                // end in padding, in long codes, in EOS, and that take the four-byte refill.
                for tail in [
                    &[0xff][..],
                    &[0x00],
                    &[0x5a, 0xff],
                    &[0xff, 0xff],
                    &[0x00, 0x00, 0x00],
                    &[0x0f, 0xff, 0xff, 0xff],
                    &[0xa5, 0x3c, 0x7e, 0x21, 0x9f],
                    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                ] {
                    let mut v = vec![a, b];
                    v.extend_from_slice(tail);
                    check(&v);
                }
            }
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let n = (rnd() % 48) as usize;
            let v: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
            check(&v);
            // Mostly ones: the long (20-30-bit) codes, EOS and over-long padding.
            let v: Vec<u8> = (0..n)
                .map(|_| if rnd() % 4 == 0 { rnd() as u8 } else { 0xff })
                .collect();
            check(&v);
            // A valid encoding of random bytes, sometimes damaged.
            let text: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
            let mut enc = encode(&text);
            if rnd() % 4 == 0 && !enc.is_empty() {
                let i = (rnd() as usize) % enc.len();
                enc[i] ^= 1 << (rnd() % 8);
            }
            check(&enc);
            // Header-like text (the 5-8-bit codes the two-symbol lookup covers), sometimes
            // with a byte of a long code, sometimes cut short or damaged.
            let text: Vec<u8> = (0..n)
                .map(|_| match rnd() % 16 {
                    0 => rnd() as u8,
                    _ => b"abcdefghijklmnopqrstuvwxyz0123456789 -/.:=,;GMT"[(rnd() % 47) as usize],
                })
                .collect();
            let mut enc = encode(&text);
            match rnd() % 4 {
                0 if !enc.is_empty() => {
                    let i = (rnd() as usize) % enc.len();
                    enc[i] ^= 1 << (rnd() % 8);
                }
                1 if !enc.is_empty() => {
                    enc.truncate((rnd() as usize) % enc.len());
                }
                _ => {}
            }
            check(&enc);
        }
    }

    #[test]
    fn eos_inside_a_string_is_an_error() {
        // §5.2: EOS (30 ones) after valid symbols, with and without symbols after it, and at
        // every bit offset, is an error, wherever the refill boundaries fall.
        for prefix in ["", "a", "ab", "abc", "www.example.com", "Mon, 30 Nov 2026"] {
            for after in ["", "x", "after eos"] {
                let mut bits = bits_of(prefix.as_bytes());
                bits.extend(std::iter::repeat_n(true, 30));
                bits.extend(bits_of(after.as_bytes()));
                let enc = pack(bits);
                assert_eq!(
                    dec(&enc),
                    Err(HuffmanError::Eos),
                    "{prefix:?} EOS {after:?}"
                );
                let mut slow = Vec::new();
                assert_eq!(decode_reference(&enc, &mut slow), Err(HuffmanError::Eos));
            }
        }
    }

    #[test]
    fn padding_rules_at_every_length() {
        // §5.2: up to 7 bits of ones pad; 8 or more, or any zero in them, is an error. For
        // each text, append 0..=15 padding bits (ones, then with a zero) and compare with the
        // reference.
        for text in ["", "a", "0", "no-cache", "application/grpc", "é€"] {
            for pad in 0..=15usize {
                for zero_at in [None, Some(0), Some(pad.saturating_sub(1))] {
                    let mut bits = bits_of(text.as_bytes());
                    let start = bits.len();
                    bits.extend(std::iter::repeat_n(true, pad));
                    if let Some(z) = zero_at.filter(|&z| z < pad) {
                        bits[start + z] = false;
                    }
                    if !bits.len().is_multiple_of(8) {
                        continue; // only whole bytes are strings
                    }
                    let enc = pack(bits);
                    let mut slow = Vec::new();
                    let want = decode_reference(&enc, &mut slow).map(|_| slow);
                    assert_eq!(dec(&enc), want, "{text:?} pad {pad} zero {zero_at:?}");
                    if pad <= 7 && zero_at.is_none_or(|z| z >= pad) {
                        assert_eq!(dec(&enc).unwrap(), text.as_bytes());
                    }
                }
            }
        }
    }

    #[test]
    fn two_symbol_table_matches_canonical_codes() {
        // Every MULTI entry: its symbols are the codes its 12 bits start with, in order.
        for prefix in 0..1u32 << MULTI_BITS {
            let e = MULTI[prefix as usize];
            let (n, bits) = (e.count, u32::from(e.bits));
            let mut want = Vec::new();
            let mut used = 0;
            while want.len() < 2 {
                let left = MULTI_BITS - used;
                let rest = prefix & ((1 << left) - 1);
                match first_code(&TABLE, rest, left) {
                    Some((sym, len)) => {
                        want.push(sym);
                        used += u32::from(len);
                    }
                    None => break,
                }
            }
            assert_eq!(n as usize, want.len(), "{prefix:012b}");
            assert_eq!(bits, used, "{prefix:012b}");
            assert_eq!(&e.symbols[..want.len()], &want[..], "{prefix:012b}");
        }
    }

    /// `(code, length)` of `sym` in the canonical table.
    fn code_of(sym: u16) -> (u32, usize) {
        let t = &TABLE;
        let l = CODE_LEN[sym as usize] as usize;
        let pos = t.symbols[t.offset[l] as usize..][..t.count[l] as usize]
            .iter()
            .position(|&s| s == sym)
            .unwrap();
        (t.first[l] + pos as u32, l)
    }

    /// The canonical codes of `text`, as bits.
    fn bits_of(text: &[u8]) -> Vec<bool> {
        let mut bits: Vec<bool> = Vec::new();
        for &b in text {
            let (code, l) = code_of(u16::from(b));
            bits.extend((0..l).rev().map(|i| code >> i & 1 == 1));
        }
        bits
    }

    /// `bits` as bytes, the last one padded with ones.
    fn pack(mut bits: Vec<bool>) -> Vec<u8> {
        while !bits.len().is_multiple_of(8) {
            bits.push(true);
        }
        bits.chunks(8)
            .map(|c| c.iter().fold(0u8, |a, &b| a << 1 | u8::from(b)))
            .collect()
    }

    /// Huffman-encodes `text` with the canonical codes, padded with ones.
    fn encode(text: &[u8]) -> Vec<u8> {
        pack(bits_of(text))
    }

    #[test]
    fn appendix_c4_strings() {
        // RFC 7541 §C.4.1-C.4.3.
        assert_eq!(
            dec(&[0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff]).unwrap(),
            b"www.example.com"
        );
        assert_eq!(
            dec(&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]).unwrap(),
            b"no-cache"
        );
        assert_eq!(
            dec(&[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f]).unwrap(),
            b"custom-key"
        );
        assert_eq!(
            dec(&[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf]).unwrap(),
            b"custom-value"
        );
    }

    #[test]
    fn canonical_table_matches_known_codes() {
        // Spot checks from Appendix B: '0' = 00000 (5), 'a' = 00011 (5), ' ' = 010100 (6),
        // EOS = 30 ones.
        assert_eq!(code_of(b'0' as u16), (0b00000, 5));
        assert_eq!(code_of(b'a' as u16), (0b00011, 5));
        assert_eq!(code_of(b' ' as u16), (0b010100, 6));
        assert_eq!(code_of(256), (0x3fff_ffff, 30));
    }

    #[test]
    fn every_byte_round_trips() {
        // Encode with the canonical codes, decode back.
        let input: Vec<u8> = (0..=255u8).collect();
        assert_eq!(dec(&encode(&input)).unwrap(), input);
    }

    #[test]
    fn padding_and_eos_rules() {
        // 'a' (00011) padded with zeros instead of ones.
        assert_eq!(
            dec(&[0b0001_1000]),
            Err(HuffmanError::BadPadding { bits: 3 })
        );
        // A full byte of ones as padding is more than 7 bits.
        assert!(matches!(
            dec(&[0b0001_1111, 0xff]),
            Err(HuffmanError::BadPadding { .. })
        ));
        // EOS itself.
        assert_eq!(dec(&[0xff, 0xff, 0xff, 0xff]), Err(HuffmanError::Eos));
        assert_eq!(dec(&[]).unwrap(), b"");
    }
}
