//! W3C Trace Context: `traceparent` / `tracestate` parsing and formatting, and span/trace ids.
//!
//! Rules follow W3C Trace Context Level 1 (<https://www.w3.org/TR/trace-context/>), §3.2
//! (traceparent) and §3.3 (tracestate). Ids the engine makes up come from [`IdGenerator`], a
//! SplitMix64 stream seeded through the engine config so tests are deterministic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a `traceparent` or `tracestate` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceContextError {
    /// Wrong overall length for the version (§3.2.2: version 00 is exactly 55 chars; §3.2.4:
    /// later versions are at least 55 and continue with `-`).
    #[error("traceparent {0:?} has the wrong length or layout")]
    Layout(String),
    /// A field is not lowercase hex of the right width (§3.2.2.1-4).
    #[error("traceparent {0:?} has a field that is not lowercase hex")]
    NotLowerHex(String),
    /// Version `ff` is forbidden (§3.2.2.1).
    #[error("traceparent {0:?} uses the forbidden version ff")]
    ForbiddenVersion(String),
    /// All-zero trace-id (§3.2.2.3).
    #[error("traceparent {0:?} has an all-zero trace-id")]
    ZeroTraceId(String),
    /// All-zero parent-id (§3.2.2.4).
    #[error("traceparent {0:?} has an all-zero parent-id")]
    ZeroParentId(String),
    /// An id string that is not the right number of lowercase hex digits.
    #[error("{0:?} is not a valid hex id")]
    BadId(String),
}

fn is_lower_hex(s: &[u8]) -> bool {
    s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hex_to<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != N * 2 || !is_lower_hex(s) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let nib = |b: u8| if b <= b'9' { b - b'0' } else { b - b'a' + 10 };
        out[i] = (nib(pair[0]) << 4) | nib(pair[1]);
    }
    Some(out)
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    // One write of a stack buffer: ids are formatted for every record, and `write!` per
    // byte showed up in profiles.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    for (i, b) in bytes.iter().take(16).enumerate() {
        buf[2 * i] = HEX[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    let n = 2 * bytes.len().min(16);
    f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $n:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// True when every byte is zero (the W3C "invalid" value).
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|b| *b == 0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = TraceContextError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                hex_to::<$n>(s.as_bytes())
                    .map(Self)
                    .ok_or_else(|| TraceContextError::BadId(s.to_string()))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hex_id!(
    /// A 16-byte trace id, printed as 32 lowercase hex digits.
    TraceId,
    16
);
hex_id!(
    /// An 8-byte span id, printed as 16 lowercase hex digits.
    SpanId,
    8
);

/// A parsed `traceparent` header (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceParent {
    /// Version byte; 0 today, higher versions parsed forward-compatibly.
    pub version: u8,
    /// Trace id shared by the whole trace.
    pub trace_id: TraceId,
    /// Span id of the caller (our span's parent).
    pub parent_id: SpanId,
    /// trace-flags; bit 0 is "sampled" (§3.2.2.5).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value per §3.2.2 and the versioning rules of §3.2.4.
    pub fn parse(value: &str) -> Result<Self, TraceContextError> {
        // Header values reach us with optional whitespace around them (RFC 9110 §5.5).
        let v = value.trim_matches([' ', '\t']).as_bytes();
        let err = |f: fn(String) -> TraceContextError| f(value.to_string());
        if v.len() < 55 {
            return Err(err(TraceContextError::Layout));
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err(err(TraceContextError::Layout));
        }
        let version = hex_to::<1>(&v[0..2]).ok_or_else(|| err(TraceContextError::NotLowerHex))?[0];
        if version == 0xff {
            return Err(err(TraceContextError::ForbiddenVersion));
        }
        // §3.2.4: version 00 is exactly 55 chars; a later version may append fields, and the
        // character after the flags must then be '-'.
        if version == 0 && v.len() != 55 || version > 0 && v.len() > 55 && v[55] != b'-' {
            return Err(err(TraceContextError::Layout));
        }
        let trace_id =
            TraceId(hex_to(&v[3..35]).ok_or_else(|| err(TraceContextError::NotLowerHex))?);
        let parent_id =
            SpanId(hex_to(&v[36..52]).ok_or_else(|| err(TraceContextError::NotLowerHex))?);
        let flags = hex_to::<1>(&v[53..55]).ok_or_else(|| err(TraceContextError::NotLowerHex))?[0];
        if trace_id.is_zero() {
            return Err(err(TraceContextError::ZeroTraceId));
        }
        if parent_id.is_zero() {
            return Err(err(TraceContextError::ZeroParentId));
        }
        Ok(Self {
            version,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// True when the sampled flag (bit 0) is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

impl fmt::Display for TraceParent {
    /// Formats as version 00 (§3.2.4: a vendor propagates the version it understands).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// Why a request's `traceparent` was not taken; the request then starts a new trace, as if it
/// had none (§3.2.2: "If the vendor failed to parse traceparent, it MUST NOT attempt to parse
/// tracestate", §3.2.4: "... restart the trace").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidTraceParent {
    /// The field came more than once. It is not a list (RFC 9110 §5.3: such a field must not
    /// be repeated, and its values cannot be combined), so no one of them is the parent; the
    /// W3C test suite (`test_traceparent_duplicated`) expects a new trace.
    Duplicated,
    /// Wrong length or layout for its version (§3.2.2, §3.2.4), or not text.
    Layout,
    /// A field is not lowercase hex (§3.2.2.1-5; uppercase is invalid).
    NotLowerHex,
    /// Version `ff` (§3.2.2.1).
    ForbiddenVersion,
    /// All-zero trace-id (§3.2.2.3).
    ZeroTraceId,
    /// All-zero parent-id (§3.2.2.4).
    ZeroParentId,
}

impl InvalidTraceParent {
    /// The reason as a snake_case word, for records and span attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicated => "duplicated",
            Self::Layout => "layout",
            Self::NotLowerHex => "not_lower_hex",
            Self::ForbiddenVersion => "forbidden_version",
            Self::ZeroTraceId => "zero_trace_id",
            Self::ZeroParentId => "zero_parent_id",
        }
    }

    /// The reason named by [`InvalidTraceParent::as_str`].
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Duplicated,
            Self::Layout,
            Self::NotLowerHex,
            Self::ForbiddenVersion,
            Self::ZeroTraceId,
            Self::ZeroParentId,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

impl From<&TraceContextError> for InvalidTraceParent {
    fn from(e: &TraceContextError) -> Self {
        match e {
            TraceContextError::Layout(_) | TraceContextError::BadId(_) => Self::Layout,
            TraceContextError::NotLowerHex(_) => Self::NotLowerHex,
            TraceContextError::ForbiddenVersion(_) => Self::ForbiddenVersion,
            TraceContextError::ZeroTraceId(_) => Self::ZeroTraceId,
            TraceContextError::ZeroParentId(_) => Self::ZeroParentId,
        }
    }
}

/// Whether a field name is `traceparent`, in any casing (§3.2.1: "Vendors MUST expect the
/// header name in any case (upper, lower, mixed)"; RFC 9110 §5.1).
pub fn is_traceparent(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"traceparent")
}

/// Whether a field name is `tracestate`, in any casing (§3.3.1).
pub fn is_tracestate(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"tracestate")
}

/// What the `traceparent` fields of one request amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboundTraceParent {
    /// No `traceparent` field: the request starts a trace.
    #[default]
    Absent,
    /// One valid field: the request continues that trace.
    Valid(TraceParent),
    /// Present but not usable: treated as absent (a new trace), counted and marked.
    Invalid(InvalidTraceParent),
}

impl InboundTraceParent {
    /// Judges every `traceparent` field value of one request (collected whatever the name's
    /// casing, see [`is_traceparent`]): none is absent, two or more are
    /// [`InvalidTraceParent::Duplicated`], one is parsed by [`TraceParent::parse`] (which trims
    /// the optional whitespace around it, RFC 9110 §5.5).
    pub fn from_fields<I, V>(values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: AsRef<[u8]>,
    {
        let mut values = values.into_iter();
        let Some(first) = values.next() else {
            return Self::Absent;
        };
        if values.next().is_some() {
            return Self::Invalid(InvalidTraceParent::Duplicated);
        }
        let Ok(text) = std::str::from_utf8(first.as_ref()) else {
            return Self::Invalid(InvalidTraceParent::Layout);
        };
        match TraceParent::parse(text) {
            Ok(tp) => Self::Valid(tp),
            Err(e) => Self::Invalid((&e).into()),
        }
    }

    /// The parent to continue, when valid.
    pub fn parent(&self) -> Option<TraceParent> {
        match self {
            Self::Valid(tp) => Some(*tp),
            _ => None,
        }
    }

    /// Why the field was not taken, when it was there and invalid.
    pub fn invalid(&self) -> Option<InvalidTraceParent> {
        match self {
            Self::Invalid(r) => Some(*r),
            _ => None,
        }
    }

    /// Counts an invalid field by reason: duplicates apart from malformed values.
    pub fn count(&self, counters: &mut crate::counters::Counters) {
        match self {
            Self::Invalid(InvalidTraceParent::Duplicated) => {
                counters.trace_duplicated_traceparent += 1
            }
            Self::Invalid(_) => counters.trace_invalid_traceparent += 1,
            _ => {}
        }
    }
}

/// Most list-members a `tracestate` may carry (§3.3.1.1).
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// A parsed `tracestate`: vendor key/value pairs in order (§3.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceState {
    /// Valid list-members, leftmost (most recent) first.
    pub members: Vec<(String, String)>,
    /// How many list-members were dropped as invalid, duplicate or over the limit.
    pub dropped: usize,
}

fn key_char(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// §3.3.1.3.1 key: `simple-key` or `tenant-id@system-id`.
fn valid_key(key: &str) -> bool {
    let k = key.as_bytes();
    match key.split_once('@') {
        None => {
            // simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
            !k.is_empty()
                && k.len() <= 256
                && k[0].is_ascii_lowercase()
                && k.iter().all(|b| key_char(*b))
        }
        Some((tenant, system)) => {
            // tenant-id = ( lcalpha / DIGIT ) 0*240( ... ); system-id = lcalpha 0*13( ... )
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|b| key_char(*b))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|b| key_char(*b))
        }
    }
}

/// §3.3.1.3.2 value: `0*255(chr) nblk-chr`, chr = %x20 / nblk-chr,
/// nblk-chr = %x21-2B / %x2D-3C / %x3E-7E (no ',' and no '=').
fn valid_value(value: &str) -> bool {
    let v = value.as_bytes();
    let nblk = |b: u8| matches!(b, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    !v.is_empty()
        && v.len() <= 256
        && nblk(v[v.len() - 1])
        && v.iter().all(|b| *b == b' ' || nblk(*b))
}

impl TraceState {
    /// Parses a `tracestate` value, keeping valid members and dropping (and counting) the rest.
    ///
    /// Empty list-members are allowed and ignored (§3.3.1.1); OWS around members is trimmed.
    /// Duplicate keys keep the first (leftmost) occurrence; members past the 32nd are dropped.
    pub fn parse(value: &str) -> Self {
        let mut state = TraceState::default();
        for member in value.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let Some((key, val)) = member.split_once('=') else {
                state.dropped += 1;
                continue;
            };
            if !valid_key(key)
                || !valid_value(val)
                || state.members.len() >= TRACESTATE_MAX_MEMBERS
                || state.members.iter().any(|(k, _)| k == key)
            {
                state.dropped += 1;
                continue;
            }
            state.members.push((key.to_string(), val.to_string()));
        }
        state
    }

    /// Parses every `tracestate` field of one request as one list: several fields combine
    /// in order, joined by commas (§3.3.1.1; RFC 9110 §5.3).
    pub fn parse_fields<I, V>(values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: AsRef<str>,
    {
        let mut joined = String::new();
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                joined.push(',');
            }
            joined.push_str(v.as_ref());
        }
        Self::parse(&joined)
    }

    /// True when no valid member survived.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Deterministic id source (SplitMix64, Steele et al. 2014): fast, no dependencies, and
/// reproducible from a seed. Not cryptographic — ids only need to be unique, not secret.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    /// Starts the stream at `seed`; the binary seeds from getrandom or the clock.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random-looking bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A fresh non-zero trace id.
    pub fn trace_id(&mut self) -> TraceId {
        loop {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
            id[8..].copy_from_slice(&self.next_u64().to_be_bytes());
            let id = TraceId(id);
            if !id.is_zero() {
                return id;
            }
        }
    }

    /// A fresh non-zero span id.
    pub fn span_id(&mut self) -> SpanId {
        loop {
            let id = SpanId(self.next_u64().to_be_bytes());
            if !id.is_zero() {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_spec_example() {
        let tp = TraceParent::parse(VALID).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), VALID);
        let tp =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!tp.sampled());
    }

    #[test]
    fn rejects_invalid_traceparents() {
        use TraceContextError as E;
        type MakeErr = fn(String) -> E;
        let cases: &[(&str, MakeErr)] = &[
            // uppercase hex is not allowed (§3.2.2.3)
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                E::NotLowerHex,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                E::ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                E::ZeroParentId,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::ForbiddenVersion,
            ),
            // version 00 must be exactly 55 characters
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                E::Layout,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                E::Layout,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
                E::Layout,
            ),
            (
                "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::NotLowerHex,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
                E::NotLowerHex,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Layout,
            ),
            ("", E::Layout),
            // a later version may append fields only after a '-'
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                E::Layout,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                TraceParent::parse(input),
                Err(want(input.to_string())),
                "{input}"
            );
        }
    }

    #[test]
    fn future_versions_are_forward_compatible() {
        let tp = TraceParent::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds",
        )
        .unwrap();
        assert_eq!(tp.version, 0xcc);
        assert_eq!(tp.parent_id.to_string(), "00f067aa0ba902b7");
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09").is_ok()
        );
        // Surrounding whitespace from the header line is tolerated.
        assert!(TraceParent::parse(&format!(" {VALID}\t")).is_ok());
    }

    /// §3.2.1: any casing of the name; RFC 9110 §5.3: a repeated non-list field is invalid.
    #[test]
    fn inbound_fields_are_judged_together() {
        assert!(is_traceparent(b"traceparent"));
        assert!(is_traceparent(b"Traceparent"));
        assert!(is_traceparent(b"TRACEPARENT"));
        assert!(!is_traceparent(b"traceparent-x"));
        assert!(is_tracestate(b"TraceState"));
        let none: [&str; 0] = [];
        assert_eq!(
            InboundTraceParent::from_fields(none),
            InboundTraceParent::Absent
        );
        let one = InboundTraceParent::from_fields([VALID]);
        assert_eq!(one.parent(), TraceParent::parse(VALID).ok());
        assert_eq!(one.invalid(), None);
        // Two fields are invalid even when they agree: neither is taken.
        for pair in [[VALID, VALID], [VALID, "garbage"]] {
            let two = InboundTraceParent::from_fields(pair);
            assert_eq!(two.invalid(), Some(InvalidTraceParent::Duplicated));
            assert_eq!(two.parent(), None);
        }
        // OWS around the value (RFC 9110 §5.5) is not part of it.
        let ows = format!(" \t{VALID} \t");
        assert!(InboundTraceParent::from_fields([ows.as_bytes()])
            .parent()
            .is_some());
        assert_eq!(
            InboundTraceParent::from_fields([b"00-\xff".as_slice()]).invalid(),
            Some(InvalidTraceParent::Layout)
        );
    }

    /// Each rejected value maps to its reason, named for records.
    #[test]
    fn invalid_reasons_are_named_and_counted() {
        let cases = [
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                InvalidTraceParent::ForbiddenVersion,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                InvalidTraceParent::NotLowerHex,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                InvalidTraceParent::ZeroTraceId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                InvalidTraceParent::ZeroParentId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xx",
                InvalidTraceParent::Layout,
            ),
        ];
        let mut c = crate::counters::Counters::default();
        for (value, reason) in cases {
            let t = InboundTraceParent::from_fields([value]);
            assert_eq!(t.invalid(), Some(reason), "{value}");
            assert_eq!(InvalidTraceParent::from_name(reason.as_str()), Some(reason));
            t.count(&mut c);
        }
        InboundTraceParent::from_fields([VALID, VALID]).count(&mut c);
        InboundTraceParent::from_fields([VALID]).count(&mut c);
        assert_eq!(c.trace_invalid_traceparent, 5);
        assert_eq!(c.trace_duplicated_traceparent, 1);
        // A later version with more fields parses its first ones (§3.2.4).
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert!(InboundTraceParent::from_fields([future]).parent().is_some());
    }

    #[test]
    fn tracestate_fields_combine_in_order() {
        let ts = TraceState::parse_fields(["a=1,b=2", " c=3", "a=9"]);
        assert_eq!(ts.to_string(), "a=1,b=2,c=3");
        assert_eq!(ts.dropped, 1, "the repeated key");
        let none: [&str; 0] = [];
        assert!(TraceState::parse_fields(none).is_empty());
    }

    #[test]
    fn tracestate_keeps_valid_members_in_order() {
        let ts =
            TraceState::parse("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,,  tenant1@vendor=x y");
        assert_eq!(
            ts.members,
            vec![
                ("rojo".into(), "00f067aa0ba902b7".into()),
                ("congo".into(), "t61rcWkgMzE".into()),
                ("tenant1@vendor".into(), "x y".into())
            ]
        );
        assert_eq!(ts.dropped, 0);
        assert_eq!(
            ts.to_string(),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant1@vendor=x y"
        );
    }

    #[test]
    fn tracestate_drops_invalid_members() {
        // Uppercase key, digit-first simple key, value ending in space (after trim it is not),
        // '=' inside a value, missing '=', duplicate key, over-long system-id.
        let ts = TraceState::parse(
            "Rojo=1,1abc=2,ok=3,bad=a=b,novalue,ok=dup,t@systemidiswaytoolong=4,empty=,9t@sys=5",
        );
        assert_eq!(
            ts.members,
            vec![("ok".into(), "3".into()), ("9t@sys".into(), "5".into())]
        );
        assert_eq!(ts.dropped, 7);
        let value = "x".repeat(257);
        assert!(TraceState::parse(&format!("k={value}")).is_empty());
        assert!(!TraceState::parse(&format!("k={}", &value[..256])).is_empty());
    }

    #[test]
    fn tracestate_caps_at_32_members() {
        let header: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        let ts = TraceState::parse(&header.join(","));
        assert_eq!(ts.members.len(), TRACESTATE_MAX_MEMBERS);
        assert_eq!(ts.dropped, 8);
        assert_eq!(ts.members[31].0, "k31");
    }

    #[test]
    fn id_generator_is_deterministic_and_non_zero() {
        let mut a = IdGenerator::new(42);
        let mut b = IdGenerator::new(42);
        assert_eq!(a.trace_id(), b.trace_id());
        assert_eq!(a.span_id(), b.span_id());
        assert_ne!(a.span_id(), a.span_id());
        assert!(!IdGenerator::new(0).trace_id().is_zero());
    }

    #[test]
    fn ids_round_trip_through_serde() {
        let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"4bf92f3577b34da6a3ce929d0e0e4736\"");
        assert_eq!(serde_json::from_str::<TraceId>(&json).unwrap(), id);
        assert!("4BF9".parse::<SpanId>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,80}") {
            let _ = TraceParent::parse(&s);
            let _ = TraceState::parse(&s);
        }
    }
}
