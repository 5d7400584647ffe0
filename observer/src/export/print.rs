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
        serde_json::to_writer(&mut self.out, span)?;
        self.out.write_all(b"\n")
    }

    /// Flushes (after each batch).
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
