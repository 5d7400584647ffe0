//! DNS message parsing (RFC 1035 §4.1), whatever carried the message (UDP datagram, TCP
//! length-prefixed frame, DoH body).
//!
//! Parsed by hand as a borrowed walk over the message: header, questions, answers. Names
//! follow compression pointers (RFC 1035 §4.1.4) with a jump limit and the 255-byte name limit
//! (§2.3.4), so a pointer loop or a deep chain ends in an error, never a hang. [`Header`] and
//! [`walks_exactly`] judge whether bytes are a DNS message at all, for finding message starts
//! in a TCP stream joined mid-way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a datagram is not a DNS message we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The message ends inside a field.
    #[error("DNS message truncated at byte {0}")]
    Truncated(usize),
    /// A compression pointer chain is too long or loops.
    #[error("DNS name at byte {0} has too many compression jumps (loop?)")]
    PointerLoop(usize),
    /// A name is longer than 255 bytes or a label uses a reserved type.
    #[error("DNS name at byte {0} is malformed")]
    BadName(usize),
}

/// Most compression jumps followed in one name; a valid name needs far fewer.
const MAX_JUMPS: usize = 32;
/// Most answers kept from one response.
const MAX_ANSWERS: usize = 64;

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Name with a trailing dot.
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
}

/// Record data we decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// A or AAAA.
    Addr(IpAddr),
    /// CNAME, NS or PTR target.
    Name(String),
    /// Anything else (kept as its type only).
    Other,
}

/// One answer-section record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Owner name.
    pub name: String,
    /// TYPE.
    pub rtype: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// Decoded data.
    pub data: RData,
}

/// A parsed DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    /// ID.
    pub id: u16,
    /// QR bit: a response.
    pub is_response: bool,
    /// OPCODE.
    pub opcode: u8,
    /// RCODE.
    pub rcode: u8,
    /// TC bit: the message was truncated to fit its transport (RFC 1035 §4.1.1); the
    /// sections hold what fitted (RFC 2181 §9), and a client retries over TCP (RFC 7766 §5).
    pub truncated: bool,
    /// Question section.
    pub questions: Vec<Question>,
    /// Answer section (first [`MAX_ANSWERS`]).
    pub answers: Vec<Answer>,
}

/// RR type mnemonic (RFC 1035 §3.2.2, RFC 3596, RFC 2782, RFC 9460).
pub fn type_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        41 => "OPT".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    }
}

/// RCODE mnemonic (RFC 1035 §4.1.1, RFC 2136 §2.2, RFC 6895 §2.3).
pub fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        6 => "YXDOMAIN".into(),
        7 => "YXRRSET".into(),
        8 => "NXRRSET".into(),
        9 => "NOTAUTH".into(),
        10 => "NOTZONE".into(),
        11 => "DSOTYPENI".into(),
        n => format!("RCODE{n}"),
    }
}

/// Length of the fixed header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;

/// Most questions kept from one message (the rest are read past, not kept); real servers
/// refuse QDCOUNT > 1, a few more is tolerable, thousands is an attack. Also the most a
/// header found by searching a TCP stream may claim ([`Header::plausible`], strict).
const MAX_QUESTIONS: u16 = 8;

/// Smallest resource record on the wire: root owner name (1) + TYPE, CLASS, TTL, RDLENGTH (10).
const MIN_RR_LEN: usize = 11;
/// Smallest question: root name (1) + QTYPE, QCLASS (4).
const MIN_QUESTION_LEN: usize = 5;

/// The fixed header of a message (RFC 1035 §4.1.1), read without the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// ID.
    pub id: u16,
    /// The 16 flag bits (QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE).
    pub flags: u16,
    /// Section counts: questions, answers, authority, additional.
    pub counts: [u16; 4],
}

impl Header {
    /// Reads the header at the start of `msg`, if there are 12 bytes.
    pub fn read(msg: &[u8]) -> Option<Self> {
        let b = msg.get(..HEADER_LEN)?;
        let u = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        Some(Self {
            id: u(0),
            flags: u(2),
            counts: [u(4), u(6), u(8), u(10)],
        })
    }

    /// QR: a response.
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    /// OPCODE.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    /// RCODE (header bits only; EDNS extends it in the OPT record).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }

    /// Could a message of `len` bytes start with this header? The section counts must fit
    /// in `len` (each question and record has a minimum size). `strict` adds that QDCOUNT
    /// stays small ([`MAX_QUESTIONS`]) and what holds for every real peer but is not worth rejecting a message
    /// for once in step: an assigned OPCODE (RFC 6895 §2.2: QUERY, IQUERY, STATUS, NOTIFY,
    /// UPDATE, DSO), the Z bit clear (RFC 1035 §4.1.1 "must be zero"), RCODE 0 in queries
    /// and at most 11 in responses (RFC 6895 §2.3).
    pub fn plausible(&self, len: usize, strict: bool) -> bool {
        let [qd, an, ns, ar] = self.counts.map(usize::from);
        if len < HEADER_LEN
            || (strict && self.counts[0] > MAX_QUESTIONS)
            || HEADER_LEN + qd * MIN_QUESTION_LEN + (an + ns + ar) * MIN_RR_LEN > len
        {
            return false;
        }
        if !strict {
            return true;
        }
        let rcode_ok = if self.is_response() {
            self.rcode() <= 11
        } else {
            self.rcode() == 0
        };
        matches!(self.opcode(), 0 | 1 | 2 | 4 | 5 | 6) && self.flags & 0x0040 == 0 && rcode_ok
    }
}

/// True when `msg` is exactly one well-formed message: every question and record of the four
/// sections parses, compression pointers point backwards (RFC 1035 §4.1.4: to a prior
/// occurrence), and the last record ends at the last byte. Used to confirm a guessed message
/// start, where a false match would misframe the stream.
pub fn walks_exactly(msg: &[u8]) -> bool {
    let Some(h) = Header::read(msg) else {
        return false;
    };
    if !h.plausible(msg.len(), true) {
        return false;
    }
    let mut pos = HEADER_LEN;
    let fixed = |pos: &mut usize, n: usize| -> Option<usize> {
        let at = *pos;
        let end = at.checked_add(n).filter(|e| *e <= msg.len())?;
        *pos = end;
        Some(at)
    };
    for _ in 0..h.counts[0] {
        let Some(end) = skip_name(msg, pos) else {
            return false;
        };
        pos = end;
        if fixed(&mut pos, 4).is_none() {
            return false;
        }
    }
    let records: usize = h.counts[1..].iter().map(|c| usize::from(*c)).sum();
    for _ in 0..records {
        let Some(end) = skip_name(msg, pos) else {
            return false;
        };
        pos = end;
        let Some(at) = fixed(&mut pos, 10) else {
            return false;
        };
        let rdlen = usize::from(u16::from_be_bytes([msg[at + 8], msg[at + 9]]));
        if fixed(&mut pos, rdlen).is_none() {
            return false;
        }
    }
    pos == msg.len()
}

/// Skips the name at `start` without building it. Every pointer must land before where the
/// name (or the previous jump) began, as a compressor's do, so jumps strictly descend and
/// cannot loop. Returns the offset after the name.
fn skip_name(msg: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    let mut floor = start;
    let mut resume = None;
    let mut wire_len = 0usize;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0xc0 => {
                let target = usize::from(len & 0x3f) << 8 | usize::from(*msg.get(pos + 1)?);
                if target >= floor || target < HEADER_LEN {
                    return None;
                }
                resume.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            0x00 if len == 0 => return Some(resume.unwrap_or(pos + 1)),
            0x00 => {
                wire_len += 1 + usize::from(len);
                if wire_len > 255 {
                    return None;
                }
                pos += 1 + usize::from(len);
            }
            _ => return None,
        }
    }
}

struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.msg.len())
            .ok_or(DnsError::Truncated(self.pos))?;
        let s = &self.msg[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a possibly compressed name starting at the cursor (RFC 1035 §4.1.4).
    fn name(&mut self) -> Result<String, DnsError> {
        let (name, end) = read_name(self.msg, self.pos)?;
        self.pos = end;
        Ok(name)
    }
}

/// Reads a name at `start`; returns it and the offset just after it in the original position.
fn read_name(msg: &[u8], start: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut pos = start;
    let mut resume = None;
    let mut jumps = 0;
    // Wire length counts length octets too (RFC 1035 §2.3.4: 255 octets or less).
    let mut wire_len = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated(pos))?;
        match len & 0xc0 {
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Truncated(pos + 1))?;
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(DnsError::PointerLoop(start));
                }
                resume.get_or_insert(pos + 2);
                pos = usize::from(len & 0x3f) << 8 | usize::from(lo);
            }
            0x00 => {
                if len == 0 {
                    if name.is_empty() {
                        name.push('.');
                    }
                    return Ok((name, resume.unwrap_or(pos + 1)));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(DnsError::Truncated(pos))?;
                wire_len += 1 + label.len();
                if wire_len > 255 {
                    return Err(DnsError::BadName(start));
                }
                for &b in label {
                    // Escape what would make the name ambiguous or unprintable.
                    if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                        name.push(b as char);
                    } else {
                        name.push_str(&format!("\\{b:03}"));
                    }
                }
                name.push('.');
                pos += 1 + usize::from(len);
            }
            // 0x40 and 0x80 label types are reserved / obsolete (RFC 6891 §5).
            _ => return Err(DnsError::BadName(pos)),
        }
    }
}

/// Parses a DNS message (a UDP payload, a TCP frame without its length prefix, a DoH body).
///
/// A truncated response (TC set) whose answer section ends early yields the answers that
/// are whole: RFC 2181 §9 lets a server cut records it could not fit, and RFC 1035 §4.1.1
/// says such a response holds "what fitted".
pub fn parse(msg: &[u8]) -> Result<DnsMessage, DnsError> {
    let mut r = Reader { msg, pos: 0 };
    let id = r.u16()?;
    let flags = r.u16()?;
    let qdcount = r.u16()?;
    let ancount = r.u16()?;
    let _nscount = r.u16()?;
    let _arcount = r.u16()?;
    let truncated = flags & 0x0200 != 0;
    let mut questions = Vec::with_capacity(usize::from(qdcount.min(MAX_QUESTIONS)));
    for i in 0..qdcount {
        // Each question is at least 5 bytes, so the message's length bounds this loop.
        if i >= MAX_QUESTIONS {
            r.name()?;
            r.take(4)?;
            continue;
        }
        let name = r.name()?;
        let qtype = r.u16()?;
        let _qclass = r.u16()?;
        questions.push(Question { name, qtype });
    }
    let mut answers = Vec::new();
    for _ in 0..ancount {
        if answers.len() >= MAX_ANSWERS {
            break;
        }
        match answer(&mut r) {
            Ok(a) => answers.push(a),
            Err(DnsError::Truncated(_)) if truncated => break,
            Err(e) => return Err(e),
        }
    }
    Ok(DnsMessage {
        id,
        is_response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        rcode: (flags & 0xf) as u8,
        truncated,
        questions,
        answers,
    })
}

/// Reads one answer-section record at the cursor (RFC 1035 §4.1.3).
fn answer(r: &mut Reader<'_>) -> Result<Answer, DnsError> {
    let name = r.name()?;
    let rtype = r.u16()?;
    let _class = r.u16()?;
    let ttl = r.u32()?;
    let rdlen = usize::from(r.u16()?);
    let rdata_at = r.pos;
    let rdata = r.take(rdlen)?;
    let data = match (rtype, rdlen) {
        (1, 4) => RData::Addr(IpAddr::V4(Ipv4Addr::new(
            rdata[0], rdata[1], rdata[2], rdata[3],
        ))),
        (28, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(rdata);
            RData::Addr(IpAddr::V6(Ipv6Addr::from(a)))
        }
        // The record is delimited by RDLENGTH: a bad name inside its data costs only the data.
        (2 | 5 | 12, _) => read_name(r.msg, rdata_at).map_or(RData::Other, |(n, _)| RData::Name(n)),
        _ => RData::Other,
    };
    Ok(Answer {
        name,
        rtype,
        ttl,
        data,
    })
}

/// Test helpers that build DNS messages.
#[cfg(test)]
pub(crate) mod build {
    /// Encodes `name` as uncompressed labels.
    pub fn name(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// A query for `qname`/`qtype` with id `id`.
    pub fn query(id: u16, qname: &str, qtype: u16) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&name(qname));
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    /// A response to `query(id, qname, 1)` with A records pointing back at the question name.
    pub fn a_response(id: u16, qname: &str, rcode: u8, ips: &[[u8; 4]], ttl: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, ips.len() as u8, 0, 0, 0, 0]);
        m.extend_from_slice(&name(qname));
        m.extend_from_slice(&[0, 1, 0, 1]);
        for ip in ips {
            // Pointer to the question name at offset 12.
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(&[0, 4]);
            m.extend_from_slice(ip);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;

    #[test]
    fn many_questions_are_read_and_the_first_ones_kept() {
        // RFC 1035 §4.1.2: QDCOUNT questions; a message with more than we keep still parses.
        let mut m = query(7, "example.com.", 1);
        m[5] = 10;
        for _ in 1..10 {
            m.extend_from_slice(&name("example.com."));
            m.extend_from_slice(&[0, 1, 0, 1]);
        }
        let q = parse(&m).unwrap();
        assert_eq!(q.questions.len(), usize::from(MAX_QUESTIONS));
        assert!(Header::read(&m).unwrap().plausible(m.len(), false));
        assert!(!Header::read(&m).unwrap().plausible(m.len(), true));
        // Claiming more than the bytes hold is still an error.
        m[5] = 11;
        assert!(parse(&m).is_err());
    }

    #[test]
    fn a_bad_name_inside_record_data_costs_only_that_data() {
        let mut m = a_response(9, "a.test.", 0, &[[192, 0, 2, 1]], 60);
        // Turn the A record into a CNAME whose data is a pointer loop.
        let rr = m.len() - 16;
        m[rr + 3] = 5;
        let n = m.len();
        m[n - 4..].copy_from_slice(&[0xc0, (n - 4) as u8, 0, 0]);
        let r = parse(&m).unwrap();
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].data, RData::Other);
    }

    #[test]
    fn parses_query_and_compressed_answers() {
        let q = parse(&query(0x1234, "example.test.", 1)).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(!q.is_response);
        assert_eq!(
            q.questions,
            vec![Question {
                name: "example.test.".into(),
                qtype: 1
            }]
        );

        let r = parse(&a_response(
            0x1234,
            "example.test",
            0,
            &[[198, 18, 0, 9], [198, 18, 0, 10]],
            300,
        ))
        .unwrap();
        assert!(r.is_response);
        assert_eq!(r.rcode, 0);
        assert_eq!(r.answers.len(), 2);
        assert_eq!(r.answers[0].name, "example.test.");
        assert_eq!(
            r.answers[1].data,
            RData::Addr("198.18.0.10".parse().unwrap())
        );
        assert_eq!(r.answers[0].ttl, 300);
    }

    #[test]
    fn compression_loops_are_errors() {
        // A name that points at itself (RFC 1035 §4.1.4 pointers must go somewhere sane).
        let mut m = query(1, "a.", 1);
        m.truncate(12);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(DnsError::PointerLoop(12)));
        // Two pointers pointing at each other.
        let mut m = query(1, "a.", 1);
        m.truncate(12);
        m.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(parse(&m), Err(DnsError::PointerLoop(_))));
    }

    #[test]
    fn bad_names_and_truncation() {
        let mut m = query(1, "a.", 1);
        m.truncate(12);
        m.extend_from_slice(&[0x40, 0, 0, 1, 0, 1]);
        assert!(matches!(parse(&m), Err(DnsError::BadName(_))));
        // A name longer than 255 octets built from 63-byte labels.
        let long = vec!["x".repeat(63); 5].join(".");
        assert!(matches!(
            parse(&query(1, &long, 1)),
            Err(DnsError::BadName(_))
        ));
        let q = query(1, "example.test", 1);
        for cut in 0..q.len() {
            assert!(parse(&q[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn cname_targets_are_decoded() {
        let mut m = Vec::new();
        m.extend_from_slice(&[0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
        m.extend_from_slice(&name("www.example.test"));
        m.extend_from_slice(&[0, 5, 0, 1]);
        let target = name("example.test");
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, target.len() as u8]);
        m.extend_from_slice(&target);
        let r = parse(&m).unwrap();
        assert_eq!(r.answers[0].data, RData::Name("example.test.".into()));
        assert_eq!(type_name(5), "CNAME");
        assert_eq!(type_name(999), "TYPE999");
    }

    #[test]
    fn truncated_responses_keep_the_whole_answers() {
        // RFC 1035 §4.1.1 TC, RFC 2181 §9: a truncated response holds what fitted. ANCOUNT
        // says 3, the bytes hold 2 and a part of the third.
        let mut m = a_response(
            5,
            "big.test.",
            0,
            &[[192, 0, 2, 1], [192, 0, 2, 2], [192, 0, 2, 3]],
            60,
        );
        m.truncate(m.len() - 6);
        assert!(
            matches!(parse(&m), Err(DnsError::Truncated(_))),
            "TC clear: an error"
        );
        m[2] |= 0x02;
        let r = parse(&m).unwrap();
        assert!(r.truncated);
        assert_eq!(r.answers.len(), 2);
        // A question cut short is an error even with TC.
        assert!(parse(&m[..20]).is_err());
    }

    #[test]
    fn header_plausibility() {
        let q = query(1, "a.test.", 1);
        let h = Header::read(&q).unwrap();
        assert!(h.plausible(q.len(), true));
        assert!(!h.is_response());
        // Counts that cannot fit the length.
        assert!(!h.plausible(HEADER_LEN, false));
        let mut many = q.clone();
        many[7] = 200; // ANCOUNT 200 in a 25-byte message
        assert!(!Header::read(&many).unwrap().plausible(many.len(), false));
        // Strict: Z set, an unassigned opcode, an rcode in a query.
        for (byte, bit) in [(3, 0x40), (2, 0x18), (3, 0x03)] {
            let mut m = q.clone();
            m[byte] |= bit;
            let h = Header::read(&m).unwrap();
            assert!(
                h.plausible(m.len(), false) && !h.plausible(m.len(), true),
                "{byte} {bit:#x}"
            );
        }
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(0), "NOERROR");
        assert_eq!(rcode_name(23), "RCODE23");
    }

    #[test]
    fn exact_walks() {
        let r = a_response(9, "example.test", 0, &[[198, 18, 0, 9]], 300);
        assert!(walks_exactly(&r));
        assert!(walks_exactly(&query(1, "example.test", 28)));
        let mut longer = r.clone();
        longer.push(0);
        assert!(!walks_exactly(&longer), "a trailing byte");
        assert!(!walks_exactly(&r[..r.len() - 1]));
        // A forward pointer or a pointer to itself is not what a compressor writes.
        let mut fwd = query(1, "a.", 1);
        fwd.truncate(12);
        fwd.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(!walks_exactly(&fwd));
    }

    proptest::proptest! {
        #[test]
        fn exact_walk_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = walks_exactly(&bytes);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&bytes);
        }
    }
}
