//! The chunked transfer coding (RFC 9112 §7.1), stepped over body bytes as they pass: only the
//! state between two calls is kept, never the body.

/// Chunked transfer coding state (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    /// Reading hex digits of a chunk-size.
    Size { size: u64, digits: u8 },
    /// Skipping chunk-ext up to CRLF.
    Ext { size: u64, skipped: u32 },
    /// Expecting LF after the size line's CR.
    SizeLf { size: u64 },
    /// Inside chunk-data.
    Data { remaining: u64 },
    /// Expecting CR after chunk-data.
    DataCr,
    /// Expecting LF after chunk-data.
    DataLf,
    /// Inside the trailer section; `line` is the length of the current field line.
    Trailer { line: u32, total: u32 },
}

/// Longest chunk-ext or trailer section we skip before calling the framing broken.
const CHUNK_LINE_LIMIT: u32 = 16 * 1024;

/// What one step over body bytes came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChunkStep {
    /// Consumed this many bytes; more body follows.
    More(usize),
    /// Consumed this many bytes; the body ended.
    Done(usize),
    /// Framing is broken.
    Bad,
}

impl Chunked {
    /// Before the first chunk-size.
    pub(super) fn start() -> Self {
        Chunked::Size { size: 0, digits: 0 }
    }

    /// The state after `n` more bytes of the current chunk's data, seen or not (a gap of
    /// known length); `n` is at most what is left of it. Any other state is kept.
    pub(super) fn after_data(self, n: u64) -> Self {
        match self {
            Chunked::Data { remaining } if n >= remaining => Chunked::DataCr,
            Chunked::Data { remaining } => Chunked::Data {
                remaining: remaining - n,
            },
            other => other,
        }
    }

    /// Advances over `data`, adding chunk-data bytes to `body`.
    #[cfg(test)]
    pub(super) fn step(&mut self, data: &[u8], body: &mut u64) -> ChunkStep {
        self.step_data(data, body, |_| {})
    }

    /// Like [`Self::step`], and hands each run of chunk-data (the decoded body) to `on_data`.
    pub(super) fn step_data(
        &mut self,
        data: &[u8],
        body: &mut u64,
        mut on_data: impl FnMut(&[u8]),
    ) -> ChunkStep {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            match *self {
                Chunked::Data { remaining } => {
                    let take = remaining.min((data.len() - i) as u64);
                    *body += take;
                    on_data(&data[i..i + take as usize]);
                    i += take as usize;
                    *self = self.after_data(take);
                    continue;
                }
                Chunked::Size { size, digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        // 16 hex digits fill a u64; more is an overflow attack.
                        if digits >= 16 {
                            return ChunkStep::Bad;
                        }
                        *self = Chunked::Size {
                            size: size << 4 | u64::from(d),
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        return ChunkStep::Bad;
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        *self = Chunked::Ext { size, skipped: 0 };
                    } else if b == b'\r' {
                        *self = Chunked::SizeLf { size };
                    } else if b == b'\n' {
                        // Bare LF: tolerated as many servers do (RFC 9112 §2.2 allows it).
                        *self = Self::after_size(size);
                    } else {
                        return ChunkStep::Bad;
                    }
                }
                Chunked::Ext { size, skipped } => {
                    if b == b'\r' {
                        *self = Chunked::SizeLf { size };
                    } else if b == b'\n' {
                        *self = Self::after_size(size);
                    } else if skipped >= CHUNK_LINE_LIMIT {
                        return ChunkStep::Bad;
                    } else {
                        *self = Chunked::Ext {
                            size,
                            skipped: skipped + 1,
                        };
                    }
                }
                Chunked::SizeLf { size } => {
                    if b != b'\n' {
                        return ChunkStep::Bad;
                    }
                    *self = Self::after_size(size);
                }
                Chunked::DataCr => {
                    *self = match b {
                        b'\r' => Chunked::DataLf,
                        b'\n' => Chunked::start(),
                        _ => return ChunkStep::Bad,
                    };
                }
                Chunked::DataLf => {
                    if b != b'\n' {
                        return ChunkStep::Bad;
                    }
                    *self = Chunked::start();
                }
                Chunked::Trailer { line, total } => {
                    if total >= CHUNK_LINE_LIMIT {
                        return ChunkStep::Bad;
                    }
                    match b {
                        b'\n' if line == 0 => return ChunkStep::Done(i + 1),
                        b'\n' => {
                            *self = Chunked::Trailer {
                                line: 0,
                                total: total + 1,
                            }
                        }
                        b'\r' => {
                            *self = Chunked::Trailer {
                                line,
                                total: total + 1,
                            }
                        }
                        _ => {
                            *self = Chunked::Trailer {
                                line: line + 1,
                                total: total + 1,
                            }
                        }
                    }
                }
            }
            i += 1;
        }
        ChunkStep::More(i)
    }

    fn after_size(size: u64) -> Self {
        if size == 0 {
            // last-chunk: the trailer section follows, ended by an empty line.
            Chunked::Trailer { line: 0, total: 0 }
        } else {
            Chunked::Data { remaining: size }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps over `data` one split at a time; the body size and how it ended.
    fn run<T: AsRef<[u8]>>(parts: &[T]) -> (u64, Option<usize>, bool) {
        let mut c = Chunked::start();
        let mut body = 0;
        for p in parts {
            let p = p.as_ref();
            match c.step(p, &mut body) {
                ChunkStep::More(n) => assert_eq!(n, p.len()),
                ChunkStep::Done(n) => return (body, Some(n), false),
                ChunkStep::Bad => return (body, None, true),
            }
        }
        (body, None, false)
    }

    #[test]
    fn sizes_extensions_and_trailers() {
        // RFC 9112 §7.1: hex sizes (any case), chunk-ext ignored, trailer section skipped.
        let (body, done, bad) = run(&[
            &b"5;name=val\r\nhello\r\n1A\r\n"[..],
            &[b'x'; 26],
            b"\r\n0\r\nx-check: 1\r\n\r\n",
        ]);
        assert_eq!((body, done.is_some(), bad), (31, true, false));
    }

    #[test]
    fn chunk_data_runs_are_the_decoded_body() {
        // RFC 9112 §7.1.3: the body is the chunk-data, without sizes, extensions, trailers.
        let mut c = Chunked::start();
        let (mut body, mut got) = (0, Vec::new());
        for part in [&b"3;x=1\r\nab"[..], b"c\r\n2\r\nde\r\n0\r\nt: 1\r\n\r\n"] {
            c.step_data(part, &mut body, |d| got.extend_from_slice(d));
        }
        assert_eq!((got.as_slice(), body), (&b"abcde"[..], 5));
    }

    #[test]
    fn crlf_split_across_calls() {
        let (body, done, _) = run(&[&b"3\r"[..], b"\nabc\r", b"\n0\r", b"\n\r", b"\n"]);
        assert_eq!((body, done), (3, Some(1)));
    }

    #[test]
    fn hostile_sizes_are_malformed_without_allocating() {
        // 20 hex digits overflow 64 bits; a sign is not a hex digit.
        assert!(run(&[b"fffffffffffffffffffff\r\n"]).2);
        assert!(run(&[b"-1\r\n"]).2);
        assert!(run(&[b"\r\n"]).2);
        assert!(run(&[b"zz\r\n"]).2);
        // 16 digits fit: a huge but well-formed size is just a long body (cut short later).
        let (body, done, bad) = run(&[b"7fffffffffffffff\r\nx"]);
        assert_eq!((body, done, bad), (1, None, false));
    }
}
