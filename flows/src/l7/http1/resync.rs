//! Finding the next message start in a stream joined mid-way or after a gap (RFC 9112 §2.1:
//! a message is a start line, fields and a body, so a start line is where to pick up again).
//!
//! A request line is only looked for at line starts and must be whole (a token, whitespace, a
//! target and a version as its last word, then a line end), which body text rarely is;
//! extension methods are found as well as the registered ones. Beyond that it is read by the
//! same rules as a head at the start of a connection ([`super::lenient`]: runs of
//! whitespace between the words, spaces inside the target, RFC 9112 §3), so a message the
//! start of a connection takes is not skipped when it comes after a gap or a mid-way join;
//! only a line that needs that leniency must also have a target shaped like one. A status
//! line (`HTTP/1.x SP` and a three-character status) is distinctive enough to be looked for
//! anywhere: a response often follows the previous body on the same line. Whatever is found
//! is confirmed by parsing its head; a false start resumes the search one byte later.

use super::lenient::{is_tchar, parse_start_line, StartLine};
use crate::l7::exchange::HttpVersion;
use crate::l7::StreamDir;

/// Whether a message start begins at some position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Match {
    /// It does.
    Full,
    /// The bytes so far could begin one; more are needed to tell.
    Prefix,
    /// It does not.
    No,
}

/// Longest request line recognised by a search (longer ones are found by framing only).
pub(crate) const MAX_START_LINE: usize = 4 * 1024;

/// Longest method token recognised by a search.
const MAX_METHOD: usize = 24;

/// Whether a request line of at most `limit` bytes starts `data`: a method token right at
/// the start, SP or HTAB after it, and a line the lenient start-line reader takes as a request
/// with a version (RFC 9112 §3: recipients MAY split on whitespace runs). HTTP/0.9 simple
/// requests (no version) are not looked for: body text too often reads as one.
pub(super) fn request_start(data: &[u8], limit: usize) -> Match {
    let Some(sp) = data.iter().take(MAX_METHOD + 1).position(|b| !is_tchar(*b)) else {
        return if data.len() <= MAX_METHOD {
            Match::Prefix
        } else {
            Match::No
        };
    };
    if sp == 0 || !is_blank(data[sp]) {
        return Match::No;
    }
    match data[sp..].iter().find(|b| !is_blank(**b)) {
        None => return Match::Prefix,
        Some(b) if b.is_ascii_whitespace() || b.is_ascii_control() => return Match::No,
        Some(_) => {}
    }
    let window = &data[..data.len().min(limit)];
    let Some(lf) = window.iter().position(|b| *b == b'\n') else {
        return if data.len() < limit {
            Match::Prefix
        } else {
            Match::No
        };
    };
    let Some(StartLine::Request {
        target, version, ..
    }) = parse_start_line(&data[..=lf])
    else {
        return Match::No;
    };
    // `token SP target SP version`, the shape RFC 9112 §3 defines, is taken whatever the
    // target. A line that needs the lenient reading (whitespace runs, HTAB, spaces inside the
    // target) reads as a request far more easily, from prose too ("tail of a body GET /x
    // HTTP/1.1"): its target must also begin as a request-target form does.
    let line = &data[..lf];
    let plain = line.iter().filter(|b| **b == b' ').count() == 2
        && !line.windows(2).any(|w| w == b"  ")
        && !line.contains(&b'\t');
    match version != HttpVersion::Http09 && (plain || target_form(target)) {
        true => Match::Full,
        false => Match::No,
    }
}

/// Whether `target` begins as a request-target form (RFC 9112 §3.2): origin-form `/...`,
/// asterisk-form `*`, absolute-form `scheme:...` or authority-form `host:port`.
fn target_form(target: &[u8]) -> bool {
    let first = target.split(|b| *b == b'/').next().unwrap_or_default();
    target.first() == Some(&b'/') || target == b"*" || first.contains(&b':')
}

/// SP or HTAB, what separates the words of a start line read leniently (RFC 9112 §3).
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether a status line starts `data`: `HTTP/1.` (up to two minor digits), SP, three
/// characters that are not whitespace, then SP or a line end.
pub(super) fn status_start(data: &[u8]) -> Match {
    const NAME: &[u8] = b"HTTP/1.";
    if data.len() < NAME.len() {
        return if NAME.starts_with(data) {
            Match::Prefix
        } else {
            Match::No
        };
    }
    if !data.starts_with(NAME) {
        return Match::No;
    }
    let mut i = NAME.len();
    while i < data.len() && i < NAME.len() + 2 && data[i].is_ascii_digit() {
        i += 1;
    }
    match data.get(i) {
        None => return Match::Prefix,
        Some(b' ') => i += 1,
        Some(_) => return Match::No,
    }
    for k in 0..4 {
        let Some(&b) = data.get(i + k) else {
            return Match::Prefix;
        };
        let ends = b == b' ' || b == b'\r' || b == b'\n';
        if (k < 3) == ends {
            return Match::No;
        }
    }
    Match::Full
}

/// Where a search stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// A message start at this offset.
    Found(usize),
    /// Possibly one at this offset; the rest of the input is too short to tell.
    Prefix(usize),
    /// None in the input.
    NotFound,
}

/// Searches `data` for a message start of direction `dir` (request lines of at most `limit`
/// bytes); `line_start` says whether `data[0]` begins a line.
pub(super) fn scan(data: &[u8], dir: StreamDir, line_start: bool, limit: usize) -> Scan {
    let verdict = |i: usize, m: Match| match m {
        Match::Full => Some(Scan::Found(i)),
        Match::Prefix => Some(Scan::Prefix(i)),
        Match::No => None,
    };
    match dir {
        StreamDir::ToServer => {
            if line_start {
                if let Some(s) = verdict(0, request_start(data, limit)) {
                    return s;
                }
            }
            let mut at = 0;
            while let Some(lf) = data[at..].iter().position(|b| *b == b'\n') {
                let i = at + lf + 1;
                if i == data.len() {
                    break;
                }
                if let Some(s) = verdict(i, request_start(&data[i..], limit)) {
                    return s;
                }
                at = i;
            }
        }
        StreamDir::ToClient => {
            let mut at = 0;
            while let Some(h) = data[at..].iter().position(|b| *b == b'H') {
                let i = at + h;
                if let Some(s) = verdict(i, status_start(&data[i..])) {
                    return s;
                }
                at = i + 1;
            }
        }
    }
    Scan::NotFound
}

/// Whether an HTTP/1 message (request or status line) starts at a line start in `buf`;
/// `line_start` says whether `buf[0]` begins a line. For the protocol sniffer.
pub(crate) fn message_start_at_line(buf: &[u8], line_start: bool) -> bool {
    let at = |i: usize| {
        request_start(&buf[i..], MAX_START_LINE) == Match::Full
            || status_start(&buf[i..]) == Match::Full
    };
    (line_start && !buf.is_empty() && at(0))
        || buf
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && i + 1 < buf.len() && at(i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_need_a_version_and_a_line_end() {
        assert_eq!(
            request_start(b"GET /a HTTP/1.1\r\n", MAX_START_LINE),
            Match::Full
        );
        assert_eq!(
            request_start(b"PROPFIND /d HTTP/1.1\n", MAX_START_LINE),
            Match::Full
        );
        assert_eq!(
            request_start(b"get /a HTTP/1.2\r\n", MAX_START_LINE),
            Match::Full
        );
        assert_eq!(
            request_start(b"GET /a HTTP/1.1", MAX_START_LINE),
            Match::Prefix
        );
        assert_eq!(request_start(b"GE", MAX_START_LINE), Match::Prefix);
        assert_eq!(request_start(b"Hello world\r\n", MAX_START_LINE), Match::No);
        assert_eq!(request_start(b"GET /legacy\r\n", MAX_START_LINE), Match::No);
        assert_eq!(
            request_start(b" GET / HTTP/1.1\r\n", MAX_START_LINE),
            Match::No
        );
        assert_eq!(
            request_start(b"GET HTTP/1.1\r\n", MAX_START_LINE),
            Match::No
        );
        let long = [b'A'; MAX_START_LINE + 10];
        assert_eq!(request_start(&long, MAX_START_LINE), Match::No);
    }

    #[test]
    fn request_lines_split_on_whitespace_runs_as_at_connection_start() {
        // RFC 9112 §3: recipients MAY split on whitespace runs; a target may hold spaces
        // (the version is the last word). What the start of a connection reads, a search
        // finds.
        for line in [
            &b"GET  /  HTTP/1.0\r\n"[..],
            b"GET\t/\tHTTP/1.1\r\n",
            b"get /a b HTTP/1.2\r\n",
            b"PROPFIND  /a b  HTTP/1.1\n",
        ] {
            assert!(
                matches!(
                    parse_start_line(line),
                    Some(StartLine::Request { version, .. }) if version != HttpVersion::Http09
                ),
                "{line:?}"
            );
            assert_eq!(request_start(line, MAX_START_LINE), Match::Full, "{line:?}");
        }
        // Still a whole line with a version, after a token at the line start.
        assert_eq!(request_start(b"GET  ", MAX_START_LINE), Match::Prefix);
        assert_eq!(
            request_start(b"GET  /  HTTP", MAX_START_LINE),
            Match::Prefix
        );
        assert_eq!(request_start(b"GET  \r\n", MAX_START_LINE), Match::No);
        assert_eq!(request_start(b"GET /a b\r\n", MAX_START_LINE), Match::No);
        assert_eq!(
            request_start(b"see the HTTP/2 spec\r\n", MAX_START_LINE),
            Match::No
        );
        // Prose read leniently needs a target form: "of" is none.
        assert_eq!(
            request_start(b"tail of a body GET /x HTTP/1.1\r\n", MAX_START_LINE),
            Match::No
        );
        assert_eq!(
            request_start(b"end.  See HTTP/1.1\r\n", MAX_START_LINE),
            Match::No
        );
        assert_eq!(
            request_start(b"GET  http://h/a b HTTP/1.1\r\n", MAX_START_LINE),
            Match::Full
        );
        assert_eq!(
            request_start(b"CONNECT  h:443  HTTP/1.1\r\n", MAX_START_LINE),
            Match::Full
        );
        assert_eq!(
            request_start(b"\tGET / HTTP/1.1\r\n", MAX_START_LINE),
            Match::No
        );
    }

    #[test]
    fn status_lines_with_odd_versions_and_codes() {
        assert_eq!(status_start(b"HTTP/1.1 200 OK\r\n"), Match::Full);
        assert_eq!(status_start(b"HTTP/1.2 2XX\r\n"), Match::Full);
        assert_eq!(status_start(b"HTTP/1. 200\n"), Match::Full);
        assert_eq!(status_start(b"HTTP/1.1 20"), Match::Prefix);
        assert_eq!(status_start(b"HTTP/"), Match::Prefix);
        assert_eq!(status_start(b"HTTP/1.1 2000 x"), Match::No);
        assert_eq!(status_start(b"HTTP/1.1 20\r\n"), Match::No);
        assert_eq!(status_start(b"HTTP/2 200"), Match::No);
    }

    #[test]
    fn scans_find_requests_at_line_starts_and_responses_anywhere() {
        let body = b"tail of a body GET /x HTTP/1.1\r\nGET /y HTTP/1.1\r\n";
        assert_eq!(
            scan(body, StreamDir::ToServer, true, MAX_START_LINE),
            Scan::Found(32)
        );
        assert_eq!(
            scan(b"abc\nGET /y", StreamDir::ToServer, false, MAX_START_LINE),
            Scan::Prefix(4)
        );
        assert_eq!(
            scan(
                b"</html>HTTP/1.1 200 OK\r\n",
                StreamDir::ToClient,
                false,
                MAX_START_LINE
            ),
            Scan::Found(7)
        );
        assert_eq!(
            scan(b"Hi HTTP/1", StreamDir::ToClient, false, MAX_START_LINE),
            Scan::Prefix(3)
        );
        assert_eq!(
            scan(
                b"no start here\n",
                StreamDir::ToServer,
                true,
                MAX_START_LINE
            ),
            Scan::NotFound
        );
    }

    #[test]
    fn sniffer_sees_starts_at_line_starts() {
        assert!(message_start_at_line(
            b"ody bytes\r\n\r\nHTTP/1.1 200 OK\r\n",
            true
        ));
        assert!(message_start_at_line(b"GET / HTTP/1.1\r\n", true));
        assert!(!message_start_at_line(b"GET / HTTP/1.1\r\n", false));
        assert!(!message_start_at_line(b"ody bytes", true));
    }
}
