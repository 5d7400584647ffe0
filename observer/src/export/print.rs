//! `--print-spans`: each span as one JSON line (the serde form of `flows::record::Span`), for
//! a look at spans without a collector.

use std::io::Write;

use flows::record::Span;

/// Writes `span` as one JSON line to `w` (one write, so lines from other writers to the same
/// stream never interleave inside it).
pub fn write_span_line<W: Write + ?Sized>(w: &mut W, span: &Span) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(span)?;
    line.push(b'\n');
    w.write_all(&line)
}
