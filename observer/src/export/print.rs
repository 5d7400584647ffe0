//! `--print-spans`: each span as one JSON line (the serde form of `flows::record::Span`), for
//! a look at spans without a collector.

use std::io::Write;

use flows::record::Span;

/// Writes spans as JSON lines.
#[derive(Debug)]
pub struct SpanPrinter<W: Write> {
    out: W,
}

impl<W: Write> SpanPrinter<W> {
    /// Prints to `out` (stdout in the agent).
    pub fn new(out: W) -> Self {
        Self { out }
    }

    /// Writes one span and a newline.
    pub fn print(&mut self, span: &Span) -> std::io::Result<()> {
        write_span_line(&mut self.out, span)
    }

    /// Flushes (after each batch).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Writes `span` as one JSON line to `w` (one write, so lines from other writers to the same
/// stream never interleave inside it).
pub fn write_span_line<W: Write + ?Sized>(w: &mut W, span: &Span) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(span)?;
    line.push(b'\n');
    w.write_all(&line)
}
