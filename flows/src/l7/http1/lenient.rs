//! The fallback parser for message heads httparse rejects: what real peers accept (RFC 9112
//! §2.2, "be robust in what you accept").
//!
//! - HTTP/0.9 simple requests: `GET /path` and a line end, no version, no fields (RFC 1945
//!   §4.1; only GET existed then, and servers such as nginx refuse 0.9 with other methods).
//! - Versions that are not `HTTP/1.0`/`HTTP/1.1`: `HTTP/1.2` is valid syntax and is handled
//!   as 1.1 (RFC 9110 §2.5); `HTTP/1.` and `HTTP/1` lack a digit and are read as 1.1 too.
//! - Start lines split on runs of whitespace (RFC 9112 §3, §4: recipients MAY), extension
//!   and lowercase methods (any token, RFC 9110 §9.1), targets with spaces (the version is
//!   the last word).
//! - Status codes that are not three digits (`2XX`): no usable status, but the message is
//!   still framed by its fields (RFC 9112 §4). The reason phrase is ignored whatever its
//!   bytes (obs-text, control characters): a client SHOULD ignore it (§4).
//! - Bare LF line ends (§2.2), whitespace before a field's colon (§5.1), obs-fold lines
//!   (§5.2, ignored), and field lines without a colon, which are skipped and counted (§5).

use crate::l7::exchange::HttpVersion;

/// A start line read leniently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StartLine<'b> {
    /// `method SP target [SP version]`.
    Request {
        method: &'b str,
        target: &'b [u8],
        version: HttpVersion,
    },
    /// `version SP status [SP reason]`; `status` is `None` unless it is three digits.
    Response {
        version: HttpVersion,
        status: Option<u16>,
    },
}

/// How a lenient read of a head went.
#[derive(Debug)]
pub(super) enum LenientHead<'b> {
    /// A whole head of `len` bytes (the line end that closes it included).
    Complete {
        len: usize,
        start: StartLine<'b>,
        fields: Vec<httparse::Header<'b>>,
        /// Field lines without a colon or with an empty name.
        skipped_lines: u32,
    },
    /// More fields than allowed.
    TooManyFields,
    /// The head does not end in the input yet.
    Partial,
    /// The start line is neither a request line nor a status line.
    Invalid,
}

/// Splits the next line off `input` at `at`: the line without its CR LF / LF, and where the
/// next one starts. `None` when no LF follows yet.
fn line(input: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = &input[at..];
    let lf = rest.iter().position(|b| *b == b'\n')?;
    let line = &rest[..lf];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, at + lf + 1))
}

/// Reads a whole head from `input` (leading empty lines skipped, RFC 9112 §2.2).
pub(super) fn parse(input: &[u8], max_fields: usize) -> LenientHead<'_> {
    let mut at = input
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let Some((first, next)) = line(input, at) else {
        // Judge the start line early when it already cannot be one.
        return match plausible_start(&input[at..]) {
            true => LenientHead::Partial,
            false => LenientHead::Invalid,
        };
    };
    let Some(start) = start_line(first) else {
        return LenientHead::Invalid;
    };
    at = next;
    if let StartLine::Request {
        version: HttpVersion::Http09,
        ..
    } = start
    {
        // A simple request has no fields: it ends with its line.
        return LenientHead::Complete {
            len: at,
            start,
            fields: Vec::new(),
            skipped_lines: 0,
        };
    }
    let mut fields = Vec::new();
    let mut skipped_lines = 0;
    loop {
        let Some((l, next)) = line(input, at) else {
            return LenientHead::Partial;
        };
        at = next;
        if l.is_empty() {
            return LenientHead::Complete {
                len: at,
                start,
                fields,
                skipped_lines,
            };
        }
        if l[0] == b' ' || l[0] == b'\t' {
            // obs-fold (RFC 9112 §5.2): a continuation of the previous value; its text is
            // dropped (no field we act on is ever folded in practice).
            continue;
        }
        match field(l) {
            Some(h) if fields.len() < max_fields => fields.push(h),
            Some(_) => return LenientHead::TooManyFields,
            None => skipped_lines += 1,
        }
    }
}

/// The start line of `input`, when its first line is whole and reads as one.
pub(super) fn parse_start_line(input: &[u8]) -> Option<StartLine<'_>> {
    let at = input
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    line(input, at).and_then(|(l, _)| start_line(l))
}

/// `name: value` with the name trimmed (§5.1 forbids whitespace before the colon; peers
/// send it anyway) and the value stripped of optional whitespace (§5.5).
fn field(l: &[u8]) -> Option<httparse::Header<'_>> {
    let colon = l.iter().position(|b| *b == b':')?;
    let name = l[..colon].trim_ascii();
    if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
        return None;
    }
    Some(httparse::Header {
        name: std::str::from_utf8(name).ok()?,
        value: l[colon + 1..].trim_ascii(),
    })
}

/// Whether `partial` (no line end yet) could still begin a start line: a token, or "HTTP/".
fn plausible_start(partial: &[u8]) -> bool {
    let word = partial
        .split(|b| *b == b' ' || *b == b'\t')
        .next()
        .unwrap_or_default();
    word.iter()
        .all(|b| is_tchar(*b) || *b == b'/' || *b == b'.')
        && partial.len() <= 8 * 1024
}

/// Words of a line split on runs of SP/HTAB, with where each starts.
fn words(l: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < l.len() && (l[i] == b' ' || l[i] == b'\t') {
            i += 1;
        }
        if i == l.len() {
            return None;
        }
        let start = i;
        while i < l.len() && l[i] != b' ' && l[i] != b'\t' {
            i += 1;
        }
        Some((start, &l[start..i]))
    })
}

fn start_line(l: &[u8]) -> Option<StartLine<'_>> {
    let mut ws = words(l);
    let (_, first) = ws.next()?;
    if let Some(version) = version(first) {
        // status-line = HTTP-version SP status-code SP [ reason-phrase ] (§4).
        let status = ws.next().and_then(|(_, s)| status_code(s));
        return Some(StartLine::Response { version, status });
    }
    if !first.iter().all(|b| is_tchar(*b)) {
        return None;
    }
    let method = std::str::from_utf8(first).ok()?;
    let (target_start, target) = ws.next()?;
    let mut last = (target_start, target);
    let mut n = 2;
    for w in ws {
        last = w;
        n += 1;
    }
    if n == 2 {
        // RFC 1945 §4.1: Simple-Request = "GET" SP Request-URI CRLF.
        return (method == "GET").then_some(StartLine::Request {
            method,
            target,
            version: HttpVersion::Http09,
        });
    }
    let version = version(last.1)?;
    // The target runs from the second word to the one before the version.
    let target = l[target_start..last.0].trim_ascii_end();
    Some(StartLine::Request {
        method,
        target,
        version,
    })
}

/// `HTTP/1.x` read leniently: major 1, any minor (missing = 1.1, RFC 9110 §2.5).
pub(super) fn version(w: &[u8]) -> Option<HttpVersion> {
    let rest = w
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case(b"HTTP/"))
        .map(|_| &w[5..])?;
    let (major, minor) = match rest.iter().position(|b| *b == b'.') {
        Some(dot) => (&rest[..dot], &rest[dot + 1..]),
        None => (rest, &b""[..]),
    };
    if major != b"1" || !minor.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(if minor.iter().all(|d| *d == b'0') && !minor.is_empty() {
        HttpVersion::Http10
    } else {
        HttpVersion::Http11
    })
}

/// status-code = 3DIGIT (RFC 9112 §4); anything else is no usable status.
fn status_code(w: &[u8]) -> Option<u16> {
    match w {
        [a, b, c] if w.iter().all(u8::is_ascii_digit) => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

/// tchar (RFC 9110 §5.6.2).
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// What can be read of a request start line neither parser took, for the exchange the server
/// still answers (RFC 9112 §3: a server answers an invalid request-line with 400 or 301, and
/// real servers answer many more with 405, 411 or even 200): the first word as the method
/// (skipped when it is not UTF-8 text, as junk before the line), the next word that is not a
/// version as the target (at most [`SALVAGE_TARGET_MAX`] bytes, lossy UTF-8), the version
/// when a word is one. Empty strings where nothing fits; the record is marked
/// ([`crate::record::BodyError::InvalidHead`]) so it is never taken for a well-formed request.
pub(super) fn salvage_request_line(input: &[u8]) -> (String, String, HttpVersion) {
    let end = input
        .iter()
        .take(MAX_SALVAGE_LINE)
        .position(|b| *b == b'\n')
        .unwrap_or(input.len().min(MAX_SALVAGE_LINE));
    let l = input[..end].strip_suffix(b"\r").unwrap_or(&input[..end]);
    let text = |w: &[u8]| {
        std::str::from_utf8(w)
            .ok()
            .filter(|t| !t.chars().any(char::is_control))
            .map(str::to_owned)
    };
    let mut method: Option<String> = None;
    let mut target = String::new();
    let mut found_version = None;
    for (i, (_, w)) in words(l).enumerate() {
        if let Some(v) = version(w) {
            found_version = Some(v);
        } else if method.is_none() && i <= 1 {
            method = text(w);
        } else if method.is_some() && target.is_empty() {
            let w = &w[..w.len().min(SALVAGE_TARGET_MAX)];
            target = String::from_utf8_lossy(w).into_owned();
        }
    }
    (
        method.unwrap_or_default(),
        target,
        found_version.unwrap_or(HttpVersion::Http11),
    )
}

/// Whether the first line of `input` (up to its LF, at most [`MAX_SALVAGE_LINE`] bytes) is
/// text a client could have meant as a request line: no control bytes but HTAB and CR
/// (RFC 9110 §5.5 field text rules, applied to the line). Binary bytes (a TLS record, another
/// protocol) are no request the server would answer as HTTP.
pub(super) fn text_line(input: &[u8]) -> bool {
    input
        .iter()
        .take(MAX_SALVAGE_LINE)
        .take_while(|b| **b != b'\n')
        .all(|b| *b == b'\t' || *b == b'\r' || (*b >= 0x20 && *b != 0x7f))
}

/// Where the head at the start of `input` ends (just after the empty line that closes it,
/// RFC 9112 §2.1), when it ends within `max` bytes and none of its field lines is a
/// Content-Length or Transfer-Encoding (so no body follows, RFC 9112 §6.3 rule 6). `None`
/// otherwise: the caller searches for the next message start instead.
pub(super) fn bodiless_head_end(input: &[u8], max: usize) -> Option<usize> {
    let mut at = 0;
    while at < input.len().min(max) {
        let (l, next) = line(input, at)?;
        if l.is_empty() && at > 0 {
            return Some(next);
        }
        let name = l
            .split(|b| *b == b':')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            return None;
        }
        at = next;
    }
    None
}

/// Bytes of a bad start line looked at by [`salvage_request_line`].
const MAX_SALVAGE_LINE: usize = 8 * 1024;

/// Longest target kept from a bad start line.
pub(super) const SALVAGE_TARGET_MAX: usize = 2048;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvages_what_it_can_of_a_bad_request_line() {
        let s = |l: &[u8]| salvage_request_line(l);
        assert_eq!(
            s(b"OPTIONS HTTP/1.1\r\nHost: a\r\n\r\n"),
            ("OPTIONS".into(), String::new(), HttpVersion::Http11)
        );
        assert_eq!(
            s(b"GET/ HTTP/1.0\r\n"),
            ("GET/".into(), String::new(), HttpVersion::Http10)
        );
        assert_eq!(
            s(b"\xff GET /txt HTTP/1.1\r\n"),
            ("GET".into(), "/txt".into(), HttpVersion::Http11)
        );
        assert_eq!(
            s("ÃÂÃ / HTTP/1.".as_bytes()),
            ("ÃÂÃ".into(), "/".into(), HttpVersion::Http11)
        );
        assert_eq!(
            s(b"CCM_POST /HTTP/1.1\r\n"),
            ("CCM_POST".into(), "/HTTP/1.1".into(), HttpVersion::Http11)
        );
        assert_eq!(s(b""), (String::new(), String::new(), HttpVersion::Http11));
        assert!(text_line(b"\xff GET /txt HTTP/1.1\r\n\x00"));
        assert_eq!(
            bodiless_head_end(b"BAD\r\nHost: h\r\n\r\nGET", 100),
            Some(16)
        );
        assert_eq!(bodiless_head_end(b"BAD\nHost: h\n\nGET", 100), Some(13));
        assert_eq!(
            bodiless_head_end(b"BAD\r\nContent-Length: 3\r\n\r\nabc", 100),
            None
        );
        assert_eq!(bodiless_head_end(b"BAD\r\nHost: h\r\n", 100), None);
        assert_eq!(bodiless_head_end(b"BAD\r\nHost: h\r\n\r\n", 8), None);
        assert!(!text_line(b"\x16\x03\x01\x02\x00"));
        assert!(!text_line(b"GET /\x00 HTTP/1.1\r\n"));
        let long = [b'a'; 9000];
        assert_eq!(s(&long).0.len(), MAX_SALVAGE_LINE);
        let long_target = [b"GET ".as_slice(), &[b'/'; 3000]].concat();
        assert_eq!(s(&long_target).1.len(), SALVAGE_TARGET_MAX);
    }

    fn complete(input: &[u8]) -> (usize, StartLine<'_>, Vec<(String, String)>, u32) {
        match parse(input, 64) {
            LenientHead::Complete {
                len,
                start,
                fields,
                skipped_lines,
            } => (
                len,
                start,
                fields
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                skipped_lines,
            ),
            other => panic!("{other:?}"),
        }
    }

    fn request(
        method: &'static str,
        target: &'static str,
        version: HttpVersion,
    ) -> StartLine<'static> {
        StartLine::Request {
            method,
            target: target.as_bytes(),
            version,
        }
    }

    #[test]
    fn http09_simple_request_ends_with_its_line() {
        let (len, start, fields, _) = complete(b"GET /legacy.txt\r\n\r\n");
        assert_eq!(len, 17);
        assert_eq!(start, request("GET", "/legacy.txt", HttpVersion::Http09));
        assert!(fields.is_empty());
        // Only GET existed in HTTP/0.9.
        assert!(matches!(parse(b"POST /x\r\n", 64), LenientHead::Invalid));
    }

    #[test]
    fn odd_versions_read_as_1_1() {
        for v in ["HTTP/1.", "HTTP/1.2", "HTTP/1", "HTTP/1.10"] {
            let input = format!("GET /odd {v}\r\nHost: h\r\n\r\n");
            let (_, start, fields, _) = complete(input.as_bytes());
            assert_eq!(start, request("GET", "/odd", HttpVersion::Http11), "{v}");
            assert_eq!(fields, vec![("Host".into(), "h".into())]);
        }
        assert!(matches!(
            parse(b"GET / HTTP/2.0\r\n\r\n", 64),
            LenientHead::Invalid
        ));
        assert_eq!(version(b"HTTP/1.0"), Some(HttpVersion::Http10));
    }

    #[test]
    fn status_lines_without_a_usable_code_or_reason() {
        let resp = |s| StartLine::Response {
            version: HttpVersion::Http11,
            status: s,
        };
        assert_eq!(complete(b"HTTP/1.1 2XX OK\r\n\r\n").1, resp(None));
        assert_eq!(complete(b"HTTP/1.1\r\n\r\n").1, resp(None));
        assert_eq!(complete(b"HTTP/1.1 200\r\n\r\n").1, resp(Some(200)));
        // Control bytes in the reason phrase: ignored (RFC 9112 §4).
        assert_eq!(
            complete(b"HTTP/1.1 500 a\x01b\x7f\r\n\r\n").1,
            resp(Some(500))
        );
    }

    #[test]
    fn field_lines_without_a_colon_are_skipped_and_counted() {
        let (_, _, fields, skipped) =
            complete(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nthis line has no colon\r\n: empty\r\nX-B : 2\r\n\r\n");
        assert_eq!(skipped, 2);
        assert_eq!(
            fields,
            vec![
                ("Content-Length".into(), "5".into()),
                ("X-B".into(), "2".into())
            ]
        );
    }

    #[test]
    fn bare_lf_and_obs_fold() {
        let (len, _, fields, _) = complete(b"\nPROPFIND  /a b  HTTP/1.1\nX-A: 1\n  folded\n\nbody");
        assert_eq!(len, 43);
        assert_eq!(fields, vec![("X-A".into(), "1".into())]);
        assert_eq!(
            parse_start_line(b"PROPFIND  /a b  HTTP/1.1\n"),
            Some(request("PROPFIND", "/a b", HttpVersion::Http11))
        );
    }

    #[test]
    fn partial_and_invalid() {
        assert!(matches!(
            parse(b"GET /a HTTP/1.1\r\nHost", 64),
            LenientHead::Partial
        ));
        assert!(matches!(parse(b"GET /a", 64), LenientHead::Partial));
        assert!(matches!(
            parse(b"\x16\x03\x01\x02\x00", 64),
            LenientHead::Invalid
        ));
        assert!(matches!(parse(b"{\"a\": 1}\r\n", 64), LenientHead::Invalid));
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", 1),
            LenientHead::TooManyFields
        ));
    }
}
